package ptrace

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// ErrNoSuspendSeccomp says PTRACE_O_SUSPEND_SECCOMP could not be set: the
// kernel lacks it (CONFIG_CHECKPOINT_RESTORE, Linux 4.3) or gocr lacks
// CAP_SYS_ADMIN, or gocr itself runs under seccomp.
var ErrNoSuspendSeccomp = errors.New("PTRACE_O_SUSPEND_SECCOMP refused")

// SuspendSeccomp adds PTRACE_O_SUSPEND_SECCOMP to the options of the
// stopped tracee tid: while it is traced its seccomp mode (strict or
// filters) does not apply, so injected system calls are neither killed
// nor made to fail by its filters. The kernel drops the option with the
// tracer: a detached or orphaned task is under its seccomp mode again.
func (t *Tracer) SuspendSeccomp(tid int) error {
	return t.Do(func() error {
		st, ok := t.tasks[tid]
		if !ok {
			return fmt.Errorf("suspend seccomp of tid %d: not traced by this tracer", tid)
		}
		if st.options&unix.PTRACE_O_SUSPEND_SECCOMP != 0 {
			return nil
		}
		opts := st.options | unix.PTRACE_O_SUSPEND_SECCOMP
		if err := unix.PtraceSetOptions(tid, opts); err != nil {
			return fmt.Errorf("ptrace SETOPTIONS tid %d: %w: %w", tid, ErrNoSuspendSeccomp, err)
		}
		st.options = opts
		return nil
	})
}

// SeccompFilter is one classic BPF filter of a task's seccomp chain.
type SeccompFilter struct {
	// Prog is the program, struct sock_filter after struct sock_filter.
	Prog []byte
	// Flags are the SECCOMP_FILTER_FLAG_* PTRACE_SECCOMP_GET_METADATA
	// reports (only LOG); FlagsKnown is false on a kernel without it
	// (before 4.16).
	Flags      uint64
	FlagsKnown bool
}

// SeccompFilters reads the seccomp filter chain of the stopped tracee tid
// with PTRACE_SECCOMP_GET_FILTER, the oldest filter first (the kernel's
// index 0 is the first one installed), until the kernel says ENOENT. A
// task in no filter mode has none (EINVAL). Each filter's flags come from
// PTRACE_SECCOMP_GET_METADATA where the kernel has it.
func (t *Tracer) SeccompFilters(tid int) ([]SeccompFilter, error) {
	var out []SeccompFilter
	err := t.Do(func() error {
		st, ok := t.tasks[tid]
		if !ok || !st.stopped {
			return fmt.Errorf("seccomp filters of tid %d: not a stopped tracee of this tracer", tid)
		}
		meta := true
		buf := make([]abi.SockFilter, abi.BPFMaxInsns)
		for i := 0; ; i++ {
			n, err := ptracePtr(unix.PTRACE_SECCOMP_GET_FILTER, tid, uintptr(i), unsafe.Pointer(&buf[0]))
			if errors.Is(err, unix.ENOENT) || (i == 0 && errors.Is(err, unix.EINVAL)) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("ptrace SECCOMP_GET_FILTER tid %d filter %d: %w", tid, i, err)
			}
			if n == 0 || n > abi.BPFMaxInsns {
				return fmt.Errorf("ptrace SECCOMP_GET_FILTER tid %d filter %d: %d instructions", tid, i, n)
			}
			f := SeccompFilter{Prog: abi.EncodeSockFilters(buf[:n])}
			if meta {
				md := abi.SeccompMetadata{FilterOff: uint64(i)}
				_, err := ptracePtr(unix.PTRACE_SECCOMP_GET_METADATA, tid, abi.SeccompMetadataSize, unsafe.Pointer(&md))
				switch {
				case errors.Is(err, unix.EIO):
					meta = false // before 4.16: no such request
				case err != nil:
					return fmt.Errorf("ptrace SECCOMP_GET_METADATA tid %d filter %d: %w", tid, i, err)
				default:
					f.Flags, f.FlagsKnown = md.Flags, true
				}
			}
			out = append(out, f)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
