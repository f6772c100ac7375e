package sig

import (
	"fmt"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/siginfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/remote"
)

// QueueEntry turns queued siginfos (from PTRACE_PEEKSIGINFO) into the
// image's signal queue; nil when nothing is queued.
func QueueEntry(infos []abi.Siginfo) *siginfo.SignalQueueEntry {
	if len(infos) == 0 {
		return nil
	}
	q := &siginfo.SignalQueueEntry{}
	for i := range infos {
		b := unsafe.Slice((*byte)(unsafe.Pointer(&infos[i])), unsafe.Sizeof(infos[i]))
		q.Signals = append(q.Signals, &siginfo.SiginfoEntry{Siginfo: append([]byte(nil), b...)})
	}
	return q
}

// Requeue queues signals again from inside the task: rt_tgsigqueueinfo to
// the thread for its private queue, rt_sigqueueinfo to the process for the
// shared one. The kernel accepts any si_code only when a task queues to
// itself, which is why this is injected rather than done from outside.
func Requeue(t *remote.Task, tgid, tid int, q *siginfo.SignalQueueEntry, shared bool) error {
	for i, s := range q.GetSignals() {
		var si abi.Siginfo
		if len(s.Siginfo) != int(unsafe.Sizeof(si)) {
			return fmt.Errorf("queued signal %d: siginfo of %d bytes, want %d", i, len(s.Siginfo), unsafe.Sizeof(si))
		}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&si)), unsafe.Sizeof(si)), s.Siginfo)
		if si.Signo < 1 || si.Signo > abi.NSIG {
			return fmt.Errorf("queued signal %d: signal number %d", i, si.Signo)
		}
		if err := remote.WriteStruct(t, 0, &si); err != nil {
			return err
		}
		var err error
		if shared {
			_, err = t.Syscall(unix.SYS_RT_SIGQUEUEINFO, uint64(tgid), uint64(si.Signo), t.Scratch)
		} else {
			_, err = t.Syscall(unix.SYS_RT_TGSIGQUEUEINFO, uint64(tgid), uint64(tid), uint64(si.Signo), t.Scratch)
		}
		if err != nil {
			return fmt.Errorf("queue signal %d again in tid %d: %w", si.Signo, tid, err)
		}
	}
	return nil
}
