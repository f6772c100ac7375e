package arch

import (
	"encoding/binary"
	"fmt"

	criu_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"
)

func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// XSAVE state components CRIU's image keeps (Intel SDM vol. 1, 13.1).
const (
	compAVX     = 2 // upper halves of YMM0-15
	compBndreg  = 3 // MPX bounds registers
	compBndcsr  = 4 // MPX config and status
	compOpmask  = 5 // AVX-512 k0-k7
	compZmmHi   = 6 // upper halves of ZMM0-15
	compHi16Zmm = 7 // ZMM16-31
	compPKRU    = 9 // protection keys
)

// Fixed offsets of the legacy FXSAVE region and the XSAVE header.
const (
	fxStSpace  = 32
	fxXmmSpace = 160
	fxPadding  = 416
	fxSize     = 512
	xsaveBV    = 512 // XSTATE_BV in the XSAVE header
	xsaveHdr   = 576 // first extended component in the standard format
)

// Layout is where each XSAVE component lives in the standard (non-compacted)
// format ptrace uses, from CPUID leaf 0xD: offsets differ between Intel and
// AMD parts, so they are never hard-coded.
type Layout struct {
	Offset, Size [16]uint32
}

// HostLayout reads the XSAVE layout of this CPU.
func HostLayout() Layout {
	var l Layout
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 0xd {
		return l
	}
	for c := uint32(compAVX); c < 16; c++ {
		size, off, _, _ := cpuid(0xd, c)
		l.Size[c], l.Offset[c] = size, off
	}
	return l
}

func (l Layout) region(xs []byte, c int) []byte {
	off, size := int(l.Offset[c]), int(l.Size[c])
	if size == 0 || off+size > len(xs) {
		return nil
	}
	return xs[off : off+size]
}

func u32s(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func u64s(b []byte) []uint64 {
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}

func putU32s(b []byte, v []uint32) {
	for i := 0; i < len(v) && 4*i+4 <= len(b); i++ {
		binary.LittleEndian.PutUint32(b[4*i:], v[i])
	}
}

func putU64s(b []byte, v []uint64) {
	for i := 0; i < len(v) && 8*i+8 <= len(b); i++ {
		binary.LittleEndian.PutUint64(b[8*i:], v[i])
	}
}

// FPRegsFromXState splits an NT_X86_XSTATE buffer into CRIU's fields.
func (l Layout) FPRegsFromXState(xs []byte) (*criu_x86.UserX86FpregsEntry, error) {
	if len(xs) < xsaveHdr {
		return nil, fmt.Errorf("xstate of %d bytes: shorter than the XSAVE header", len(xs))
	}
	le := binary.LittleEndian
	u32 := func(off int) *uint32 { v := uint32(le.Uint16(xs[off:])); return &v }
	rip, rdp := le.Uint64(xs[8:]), le.Uint64(xs[16:])
	mxcsr, mask := le.Uint32(xs[24:]), le.Uint32(xs[28:])
	fp := &criu_x86.UserX86FpregsEntry{
		Cwd: u32(0), Swd: u32(2), Twd: u32(4), Fop: u32(6),
		Rip: &rip, Rdp: &rdp, Mxcsr: &mxcsr, MxcsrMask: &mask,
		StSpace:  u32s(xs[fxStSpace:fxXmmSpace]),
		XmmSpace: u32s(xs[fxXmmSpace:fxPadding]),
		Padding:  u32s(xs[fxPadding:fxSize]),
	}
	bv := le.Uint64(xs[xsaveBV:])
	x := &criu_x86.UserX86XsaveEntry{XstateBv: &bv}
	x.YmmhSpace = u32s(l.region(xs, compAVX))
	x.BndregState = u64s(l.region(xs, compBndreg))
	x.BndcsrState = u64s(l.region(xs, compBndcsr))
	x.OpmaskReg = u64s(l.region(xs, compOpmask))
	x.ZmmUpper = u64s(l.region(xs, compZmmHi))
	x.Hi16Zmm = u64s(l.region(xs, compHi16Zmm))
	x.Pkru = u32s(l.region(xs, compPKRU))
	fp.Xsave = x
	return fp, nil
}

// XStateFromFPRegs writes CRIU's fields into template, an XSAVE buffer read
// from the thread being restored (so its size and header are this kernel's).
// Components this CPU lacks must be absent from the image.
func (l Layout) XStateFromFPRegs(fp *criu_x86.UserX86FpregsEntry, template []byte) ([]byte, error) {
	xs := append([]byte(nil), template...)
	if len(xs) < xsaveHdr {
		return nil, fmt.Errorf("xstate template of %d bytes: shorter than the XSAVE header", len(xs))
	}
	le := binary.LittleEndian
	le.PutUint16(xs[0:], uint16(fp.GetCwd()))
	le.PutUint16(xs[2:], uint16(fp.GetSwd()))
	le.PutUint16(xs[4:], uint16(fp.GetTwd()))
	le.PutUint16(xs[6:], uint16(fp.GetFop()))
	le.PutUint64(xs[8:], fp.GetRip())
	le.PutUint64(xs[16:], fp.GetRdp())
	le.PutUint32(xs[24:], fp.GetMxcsr())
	le.PutUint32(xs[28:], fp.GetMxcsrMask())
	if len(fp.StSpace) != 32 || len(fp.XmmSpace) != 64 {
		return nil, fmt.Errorf("fpregs: st_space has %d words, xmm_space %d; want 32 and 64", len(fp.StSpace), len(fp.XmmSpace))
	}
	putU32s(xs[fxStSpace:fxXmmSpace], fp.StSpace)
	putU32s(xs[fxXmmSpace:fxPadding], fp.XmmSpace)
	x := fp.GetXsave()
	if x == nil {
		// FXSAVE-only image: legacy state, no extended components.
		le.PutUint64(xs[xsaveBV:], le.Uint64(xs[xsaveBV:])&3)
		return xs, nil
	}
	set := func(c int, n int, put func([]byte)) error {
		if n == 0 {
			return nil
		}
		r := l.region(xs, c)
		if r == nil {
			return fmt.Errorf("xsave component %d is in the image but not on this CPU", c)
		}
		put(r)
		return nil
	}
	for _, e := range []error{
		set(compAVX, len(x.YmmhSpace), func(r []byte) { putU32s(r, x.YmmhSpace) }),
		set(compBndreg, len(x.BndregState), func(r []byte) { putU64s(r, x.BndregState) }),
		set(compBndcsr, len(x.BndcsrState), func(r []byte) { putU64s(r, x.BndcsrState) }),
		set(compOpmask, len(x.OpmaskReg), func(r []byte) { putU64s(r, x.OpmaskReg) }),
		set(compZmmHi, len(x.ZmmUpper), func(r []byte) { putU64s(r, x.ZmmUpper) }),
		set(compHi16Zmm, len(x.Hi16Zmm), func(r []byte) { putU64s(r, x.Hi16Zmm) }),
		set(compPKRU, len(x.Pkru), func(r []byte) { putU32s(r, x.Pkru) }),
	} {
		if e != nil {
			return nil, e
		}
	}
	le.PutUint64(xs[xsaveBV:], x.GetXstateBv())
	return xs, nil
}
