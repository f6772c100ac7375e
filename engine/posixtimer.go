package engine

// POSIX timers (timer_create(2)), both halves.
//
// Dump: /proc/PID/timers lists each timer's id, signal, sigev_value,
// notify kind (and the thread of SIGEV_THREAD_ID) and clock; the task
// alone can read the time left, the interval and the overrun, by injected
// timer_gettime and timer_getoverrun. They go into core's
// tc.timers.posix, as CRIU keeps them.
//
// Restore: each timer must come back with its id, which the program holds
// (glibc's timer_t is the kernel's id, or a pointer to a struct holding
// it for SIGEV_THREAD). Kernels since 6.15 take the id wanted from the
// caller in timer_create once prctl(PR_TIMER_CREATE_RESTORE_IDS, ON) is
// set. Older ones hand ids out per process in order from 0, never reusing
// one until the counter wraps (measured on 6.18 too without the prctl:
// 0, 1, ..., and after deleting 1 the next is 6), so the timers are made
// in order of id in the fresh stub, with stand-ins made and deleted for
// the ids in between; above maxTimerFillers stand-ins the images are
// refused (checkPosixTimers, which the dump runs too). The timers are made
// once every thread exists (SIGEV_THREAD_ID needs its thread) and armed
// with the time that was left and their interval, relative, as CRIU does:
// the time the tree spent dumped does not count. The overrun cannot be
// set by any system call; the count the image keeps is lost (a signal
// still pending keeps its si_overrun, being queued again whole).

import (
	"errors"
	"fmt"
	"slices"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/kernel"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
)

// timerRestoreIDs is the kernel feature that creates a timer with a given id.
const timerRestoreIDs = "timer-restore-ids"

// maxTimerFillers bounds the stand-in timers a restore without
// PR_TIMER_CREATE_RESTORE_IDS makes to reach the ids of a process's
// timers: each costs two injected calls (about 60 µs, more under load).
const maxTimerFillers = 1 << 14

// Clock ids of timer_create (include/uapi/linux/time.h) and the bits of
// the negative ids of CPU clocks (clock_getcpuclockid,
// pthread_getcpuclockid; include/linux/posix-timers_types.h).
const (
	clockRealtime       = 0
	clockMonotonic      = 1
	clockProcessCPUTime = 2
	clockThreadCPUTime  = 3
	clockBoottime       = 7
	clockRealtimeAlarm  = 8
	clockBoottimeAlarm  = 9
	clockTAI            = 11

	cpuClockPerThread = 4 // CPUCLOCK_PERTHREAD_MASK
	cpuClockFD        = 3 // CLOCKFD: a dynamic clock (PTP and the like) by fd
)

// Timer scratch layout (dump and restore): the sigevent, the id
// timer_create writes, the itimerspec.
const (
	timerSevOff  = 0
	timerIDOff   = 64
	timerSpecOff = 128
)

// dumpPosixTimers reads pid's POSIX timers: the kernel's list from
// /proc, what only the task sees by injected calls. A SIGEV_THREAD_ID
// target is recorded by its tid in the tree's pid namespace.
func (d *dumper) dumpPosixTimers(t *remote.Task, pid int) ([]*timer.PosixTimerEntry, error) {
	ts, err := procfs.Timers(pid)
	if err != nil {
		return nil, err
	}
	var out []*timer.PosixTimerEntry
	for _, tm := range ts {
		what := fmt.Sprintf("pid %d POSIX timer %d", pid, tm.ID)
		if _, err := t.Syscall(unix.SYS_TIMER_GETTIME, uint64(tm.ID), t.Scratch+timerSpecOff); err != nil {
			return nil, fmt.Errorf("%s: timer_gettime: %w", what, err)
		}
		var its abi.Itimerspec
		if err := remote.ReadStruct(t, timerSpecOff, &its); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		overrun, err := t.Syscall(unix.SYS_TIMER_GETOVERRUN, uint64(tm.ID))
		if err != nil {
			return nil, fmt.Errorf("%s: timer_getoverrun: %w", what, err)
		}
		e := &timer.PosixTimerEntry{
			ItId: ptr(uint32(tm.ID)), ClockId: ptr(uint32(tm.ClockID)), SiSigno: ptr(uint32(tm.Signo)),
			ItSigevNotify: ptr(uint32(tm.Notify)), SivalPtr: ptr(tm.Sival), Overrun: ptr(uint32(overrun)),
			Isec: ptr(uint64(its.IntervalSec)), Insec: ptr(uint64(its.IntervalNsec)),
			Vsec: ptr(uint64(its.ValueSec)), Vnsec: ptr(uint64(its.ValueNsec)),
		}
		if tm.Notify&procfs.SigevThreadID != 0 {
			vt, ok := d.vtid[tm.Target]
			if !ok {
				return nil, fmt.Errorf("%s: its signal goes to thread %d, which is not one of the tree's", what, tm.Target)
			}
			e.NotifyThreadId = ptr(int32(vt))
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *timer.PosixTimerEntry) int { return int(a.GetItId()) - int(b.GetItId()) })
	return out, nil
}

