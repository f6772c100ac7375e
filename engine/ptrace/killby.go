package ptrace

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// KillBy ends tid, stopped by this tracer, by sig, the way a process
// killed by a signal ends: sig is sent, and handed to the task at its
// signal-delivery-stop, before it runs an instruction of its own. The
// task must have sig unblocked and at its default action, which
// terminates. The tracer takes the death; the parent then has the
// zombie, killed by sig.
func (t *Tracer) KillBy(tid int, sig unix.Signal) error {
	return t.Do(func() error { return t.killBy(tid, sig) })
}

func (t *Tracer) killBy(tid int, sig unix.Signal) error {
	st := t.tasks[tid]
	if st == nil {
		return fmt.Errorf("kill tid %d by %v: not traced", tid, sig)
	}
	if err := unix.Tgkill(st.tgid, tid, sig); err != nil {
		return fmt.Errorf("kill tid %d by %v: %w", tid, sig, err)
	}
	deliver := 0
	for range 16 { // a syscall or event stop or two on the way
		// ESRCH: dying already (SIGKILL does not wait for a resume).
		if _, err := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(deliver)); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("ptrace CONT tid %d: %w", tid, err)
		}
		st.stopped = false
		ws, err := wait4(tid)
		if err != nil {
			return err
		}
		if ws.Exited() || ws.Signaled() {
			delete(t.tasks, tid)
			if ws.Signaled() && ws.Signal() == sig && !ws.CoreDump() {
				return nil
			}
			return fmt.Errorf("kill tid %d by %v: %w", tid, sig, exitedErr(tid, ws))
		}
		st.stopped = true
		deliver = 0
		if event(ws) == 0 && ws.StopSignal() == sig {
			deliver = int(sig)
		}
	}
	return fmt.Errorf("kill tid %d by %v: it does not die", tid, sig)
}
