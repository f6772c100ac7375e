package ptrace

import (
	"fmt"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// GetRegs reads the general-purpose registers of a stopped task.
func (t *Tracer) GetRegs(tid int) (abi.PtraceRegs, error) {
	var r abi.PtraceRegs
	err := t.Do(func() error { return getRegs(tid, &r) })
	return r, err
}

// SetRegs writes the general-purpose registers of a stopped task.
func (t *Tracer) SetRegs(tid int, r abi.PtraceRegs) error {
	return t.Do(func() error { return setRegs(tid, &r) })
}

// GetFPRegs reads the legacy FXSAVE area (x87/SSE only; use GetXState for AVX).
func (t *Tracer) GetFPRegs(tid int) (abi.UserFPRegs, error) {
	var f abi.UserFPRegs
	err := t.Do(func() error {
		if _, err := ptracePtr(unix.PTRACE_GETFPREGS, tid, 0, unsafe.Pointer(&f)); err != nil {
			return fmt.Errorf("ptrace GETFPREGS tid %d: %w", tid, err)
		}
		return nil
	})
	return f, err
}

func getRegs(tid int, r *abi.PtraceRegs) error {
	if _, err := ptracePtr(unix.PTRACE_GETREGS, tid, 0, unsafe.Pointer(r)); err != nil {
		return fmt.Errorf("ptrace GETREGS tid %d: %w", tid, err)
	}
	return nil
}

func setRegs(tid int, r *abi.PtraceRegs) error {
	if _, err := ptracePtr(unix.PTRACE_SETREGS, tid, 0, unsafe.Pointer(r)); err != nil {
		return fmt.Errorf("ptrace SETREGS tid %d: %w", tid, err)
	}
	return nil
}
