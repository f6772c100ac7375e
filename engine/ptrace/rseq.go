package ptrace

import (
	"fmt"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// GetRseqConfig returns the task's rseq registration (RseqAbiPointer 0 if
// none). It needs kernel >= 5.13; older kernels answer EIO.
func (t *Tracer) GetRseqConfig(tid int) (abi.PtraceRseqConfiguration, error) {
	var c abi.PtraceRseqConfiguration
	err := t.Do(func() error {
		if _, err := ptracePtr(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, unsafe.Sizeof(c), unsafe.Pointer(&c)); err != nil {
			return fmt.Errorf("ptrace GET_RSEQ_CONFIGURATION tid %d: %w", tid, err)
		}
		return nil
	})
	return c, err
}
