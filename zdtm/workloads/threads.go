package workloads

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const threadsN = 6

// Threads runs several OS threads (goroutines locked to their thread), each
// named and counting. Every thread checks after SIGTERM that it still has
// the tid it recorded before Ready, and its name, and that its counter kept
// going; the main goroutine checks /proc/self/task still lists them all.
var Threads = lib.Workload{Name: "threads", Run: func(t *lib.T) {
	type worker struct {
		tid     int
		name    string
		a, b    atomic.Uint64 // b trails a; a torn pair shows corruption
		started chan struct{}
		result  chan error
	}
	var stop atomic.Bool
	ws := make([]*worker, threadsN)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{name: fmt.Sprintf("zdtm-thr-%d", i), started: make(chan struct{}), result: make(chan error, 1)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			w.tid = unix.Gettid()
			if err := os.WriteFile(fmt.Sprintf("/proc/self/task/%d/comm", w.tid), []byte(w.name), 0); err != nil {
				w.result <- fmt.Errorf("name thread: %w", err)
				close(w.started)
				return
			}
			close(w.started)
			for !stop.Load() {
				w.a.Add(1)
				if tid := unix.Gettid(); tid != w.tid {
					w.result <- fmt.Errorf("thread %s: tid changed from %d to %d", w.name, w.tid, tid)
					return
				}
				w.b.Add(1)
				time.Sleep(500 * time.Microsecond)
			}
			if tid := unix.Gettid(); tid != w.tid {
				w.result <- fmt.Errorf("thread %s: tid changed from %d to %d", w.name, w.tid, tid)
				return
			}
			w.result <- nil
		}()
	}
	for _, w := range ws {
		<-w.started
	}
	for _, w := range ws {
		select {
		case err := <-w.result:
			t.Fatal(err)
		default:
		}
	}
	time.Sleep(20 * time.Millisecond)
	atReady := make([]uint64, threadsN)
	for i, w := range ws {
		atReady[i] = w.a.Load()
		if atReady[i] == 0 {
			t.Fail("thread %s did not count before ready", w.name)
		}
	}
	t.Ready()
	t.WaitSignal()

	// The threads are checked while they still run.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	present := map[int]bool{}
	for _, e := range tasks {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			present[n] = true
		}
	}
	for _, w := range ws {
		if !present[w.tid] {
			t.Fail("thread %s (tid %d) missing from /proc/self/task", w.name, w.tid)
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", w.tid))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(comm)); got != w.name {
			t.Fail("thread %d is named %q, want %q", w.tid, got, w.name)
		}
	}
	before := make([]uint64, threadsN)
	for i, w := range ws {
		before[i] = w.a.Load()
	}
	// Every thread must count on. A thread is given seconds to show it, not
	// a fixed slice of time: on a loaded machine a thread that sleeps 500µs
	// at a time can wait tens of milliseconds for its turn, while one that
	// restore left stuck never moves again.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		moved := 0
		for i, w := range ws {
			if w.a.Load() > before[i] {
				moved++
			}
		}
		if moved == len(ws) {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	for i, w := range ws {
		if err := <-w.result; err != nil {
			t.Fatal(err)
		}
		a, b := w.a.Load(), w.b.Load()
		if a != b {
			t.Fail("thread %s: counter torn: a=%d b=%d", w.name, a, b)
		}
		if a <= before[i] || before[i] < atReady[i] {
			t.Fail("thread %s did not keep counting: %d at ready, %d at SIGTERM, %d at end", w.name, atReady[i], before[i], a)
		}
		t.Logf("thread %s tid %d: %d at ready, %d at end", w.name, w.tid, atReady[i], a)
	}
	t.Pass()
}}
