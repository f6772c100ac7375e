package workloads

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	futexWait        = 0
	futexWake        = 1
	futexPrivateFlag = 128
)

// BlockedFutex leaves two locked threads in a raw FUTEX_WAIT: one on a
// private futex (FUTEX_WAIT_PRIVATE on a word of the Go heap), one on a
// shared futex (FUTEX_WAIT on a word of a MAP_SHARED anonymous page), both
// waiting for the word to leave 0. After SIGTERM each thread must be in
// futex; a FUTEX_WAKE with the word still 0 must find and wake exactly one
// waiter (which goes back to waiting), then the main goroutine stores the
// word's final value and wakes it again, and the waiter must return having
// seen that value.
var BlockedFutex = lib.Workload{Name: "blocked_futex", Run: func(t *lib.T) {
	shm, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	type waiter struct {
		name   string
		word   *uint32
		op     uintptr
		final  uint32
		woken  atomic.Int64 // returns of FUTEX_WAIT with 0
		tid    int
		done   <-chan blockedResult
		result uint32 // the value the waiter saw last, once done
	}
	ws := []*waiter{
		{name: "private", word: new(uint32), op: futexPrivateFlag, final: 0xc0ffee01},
		{name: "shared", word: (*uint32)(unsafe.Pointer(&shm[64])), op: 0, final: 0xc0ffee02},
	}
	futex := func(w *waiter, op, val uintptr) (uintptr, syscall.Errno) {
		r, _, e := syscall.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w.word)), op|w.op, val, 0, 0, 0)
		return r, e
	}
	for _, w := range ws {
		w.tid, w.done = startBlocked(func() blockedResult {
			for {
				v := atomic.LoadUint32(w.word)
				if v != 0 {
					w.result = v
					return blockedResult{}
				}
				r, e := futex(w, futexWait, 0)
				switch {
				case e == 0 && r == 0:
					w.woken.Add(1)
				case e == unix.EAGAIN || e == unix.EINTR:
				default:
					return blockedResult{r, e}
				}
			}
		})
	}
	for _, w := range ws {
		if err := waitInSyscall(w.tid, 5*time.Second, unix.SYS_FUTEX); err != nil {
			t.Fatal(fmt.Errorf("%s futex waiter: %w", w.name, err))
		}
	}
	t.Ready()
	t.WaitSignal()

	for _, w := range ws {
		select {
		case r := <-w.done:
			t.Fail("%s futex waiter returned before being woken: %d, %v", w.name, r.r1, r.err)
		default:
		}
		if err := waitInSyscall(w.tid, 5*time.Second, unix.SYS_FUTEX); err != nil {
			t.Fatal(fmt.Errorf("%s futex waiter: %w", w.name, err))
		}
		// A signal may take the waiter off the queue for a moment: retry.
		before := w.woken.Load()
		deadline := time.Now().Add(2 * time.Second)
		for {
			n, e := futex(w, futexWake, 1)
			if e != 0 {
				t.Fail("FUTEX_WAKE of the %s futex: %v", w.name, e)
			}
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fail("FUTEX_WAKE of the %s futex found no waiter", w.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for w.woken.Load() == before {
			if time.Now().After(deadline) {
				t.Fail("%s futex waiter woken but its FUTEX_WAIT did not return 0", w.name)
			}
			time.Sleep(time.Millisecond)
		}
		atomic.StoreUint32(w.word, w.final)
		if _, e := futex(w, futexWake, 1); e != 0 {
			t.Fail("FUTEX_WAKE of the %s futex: %v", w.name, e)
		}
		select {
		case r := <-w.done:
			if r.err != 0 {
				t.Fail("%s futex waiter: FUTEX_WAIT failed: %v", w.name, r.err)
			}
			if w.result != w.final {
				t.Fail("%s futex waiter saw %#x, want %#x", w.name, w.result, w.final)
			}
		case <-time.After(5 * time.Second):
			t.Fail("%s futex waiter still blocked 5 s after its word was set", w.name)
		}
	}
	t.Pass()
}}
