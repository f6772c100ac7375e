package ptrace

import (
	"fmt"
	"strconv"
	"testing"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

func TestRegsAndXState(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, unix.PTRACE_O_TRACESYSGOOD)

	r, err := tr.GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	// sleep is in clock_nanosleep, interrupted for the stop.
	if r.OrigRax != unix.SYS_CLOCK_NANOSLEEP || int64(r.Rax) != -abi.ERESTART_RESTARTBLOCK {
		t.Errorf("orig_rax %d rax %d, want clock_nanosleep and -ERESTART_RESTARTBLOCK", int64(r.OrigRax), int64(r.Rax))
	}
	r2 := r
	r2.R12 = 0x1234
	if err := tr.SetRegs(pid, r2); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.GetRegs(pid); got.R12 != 0x1234 {
		t.Errorf("SetRegs: r12 %#x", got.R12)
	}
	if err := tr.SetRegs(pid, r); err != nil {
		t.Fatal(err)
	}

	x, err := tr.GetXState(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("xstate %d bytes", len(x))
	if len(x) < 576 { // legacy area 512 + xsave header 64
		t.Fatalf("xstate %d bytes", len(x))
	}
	if err := tr.SetXState(pid, x); err != nil {
		t.Fatal(err)
	}
	x2, err := tr.GetXState(pid)
	if err != nil || len(x2) != len(x) {
		t.Fatalf("second GetXState: %d bytes, %v", len(x2), err)
	}
	fp, err := tr.GetFPRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The FXSAVE image is the head of the XSAVE one (mxcsr at 24).
	if fp[24] != x[24] || fp[25] != x[25] {
		t.Errorf("mxcsr differs between FPREGS and XSTATE")
	}
	si, err := tr.GetSiginfo(pid)
	if err != nil {
		t.Fatal(err)
	}
	if si.Signo != int32(unix.SIGTRAP) || si.Code != int32(unix.SIGTRAP)|unix.PTRACE_EVENT_STOP<<8 {
		t.Errorf("interrupt stop siginfo signo %d code %#x", si.Signo, si.Code)
	}
}

// A child with SIGUSR1 and SIGUSR2 blocked, SIGUSR1 queued on the process
// (with a value) and SIGUSR2 on the thread: the mask reads back as
// /proc/PID/status shows it, and PeekSiginfo finds each in its queue.
func TestSigmaskPeekSiginfoRseq(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, 0)

	mask := abi.SigBit(int(unix.SIGUSR1)) | abi.SigBit(int(unix.SIGUSR2))
	if err := tr.SetSigmask(pid, mask); err != nil {
		t.Fatal(err)
	}
	got, err := tr.GetSigmask(pid)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := strconv.ParseUint(statusField(t, pid, "SigBlk"), 16, 64)
	if got != mask || blk != mask {
		t.Fatalf("GetSigmask %#x, SigBlk %#x, want %#x", got, blk, mask)
	}

	info := abi.Siginfo{Signo: int32(unix.SIGUSR1), Code: abi.SI_QUEUE}
	*(*int32)(unsafe.Pointer(&info.Data[0])) = int32(unix.Getpid())
	*(*uint64)(unsafe.Pointer(&info.Data[8])) = 0xfeedface
	if _, _, e := unix.Syscall(unix.SYS_RT_SIGQUEUEINFO, uintptr(pid), uintptr(unix.SIGUSR1), uintptr(unsafe.Pointer(&info))); e != 0 {
		t.Fatal(e)
	}
	if err := unix.Tgkill(pid, pid, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if err := unix.Tgkill(pid, pid, unix.SIGUSR2); err != nil { // standard signals coalesce
		t.Fatal(err)
	}

	shared, err := tr.PeekSiginfo(pid, true)
	if err != nil {
		t.Fatal(err)
	}
	private, err := tr.PeekSiginfo(pid, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != 1 || shared[0].Signo != int32(unix.SIGUSR1) || shared[0].Code != abi.SI_QUEUE || shared[0].Value() != 0xfeedface {
		t.Errorf("shared queue %+v", shared)
	}
	if len(private) != 1 || private[0].Signo != int32(unix.SIGUSR2) || private[0].Code != abi.SI_TKILL || int(private[0].Pid()) != unix.Getpid() {
		t.Errorf("private queue %+v", private)
	}
	if s := statusField(t, pid, "ShdPnd"); s != fmt.Sprintf("%016x", abi.SigBit(int(unix.SIGUSR1))) {
		t.Errorf("ShdPnd %s", s)
	}

	rs, err := tr.GetRseqConfig(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rseq %+v", rs)
	if rs.RseqAbiPointer != 0 && rs.Signature != abi.RseqSignature {
		t.Errorf("rseq signature %#x", rs.Signature)
	}
}

// Many queued real-time signals come back in order across PEEKSIGINFO batches.
func TestPeekSiginfoBatches(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, 0)
	rt := 40
	if err := tr.SetSigmask(pid, abi.SigBit(rt)); err != nil {
		t.Fatal(err)
	}
	const n = 3*peekBatch + 5
	for i := 0; i < n; i++ {
		info := abi.Siginfo{Signo: int32(rt), Code: abi.SI_QUEUE}
		*(*uint64)(unsafe.Pointer(&info.Data[8])) = uint64(i)
		if _, _, e := unix.Syscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(pid), uintptr(rt), uintptr(unsafe.Pointer(&info)), 0, 0); e != 0 {
			t.Fatal(e)
		}
	}
	q, err := tr.PeekSiginfo(pid, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != n {
		t.Fatalf("%d siginfos, want %d", len(q), n)
	}
	for i, si := range q {
		if si.Value() != uint64(i) {
			t.Fatalf("siginfo %d has value %d", i, si.Value())
		}
	}
}
