package abi

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's sizes, from its headers; a layout mistake shows up here.
func TestSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"user_regs_struct", unsafe.Sizeof(PtraceRegs{}), 27 * 8},
		{"user_i387_struct", unsafe.Sizeof(UserFPRegs{}), 512},
		{"clone_args", unsafe.Sizeof(CloneArgs{}), CloneArgsSize},
		{"prctl_mm_map", unsafe.Sizeof(PrctlMMMap{}), 104},
		{"ptrace_rseq_configuration", unsafe.Sizeof(PtraceRseqConfiguration{}), 24}, // u64 + 4*u32, not 32
		{"struct rseq_cs", unsafe.Sizeof(RseqCS{}), 32},
		{"ptrace_peeksiginfo_args", unsafe.Sizeof(PtracePeekSiginfoArgs{}), 16},
		{"siginfo_t", unsafe.Sizeof(Siginfo{}), 128},
		{"kernel sigaction", unsafe.Sizeof(KernelSigaction{}), 32},
		{"stack_t", unsafe.Sizeof(StackT{}), 24},
		{"struct sigevent", unsafe.Sizeof(Sigevent{}), 64},
		{"struct itimerspec", unsafe.Sizeof(Itimerspec{}), 32},
		{"struct termios", unsafe.Sizeof(Termios{}), 36}, // 4 flags, c_line, c_cc[19]
		{"struct winsize", unsafe.Sizeof(Winsize{}), 8},
		{"ipc64_perm", unsafe.Sizeof(IpcPerm{}), 48},
		{"shmid64_ds", unsafe.Sizeof(ShmidDS{}), 112},
		{"semid64_ds", unsafe.Sizeof(SemidDS{}), 104},
		{"msqid64_ds", unsafe.Sizeof(MsqidDS{}), 120},
		{"mq_attr", unsafe.Sizeof(MqAttr{}), 64},
		{"struct sock_filter", unsafe.Sizeof(SockFilter{}), SockFilterSize},
		{"struct sock_filter (kernel)", SockFilterSize, 8},
		{"struct sock_fprog", unsafe.Sizeof(SockFprog{}), SockFprogSize},
		{"struct sock_fprog (kernel)", SockFprogSize, 16},
		{"struct seccomp_metadata", unsafe.Sizeof(SeccompMetadata{}), SeccompMetadataSize},
		{"struct seccomp_metadata (kernel)", SeccompMetadataSize, 16},
		{"x/sys sock_filter", unsafe.Sizeof(unix.SockFilter{}), SockFilterSize},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// Offsets the engine relies on by name.
func TestOffsets(t *testing.T) {
	var r PtraceRegs
	var s Siginfo
	var c CloneArgs
	var sem SemidDS
	var msq MsqidDS
	for _, o := range []struct {
		name      string
		got, want uintptr
	}{
		{"regs.orig_ax", unsafe.Offsetof(r.OrigRax), 15 * 8},
		{"regs.ip", unsafe.Offsetof(r.Rip), 16 * 8},
		{"regs.sp", unsafe.Offsetof(r.Rsp), 19 * 8},
		{"regs.fs_base", unsafe.Offsetof(r.FsBase), 21 * 8},
		{"regs.gs", unsafe.Offsetof(r.Gs), 26 * 8},
		{"siginfo union", unsafe.Offsetof(s.Data), 16},
		{"clone_args.set_tid", unsafe.Offsetof(c.SetTid), 64},
		{"clone_args.cgroup", unsafe.Offsetof(c.Cgroup), 80},
		{"semid64_ds.sem_nsems", unsafe.Offsetof(sem.Nsems), 80},
		{"msqid64_ds.msg_qbytes", unsafe.Offsetof(msq.Qbytes), 88},
		{"msqid64_ds.msg_lspid", unsafe.Offsetof(msq.Lspid), 96},
	} {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, want %d", o.name, o.got, o.want)
		}
	}
}

// Constants duplicated for readability must agree with x/sys/unix.
func TestAgreesWithXSys(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"NT_X86_XSTATE", NT_X86_XSTATE, unix.NT_X86_XSTATE},
		{"PR_SET_MM", PrSetMM, unix.PR_SET_MM},
		{"PR_SET_MM_MAP", PrSetMMMap, unix.PR_SET_MM_MAP},
		{"PR_SET_MM_MAP_SIZE", PrSetMMMapSize, unix.PR_SET_MM_MAP_SIZE},
		{"SyscallTrap", SyscallTrap, int(unix.SIGTRAP) | 0x80},
		{"NCCS", NCCS, len(unix.Termios{}.Cc)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, x/sys says %#x", c.name, c.got, c.want)
		}
	}
}

func TestSiginfoFields(t *testing.T) {
	var s Siginfo
	copy(s.Data[:], []byte{0x39, 0x30, 0, 0, 0xe8, 0x03, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	if s.Pid() != 12345 || s.Uid() != 1000 || s.Value() != 0x0807060504030201 {
		t.Fatalf("pid %d uid %d value %#x", s.Pid(), s.Uid(), s.Value())
	}
	if SigBit(1) != 1 || SigBit(64) != 1<<63 {
		t.Fatal("SigBit")
	}
}

// The ioctl numbers as the kernel headers spell them out.
func TestIoctlNumbers(t *testing.T) {
	if TFD_IOC_SET_TICKS != 0x40085400 {
		t.Errorf("TFD_IOC_SET_TICKS = %#x, want 0x40085400", TFD_IOC_SET_TICKS)
	}
	if INOTIFY_IOC_SETNEXTWD != 0x40044900 {
		t.Errorf("INOTIFY_IOC_SETNEXTWD = %#x, want 0x40044900", INOTIFY_IOC_SETNEXTWD)
	}
}
