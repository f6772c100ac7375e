package ptrace

import (
	"fmt"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// GetSigmask reads the task's blocked set. The kernel answers with the mask
// to be restored when the task is inside sigsuspend/ppoll/pselect (which run
// on a temporary one), so this is the mask to save in an image.
func (t *Tracer) GetSigmask(tid int) (uint64, error) {
	var m uint64
	err := t.Do(func() error { return getSigmask(tid, &m) })
	return m, err
}

// SetSigmask replaces the task's blocked set (SIGKILL and SIGSTOP are
// dropped by the kernel). It also cancels a pending restore of a temporary
// sigsuspend-style mask.
func (t *Tracer) SetSigmask(tid int, mask uint64) error {
	return t.Do(func() error { return setSigmask(tid, mask) })
}

func getSigmask(tid int, m *uint64) error {
	if _, err := ptracePtr(unix.PTRACE_GETSIGMASK, tid, abi.SigsetSize, unsafe.Pointer(m)); err != nil {
		return fmt.Errorf("ptrace GETSIGMASK tid %d: %w", tid, err)
	}
	return nil
}

func setSigmask(tid int, m uint64) error {
	if _, err := ptracePtr(unix.PTRACE_SETSIGMASK, tid, abi.SigsetSize, unsafe.Pointer(&m)); err != nil {
		return fmt.Errorf("ptrace SETSIGMASK tid %d: %w", tid, err)
	}
	return nil
}

// peekBatch is how many siginfos one PTRACE_PEEKSIGINFO call copies.
const peekBatch = 32

// PeekSiginfo returns every signal queued for the task without dequeuing
// it: its private queue, or with shared the process-wide one.
func (t *Tracer) PeekSiginfo(tid int, shared bool) ([]abi.Siginfo, error) {
	var out []abi.Siginfo
	err := t.Do(func() error {
		args := abi.PtracePeekSiginfoArgs{Nr: peekBatch}
		if shared {
			args.Flags = unix.PTRACE_PEEKSIGINFO_SHARED
		}
		var buf [peekBatch]abi.Siginfo
		for {
			n, err := ptracePtr(unix.PTRACE_PEEKSIGINFO, tid, uintptr(unsafe.Pointer(&args)), unsafe.Pointer(&buf[0]))
			if err != nil {
				return fmt.Errorf("ptrace PEEKSIGINFO tid %d shared=%v off %d: %w", tid, shared, args.Off, err)
			}
			if n == 0 {
				return nil
			}
			out = append(out, buf[:n]...)
			args.Off += uint64(n)
		}
	})
	return out, err
}

// GetSiginfo reads the siginfo of the current stop (PTRACE_GETSIGINFO): the
// signal in a signal-delivery-stop, or SIGTRAP with the event in si_code
// for event stops.
func (t *Tracer) GetSiginfo(tid int) (abi.Siginfo, error) {
	var si abi.Siginfo
	err := t.Do(func() error { return getSiginfo(tid, &si) })
	return si, err
}

func getSiginfo(tid int, si *abi.Siginfo) error {
	if _, err := ptracePtr(unix.PTRACE_GETSIGINFO, tid, 0, unsafe.Pointer(si)); err != nil {
		return fmt.Errorf("ptrace GETSIGINFO tid %d: %w", tid, err)
	}
	return nil
}
