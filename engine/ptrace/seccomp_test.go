package ptrace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// Errnos the helper's two filters return, for getppid (the older filter)
// and getpgid (the newer one, installed with SECCOMP_FILTER_FLAG_LOG).
const (
	helperErrnoOld = 1234
	helperErrnoNew = 77
)

// errnoFilter returns nr's calls with errno, allows the rest.
func errnoFilter(nr uint32, errno uint32) []abi.SockFilter {
	return []abi.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: nr},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | errno},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
}

// helperSeccomp puts every thread of the helper under two filters (TSYNC,
// so the Go runtime's threads too) and sleeps.
func helperSeccomp() {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		os.Exit(4)
	}
	for _, f := range []struct {
		prog  []abi.SockFilter
		flags uintptr
	}{
		{errnoFilter(unix.SYS_GETPPID, helperErrnoOld), unix.SECCOMP_FILTER_FLAG_TSYNC},
		{errnoFilter(unix.SYS_GETPGID, helperErrnoNew), unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG},
	} {
		b := abi.EncodeSockFilters(f.prog)
		prog := abi.SockFprog{Len: uint16(len(f.prog)), Filter: uint64(uintptr(unsafe.Pointer(&b[0])))}
		if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, abi.SeccompSetModeFilter, f.flags, uintptr(unsafe.Pointer(&prog))); e != 0 {
			fmt.Println("seccomp:", e)
			os.Exit(5)
		}
		runtime.KeepAlive(b)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}

// Under a filter, injected calls get the filter's errno; with
// PTRACE_O_SUSPEND_SECCOMP they run. The chain reads back oldest first,
// with the LOG flag of the newer filter.
func TestSuspendSeccompAndFilters(t *testing.T) {
	tr := newTracer(t)
	cmd := helperCmd("seccomp")
	var out bytes.Buffer
	cmd.Stdout = &out
	start(t, tr, cmd)
	pid := cmd.Process.Pid
	for i := 0; statusField(t, pid, "Seccomp_filters") != "2"; i++ {
		if i > 500 {
			t.Fatalf("helper never installed its filters (%q)", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	seizeStopped(t, tr, pid, unix.PTRACE_O_TRACESYSGOOD)
	r := beginInject(t, tr, pid)
	if _, err := r.Syscall(unix.SYS_GETPPID); !errors.Is(err, unix.Errno(helperErrnoOld)) {
		t.Fatalf("getppid under the filter, not suspended: %v, want errno %d", err, helperErrnoOld)
	}
	if err := tr.SuspendSeccomp(pid); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Syscall(unix.SYS_GETPPID); err != nil || int(got) != os.Getpid() {
		t.Fatalf("getppid with seccomp suspended = %d, %v; want %d", got, err, os.Getpid())
	}
	if _, err := r.Syscall(unix.SYS_GETPGID, 0); err != nil {
		t.Fatalf("getpgid with seccomp suspended: %v", err)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	fs, err := tr.SeccompFilters(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("%d filters, want 2", len(fs))
	}
	for i, want := range [][]abi.SockFilter{errnoFilter(unix.SYS_GETPPID, helperErrnoOld), errnoFilter(unix.SYS_GETPGID, helperErrnoNew)} {
		if !bytes.Equal(fs[i].Prog, abi.EncodeSockFilters(want)) {
			t.Errorf("filter %d: %x, want %x", i, fs[i].Prog, abi.EncodeSockFilters(want))
		}
	}
	if !fs[0].FlagsKnown || fs[0].Flags != 0 || fs[1].Flags != unix.SECCOMP_FILTER_FLAG_LOG {
		t.Errorf("flags %+v %+v, want 0 and LOG", fs[0], fs[1])
	}
	if err := tr.Detach(pid, 0); err != nil {
		t.Fatal(err)
	}
	// Let go, the task is under its filters again: a new tracer without
	// the option sees the errno.
	tr2 := newTracer(t)
	seizeStopped(t, tr2, pid, unix.PTRACE_O_TRACESYSGOOD)
	r2 := beginInject(t, tr2, pid)
	if _, err := r2.Syscall(unix.SYS_GETPGID, 0); !errors.Is(err, unix.Errno(helperErrnoNew)) {
		t.Fatalf("getpgid after detach: %v, want errno %d", err, helperErrnoNew)
	}
	r2.End()
	tr2.Detach(pid, 0)
}

// A task without filters has an empty chain.
func TestSeccompFiltersNone(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, unix.PTRACE_O_TRACESYSGOOD)
	fs, err := tr.SeccompFilters(pid)
	if err != nil || len(fs) != 0 {
		t.Fatalf("SeccompFilters = %v, %v; want none", fs, err)
	}
}
