package ptrace

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("ptrace: tracer closed")

// Tracer runs ptrace, wait4 and clone calls on one OS thread, because the
// kernel ties a tracee to the thread that attached it, not to the process.
type Tracer struct {
	calls chan func()
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
	tid   int // the tracer thread; read-only after NewTracer returns

	injected atomic.Uint64 // system calls run by injection, for the logs and `make bench`

	// Touched only on the tracer thread, so no lock.
	tasks     map[int]*task
	xstateBuf []byte // GetXState's probe buffer
	// adopted is the last task auto-attached at a clone event, by its id
	// in the tracer's pid namespace (CloneThread reads it: the clone's
	// return value is the id in the cloning task's namespace).
	adopted int

	// journal hears of every injection session (see Journal).
	journal Journal
	// deadline, if set, bounds the waits of Interrupt, SeizeThreads and
	// StopGroup (a task in uninterruptible sleep never stops).
	deadline time.Time
	// groupStop says which processes StopGroup put in group stop, and
	// whether they were stopped already before.
	groupStop map[int]bool
}

// task is what the tracer remembers about one traced thread.
type task struct {
	tgid    int
	options int
	stopped bool
	// groupStopped: the last PTRACE_EVENT_STOP reported a group stop
	// (the process was stopped by a signal), not the tracer's interrupt.
	groupStopped bool
	// groupStopSig is the signal that stopped the group, as the seize
	// found it (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU).
	groupStopSig unix.Signal
	// signals were dequeued by a signal-delivery-stop the tracer had to
	// suppress (only SIGSTOP can get through the injection mask); Detach
	// sends them again.
	signals []unix.Signal
}

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{
		calls: make(chan func()),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		tasks: make(map[int]*task),

		groupStop: make(map[int]bool),
	}
	ready := make(chan struct{})
	go t.loop(ready)
	<-ready
	return t
}

func (t *Tracer) loop(ready chan struct{}) {
	// Never unlocked: when loop returns the runtime kills this thread, and the
	// kernel detaches (or, with PTRACE_O_EXITKILL, kills) whatever it still
	// traces. Stubs it forked are reparented to another thread of ours.
	runtime.LockOSThread()
	defer close(t.done)
	t.tid = unix.Gettid()
	close(ready)
	for {
		select {
		case f := <-t.calls:
			f()
		case <-t.quit:
			return
		}
	}
}

// Do runs f on the tracer thread and returns its error. Called from the
// tracer thread itself (inside another Do) it runs f directly, so methods
// compose into one batch without a thread hop per call.
func (t *Tracer) Do(f func() error) error {
	if unix.Gettid() == t.tid {
		return f()
	}
	errc := make(chan error, 1)
	select {
	case t.calls <- func() { errc <- f() }:
		return <-errc
	case <-t.done:
		return ErrClosed
	}
}

// Close stops the tracer thread. Tasks still traced are detached by the
// kernel as the thread exits (killed if they were given PTRACE_O_EXITKILL).
func (t *Tracer) Close() {
	t.once.Do(func() { close(t.quit) })
	<-t.done
}

// Injected counts the system calls injected through this tracer so far.
func (t *Tracer) Injected() uint64 { return t.injected.Load() }
