package files

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/file-lock"
	"golang.org/x/sys/unix"
)

func TestParseLockLine(t *testing.T) {
	for _, c := range []struct {
		in         string
		kind       string
		start, end int64
		err        string
	}{
		{"1: POSIX  ADVISORY  WRITE 15173 fe:00:9977900 5 14", "POSIX", 5, 14, ""},
		{"2: OFDLCK ADVISORY  READ -1 fe:00:9977900 100 EOF", "OFDLCK", 100, -1, ""},
		{"3: FLOCK  ADVISORY  READ 15118 fe:00:9977900 0 EOF", "FLOCK", 0, -1, ""},
		{"4: LEASE  ACTIVE    READ 15118 fe:00:9977900 0 EOF", "LEASE", 0, -1, ""},
		{"1: POSIX  ADVISORY  WRITE 15173 fe:00:9977900 9 5", "", 0, 0, "end"},
		{"1: POSIX  ADVISORY  WRITE", "", 0, 0, "8 fields"},
		{"POSIX  ADVISORY  WRITE 15173 fe:00:9977900 5 14 x", "", 0, 0, "8 fields"},
	} {
		l, err := parseLockLine(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || l.kind != c.kind || l.start != c.start || l.end != c.end {
			t.Errorf("%q: %+v, %v", c.in, l, err)
		}
	}
}

// A tree holding a lock is refused without FileLocks, a lease always.
func TestDumpLocksRefusals(t *testing.T) {
	fd := func(lines ...string) Fd {
		f := Fd{Fd: 3}
		f.Info.Locks = lines
		return f
	}
	s := NewSet(nil)
	if err := s.dumpLocks(1, fd("1: POSIX  ADVISORY  WRITE 7 fe:00:1 0 EOF"), 1); err == nil || !strings.Contains(err.Error(), "--file-locks") {
		t.Errorf("without FileLocks: %v", err)
	}
	s.FileLocks = true
	if err := s.dumpLocks(1, fd("1: LEASE  ACTIVE    READ 7 fe:00:1 0 EOF"), 1); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("lease: %v", err)
	}
	// The same flock seen through two fds of one description is kept once,
	// a POSIX lock through two fds of its owner too.
	for range 2 {
		if err := s.dumpLocks(1, fd("1: FLOCK  ADVISORY  WRITE 7 fe:00:1 0 EOF", "2: POSIX  ADVISORY  READ 7 fe:00:1 10 19"), 5); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Locks) != 2 {
		t.Fatalf("%d locks kept, want 2: %v", len(s.Locks), s.Locks)
	}
	p := s.Locks[1].Entry
	if p.GetFlag() != lockPOSIX || p.GetType() != unix.F_RDLCK || p.GetStart() != 10 || p.GetLen() != 10 || p.GetFd() != 3 {
		t.Errorf("POSIX entry %v", p)
	}
	if f := s.Locks[0].Entry; f.GetFlag() != lockFLOCK || f.GetType() != unix.F_WRLCK || f.GetLen() != 0 {
		t.Errorf("flock entry %v", f)
	}
}

func TestCheckLock(t *testing.T) {
	ok := &file_lock.FileLockEntry{Flag: ptr(uint32(lockOFD)), Type: ptr(uint32(unix.F_WRLCK)), Pid: ptr(int32(1)), Fd: ptr(int32(3)), Start: ptr(int64(0)), Len: ptr(int64(0))}
	if err := CheckLock(ok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(e *file_lock.FileLockEntry){
		func(e *file_lock.FileLockEntry) { e.Flag = ptr(uint32(lockLease)) },
		func(e *file_lock.FileLockEntry) { e.Flag = ptr(uint32(16)) },
		func(e *file_lock.FileLockEntry) { e.Type = ptr(uint32(unix.F_UNLCK)) },
		func(e *file_lock.FileLockEntry) { e.Len = ptr(int64(-1)) },
	} {
		e := &file_lock.FileLockEntry{Flag: ok.Flag, Type: ok.Type, Pid: ok.Pid, Fd: ok.Fd, Start: ok.Start, Len: ok.Len}
		bad(e)
		if CheckLock(e) == nil {
			t.Errorf("accepted %v", e)
		}
	}
}

// struct flock of x86_64, which RestoreLocks writes into the task.
func TestFlockSize(t *testing.T) {
	if n := unsafe.Sizeof(unix.Flock_t{}); n != 32 {
		t.Fatalf("struct flock is %d bytes, the kernel's 32", n)
	}
}
