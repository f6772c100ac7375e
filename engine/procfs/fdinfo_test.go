package procfs

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fdKeeper returns a function that fails the test on error and closes the
// fd when the test ends; it takes a (fd, err) pair straight from a call.
func fdKeeper(t *testing.T) func(int, error) int {
	return func(fd int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
}

func TestFdInfoSelfKinds(t *testing.T) {
	pid := os.Getpid()
	keep := fdKeeper(t)
	efd := keep(unix.Eventfd(7, unix.EFD_SEMAPHORE|unix.EFD_CLOEXEC))
	epfd := keep(unix.EpollCreate1(unix.EPOLL_CLOEXEC))
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(efd), Pad: 0x1234}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		t.Fatal(err)
	}
	tfd := keep(unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC))
	spec := unix.ItimerSpec{Interval: unix.Timespec{Sec: 1, Nsec: 500}, Value: unix.Timespec{Sec: 100}}
	if err := unix.TimerfdSettime(tfd, 0, &spec, nil); err != nil {
		t.Fatal(err)
	}
	var mask unix.Sigset_t
	mask.Val[0] = 1<<(unix.SIGUSR1-1) | 1<<(unix.SIGHUP-1)
	sfd := keep(unix.Signalfd(-1, &mask, unix.SFD_CLOEXEC))
	ifd := keep(unix.InotifyInit1(unix.IN_CLOEXEC))
	dir := t.TempDir()
	wd, err := unix.InotifyAddWatch(ifd, dir, unix.IN_CREATE|unix.IN_DELETE)
	if err != nil {
		t.Fatal(err)
	}
	var dst unix.Stat_t
	if err := unix.Stat(dir, &dst); err != nil {
		t.Fatal(err)
	}

	e, err := FdInfo(pid, efd)
	if err != nil {
		t.Fatal(err)
	}
	if e.EventFd == nil || e.EventFd.Count != 7 || e.Flags&unix.O_CLOEXEC == 0 || e.MntID <= 0 || e.Ino == 0 {
		t.Errorf("eventfd: %+v %+v", e, e.EventFd)
	}
	if e.EventFd != nil && e.EventFd.ID >= 0 && !e.EventFd.Semaphore { // id and semaphore came together (6.8)
		t.Errorf("eventfd semaphore not reported: %+v", e.EventFd)
	}

	p, err := FdInfo(pid, epfd)
	if err != nil {
		t.Fatal(err)
	}
	var est unix.Stat_t
	if err := unix.Fstat(efd, &est); err != nil {
		t.Fatal(err)
	}
	if len(p.Epoll) != 1 {
		t.Fatalf("epoll targets %+v", p.Epoll)
	}
	tg := p.Epoll[0]
	// The kernel adds EPOLLERR|EPOLLHUP to every watch; data is the raw
	// 64-bit union, here fd in the low half and Pad in the high half.
	wantData := uint64(0x1234)<<32 | uint64(efd)
	if tg.TFD != efd || tg.Events&(unix.EPOLLIN|unix.EPOLLET) != unix.EPOLLIN|unix.EPOLLET || tg.Data != wantData || tg.Ino != est.Ino {
		t.Errorf("epoll target %+v, want tfd %d data %#x ino %d", tg, efd, wantData, est.Ino)
	}

	tm, err := FdInfo(pid, tfd)
	if err != nil {
		t.Fatal(err)
	}
	if tm.TimerFd == nil || tm.TimerFd.ClockID != unix.CLOCK_MONOTONIC || tm.TimerFd.Interval != (Timespec{1, 500}) ||
		tm.TimerFd.Value.Sec < 90 || tm.TimerFd.Value.Sec > 100 {
		t.Errorf("timerfd: %+v", tm.TimerFd)
	}

	s, err := FdInfo(pid, sfd)
	if err != nil {
		t.Fatal(err)
	}
	if s.SignalFd == nil || s.SignalFd.Mask != mask.Val[0] {
		t.Errorf("signalfd: %+v", s.SignalFd)
	}

	in, err := FdInfo(pid, ifd)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Inotify) != 1 {
		t.Fatalf("inotify watches: %+v", in.Inotify)
	}
	w := in.Inotify[0]
	if w.WD != wd || w.Ino != dst.Ino || w.Mask&(unix.IN_CREATE|unix.IN_DELETE) != unix.IN_CREATE|unix.IN_DELETE ||
		int(w.FhandleBytes) != len(w.Fhandle) || w.FhandleBytes == 0 {
		t.Errorf("inotify watch %+v, want wd %d ino %d", w, wd, dst.Ino)
	}

	fds, err := Fds(pid)
	if err != nil {
		t.Fatal(err)
	}
	targets := map[int]string{}
	for _, f := range fds {
		targets[f.Fd] = f.Target
	}
	if targets[efd] != "anon_inode:[eventfd]" || targets[epfd] != "anon_inode:[eventpoll]" ||
		targets[tfd] != "anon_inode:[timerfd]" || !strings.Contains(targets[ifd], "inotify") {
		t.Errorf("fd targets %v", targets)
	}
}

