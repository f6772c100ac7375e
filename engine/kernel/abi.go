package kernel

import "unsafe"

// Kernel ABI the probes use that golang.org/x/sys/unix does not define.
// Sizes are checked in abi_test.go against the kernel headers' numbers.

// cloneArgs is struct clone_args up to set_tid_size (CLONE_ARGS_SIZE_VER1,
// 80 bytes; 5.5+). cgroup (VER2, 5.7) is left out on purpose: the probe
// must not depend on it.
type cloneArgs struct {
	Flags      uint64
	Pidfd      uint64
	ChildTid   uint64
	ParentTid  uint64
	ExitSignal uint64
	Stack      uint64
	StackSize  uint64
	TLS        uint64
	SetTid     uint64 // pointer to a pid_t array, innermost namespace last
	SetTidSize uint64
}

// uffdioAPI is struct uffdio_api (24 bytes).
type uffdioAPI struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// ptraceRseqConfiguration is struct ptrace_rseq_configuration (24 bytes).
type ptraceRseqConfiguration struct {
	RseqAbiPointer uint64
	RseqAbiSize    uint32
	Signature      uint32
	Flags          uint32
	Pad            uint32
}

// ptracePeeksiginfoArgs is struct ptrace_peeksiginfo_args (16 bytes).
type ptracePeeksiginfoArgs struct {
	Off   uint64
	Flags uint32
	Nr    int32
}

const (
	kcmpFile = 0 // KCMP_FILE

	uffdAPI = 0xAA // UFFD_API
	// UFFDIO_API is _IOWR(UFFDIO, 0x3F, struct uffdio_api).
	uffdioAPIIoctl = 3<<30 | uintptr(unsafe.Sizeof(uffdioAPI{}))<<16 | 0xAA<<8 | 0x3F

	uffdFeaturePagefaultFlagWP = 1 << 0  // write-protect faults (5.7)
	uffdFeatureWPAsync         = 1 << 15 // async write-protect (6.7)

	prctlMMMapSize = 104 // sizeof(struct prctl_mm_map) on 64-bit

	capCheckpointRestore = 40
	capSysResource       = 24
)
