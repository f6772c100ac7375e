package workloads

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// FileLocks holds the three kinds of advisory file locks on one file
// under --dirname: POSIX locks of the process (a write lock on bytes
// 10-19 and a read lock from byte 1000 to the end), an OFD write lock on
// bytes 200-209 of a second open file, and a shared flock of a third.
// Dumped with --file-locks, the restored process must hold them all again:
// it checks with probes from a fourth open file, whose locks conflict with
// every one of them (OFD locks conflict with the process's own POSIX
// locks, flock locks with another open file's).
var FileLocks = lib.Workload{Name: "file_locks", Run: func(t *lib.T) {
	name := t.Opt("dirname", ".") + "/file_locks.data"
	if err := os.MkdirAll(t.Opt("dirname", "."), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() int {
		fd, err := unix.Open(name, unix.O_RDWR, 0)
		if err != nil {
			t.Fatal(fmt.Errorf("open %s: %w", name, err))
		}
		return fd
	}
	// The probe is opened once and never closed: closing any fd of a
	// process on a file drops the process's POSIX locks on it.
	posix, ofd, fl, probe := open(), open(), open(), open()
	setlk := func(fd, cmd int, typ int16, start, length int64) {
		lk := unix.Flock_t{Type: typ, Start: start, Len: length}
		if err := unix.FcntlFlock(uintptr(fd), cmd, &lk); err != nil {
			t.Fatal(fmt.Errorf("lock fd %d bytes %d+%d: %w", fd, start, length, err))
		}
	}
	setlk(posix, unix.F_SETLK, unix.F_WRLCK, 10, 10)
	setlk(posix, unix.F_SETLK, unix.F_RDLCK, 1000, 0)
	setlk(ofd, unix.F_OFD_SETLK, unix.F_WRLCK, 200, 10)
	if err := unix.Flock(fl, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		t.Fatal(fmt.Errorf("flock: %w", err))
	}
	check := func(when string) {
		for _, c := range []struct {
			start, length int64
			want          int16
			pid           int32 // of the POSIX owner; -1 for an OFD lock
		}{
			{10, 10, unix.F_WRLCK, int32(os.Getpid())},
			{15, 1, unix.F_WRLCK, int32(os.Getpid())},
			{1000, 1 << 20, unix.F_RDLCK, int32(os.Getpid())},
			{200, 10, unix.F_WRLCK, -1},
			{300, 10, unix.F_UNLCK, 0},
		} {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Start: c.start, Len: c.length}
			if err := unix.FcntlFlock(uintptr(probe), unix.F_OFD_GETLK, &lk); err != nil {
				t.Fail("%s: F_OFD_GETLK bytes %d+%d: %v", when, c.start, c.length, err)
				continue
			}
			if lk.Type != c.want || (c.want != unix.F_UNLCK && lk.Pid != c.pid) {
				t.Fail("%s: bytes %d+%d: lock type %d of pid %d, want type %d of pid %d", when, c.start, c.length, lk.Type, lk.Pid, c.want, c.pid)
			}
		}
		if err := unix.Flock(probe, unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
			t.Fail("%s: an exclusive flock from another open file: %v, want EWOULDBLOCK (the shared flock is gone)", when, err)
		}
		if err := unix.Flock(probe, unix.LOCK_SH|unix.LOCK_NB); err != nil {
			t.Fail("%s: a shared flock beside the shared one: %v", when, err)
		}
		unix.Flock(probe, unix.LOCK_UN)
	}
	check("before the dump")
	t.Ready()
	t.WaitSignal()
	check("after restore")
	t.Pass()
}}

// FileLocksRefused holds a POSIX write lock; dumped without --file-locks
// (the descriptor says crfail) the dump must be refused, naming the lock,
// and the process runs on holding it.
var FileLocksRefused = lib.Workload{Name: "file_locks_refused", Run: func(t *lib.T) {
	name := t.Opt("dirname", ".") + "/file_locks_refused.data"
	if err := os.MkdirAll(t.Opt("dirname", "."), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := unix.Open(name, unix.O_RDWR, 0) // opened first: closing it would drop the lock
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(uintptr(probe), unix.F_OFD_GETLK, &lk); err != nil || lk.Type != unix.F_WRLCK || lk.Pid != int32(os.Getpid()) {
		t.Fail("the POSIX lock is gone after the refused dump: type %d pid %d, %v", lk.Type, lk.Pid, err)
	}
	t.Pass()
}}
