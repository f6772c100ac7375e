package arch

import (
	criu_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"

	"github.com/gocr/gocr/engine/abi"
)

// RegsToImage converts ptrace's general registers to CRIU's message.
func RegsToImage(r abi.PtraceRegs) *criu_x86.UserX86RegsEntry {
	p := func(v uint64) *uint64 { return &v }
	mode := criu_x86.UserX86RegsMode_NATIVE
	return &criu_x86.UserX86RegsEntry{
		R15: p(r.R15), R14: p(r.R14), R13: p(r.R13), R12: p(r.R12), Bp: p(r.Rbp), Bx: p(r.Rbx),
		R11: p(r.R11), R10: p(r.R10), R9: p(r.R9), R8: p(r.R8), Ax: p(r.Rax), Cx: p(r.Rcx),
		Dx: p(r.Rdx), Si: p(r.Rsi), Di: p(r.Rdi), OrigAx: p(r.OrigRax), Ip: p(r.Rip), Cs: p(r.Cs),
		Flags: p(r.Eflags), Sp: p(r.Rsp), Ss: p(r.Ss), FsBase: p(r.FsBase), GsBase: p(r.GsBase),
		Ds: p(r.Ds), Es: p(r.Es), Fs: p(r.Fs), Gs: p(r.Gs), Mode: &mode,
	}
}

// RegsFromImage is the inverse of RegsToImage.
func RegsFromImage(e *criu_x86.UserX86RegsEntry) abi.PtraceRegs {
	return abi.PtraceRegs{
		R15: e.GetR15(), R14: e.GetR14(), R13: e.GetR13(), R12: e.GetR12(), Rbp: e.GetBp(), Rbx: e.GetBx(),
		R11: e.GetR11(), R10: e.GetR10(), R9: e.GetR9(), R8: e.GetR8(), Rax: e.GetAx(), Rcx: e.GetCx(),
		Rdx: e.GetDx(), Rsi: e.GetSi(), Rdi: e.GetDi(), OrigRax: e.GetOrigAx(), Rip: e.GetIp(), Cs: e.GetCs(),
		Eflags: e.GetFlags(), Rsp: e.GetSp(), Ss: e.GetSs(), FsBase: e.GetFsBase(), GsBase: e.GetGsBase(),
		Ds: e.GetDs(), Es: e.GetEs(), Fs: e.GetFs(), Gs: e.GetGs(),
	}
}
