package files

import (
	"fmt"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timerfd"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
)

// dumpTimerfd records a timerfd as fdinfo shows it: its clock, the
// expirations not yet read, the flags of its last timerfd_settime, the time
// left until it fires next and its period.
func (s *Set) dumpTimerfd(pid int, fd Fd) (uint32, error) {
	t := fd.Info.TimerFd
	if t == nil {
		return 0, fmt.Errorf("fdinfo has no timerfd fields")
	}
	if t.Value == (procfs.Timespec{}) && t.Interval != (procfs.Timespec{}) {
		var err error
		if t, err = catchUpTimerfd(pid, fd.Fd); err != nil {
			return 0, err
		}
	}
	if t.Value.Sec < 0 || t.Value.Nsec < 0 || t.Interval.Sec < 0 || t.Interval.Nsec < 0 {
		return 0, fmt.Errorf("timerfd times %v, %v are negative", t.Value, t.Interval)
	}
	typ := fdinfo.FdTypes_TIMERFD
	return s.add(&fdinfo.FileEntry{Type: &typ, Tfd: &timerfd.TimerfdEntry{
		Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Fown: noOwner(),
		Clockid: ptr(uint32(t.ClockID)), Ticks: ptr(t.Ticks), SettimeFlags: ptr(t.SettimeFlags),
		Vsec: ptr(uint64(t.Value.Sec)), Vnsec: ptr(uint64(t.Value.Nsec)),
		Isec: ptr(uint64(t.Interval.Sec)), Insec: ptr(uint64(t.Interval.Nsec)),
	}}), nil
}

// catchUpTimerfd reads a periodic timerfd that has fired but was not read
// since: the kernel restarts such a timer only when it is read or asked
// for its time, so fdinfo shows no time left, which would disarm it on
// restore. timerfd_gettime on gocr's copy of the fd (pidfd_getfd) restarts
// it and counts the periods it missed, as the task's next read would; then
// fdinfo is read again.
func catchUpTimerfd(pid, fd int) (*procfs.TimerFdInfo, error) {
	local, err := takeFd(pid, fd)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	defer unix.Close(local)
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(local, &cur); err != nil {
		return nil, fmt.Errorf("timerfd_gettime: %w", err)
	}
	info, err := procfs.FdInfo(pid, fd)
	if err != nil {
		return nil, err
	}
	if info.TimerFd == nil {
		return nil, fmt.Errorf("fdinfo has no timerfd fields")
	}
	return info.TimerFd, nil
}

// openTimerfd makes a timerfd on the saved clock and arms it to fire after
// the time it had left, then at its period; the time between dump and
// restore does not count, as for CRIU. The expirations not yet read come
// back last: timerfd_settime zeroes them.
func openTimerfd(e *timerfd.TimerfdEntry) (int, error) {
	flags := unix.TFD_CLOEXEC
	if e.GetFlags()&unix.O_NONBLOCK != 0 {
		flags |= unix.TFD_NONBLOCK
	}
	fd, err := unix.TimerfdCreate(int(e.GetClockid()), flags)
	if err != nil {
		return -1, fmt.Errorf("timerfd_create (clock %d): %w", e.GetClockid(), err)
	}
	if err := armTimerfd(fd, e); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func armTimerfd(fd int, e *timerfd.TimerfdEntry) error {
	spec := unix.ItimerSpec{
		Interval: unix.Timespec{Sec: int64(e.GetIsec()), Nsec: int64(e.GetInsec())},
		Value:    unix.Timespec{Sec: int64(e.GetVsec()), Nsec: int64(e.GetVnsec())},
	}
	if spec.Value == (unix.Timespec{}) && spec.Interval != (unix.Timespec{}) {
		// A periodic timer never has no time left (images of dumpers that
		// did not catch it up): fire a period from now.
		spec.Value = spec.Interval
	}
	settime := int(e.GetSettimeFlags())
	if settime&unix.TFD_TIMER_ABSTIME != 0 && (spec.Value.Sec != 0 || spec.Value.Nsec != 0) {
		// fdinfo gives the time left even for an absolute timer: the
		// deadline is now plus that, on the timer's own clock.
		var now unix.Timespec
		if err := unix.ClockGettime(int32(e.GetClockid()), &now); err != nil {
			return fmt.Errorf("timerfd: clock_gettime (clock %d): %w", e.GetClockid(), err)
		}
		spec.Value = addTimespec(now, spec.Value)
	}
	if err := unix.TimerfdSettime(fd, settime, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime (flags %#o, value %d.%09d, interval %d.%09d): %w",
			settime, spec.Value.Sec, spec.Value.Nsec, spec.Interval.Sec, spec.Interval.Nsec, err)
	}
	if ticks := e.GetTicks(); ticks != 0 {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), abi.TFD_IOC_SET_TICKS, uintptr(unsafe.Pointer(&ticks))); errno != 0 {
			return fmt.Errorf("timerfd: set %d unread expirations (TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE, 3.17): %w", ticks, errno)
		}
	}
	return nil
}

// addTimespec adds two normalized times.
func addTimespec(a, b unix.Timespec) unix.Timespec {
	s := unix.Timespec{Sec: a.Sec + b.Sec, Nsec: a.Nsec + b.Nsec}
	if s.Nsec >= 1e9 {
		s.Sec++
		s.Nsec -= 1e9
	}
	return s
}
