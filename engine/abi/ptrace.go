package abi

// PtraceRseqConfiguration is struct ptrace_rseq_configuration, filled by
// PTRACE_GET_RSEQ_CONFIGURATION (kernel >= 5.13): 24 bytes, and the kernel
// copies min(addr, 24) of them.
type PtraceRseqConfiguration struct {
	RseqAbiPointer uint64
	RseqAbiSize    uint32
	Signature      uint32
	Flags          uint32
	Pad            uint32
}

// PtracePeekSiginfoArgs is struct ptrace_peeksiginfo_args: read Nr queued
// siginfos starting at Off, from the shared queue when Flags has
// PTRACE_PEEKSIGINFO_SHARED.
type PtracePeekSiginfoArgs struct {
	Off   uint64
	Flags uint32
	Nr    int32
}

// Ptrace stop encodings not spelled out in x/sys/unix. The requests, options
// and PTRACE_EVENT_* values themselves are all in x/sys/unix.
const (
	// SyscallTrap is WSTOPSIG of a syscall-entry or -exit stop when
	// PTRACE_O_TRACESYSGOOD is set: SIGTRAP | 0x80.
	SyscallTrap = 0x05 | 0x80
	// NT_X86_XSTATE is the regset of the full XSAVE area (elf.h).
	NT_X86_XSTATE = 0x202
	// NT_PRSTATUS is the general-purpose regset (user_regs_struct).
	NT_PRSTATUS = 1
	// NT_PRFPREG is the FXSAVE regset (user_i387_struct).
	NT_PRFPREG = 2
)

// RseqSignature is the signature glibc registers its rseq area with on
// x86 (RSEQ_SIG); abort handlers are preceded by it.
const RseqSignature = 0x53053053
