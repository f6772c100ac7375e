package abi

// PtraceRegs is the x86_64 struct user_regs_struct (arch/x86/include/asm/user_64.h),
// the layout PTRACE_GETREGS and PTRACE_SETREGS copy. Field order is the
// kernel's; do not reorder.
type PtraceRegs struct {
	R15     uint64
	R14     uint64
	R13     uint64
	R12     uint64
	Rbp     uint64
	Rbx     uint64
	R11     uint64
	R10     uint64
	R9      uint64
	R8      uint64
	Rax     uint64
	Rcx     uint64
	Rdx     uint64
	Rsi     uint64
	Rdi     uint64
	OrigRax uint64
	Rip     uint64
	Cs      uint64
	Eflags  uint64
	Rsp     uint64
	Ss      uint64
	FsBase  uint64
	GsBase  uint64
	Ds      uint64
	Es      uint64
	Fs      uint64
	Gs      uint64
}

// SyscallArgs returns the six syscall argument registers in ABI order
// (rdi, rsi, rdx, r10, r8, r9).
func (r *PtraceRegs) SyscallArgs() [6]uint64 {
	return [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9}
}

// SetSyscall loads a syscall number and its arguments the way the syscall
// instruction expects them.
func (r *PtraceRegs) SetSyscall(nr uint64, args [6]uint64) {
	r.Rax = nr
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = args[0], args[1], args[2], args[3], args[4], args[5]
}

// UserFPRegs is struct user_i387_struct (FXSAVE layout), what
// PTRACE_GETFPREGS copies. The full AVX state needs NT_X86_XSTATE instead.
type UserFPRegs [512]byte
