// Package arch converts a thread's x86-64 register state between what
// ptrace hands out (user_regs_struct and the XSAVE area of NT_X86_XSTATE)
// and CRIU's thread_info_x86 image message, whose fpregs/xsave fields hold
// the XSAVE components one by one.
package arch
