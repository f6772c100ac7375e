package workloads

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

// fpuMode selects the registers fpuSyscall loads and stores.
type fpuMode uintptr

const (
	fpuSSE    fpuMode = iota // XMM0-15
	fpuAVX                   // YMM0-15
	fpuAVX512                // ZMM0-31 and K0-7
)

func (m fpuMode) String() string {
	return [...]string{"SSE (XMM0-15)", "AVX (YMM0-15)", "AVX-512 (ZMM0-31, K0-7)"}[m]
}

// fpuState is the register image fpuSyscall loads from and stores to; its
// layout is fixed by fpu_amd64.s.
type fpuState struct {
	Vec   [32][64]byte
	K     [8]uint64
	MXCSR uint32
	FCW   uint16
	_     [10]byte
}

const (
	fpuMXCSR = 0xffa0 // flush to zero, round toward zero, all masked, inexact flag set
	fpuFCW   = 0x0e7f // x87: round toward zero, double precision, all masked
)

var _ [2128]byte = [unsafe.Sizeof(fpuState{})]byte{}

func errnoErr(e int64) error { return syscall.Errno(e) }

// FpuSyscall keeps XMM0-15, a non-default MXCSR and x87 control word live
// in a thread blocked in a raw read(2) of an empty pipe (the SSE state every
// amd64 has). After SIGTERM the main goroutine writes a byte to the pipe;
// the thread stores the registers, which must be the values it loaded.
var FpuSyscall = lib.Workload{Name: "fpu_syscall", Run: func(t *lib.T) { runFpu(t, false) }}

// AvxSyscall is FpuSyscall with the widest vector registers the machine
// has: ZMM0-31 and the opmask registers with AVX-512 (F and BW), else
// YMM0-15 with AVX, else (logged) only XMM0-15. --vec=avx or --vec=sse
// narrows the set.
var AvxSyscall = lib.Workload{Name: "avx_syscall", Run: func(t *lib.T) { runFpu(t, true) }}

func runFpu(t *lib.T, wide bool) {
	mode, err := fpuBest()
	if err != nil {
		t.Fatal(err)
	}
	if !wide {
		mode = fpuSSE
	}
	// --vec=sse|avx narrows the register set, to test the narrower paths
	// on a wider machine.
	switch v := t.Opt("vec", ""); v {
	case "":
	case "sse":
		mode = fpuSSE
	case "avx":
		mode = min(mode, fpuAVX)
	default:
		t.Fail("--vec=%q: want sse or avx", v)
	}
	t.Logf("checking %v, MXCSR and the x87 control word", mode)
	// The assembly cannot be preempted: a stop-the-world (GC) would wait
	// for it forever, and it keeps its P, so another is needed.
	debug.SetGCPercent(-1)
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	in, out := new(fpuState), new(fpuState)
	seed := splitmix64(0xf0f0_5eed)
	for i := range in.Vec {
		for j := 0; j < 64; j += 8 {
			*(*uint64)(unsafe.Pointer(&in.Vec[i][j])) = seed.next()
		}
	}
	for i := range in.K {
		in.K[i] = seed.next()
	}
	in.MXCSR, in.FCW = fpuMXCSR, fpuFCW

	type result struct {
		n   int
		err error
		b   byte
	}
	tidc := make(chan int, 1)
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread holds the registers
		tidc <- unix.Gettid()
		var b [1]byte
		n, err := fpuBlockingRead(mode, p[0], &b[0], in, out)
		done <- result{n, err, b[0]}
	}()
	tid := <-tidc
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_READ); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()

	select {
	case r := <-done:
		t.Fail("blocking read returned before the pipe was written: %d, %v", r.n, r.err)
	default:
	}
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_READ); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(p[1], []byte{'W'}); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fail("thread %d still blocked in read 10 s after the pipe was written", tid)
	}
	if r.err != nil || r.n != 1 || r.b != 'W' {
		t.Fail("read returned %d, %v, byte %q; want 1, nil, 'W'", r.n, r.err, r.b)
	}
	if out.MXCSR != in.MXCSR {
		t.Fail("MXCSR %#x, want %#x", out.MXCSR, in.MXCSR)
	}
	if out.FCW != in.FCW {
		t.Fail("x87 control word %#x, want %#x", out.FCW, in.FCW)
	}
	nvec, width := 16, 16
	switch mode {
	case fpuAVX:
		width = 32
	case fpuAVX512:
		nvec, width = 32, 64
		if out.K != in.K {
			t.Fail("opmask registers %x, want %x", out.K, in.K)
		}
	}
	for i := range nvec {
		if !bytes.Equal(out.Vec[i][:width], in.Vec[i][:width]) {
			t.Fail("vector register %d: %x, want %x", i, out.Vec[i][:width], in.Vec[i][:width])
		}
	}
	t.Pass()
}
