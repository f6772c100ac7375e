package procfs

import (
	"os"
	"reflect"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const timersSample = `ID: 7
signal: 14/00007ffc5a1c2b40
notify: signal/pid.17784
ClockID: 0
ID: 3
signal: 34/0000000000000000
notify: signal/tid.17790
ClockID: 2
ID: 0
signal: 0/0000000000000000
notify: none/pid.17784
ClockID: -6
`

func TestParseTimers(t *testing.T) {
	got, err := ParseTimers([]byte(timersSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []PosixTimer{
		{ID: 7, Signo: 14, Sival: 0x7ffc5a1c2b40, Notify: SigevSignal, Target: 17784, ClockID: 0},
		{ID: 3, Signo: 34, Notify: SigevSignal | SigevThreadID, Target: 17790, ClockID: 2},
		{ID: 0, Notify: SigevNone, Target: 17784, ClockID: -6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if ts, err := ParseTimers(nil); err != nil || len(ts) != 0 {
		t.Errorf("empty file: %v, %v", ts, err)
	}
	for _, bad := range []string{
		"ID: 1\n", "ID: 1\nsignal: 14/0\nnotify: signal/pid.1\n", "signal: 14/0\n",
		"ID: x\nsignal: 14/0\nnotify: signal/pid.1\nClockID: 0\n",
		"ID: 1\nsignal: 99/0\nnotify: signal/pid.1\nClockID: 0\n",
		"ID: 1\nsignal: 14/zz\nnotify: signal/pid.1\nClockID: 0\n",
		"ID: 1\nsignal: 14/0\nnotify: bogus/pid.1\nClockID: 0\n",
		"ID: 1\nsignal: 14/0\nnotify: signal/pgid.1\nClockID: 0\n",
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.x\nClockID: 0\n",
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.1\nClockID: q\n",
		"ID: -1\nsignal: 14/0\nnotify: signal/pid.1\nClockID: 0\n",
	} {
		if _, err := ParseTimers([]byte(bad)); err == nil {
			t.Errorf("ParseTimers(%q) accepted garbage", bad)
		}
	}
}

// TestTimersSelf creates a timer in the test process and finds it in
// /proc/self/timers.
func TestTimersSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/timers"); err != nil {
		t.Skip("no /proc/PID/timers (CONFIG_CHECKPOINT_RESTORE off)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// struct sigevent: value, signo, notify, then the tid (64 bytes in all).
	var sev [64]byte
	*(*uint64)(unsafe.Pointer(&sev[0])) = 0xabcdef
	*(*int32)(unsafe.Pointer(&sev[8])) = int32(unix.SIGUSR2)
	*(*int32)(unsafe.Pointer(&sev[12])) = SigevSignal | SigevThreadID
	*(*int32)(unsafe.Pointer(&sev[16])) = int32(unix.Gettid())
	var id int32
	if _, _, e := unix.Syscall(unix.SYS_TIMER_CREATE, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&sev)), uintptr(unsafe.Pointer(&id))); e != 0 {
		t.Fatalf("timer_create: %v", e)
	}
	defer unix.Syscall(unix.SYS_TIMER_DELETE, uintptr(id), 0, 0)
	ts, err := Timers(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := PosixTimer{ID: id, Signo: int(unix.SIGUSR2), Sival: 0xabcdef, Notify: SigevSignal | SigevThreadID, Target: unix.Gettid(), ClockID: unix.CLOCK_MONOTONIC}
	for _, tm := range ts {
		if tm == want {
			return
		}
	}
	t.Errorf("timer %+v not among %+v", want, ts)
}

func FuzzParseTimers(f *testing.F) {
	f.Add([]byte(timersSample))
	f.Add([]byte("ID: 1\nsignal: 14/0\nnotify: thread/pid.1\nClockID: 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParseTimers(b)
		if err != nil {
			return
		}
		for _, tm := range ts {
			if tm.ID < 0 || tm.Signo < 0 || tm.Signo > 64 || tm.Target < 0 || tm.Notify&^(SigevThreadID|3) != 0 {
				t.Errorf("out of range: %+v", tm)
			}
		}
	})
}