func TestFdInfoChild(t *testing.T) {
	cmd := startSleeper(t, "")
	pid := cmd.Process.Pid
	fds, err := Fds(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) < 3 || fds[0].Fd != 0 || fds[0].Target != os.DevNull {
		t.Fatalf("child fds %+v", fds)
	}
	fi, err := FdInfo(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := MountInfo(pid)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range mounts {
		if m.ID == fi.MntID {
			found = true
		}
	}
	if !found || fi.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("fd 0 of child: %+v (mount found: %v)", fi, found)
	}
	if _, err := FdInfo(pid, 999); err == nil || !strings.Contains(err.Error(), "/fdinfo/999") {
		t.Errorf("missing fd error %v does not name the file", err)
	}
}

func TestParseFdInfoSamples(t *testing.T) {
	in := "pos:\t12\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\n" +
		"tfd:        3 events:       19 data:                3  pos:0 ino:40e sdev:10\n" +
		"tfd:       10 events:        1 data: ffffffffffffffff\n" +
		"lock:\t1: FLOCK  ADVISORY  WRITE 1234 00:05:1038 0 EOF\n" +
		"inotify wd:1 ino:3c4a3 sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000000\n" +
		"inotify wd:2 ino:1 sdev:0 mask:2 ignored_mask:0\n" +
		"fanotify flags:10 event-flags:0\n" +
		"eventfd-count:                a\n"
	fi, err := ParseFdInfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Pos != 12 || fi.Flags != 0o2004002 || fi.MntID != 17 || fi.Ino != 1038 || len(fi.Locks) != 1 {
		t.Errorf("header %+v", fi)
	}
	if len(fi.Epoll) != 2 || fi.Epoll[0] != (EpollTarget{TFD: 3, Events: 0x19, Data: 3, Ino: 0x40e, Sdev: 0x10}) ||
		fi.Epoll[1].Data != ^uint64(0) {
		t.Errorf("epoll %+v", fi.Epoll)
	}
	if len(fi.Inotify) != 2 || fi.Inotify[0].Ino != 0x3c4a3 || fi.Inotify[0].Sdev != 0xfe00000 ||
		len(fi.Inotify[0].Fhandle) != 8 || fi.Inotify[1].Fhandle != nil {
		t.Errorf("inotify %+v", fi.Inotify)
	}
	if fi.EventFd == nil || fi.EventFd.Count != 10 || fi.EventFd.ID != -1 || len(fi.Other) != 1 {
		t.Errorf("eventfd %+v other %q", fi.EventFd, fi.Other)
	}
	if fi, _ := ParseFdInfo([]byte("pos:\t0\n")); fi.MntID != -1 || fi.TtyIndex != -1 {
		t.Errorf("no mnt_id gives %d, no tty-index %d", fi.MntID, fi.TtyIndex)
	}
	// A pty master (/dev/ptmx) names the index of its slave.
	if fi, err := ParseFdInfo([]byte("pos:\t0\nflags:\t0100002\nmnt_id:\t23\nino:\t90\ntty-index:\t7\n")); err != nil || fi.TtyIndex != 7 {
		t.Errorf("ptmx fdinfo: tty index %d, %v", fi.TtyIndex, err)
	}
	for _, bad := range []string{"flags:\t9\n", "tfd: 3 events:\n", "tfd: x events: 1 data: 1\n",
		"inotify wd:1\n", "inotify wd:1 ino:1 sdev:0 mask:0 ignored_mask:0 fhandle-bytes:1 fhandle-type:1 f_handle:zz\n",
		"it_value: (1 2)\n", "pos:\tx\n", "tty-index:\tx\n"} {
		if _, err := ParseFdInfo([]byte(bad)); err == nil {
			t.Errorf("ParseFdInfo(%q) accepted garbage", bad)
		}
	}
}

func FuzzParseFdInfo(f *testing.F) {
	// Seeds: this process's real fdinfo files of several kinds.
	efd, _ := unix.Eventfd(3, unix.EFD_CLOEXEC)
	epfd, _ := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)})
	tfd, _ := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_CLOEXEC)
	ifd, _ := unix.InotifyInit1(unix.IN_CLOEXEC)
	unix.InotifyAddWatch(ifd, "/", unix.IN_CREATE)
	reg, _ := unix.Open("/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for _, fd := range []int{reg, efd, epfd, tfd, ifd} {
		seed(f, "/proc/self/fdinfo/"+itoa(fd))
		unix.Close(fd)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseFdInfo(b)
	})
}
