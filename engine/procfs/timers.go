package procfs

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sigevent notify kinds as timer_create takes them (sigevent(3type)).
const (
	SigevSignal   = 0
	SigevNone     = 1
	SigevThread   = 2
	SigevThreadID = 4 // or'ed with SigevSignal: the signal goes to one thread
)

// PosixTimer is one POSIX timer of a process (timer_create(2)) as
// /proc/PID/timers shows it. Its value, interval and overrun are not
// there: only the task itself can read them (timer_gettime,
// timer_getoverrun).
type PosixTimer struct {
	ID      int32
	Signo   int
	Sival   uint64 // sigev_value, as a pointer
	Notify  int    // sigev_notify: SigevSignal, SigevNone, SigevThread, or SigevThreadID|SigevSignal
	Target  int    // the process (or with SigevThreadID the thread) the signal goes to, in the pid namespace of this /proc
	ClockID int32
}

// Timers reads /proc/PID/timers (kernels with CONFIG_CHECKPOINT_RESTORE),
// the timers in the order the kernel lists them.
func Timers(pid int) ([]PosixTimer, error) {
	b, err := readFile(pid, "timers")
	if err != nil {
		return nil, err
	}
	ts, err := ParseTimers(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path(pid, "timers"), err)
	}
	return ts, nil
}

// ParseTimers parses the text of a timers file: for each timer the four
// lines
//
//	ID: 3
//	signal: 14/00007ffc5a1c2b40
//	notify: signal/tid.1234
//	ClockID: 1
//
// (the kernel's show_timer). The notify kind is one of signal, none and
// thread, and the target is "pid.N", or "tid.N" for SIGEV_THREAD_ID.
func ParseTimers(b []byte) ([]PosixTimer, error) {
	var out []PosixTimer
	next := 0 // the line expected: 0 ID, 1 signal, 2 notify, 3 ClockID
	err := lines(b, func(n int, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		key, val, ok := strings.Cut(string(line), ":")
		if !ok {
			return fmt.Errorf("%q: no key: %w", line, errSyntax)
		}
		val = strings.TrimSpace(val)
		want := [...]string{"ID", "signal", "notify", "ClockID"}[next]
		if key != want {
			return fmt.Errorf("%q: want a %s line: %w", line, want, errSyntax)
		}
		switch next {
		case 0:
			id, err := strconv.ParseInt(val, 10, 32)
			if err != nil || id < 0 {
				return fmt.Errorf("%q: timer id: %w", line, errSyntax)
			}
			out = append(out, PosixTimer{ID: int32(id)})
		case 1:
			t := &out[len(out)-1]
			sig, ptr, ok := strings.Cut(val, "/")
			if !ok {
				return fmt.Errorf("%q: want signal/value: %w", line, errSyntax)
			}
			s, err := strconv.ParseUint(sig, 10, 8)
			if err != nil || s > 64 {
				return fmt.Errorf("%q: signal: %w", line, errSyntax)
			}
			ptr = strings.TrimPrefix(ptr, "0x")
			v, err := parseHex([]byte(ptr))
			if err != nil {
				return fmt.Errorf("%q: value: %w", line, err)
			}
			t.Signo, t.Sival = int(s), v
		case 2:
			t := &out[len(out)-1]
			kind, target, ok := strings.Cut(val, "/")
			if !ok {
				return fmt.Errorf("%q: want kind/target: %w", line, errSyntax)
			}
			switch kind {
			case "signal":
				t.Notify = SigevSignal
			case "none":
				t.Notify = SigevNone
			case "thread":
				t.Notify = SigevThread
			default:
				return fmt.Errorf("%q: notify kind %q: %w", line, kind, errSyntax)
			}
			who, num, ok := strings.Cut(target, ".")
			if !ok {
				return fmt.Errorf("%q: want pid.N or tid.N: %w", line, errSyntax)
			}
			switch who {
			case "pid":
			case "tid":
				t.Notify |= SigevThreadID
			default:
				return fmt.Errorf("%q: target %q: %w", line, who, errSyntax)
			}
			p, err := strconv.ParseInt(num, 10, 32)
			if err != nil || p < 0 {
				return fmt.Errorf("%q: target id: %w", line, errSyntax)
			}
			t.Target = int(p)
		case 3:
			c, err := strconv.ParseInt(val, 10, 32)
			if err != nil || c < math.MinInt32 {
				return fmt.Errorf("%q: clock id: %w", line, errSyntax)
			}
			out[len(out)-1].ClockID = int32(c)
		}
		next = (next + 1) % 4
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != 0 {
		return nil, fmt.Errorf("timer %d: its lines end early: %w", out[len(out)-1].ID, errSyntax)
	}
	return out, nil
}