// checkPosixTimers refuses, before anything is made, POSIX timers restore
// cannot make again as they were: clocks, notifications and targets
// timer_create would reject or bind otherwise, and ids this kernel cannot
// give back.
func checkPosixTimers(img *restoreImages) error {
	var exact *bool
	for _, p := range img.procs {
		if p.zombie {
			continue
		}
		ts := p.cores[p.pid].GetTc().GetTimers().GetPosix()
		if len(ts) == 0 {
			continue
		}
		where := fmt.Sprintf("%s: tc.timers.posix", image.CoreFile(uint32(p.pid)))
		seen := map[uint32]bool{}
		var maxID uint32
		for _, e := range ts {
			id := e.GetItId()
			what := fmt.Sprintf("%s: pid %d timer %d", where, p.pid, id)
			if int32(id) < 0 || seen[id] {
				return fmt.Errorf("%s: id given twice or out of range", what)
			}
			seen[id] = true
			maxID = max(maxID, id)
			if err := checkTimerClock(int32(e.GetClockId()), p.pid, p.tids); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			switch n := e.GetItSigevNotify(); n {
			case procfs.SigevNone:
			case procfs.SigevSignal, procfs.SigevThread, procfs.SigevSignal | procfs.SigevThreadID:
				if s := e.GetSiSigno(); s < 1 || s > abi.NSIG {
					return fmt.Errorf("%s: signal %d", what, s)
				}
				if n&procfs.SigevThreadID != 0 && !slices.Contains(p.tids, int(e.GetNotifyThreadId())) {
					return fmt.Errorf("%s: its signal goes to thread %d, not one of the process's %v", what, e.GetNotifyThreadId(), p.tids)
				}
			default:
				return fmt.Errorf("%s: sigev_notify %d", what, n)
			}
			if e.GetInsec() >= 1e9 || e.GetVnsec() >= 1e9 || int64(e.GetIsec()) < 0 || int64(e.GetVsec()) < 0 {
				return fmt.Errorf("%s: time %d.%09d every %d.%09d", what, e.GetVsec(), e.GetVnsec(), e.GetIsec(), e.GetInsec())
			}
		}
		if exact == nil {
			exact = ptr(kernel.Check(timerRestoreIDs) == nil)
		}
		if fillers := int(maxID) + 1 - len(ts); !*exact && fillers > maxTimerFillers {
			return fmt.Errorf("%s: pid %d timer %d: this kernel cannot create a timer with a given id (it lacks PR_TIMER_CREATE_RESTORE_IDS, 6.15), "+
				"and reaching that id would take %d stand-in timers, more than %d", where, p.pid, maxID, fillers, maxTimerFillers)
		}
	}
	return nil
}

// checkTimerClock refuses the clocks a restored timer_create would not
// bind to the same thing. CLOCK_THREAD_CPUTIME_ID counts the CPU time of
// the thread that made the timer, which the kernel does not show: only a
// single-threaded process's is known. A negative clock id names a process
// or thread CPU clock by its pid as the tree sees it, which restore keeps;
// a dynamic clock is an fd's (a PTP device's), not restored.
func checkTimerClock(clock int32, pid int, tids []int) error {
	switch clock {
	case clockRealtime, clockMonotonic, clockProcessCPUTime, clockBoottime, clockRealtimeAlarm, clockBoottimeAlarm, clockTAI:
		return nil
	case clockThreadCPUTime:
		if len(tids) > 1 {
			return fmt.Errorf("CLOCK_THREAD_CPUTIME_ID in a process of %d threads: the kernel does not show which thread's CPU time it counts", len(tids))
		}
		return nil
	}
	if clock >= 0 {
		return fmt.Errorf("clock %d: not a clock timer_create takes", clock)
	}
	if clock&3 == cpuClockFD {
		return fmt.Errorf("clock %d: the dynamic clock of fd %d (a PTP device or the like) is not restored", clock, ^(clock >> 3))
	}
	who := int(^(clock >> 3))
	switch {
	case clock&cpuClockPerThread != 0 && who != 0 && !slices.Contains(tids, who):
		return fmt.Errorf("clock %d: the CPU clock of thread %d, not one of the process's %v", clock, who, tids)
	case clock&cpuClockPerThread == 0 && who != 0 && who != pid:
		return fmt.Errorf("clock %d: the CPU clock of process %d, not this one", clock, who)
	}
	return nil
}

