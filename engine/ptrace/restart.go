package ptrace

import (
	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// inSyscallRestart says whether r is a task stopped inside a syscall that
// the kernel was going to restart or fail on its way out, and with which
// errno. orig_rax < 0 means the task was not in a syscall at all.
func inSyscallRestart(r abi.PtraceRegs) (int64, bool) {
	if int64(r.OrigRax) < 0 {
		return 0, false
	}
	switch e := -int64(r.Rax); e {
	case abi.ERESTARTSYS, abi.ERESTARTNOINTR, abi.ERESTARTNOHAND, abi.ERESTART_RESTARTBLOCK:
		return e, true
	}
	return 0, false
}

// RestartedRegs turns the registers of a task stopped inside a syscall into
// what must be saved in an image: the kernel-internal -ERESTART* in rax only
// mean something to the kernel that set them. -ERESTARTSYS, -ERESTARTNOINTR
// and -ERESTARTNOHAND re-run the syscall (rax = orig_rax, rip back over the
// 2-byte syscall instruction); -ERESTART_RESTARTBLOCK cannot survive a
// restore, whose kernel has no restart_block, so it becomes -EINTR.
func RestartedRegs(r abi.PtraceRegs) abi.PtraceRegs {
	e, ok := inSyscallRestart(r)
	if !ok {
		return r
	}
	if e == abi.ERESTART_RESTARTBLOCK {
		eintr := -int64(unix.EINTR)
		r.Rax = uint64(eintr)
		return r
	}
	r.Rax = r.OrigRax
	r.Rip -= 2
	return r
}

// resumeRegs is RestartedRegs for a task that stays on this kernel: its
// restart_block is still there, so -ERESTART_RESTARTBLOCK re-enters through
// restart_syscall instead of failing with EINTR. Injection ends with it
// because after a syscall-exit stop the kernel no longer does the restart
// itself (no signal is pending to send it through the restart path).
func resumeRegs(r abi.PtraceRegs) abi.PtraceRegs {
	e, ok := inSyscallRestart(r)
	if !ok {
		return r
	}
	if e == abi.ERESTART_RESTARTBLOCK {
		r.Rax = unix.SYS_RESTART_SYSCALL
	} else {
		r.Rax = r.OrigRax
	}
	r.Rip -= 2
	return r
}
