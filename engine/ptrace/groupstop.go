package ptrace

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// Journal hears of injection sessions as they open and close, so that
// someone outside gocr (the dump's watchdog) can put a task back if gocr
// dies while a session is open. SessionOpen is called after the task's
// registers and mask are saved and before anything in it is changed; an
// error aborts the session. SessionClosed follows End.
type Journal interface {
	SessionOpen(tid int, regs abi.PtraceRegs, mask uint64, insn uint64) error
	SessionClosed(tid int) error
}

// SetJournal installs j (nil for none). Call it before any session opens.
func (t *Tracer) SetJournal(j Journal) {
	t.Do(func() error { t.journal = j; return nil }) //nolint:errcheck // cannot fail
}

// ErrTimeout says a task did not stop before the tracer's deadline.
var ErrTimeout = errors.New("timed out")

// SetDeadline bounds the waits for tasks to stop (Interrupt,
// SeizeThreads, StopGroup) — a task in uninterruptible sleep may never
// stop. The zero time removes the bound.
func (t *Tracer) SetDeadline(d time.Time) {
	t.Do(func() error { t.deadline = d; return nil }) //nolint:errcheck // cannot fail
}

// waitDeadline is wait4 bounded by the tracer's deadline: with one set it
// polls, backing off from 20µs to 2ms.
func (t *Tracer) waitDeadline(tid int) (unix.WaitStatus, error) {
	if t.deadline.IsZero() {
		return wait4(tid)
	}
	var ws unix.WaitStatus
	nap := 20 * time.Microsecond
	for {
		got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return ws, fmt.Errorf("wait4 tid %d: %w", tid, err)
		case got == tid:
			return ws, nil
		}
		if time.Now().After(t.deadline) {
			state := "?"
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid)); err == nil {
				if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
					state = string(b[i+2])
				}
			}
			return ws, fmt.Errorf("tid %d (state %s) did not stop in time: %w", tid, state, ErrTimeout)
		}
		time.Sleep(nap)
		nap = min(2*nap, 2*time.Millisecond)
	}
}

// WasGroupStopped says whether tid was in group stop (stopped by SIGSTOP
// or another stop signal, state T) when the tracer stopped it, and by
// which signal (0 when it was not).
func (t *Tracer) WasGroupStopped(tid int) (bool, unix.Signal) {
	var ok bool
	var sig unix.Signal
	t.Do(func() error { //nolint:errcheck // cannot fail
		st := t.tasks[tid]
		ok = st != nil && st.groupStopped
		if ok {
			sig = st.groupStopSig
		}
		return nil
	})
	return ok, sig
}

// StopGroup puts process pid, whose threads tids are stopped tracees of
// ours, in group stop while the tracer keeps driving it: it sends SIGSTOP
// and resumes a thread until the signal has been taken (the kernel then
// marks the whole group stopped; under PTRACE_SEIZE a tracee is still
// resumed by the tracer at will). The point: if the tracer dies, the
// kernel's ptrace unlink puts every thread of a group-stopped process into
// job-control stop instead of letting it run — a thread whose registers
// point at an injected syscall stays put until someone fixes them.
//
// wasStopped is whether the process was stopped before: then
// ContinueGroup leaves it so.
func (t *Tracer) StopGroup(pid int, tids []int) (wasStopped bool, err error) {
	err = t.Do(func() error {
		var err error
		wasStopped, err = t.stopGroup(pid, tids)
		return err
	})
	return wasStopped, err
}

