package workloads

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	nanosleepPeriod = time.Second
	// A restore may keep the process stopped for a while; a sleep longer
	// than this is not sane any more.
	nanosleepMax = 60 * time.Second
)

// BlockedNanosleep loops on a locked thread sleeping 1 s at a time with a
// raw nanosleep(2). A sleep cut short with EINTR (as a restore may do) is
// resumed with the time left by the monotonic clock; a call that returns 0
// must have slept at least what it asked for, and no call may sleep longer
// than 60 s. After SIGTERM the thread must be in nanosleep (or
// restart_syscall) and two more periods must complete.
var BlockedNanosleep = lib.Workload{Name: "blocked_nanosleep", Run: func(t *lib.T) {
	var (
		done, eintr atomic.Int64
		stop        atomic.Bool
		mu          sync.Mutex
		bad         error
		longest     time.Duration
	)
	now := func() time.Duration {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		return time.Duration(ts.Nano())
	}
	tid, finished := startBlocked(func() blockedResult {
		for !stop.Load() {
			deadline := now() + nanosleepPeriod
			for {
				ask := deadline - now()
				if ask <= 0 {
					break
				}
				ts := unix.NsecToTimespec(int64(ask))
				c0 := now()
				_, _, e := syscall.Syscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
				slept := now() - c0
				mu.Lock()
				longest = max(longest, slept)
				switch {
				case e == unix.EINTR:
					eintr.Add(1)
				case e != 0:
					bad = fmt.Errorf("nanosleep: %w", e)
				case slept < ask:
					bad = fmt.Errorf("nanosleep of %v returned 0 after %v", ask, slept)
				case slept > nanosleepMax:
					bad = fmt.Errorf("nanosleep of %v took %v", ask, slept)
				}
				mu.Unlock()
				if bad != nil {
					return blockedResult{}
				}
				if e == 0 {
					break
				}
			}
			done.Add(1)
		}
		return blockedResult{}
	})
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		if bad != nil {
			t.Fatal(bad)
		}
	}
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_NANOSLEEP); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()

	check()
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_NANOSLEEP, unix.SYS_RESTART_SYSCALL); err != nil {
		t.Fatal(err)
	}
	atTerm := done.Load()
	deadline := time.Now().Add(2*nanosleepPeriod + 5*time.Second)
	for done.Load() < atTerm+2 {
		check()
		if time.Now().After(deadline) {
			t.Fail("%d sleeps of %v done since SIGTERM, want 2 within %v", done.Load()-atTerm, nanosleepPeriod, 2*nanosleepPeriod+5*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	<-finished
	check()
	t.Logf("%d sleeps of %v, %d cut short by EINTR, longest call %v", done.Load(), nanosleepPeriod, eintr.Load(), longest)
	t.Pass()
}}
