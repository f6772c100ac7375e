package ptrace

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// threadFlags make a sibling thread the way pthread_create does, minus the
// tid bookkeeping: the restore sets TLS and registers itself.
const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM

// ThreadSpec says which thread CloneThread makes.
type ThreadSpec struct {
	// Tids is the set_tid array, innermost pid namespace first.
	Tids []int
	// Scratch is writable memory in the task for the clone_args and the
	// set_tid array: abi.CloneArgsSize + 4*len(Tids) bytes.
	Scratch uint64
	// Stack and StackSize give the new thread a stack in mapped memory
	// (lowest address and size). Both zero share the caller's stack
	// pointer, which is harmless too: the thread stops before its first
	// instruction and a restore sets its registers before it runs.
	Stack, StackSize uint64
	// Process makes a child process instead of a thread, as fork(2) does
	// (its own address space, files, fs and handlers, all copies; exit
	// signal SIGCHLD). The task must then be traced with
	// PTRACE_O_TRACEFORK, which attaches the child the same way.
	Process bool
	// Share is what a child process shares with the task that makes it
	// (CLONE_FILES, CLONE_FS).
	Share uint64
	// Before, if set, runs on the tracer thread right before the clone3 is
	// injected: the place to set ns_last_pid when an outer tid cannot be
	// given in Tids (a task in a user namespace of its own has no
	// CAP_CHECKPOINT_RESTORE over its parent pid namespace).
	Before func() error
}

// CloneThread injects clone3 with CLONE_THREAD and set_tid into the task,
// creating a thread with exactly the requested tid. The task must be traced
// with PTRACE_O_TRACECLONE: the kernel then attaches the new thread to this
// tracer and stops it before its first user instruction (PTRACE_EVENT_STOP
// if the parent was seized, a SIGSTOP signal-delivery-stop if it was
// PTRACE_TRACEME'd, as spawned stubs are — resuming it with signal 0, as
// Detach(tid, 0) and injection do, discards that SIGSTOP). It returns the
// new thread's tid in the tracer's pid namespace, stopped: the tid the
// clone event reported, which differs from clone3's return value (the tid
// in the task's own pid namespace) when the task is in a pid namespace
// below the tracer's.
func (r *Remote) CloneThread(s ThreadSpec) (int, error) {
	if len(s.Tids) == 0 {
		return 0, fmt.Errorf("clone thread in tid %d: no tid requested", r.tid)
	}
	var opts int
	r.t.Do(func() error { //nolint:errcheck // cannot fail
		if st := r.t.tasks[r.tid]; st != nil {
			opts = st.options
		}
		return nil
	})
	setTid := s.Scratch + abi.CloneArgsSize
	args := abi.CloneArgs{
		Flags:      threadFlags,
		Stack:      s.Stack,
		StackSize:  s.StackSize,
		SetTid:     setTid,
		SetTidSize: uint64(len(s.Tids)),
	}
	switch {
	case s.Process && opts&unix.PTRACE_O_TRACEFORK == 0:
		return 0, fmt.Errorf("fork %v in tid %d: task not traced with PTRACE_O_TRACEFORK", s.Tids, r.tid)
	case s.Process:
		args.Flags, args.ExitSignal = s.Share, uint64(unix.SIGCHLD)
	case opts&unix.PTRACE_O_TRACECLONE == 0:
		return 0, fmt.Errorf("clone thread %v in tid %d: task not traced with PTRACE_O_TRACECLONE", s.Tids, r.tid)
	}
	buf := make([]byte, abi.CloneArgsSize+4*len(s.Tids))
	copy(buf, (*[abi.CloneArgsSize]byte)(unsafe.Pointer(&args))[:])
	for i, tid := range s.Tids {
		binary.LittleEndian.PutUint32(buf[abi.CloneArgsSize+4*i:], uint32(tid))
	}
	if err := WriteMem(r.tid, s.Scratch, buf); err != nil {
		return 0, fmt.Errorf("clone thread %v in tid %d: %w", s.Tids, r.tid, err)
	}
	var child int
	err := r.t.Do(func() error {
		r.t.adopted = 0
		if s.Before != nil {
			if err := s.Before(); err != nil {
				return fmt.Errorf("clone thread %v in tid %d: %w", s.Tids, r.tid, err)
			}
		}
		ret, err := r.t.syscall(r.tid, r.insn, r.saved, unix.SYS_CLONE3, [6]uint64{s.Scratch, abi.CloneArgsSize})
		if err != nil {
			return err
		}
		if e := -int64(ret); e > 0 && e < 4096 {
			return fmt.Errorf("inject clone3 set_tid %v tid %d: %w", s.Tids, r.tid, unix.Errno(e))
		}
		if int(ret) != s.Tids[0] {
			return fmt.Errorf("inject clone3 set_tid %v tid %d: made tid %d", s.Tids, r.tid, int64(ret))
		}
		child = r.t.adopted
		if child == 0 {
			child = int(ret) // no clone event seen: same pid namespace
		}
		return r.t.waitFirstStop(child, r.tid)
	})
	if err != nil {
		return 0, err
	}
	return child, nil
}

// waitFirstStop waits for the first stop of a task auto-attached at a clone
// of parent and records it as stopped.
func (t *Tracer) waitFirstStop(child, parent int) error {
	st, ok := t.tasks[child]
	if !ok {
		// The clone event was not seen (it can only be missed if the
		// parent's options lacked TRACECLONE): adopt it now.
		pst := t.tasks[parent]
		st = &task{tgid: pst.tgid, options: pst.options}
		t.tasks[child] = st
	}
	if st.stopped {
		return nil
	}
	ws, err := wait4(child)
	if err != nil {
		return err
	}
	if ws.Exited() || ws.Signaled() {
		delete(t.tasks, child)
		return exitedErr(child, ws)
	}
	if !ws.Stopped() {
		return fmt.Errorf("new thread %d: unexpected status %#x", child, uint32(ws))
	}
	st.stopped = true
	return nil
}
