// Package abi writes down, once, the parts of the Linux x86_64 kernel ABI the
// engine speaks: struct layouts passed to ptrace, clone3, prctl and the
// signal syscalls, and the constants golang.org/x/sys/unix does not carry.
//
// Layouts are checked against the kernel's sizes in abi_test.go. Everything
// x/sys/unix already defines (ptrace requests and options, clone flags,
// syscall numbers, NT_X86_XSTATE, PR_SET_MM_MAP) is used from there rather
// than copied; consts.go re-exports only the few whose names read better in
// the engine's vocabulary.
package abi