func (t *Tracer) stopGroup(pid int, tids []int) (bool, error) {
	wasStopped := false
	for _, tid := range tids {
		if st := t.tasks[tid]; st == nil || !st.stopped {
			return false, fmt.Errorf("group stop pid %d: tid %d is not a stopped tracee", pid, tid)
		} else if st.groupStopped {
			wasStopped = true
		}
	}
	// A SIGSTOP already pending would have stopped it anyway.
	if pendingStop(pid) {
		wasStopped = true
	}
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		return false, fmt.Errorf("group stop pid %d: kill SIGSTOP: %w", pid, err)
	}
	t.groupStop[pid] = wasStopped
	// Any thread will do: the signal is in the process-wide queue. Threads
	// with a lower-numbered signal pending take that first (delivered
	// now, as waitEventStop does: as if it came just before the seize).
	taken := false
	for _, tid := range tids {
		st := t.tasks[tid]
		resume := 0
		for i := 0; !taken; i++ {
			if i > 256 {
				return wasStopped, fmt.Errorf("group stop pid %d: tid %d did not take SIGSTOP after %d stops", pid, tid, i)
			}
			if _, err := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(resume)); err != nil {
				return wasStopped, fmt.Errorf("group stop: ptrace CONT tid %d: %w", tid, err)
			}
			st.stopped = false
			ws, err := t.waitDeadline(tid)
			if err != nil {
				return wasStopped, fmt.Errorf("group stop pid %d: %w", pid, err)
			}
			if ws.Exited() || ws.Signaled() {
				delete(t.tasks, tid)
				break // another thread takes it
			}
			st.stopped = true
			ev, sig := event(ws), ws.StopSignal()
			resume = 0
			switch {
			case ev == unix.PTRACE_EVENT_STOP:
				st.groupStopped = sig != unix.SIGTRAP
			case ev == unix.PTRACE_EVENT_CLONE || ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_VFORK:
				t.adoptChild(tid, st)
			case ev != 0 || int(sig) == abi.SyscallTrap:
			case sig == unix.SIGSTOP:
				// Our SIGSTOP, dequeued: let it stop the group. The
				// thread reports the group stop next.
				taken, resume = true, int(unix.SIGSTOP)
				if _, err := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(resume)); err != nil {
					return wasStopped, fmt.Errorf("group stop: ptrace CONT tid %d: %w", tid, err)
				}
				st.stopped = false
				if _, err := t.waitEventStop(tid); err != nil {
					return wasStopped, fmt.Errorf("group stop pid %d: %w", pid, err)
				}
			default:
				resume = int(sig)
			}
		}
		if taken {
			break
		}
	}
	if !taken {
		return wasStopped, fmt.Errorf("group stop pid %d: no thread took SIGSTOP", pid)
	}
	return wasStopped, nil
}

// ContinueGroup ends the group stop StopGroup began, unless the process
// was stopped before it (it stays stopped then). It sends SIGCONT, as a
// shell's fg does; threads still traced run once detached.
func (t *Tracer) ContinueGroup(pid int) error {
	return t.Do(func() error {
		wasStopped, ok := t.groupStop[pid]
		if !ok {
			return nil
		}
		delete(t.groupStop, pid)
		if wasStopped {
			return nil
		}
		if err := unix.Kill(pid, unix.SIGCONT); err != nil && err != unix.ESRCH {
			return fmt.Errorf("end group stop of pid %d: kill SIGCONT: %w", pid, err)
		}
		return nil
	})
}

// pendingStop says whether a SIGSTOP is pending in pid's process-wide
// queue or any thread's own.
func pendingStop(pid int) bool {
	bit := uint64(1) << (unix.SIGSTOP - 1)
	has := func(path, field string) bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return err == nil && n&bit != 0
			}
		}
		return false
	}
	if has(fmt.Sprintf("/proc/%d/status", pid), "ShdPnd") {
		return true
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		if has(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()), "SigPnd") {
			return true
		}
	}
	return false
}

// whyNoTrace explains an EPERM from PTRACE_SEIZE: most often another
// tracer (a second gocr, a debugger) holds the task.
func whyNoTrace(tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return fmt.Sprintf("tid %d may not be traced", tid)
	}
	var uid string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			if tp := strings.TrimSpace(v); tp != "0" {
				comm, _ := os.ReadFile("/proc/" + tp + "/comm")
				return fmt.Sprintf("pid %d is already traced by pid %s (%s)", tid, tp, strings.TrimSpace(string(comm)))
			}
		}
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid = strings.Fields(v)[0]
		}
	}
	return fmt.Sprintf("gocr (uid %d) may not trace pid %d (uid %s)", os.Geteuid(), tid, uid)
}

// PutBack sets a stopped tracee's registers and signal mask to those an
// injection session saved, as End does — for the watchdog, which finds
// the thread where a dead gocr left it.
func (t *Tracer) PutBack(tid int, regs abi.PtraceRegs, mask uint64) error {
	return t.Do(func() error {
		r := resumeRegs(regs)
		if err := setRegs(tid, &r); err != nil {
			return err
		}
		return setSigmask(tid, mask)
	})
}
