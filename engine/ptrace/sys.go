package ptrace

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrExited says the task died while the tracer waited for it.
var ErrExited = errors.New("task exited")

// ptrace issues one raw request. ptrace never blocks, so a raw syscall is
// fine and spares the scheduler hand-off.
func ptrace(req, tid int, addr, data uintptr) (uintptr, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return r, e
	}
	return r, nil
}

func ptracePtr(req, tid int, addr uintptr, data unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, uintptr(data), 0, 0)
	if e != 0 {
		return r, e
	}
	return r, nil
}

// wait4 waits for one tid (__WALL: threads are not SIGCHLD children),
// retrying the EINTR Go's SIGURG preemption causes.
func wait4(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait4 tid %d: %w", tid, err)
		}
		return ws, nil
	}
}

// event is the PTRACE_EVENT_* of a stop (status>>16), 0 for none.
func event(ws unix.WaitStatus) int { return int(ws>>16) & 0xff }

// exitedErr describes a wait status that ended the task.
func exitedErr(tid int, ws unix.WaitStatus) error {
	if ws.Signaled() {
		return fmt.Errorf("tid %d killed by signal %d (%s): %w", tid, int(ws.Signal()), unix.SignalName(ws.Signal()), ErrExited)
	}
	return fmt.Errorf("tid %d exited with status %d: %w", tid, ws.ExitStatus(), ErrExited)
}

// tgidOf reads the thread group of a tid from /proc.
func tgidOf(tid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no Tgid in /proc/%d/status", tid)
}
