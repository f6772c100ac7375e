package ptrace

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Seize attaches to tid with PTRACE_SEIZE and the given PTRACE_O_* options,
// without stopping it (Interrupt does that).
func (t *Tracer) Seize(tid, options int) error {
	return t.Do(func() error { return t.seize(tid, options) })
}

func (t *Tracer) seize(tid, options int) error {
	if _, ok := t.tasks[tid]; ok {
		return nil // already ours, e.g. auto-attached by PTRACE_O_TRACECLONE
	}
	if _, err := ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options)); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("ptrace SEIZE tid %d: %s: %w", tid, whyNoTrace(tid), err)
		}
		return fmt.Errorf("ptrace SEIZE tid %d: %w", tid, err)
	}
	tgid, err := tgidOf(tid)
	if err != nil {
		tgid = 0 // racing with exit; Interrupt will say so
	}
	t.tasks[tid] = &task{tgid: tgid, options: options}
	return nil
}

// Interrupt stops a seized task with PTRACE_INTERRUPT and waits for its
// PTRACE_EVENT_STOP. A task already in group-stop reports that instead
// (WStopSignal is then the stopping signal, and it stays stopped after
// Detach). Calling it on a task that is already stopped does nothing.
func (t *Tracer) Interrupt(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	err := t.Do(func() error {
		var err error
		ws, err = t.interrupt(tid)
		return err
	})
	return ws, err
}

func (t *Tracer) interrupt(tid int) (unix.WaitStatus, error) {
	st, ok := t.tasks[tid]
	if !ok {
		return 0, fmt.Errorf("interrupt tid %d: not traced by this tracer", tid)
	}
	if st.stopped {
		return 0, nil
	}
	if _, err := ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0); err != nil {
		return 0, fmt.Errorf("ptrace INTERRUPT tid %d: %w", tid, err)
	}
	return t.waitEventStop(tid)
}

// waitEventStop waits until tid reports PTRACE_EVENT_STOP. Other stops on
// the way are resumed: a signal-delivery-stop is resumed with its signal, so
// the task handles it now — as if it had arrived a moment before the seize —
// rather than losing it (the kernel ignores a detach signal outside
// signal-delivery-stop, and re-queueing from outside loses the siginfo).
// The pending PTRACE_INTERRUPT then stops it on its way back to user mode.
func (t *Tracer) waitEventStop(tid int) (unix.WaitStatus, error) {
	st := t.tasks[tid]
	for i := 0; ; i++ {
		ws, err := t.waitDeadline(tid)
		if err != nil {
			return ws, err
		}
		if ws.Exited() || ws.Signaled() {
			delete(t.tasks, tid)
			return ws, exitedErr(tid, ws)
		}
		ev, sig := event(ws), ws.StopSignal()
		if ev == unix.PTRACE_EVENT_STOP {
			st.stopped = true
			// WSTOPSIG is SIGTRAP for the interrupt's own stop, the
			// stopping signal when the task was (or got) in group stop.
			st.groupStopped = sig != unix.SIGTRAP
			if st.groupStopped && st.groupStopSig == 0 {
				st.groupStopSig = sig
			}
			return ws, nil
		}
		if i > 64 {
			return ws, fmt.Errorf("tid %d: no PTRACE_EVENT_STOP after %d other stops (last %#x)", tid, i, uint32(ws))
		}
		resume := 0
		switch {
		case ev == unix.PTRACE_EVENT_CLONE || ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_VFORK:
			t.adoptChild(tid, st)
		case ev != 0 || sig == unix.SIGTRAP|0x80:
			// exec, exit, seccomp or a syscall stop: just go on.
		default:
			resume = int(sig)
		}
		if _, err := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(resume)); err != nil {
			return ws, fmt.Errorf("ptrace CONT tid %d: %w", tid, err)
		}
	}
}

// adoptChild records a task the kernel auto-attached at a clone/fork event
// stop of parent (PTRACE_O_TRACECLONE and friends). It is not stopped until
// its own first stop has been waited for.
func (t *Tracer) adoptChild(parent int, st *task) int {
	msg, err := unix.PtraceGetEventMsg(parent)
	if err != nil || msg == 0 {
		return 0
	}
	child := int(msg)
	tgid, err := tgidOf(child)
	if err != nil {
		tgid = 0
	}
	if _, ok := t.tasks[child]; !ok {
		t.tasks[child] = &task{tgid: tgid, options: st.options}
	}
	t.adopted = child
	return child
}

// Detach lets tid go (PTRACE_DETACH), delivering sig if it is stopped in
// signal-delivery-stop, then sends again any signal the tracer had to take
// off it while injecting.
func (t *Tracer) Detach(tid int, sig unix.Signal) error {
	return t.Do(func() error { return t.detach(tid, sig) })
}

