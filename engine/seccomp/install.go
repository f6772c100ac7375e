package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/remote"
)

// Install injects seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) into the
// thread, the program and its struct sock_fprog written at off in its
// scratch area (SockFprogSize + 32 KiB at most). With
// SECCOMP_FILTER_FLAG_TSYNC every other thread of the process gets it too;
// the kernel refuses when one has filters of its own. The task must be traced
// with PTRACE_O_SUSPEND_SECCOMP: from here on its own filters would judge
// every call injected into it.
func Install(t *remote.Task, off uint64, f Filter, flags uint32) error {
	n := len(f.Prog) / abi.SockFilterSize
	b := append(abi.EncodeSockFprog(n, t.Scratch+off+abi.SockFprogSize), f.Prog...)
	if err := t.Write(off, b); err != nil {
		return err
	}
	ret, err := t.Syscall(unix.SYS_SECCOMP, abi.SeccompSetModeFilter, uint64(flags), t.Scratch+off)
	if err != nil {
		return fmt.Errorf("seccomp SET_MODE_FILTER flags %#x (%d instructions): %w", flags, n, err)
	}
	if ret != 0 {
		// With TSYNC, the thread that could not take the filter.
		return fmt.Errorf("seccomp SET_MODE_FILTER flags %#x (%d instructions): thread %d cannot be synchronised", flags, n, ret)
	}
	return nil
}

// Strict injects seccomp(SECCOMP_SET_MODE_STRICT): the thread can then
// only read, write, exit and sigreturn, and only injection under
// PTRACE_O_SUSPEND_SECCOMP still reaches it.
func Strict(t *remote.Task) error {
	if _, err := t.Syscall(unix.SYS_SECCOMP, abi.SeccompSetModeStrict, 0, 0); err != nil {
		return fmt.Errorf("seccomp SET_MODE_STRICT: %w", err)
	}
	return nil
}
