package ptrace

import (
	"fmt"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// Remote is an injection session on one stopped task: system calls run
// inside it by pointing rip at an existing syscall instruction, never by
// writing code into it. BeginInject saves the registers and signal mask;
// End puts them back.
//
// While the session is open every signal but SIGKILL and SIGSTOP is
// blocked in the task, so signals that arrive stay queued (and are seen by
// PeekSiginfo) instead of running the task's handlers mid-injection. A
// SIGSTOP that does arrive is taken off and sent again on Detach.
//
// Each call from an ordinary goroutine costs a hand-off to the tracer
// thread, which under load costs more than the injected syscall itself;
// run a batch of calls inside one Tracer.Do to pay it once.
type Remote struct {
	t         *Tracer
	tid       int
	insn      uint64
	saved     abi.PtraceRegs
	savedMask uint64
	ended     bool
}

// BeginInject opens an injection session on the stopped task tid, running
// syscalls through the syscall instruction at insn (see FindSyscallInsn).
// It turns on PTRACE_O_TRACESYSGOOD if the task was seized without it, so
// syscall stops cannot be mistaken for a real SIGTRAP.
func (t *Tracer) BeginInject(tid int, insn uint64) (*Remote, error) {
	r := &Remote{t: t, tid: tid, insn: insn}
	err := t.Do(func() error {
		st, ok := t.tasks[tid]
		if !ok || !st.stopped {
			return fmt.Errorf("inject into tid %d: not a stopped tracee of this tracer", tid)
		}
		if st.options&unix.PTRACE_O_TRACESYSGOOD == 0 {
			opts := st.options | unix.PTRACE_O_TRACESYSGOOD
			if err := unix.PtraceSetOptions(tid, opts); err != nil {
				return fmt.Errorf("ptrace SETOPTIONS tid %d: %w", tid, err)
			}
			st.options = opts
		}
		if err := getRegs(tid, &r.saved); err != nil {
			return err
		}
		if err := getSigmask(tid, &r.savedMask); err != nil {
			return err
		}
		if t.journal != nil {
			if err := t.journal.SessionOpen(tid, r.saved, r.savedMask, insn); err != nil {
				return fmt.Errorf("inject into tid %d: %w", tid, err)
			}
		}
		return setSigmask(tid, ^uint64(0))
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Tid is the task the session injects into.
func (r *Remote) Tid() int { return r.tid }

// Saved returns the registers as they were at BeginInject.
func (r *Remote) Saved() abi.PtraceRegs { return r.saved }

// SetSaved replaces the registers End will restore (still passed through
// the restart normalisation) — how a restore leaves a task with the
// image's registers after its last injected call.
func (r *Remote) SetSaved(regs abi.PtraceRegs) { r.saved = regs }

// SetSyscallInsn moves the syscall instruction used from now on, for when
// the injected calls themselves move it (mremap of the vdso on restore).
func (r *Remote) SetSyscallInsn(addr uint64) { r.insn = addr }

// Syscall runs syscall nr with up to six arguments inside the task and
// returns its result; a -errno result is returned as a wrapped unix.Errno.
func (r *Remote) Syscall(nr uint64, args ...uint64) (uint64, error) {
	if len(args) > 6 {
		return 0, fmt.Errorf("inject syscall %d tid %d: %d arguments, at most 6", nr, r.tid, len(args))
	}
	if r.ended {
		return 0, fmt.Errorf("inject syscall %d tid %d: session ended", nr, r.tid)
	}
	var a [6]uint64
	copy(a[:], args)
	var ret uint64
	r.t.injected.Add(1)
	err := r.t.Do(func() error {
		var err error
		ret, err = r.t.syscall(r.tid, r.insn, r.saved, nr, a)
		return err
	})
	if err != nil {
		return 0, err
	}
	if e := -int64(ret); e > 0 && e < 4096 {
		return ret, fmt.Errorf("inject syscall %d tid %d: %w", nr, r.tid, unix.Errno(e))
	}
	return ret, nil
}

// syscall drives one injected call: registers set with orig_rax = -1 (so the
// kernel sees no syscall to restart at the stop we resume from), then
// PTRACE_SYSCALL to the entry stop and on to the exit stop, where rax holds
// the result. The task stays at that exit stop.
func (t *Tracer) syscall(tid int, insn uint64, base abi.PtraceRegs, nr uint64, args [6]uint64) (uint64, error) {
	st := t.tasks[tid]
	if st == nil {
		return 0, fmt.Errorf("inject syscall %d tid %d: not traced", nr, tid)
	}
	regs := base
	regs.Rip = insn
	regs.OrigRax = ^uint64(0)
	regs.SetSyscall(nr, args)
	if err := setRegs(tid, &regs); err != nil {
		return 0, err
	}
	entered := false
	for {
		if _, err := ptrace(unix.PTRACE_SYSCALL, tid, 0, 0); err != nil {
			return 0, fmt.Errorf("ptrace SYSCALL tid %d: %w", tid, err)
		}
		st.stopped = false
		ws, err := wait4(tid)
		if err != nil {
			return 0, err
		}
		if ws.Exited() || ws.Signaled() {
			delete(t.tasks, tid)
			return 0, fmt.Errorf("inject syscall %d: %w", nr, exitedErr(tid, ws))
		}
		st.stopped = true
		ev, sig := event(ws), ws.StopSignal()
		switch {
		case int(sig) == abi.SyscallTrap:
			if !entered {
				entered = true
				continue
			}
			var out abi.PtraceRegs
			if err := getRegs(tid, &out); err != nil {
				return 0, err
			}
			return out.Rax, nil
		case ev == unix.PTRACE_EVENT_CLONE || ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_VFORK:
			t.adoptChild(tid, st)
		case ev != 0:
			// A stale interrupt or group-stop, exec, exit: keep driving.
		default:
			if err := t.takeSignal(tid, st, sig); err != nil {
				return 0, fmt.Errorf("inject syscall %d: %w", nr, err)
			}
		}
	}
}

// takeSignal handles a signal-delivery-stop during injection. With every
// maskable signal blocked only SIGSTOP or a fault of our own making gets
// here: SIGSTOP is kept for Detach to send again; a fault means rip was
// not a usable syscall instruction, which is an error, not the task's.
func (t *Tracer) takeSignal(tid int, st *task, sig unix.Signal) error {
	var si abi.Siginfo
	if err := getSiginfo(tid, &si); err != nil {
		return err
	}
	// A fault the kernel raised itself (SI_KERNEL: a general protection
	// fault, a refused rseq critical section) would come back at every
	// resume: it is an error too, not a signal to keep.
	if si.Code > 0 && (si.Code != abi.SI_KERNEL || isFault(sig)) {
		return fmt.Errorf("tid %d faulted with %v (si_code %d) at the injected syscall", tid, sig, si.Code)
	}
	st.signals = append(st.signals, sig)
	return nil
}

// isFault reports whether sig is one the kernel sends for a fault of the
// instruction the task runs.
func isFault(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
		return true
	}
	return false
}

// End restores the registers saved at BeginInject — normalised for syscall
// restart, since after a syscall-exit stop the kernel no longer turns
// -ERESTART* into a restart by itself — and the signal mask. The task stays
// stopped. End is idempotent.
func (r *Remote) End() error {
	if r.ended {
		return nil
	}
	err := r.t.Do(func() error {
		regs := resumeRegs(r.saved)
		if err := setRegs(r.tid, &regs); err != nil {
			return err
		}
		if err := setSigmask(r.tid, r.savedMask); err != nil {
			return err
		}
		if r.t.journal != nil {
			// The task is whole again whatever the journal says.
			r.t.journal.SessionClosed(r.tid) //nolint:errcheck
		}
		return nil
	})
	if err == nil {
		r.ended = true
	}
	return err
}