func (t *Tracer) detach(tid int, sig unix.Signal) error {
	st, ok := t.tasks[tid]
	if !ok {
		return fmt.Errorf("detach tid %d: not traced by this tracer", tid)
	}
	if _, err := ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("ptrace DETACH tid %d: %w", tid, err)
	}
	delete(t.tasks, tid)
	for _, s := range st.signals {
		if err := unix.Tgkill(st.tgid, tid, s); err != nil {
			return fmt.Errorf("re-send %v to tid %d: %w", s, tid, err)
		}
	}
	return nil
}

// SeizeThreads seizes and stops every thread of process pid, re-reading
// /proc/PID/task until a pass finds no thread it has not stopped (threads
// can be born while their siblings are being seized). It returns the tids,
// sorted. On failure it detaches what it had seized, leaving pid running.
func (t *Tracer) SeizeThreads(pid, options int) ([]int, error) {
	var tids []int
	err := t.Do(func() error {
		var err error
		tids, err = t.seizeThreads(pid, options)
		return err
	})
	return tids, err
}

func (t *Tracer) seizeThreads(pid, options int) ([]int, error) {
	done := map[int]bool{}
	fail := func(err error) ([]int, error) {
		// Undo everything of pid's we trace, stopping first what was seized
		// but not yet interrupted (only a stopped tracee can be detached).
		for tid, st := range t.tasks {
			if st.tgid != pid {
				continue
			}
			if !st.stopped {
				if _, err := t.interrupt(tid); err != nil {
					continue
				}
			}
			t.detach(tid, 0) //nolint:errcheck // best effort undo
		}
		return nil, err
	}
	for pass := 0; ; pass++ {
		if pass > 100 {
			return fail(fmt.Errorf("seize pid %d: thread list still changing after %d passes", pid, pass))
		}
		list, err := listThreads(pid)
		if err != nil {
			return fail(err)
		}
		var fresh []int
		for _, tid := range list {
			if done[tid] {
				continue
			}
			if err := t.seize(tid, options); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // gone since the listing
				}
				return fail(err)
			}
			fresh = append(fresh, tid)
		}
		// Auto-attached threads (TRACECLONE) wait here too.
		for tid, st := range t.tasks {
			if !done[tid] && st.tgid == pid && !st.stopped && !contains(fresh, tid) {
				fresh = append(fresh, tid)
			}
		}
		if len(fresh) == 0 {
			break
		}
		for _, tid := range fresh {
			if _, err := t.interrupt(tid); err != nil {
				if errors.Is(err, ErrExited) {
					continue
				}
				return fail(err)
			}
			done[tid] = true
		}
	}
	out := make([]int, 0, len(done))
	for tid := range done {
		out = append(out, tid)
	}
	sort.Ints(out)
	return out, nil
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// listThreads reads the tids of pid from /proc/PID/task.
func listThreads(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, fmt.Errorf("list threads of pid %d: %w", pid, err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// KillAndReap SIGKILLs process pid and reaps every thread of it this tracer
// traces, then the process itself if it is a child of ours — how a failed
// restore leaves nothing half-built behind.
func (t *Tracer) KillAndReap(pid int) error {
	return t.Do(func() error { return t.killAndReap(pid) })
}

func (t *Tracer) killAndReap(pid int) error {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill pid %d: %w", pid, err)
	}
	left := map[int]bool{pid: true}
	for tid, st := range t.tasks {
		if st.tgid == pid {
			left[tid] = true
		}
	}
	for tid := range left {
		delete(t.tasks, tid)
	}
	// Poll every thread rather than wait for one at a time: a thread may
	// wait in its exit for the others to be reaped first (the last thread
	// of a pid namespace's init waits until every other pid of the
	// namespace, its traced sibling zombies included, is gone), and the
	// leader is reported only after its threads.
	deadline := time.Now().Add(10 * time.Second)
	for len(left) > 0 {
		progress := false
		for tid := range left {
			var ws unix.WaitStatus
			got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
			switch {
			case err == unix.EINTR:
				continue
			case errors.Is(err, unix.ECHILD):
				delete(left, tid) // not ours to reap (or already reaped)
				progress = true
				continue
			case err != nil:
				return fmt.Errorf("reap tid %d of killed pid %d: %w", tid, pid, err)
			case got == 0:
				continue // still dying
			}
			progress = true
			if ws.Exited() || ws.Signaled() {
				delete(left, tid)
				continue
			}
			ptrace(unix.PTRACE_CONT, tid, 0, 0) //nolint:errcheck // dying anyway
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var tids []int
			for tid := range left {
				tids = append(tids, tid)
			}
			return fmt.Errorf("killed pid %d: threads %v did not go away in 10s", pid, tids)
		}
		if !progress {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// Wait waits on the tracer thread for the next status change of tid.
func (t *Tracer) Wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	err := t.Do(func() error {
		var err error
		ws, err = wait4(tid)
		if err == nil && (ws.Exited() || ws.Signaled()) {
			delete(t.tasks, tid)
		} else if err == nil {
			if st, ok := t.tasks[tid]; ok {
				st.stopped = true
			}
		}
		return err
	})
	return ws, err
}
