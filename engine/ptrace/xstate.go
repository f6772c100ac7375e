package ptrace

import (
	"fmt"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// xstateProbe is larger than any XSAVE area the kernel exposes today
// (AVX-512 plus AMX tile data is about 11 KiB); the kernel shrinks iov_len
// to the task's real size. The size is not cached: it is per process (a
// process that asked for AMX with arch_prctl has a larger one), and the
// kernel silently truncates into a buffer that is too small.
const xstateProbe = 64 << 10

// GetXState reads the task's XSAVE area (NT_X86_XSTATE), sized as the
// kernel has it for this task (2432 bytes on the development machine).
func (t *Tracer) GetXState(tid int) ([]byte, error) {
	var out []byte
	err := t.Do(func() error {
		if t.xstateBuf == nil {
			t.xstateBuf = make([]byte, xstateProbe)
		}
		buf := t.xstateBuf
		iov := unix.Iovec{Base: &buf[0]}
		iov.SetLen(len(buf))
		if _, err := ptracePtr(unix.PTRACE_GETREGSET, tid, abi.NT_X86_XSTATE, unsafe.Pointer(&iov)); err != nil {
			return fmt.Errorf("ptrace GETREGSET NT_X86_XSTATE tid %d: %w", tid, err)
		}
		out = append([]byte(nil), buf[:iov.Len]...)
		return nil
	})
	return out, err
}

// SetXState writes an XSAVE area read by GetXState (possibly from another
// run on the same CPU model) back into the task.
func (t *Tracer) SetXState(tid int, xstate []byte) error {
	if len(xstate) == 0 {
		return fmt.Errorf("ptrace SETREGSET NT_X86_XSTATE tid %d: empty xstate", tid)
	}
	return t.Do(func() error {
		iov := unix.Iovec{Base: &xstate[0]}
		iov.SetLen(len(xstate))
		if _, err := ptracePtr(unix.PTRACE_SETREGSET, tid, abi.NT_X86_XSTATE, unsafe.Pointer(&iov)); err != nil {
			return fmt.Errorf("ptrace SETREGSET NT_X86_XSTATE tid %d: %w", tid, err)
		}
		return nil
	})
}
