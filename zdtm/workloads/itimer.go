package workloads

import (
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	itimerRealInterval = 50 * time.Millisecond
	// The CPU-time timers are long enough never to fire: what is checked
	// is that they survive and only ever count down.
	itimerVirtual = 1000*time.Second + 7*time.Millisecond
	itimerProf    = 2000*time.Second + 11*time.Millisecond
)

// Itimer arms ITIMER_REAL every 50 ms with SIGALRM caught through
// signal.Notify, and ITIMER_VIRTUAL and ITIMER_PROF with long distinctive
// values. After SIGTERM getitimer must report the same intervals, the
// CPU-time timers must have counted down, but not by seconds (the process
// mostly sleeps), and SIGALRM ticks must keep arriving (3 more, waited for
// up to seconds: the machine may be loaded).
var Itimer = lib.Workload{Name: "itimer", Run: func(t *lib.T) {
	alrm := make(chan os.Signal, 16)
	signal.Notify(alrm, syscall.SIGALRM)
	var ticks atomic.Int64
	go func() {
		for range alrm {
			ticks.Add(1)
		}
	}()
	set := func(which unix.ItimerWhich, interval time.Duration) {
		v := unix.NsecToTimeval(interval.Nanoseconds())
		if _, err := unix.Setitimer(which, unix.Itimerval{Interval: v, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	set(unix.ItimerVirtual, itimerVirtual)
	set(unix.ItimerProf, itimerProf)
	set(unix.ItimerReal, itimerRealInterval)
	get := func(which unix.ItimerWhich) (interval, value time.Duration) {
		v, err := unix.Getitimer(which)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(v.Interval.Nano()), time.Duration(v.Value.Nano())
	}
	// The first tick is waited for, up to seconds: a loaded machine may
	// take long to run the signal thread.
	for deadline := time.Now().Add(2 * time.Second); ticks.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(itimerRealInterval)
	}
	if n := ticks.Load(); n < 1 {
		t.Fail("no SIGALRM in 2s with a %v ITIMER_REAL", itimerRealInterval)
	}
	_, virtBefore := get(unix.ItimerVirtual)
	_, profBefore := get(unix.ItimerProf)
	t.Ready()
	t.WaitSignal()

	for _, c := range []struct {
		name     string
		which    unix.ItimerWhich
		interval time.Duration
		before   time.Duration
	}{
		{"ITIMER_REAL", unix.ItimerReal, itimerRealInterval, itimerRealInterval},
		{"ITIMER_VIRTUAL", unix.ItimerVirtual, itimerVirtual, virtBefore},
		{"ITIMER_PROF", unix.ItimerProf, itimerProf, profBefore},
	} {
		interval, value := get(c.which)
		// An ITIMER_REAL that has fired reads 0 until its SIGALRM is
		// taken, which rearms it: on a slow machine the signal thread
		// may not have run yet. A lost rearm would stay at 0.
		for deadline := time.Now().Add(2 * time.Second); c.which == unix.ItimerReal && value == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			interval, value = get(c.which)
		}
		if interval != c.interval {
			t.Fail("%s interval %v, want %v", c.name, interval, c.interval)
		}
		// A timer counts down to 0 and reloads from the interval, so its
		// value never exceeds what it was.
		if value <= 0 || value > c.before {
			t.Fail("%s value %v, want in (0, %v]", c.name, value, c.before)
		}
	}
	// The process mostly sleeps: its CPU-time timers cannot have run down
	// by seconds.
	for _, c := range []struct {
		name   string
		which  unix.ItimerWhich
		before time.Duration
	}{{"ITIMER_VIRTUAL", unix.ItimerVirtual, virtBefore}, {"ITIMER_PROF", unix.ItimerProf, profBefore}} {
		if _, v := get(c.which); c.before-v > 5*time.Second {
			t.Fail("%s ran down from %v to %v while the process slept", c.name, c.before, v)
		}
	}
	// Ticks must keep coming: 3 of them, waited for up to seconds.
	start, began := ticks.Load(), time.Now()
	for ticks.Load()-start < 3 && time.Since(began) < 3*time.Second {
		time.Sleep(itimerRealInterval)
	}
	if n := ticks.Load() - start; n < 3 {
		t.Fail("%d SIGALRM in %v after SIGTERM, want at least 3 (one per %v)", n, time.Since(began).Round(time.Millisecond), itimerRealInterval)
	} else {
		t.Logf("%d SIGALRM in %v after SIGTERM", n, time.Since(began).Round(time.Millisecond))
	}
	t.Pass()
}}