// restorePosixTimers makes the process's POSIX timers again with their
// ids, then arms them. It runs in the leader once every thread exists.
func (r *procRestorer) restorePosixTimers() (err error) {
	ts := slices.Clone(r.img.cores[r.vpid].GetTc().GetTimers().GetPosix())
	if len(ts) == 0 {
		return nil
	}
	slices.SortFunc(ts, func(a, b *timer.PosixTimerEntry) int { return int(a.GetItId()) - int(b.GetItId()) })
	t := r.t
	exact := kernel.Check(timerRestoreIDs) == nil
	if exact {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_ON); err != nil {
			return fmt.Errorf("prctl PR_TIMER_CREATE_RESTORE_IDS on: %w", err)
		}
		defer func() {
			// Left on, the program's own timer_create would read its id
			// from whatever its timer_t holds.
			if _, oerr := t.Syscall(unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_OFF); oerr != nil {
				err = errors.Join(err, fmt.Errorf("prctl PR_TIMER_CREATE_RESTORE_IDS off: %w", oerr))
			}
		}()
	}
	create := func(e *timer.PosixTimerEntry, id int32) (int32, error) {
		sev := abi.Sigevent{Value: e.GetSivalPtr(), Signo: int32(e.GetSiSigno()), Notify: int32(e.GetItSigevNotify()), Tid: e.GetNotifyThreadId()}
		if err := remote.WriteStruct(t, timerSevOff, &sev); err != nil {
			return 0, err
		}
		if err := remote.WriteStruct(t, timerIDOff, &id); err != nil {
			return 0, err
		}
		if _, err := t.Syscall(unix.SYS_TIMER_CREATE, uint64(int64(int32(e.GetClockId()))), t.Scratch+timerSevOff, t.Scratch+timerIDOff); err != nil {
			return 0, fmt.Errorf("timer_create (clock %d, notify %d, signal %d): %w", int32(e.GetClockId()), e.GetItSigevNotify(), e.GetSiSigno(), err)
		}
		var got int32
		err := remote.ReadStruct(t, timerIDOff, &got)
		return got, err
	}
	next := int32(0) // without the prctl: the id the kernel hands out next
	for _, e := range ts {
		id := int32(e.GetItId())
		what := fmt.Sprintf("pid %d POSIX timer %d", r.vpid, id)
		if exact {
			got, err := create(e, id)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if got != id {
				return fmt.Errorf("%s: created with id %d", what, got)
			}
			continue
		}
		for {
			got, err := create(e, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if got != next {
				return fmt.Errorf("%s: the kernel gave id %d where %d was due: it does not hand timer ids out in order, and lacks PR_TIMER_CREATE_RESTORE_IDS", what, got, next)
			}
			next++
			if got == id {
				break
			}
			if _, err := t.Syscall(unix.SYS_TIMER_DELETE, uint64(got)); err != nil {
				return fmt.Errorf("%s: delete stand-in timer %d: %w", what, got, err)
			}
		}
	}
	for _, e := range ts {
		its := abi.Itimerspec{IntervalSec: int64(e.GetIsec()), IntervalNsec: int64(e.GetInsec()),
			ValueSec: int64(e.GetVsec()), ValueNsec: int64(e.GetVnsec())}
		if its.ValueSec == 0 && its.ValueNsec == 0 {
			if its.IntervalSec == 0 && its.IntervalNsec == 0 {
				continue // disarmed
			}
			// Due at the dump (the kernel says 1 ns then, so this is
			// rare): a value of 0 would disarm it; one period, as CRIU.
			its.ValueSec, its.ValueNsec = its.IntervalSec, its.IntervalNsec
		}
		if err := remote.WriteStruct(t, timerSpecOff, &its); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_TIMER_SETTIME, uint64(e.GetItId()), 0, t.Scratch+timerSpecOff, 0); err != nil {
			return fmt.Errorf("pid %d POSIX timer %d: timer_settime %d.%09ds every %d.%09ds: %w", r.vpid, e.GetItId(),
				its.ValueSec, its.ValueNsec, its.IntervalSec, its.IntervalNsec, err)
		}
	}
	return nil
}
