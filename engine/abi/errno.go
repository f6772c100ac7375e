package abi

// Kernel-internal errnos a task stopped inside a syscall can show in rax
// (include/linux/errno.h). They never reach user space: on the way out the
// kernel turns them into a restart or -EINTR, which is why a dump must do
// the same (see ptrace.RestartedRegs).
const (
	ERESTARTSYS           = 512 // restart if SA_RESTART, else -EINTR
	ERESTARTNOINTR        = 513 // always restart
	ERESTARTNOHAND        = 514 // restart if no handler ran
	ENOIOCTLCMD           = 515 // never seen by a stopped task; listed to close the range
	ERESTART_RESTARTBLOCK = 516 // restart via restart_syscall and current->restart_block
)
