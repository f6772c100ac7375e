package files

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/file-lock"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/remote"
)

// File locks, kept as CRIU keeps them (filelocks.img of file_lock_entry:
// the lock's kind in flag, F_RDLCK or F_WRLCK in type, the owner's pid
// and one of its fds on the file, the byte range with len 0 for "to the
// end"). fdinfo lists, for each fd, the locks its owner holds on its file:
// POSIX locks belong to the process (its fd table), flock and OFD locks to
// the open file description. A tree holding a lock is refused unless the
// caller asks for locks to be saved (criu's --file-locks): without them a
// restored database would run on unlocked while another process writes.

// Lock kinds of file_lock_entry.flag, as CRIU numbers them.
const (
	lockPOSIX = 1
	lockFLOCK = 2
	lockOFD   = 4
	lockLease = 8
)

// LockDump is one lock the tree holds, with the owner as the host sees
// it (the dumper writes the tree's pid).
type LockDump struct {
	HostPid int
	Entry   *file_lock.FileLockEntry
}

// lockLine is one "lock:" line of fdinfo, a line of /proc/locks:
// "1: POSIX  ADVISORY  WRITE 1234 fe:00:9977900 5 14" (end "EOF" for a
// lock to the end of the file).
type lockLine struct {
	kind   string // POSIX, FLOCK, OFDLCK, LEASE, DELEG, ...
	mode   string // ADVISORY, MANDATORY, ACTIVE, BREAKING, ...
	access string // READ, WRITE
	start  int64
	end    int64 // -1: EOF
	text   string
}

func parseLockLine(s string) (lockLine, error) {
	f := strings.Fields(s)
	if len(f) < 8 || !strings.HasSuffix(f[0], ":") {
		return lockLine{}, fmt.Errorf("lock line %q: want 8 fields", s)
	}
	l := lockLine{kind: f[1], mode: f[2], access: f[3], end: -1, text: strings.Join(f[1:], " ")}
	var err error
	if l.start, err = strconv.ParseInt(f[6], 10, 64); err != nil {
		return lockLine{}, fmt.Errorf("lock line %q: start: %w", s, err)
	}
	if f[7] != "EOF" {
		if l.end, err = strconv.ParseInt(f[7], 10, 64); err != nil || l.end < l.start {
			return lockLine{}, fmt.Errorf("lock line %q: end %q", s, f[7])
		}
	}
	return l, nil
}

// dumpLocks records the locks fdinfo shows on fd of pid, the file entry
// of its open file description being id.
func (s *Set) dumpLocks(pid int, fd Fd, id uint32) error {
	for _, raw := range fd.Info.Locks {
		l, err := parseLockLine(raw)
		if err != nil {
			return err
		}
		var kind uint32
		switch l.kind {
		case "POSIX":
			kind = lockPOSIX
		case "FLOCK":
			kind = lockFLOCK
		case "OFDLCK":
			kind = lockOFD
		case "LEASE", "DELEG":
			return fmt.Errorf("holds a lease (%s): leases are not supported yet", l.text)
		default:
			return fmt.Errorf("holds a lock gocr does not know (%s)", l.text)
		}
		if l.mode != "ADVISORY" {
			return fmt.Errorf("holds a %s lock (%s): only advisory locks are supported", strings.ToLower(l.mode), l.text)
		}
		typ := uint32(unix.F_RDLCK)
		switch l.access {
		case "READ":
		case "WRITE":
			typ = unix.F_WRLCK
		default:
			return fmt.Errorf("holds a lock of access %q (%s): not supported", l.access, l.text)
		}
		if !s.FileLocks {
			return fmt.Errorf("holds a file lock (%s): dump with --file-locks to save it, or the restored tree would run on without it", l.text)
		}
		length := int64(0)
		if l.end >= 0 {
			length = l.end - l.start + 1
		}
		// A lock of a description shows on every fd of it, a POSIX lock
		// on every fd of its owner on the file: keep it once.
		owner := fmt.Sprintf("file %d", id)
		if kind == lockPOSIX {
			owner = fmt.Sprintf("pid %d ino %d", pid, fd.Info.Ino)
		}
		key := fmt.Sprintf("%s %d %d %d %d", owner, kind, typ, l.start, length)
		if s.lockSeen[key] {
			continue
		}
		if s.lockSeen == nil {
			s.lockSeen = map[string]bool{}
		}
		s.lockSeen[key] = true
		s.Locks = append(s.Locks, LockDump{HostPid: pid, Entry: &file_lock.FileLockEntry{
			Flag: ptr(kind), Type: ptr(typ), Pid: ptr(int32(pid)), Fd: ptr(int32(fd.Fd)),
			Start: ptr(l.start), Len: ptr(length),
		}})
	}
	return nil
}

// CheckLock refuses an entry of filelocks.img restore cannot take.
func CheckLock(e *file_lock.FileLockEntry) error {
	switch e.GetFlag() {
	case lockPOSIX, lockFLOCK, lockOFD:
	case lockLease:
		return fmt.Errorf("flag: a lease: not supported")
	default:
		return fmt.Errorf("flag: unknown lock kind %d", e.GetFlag())
	}
	if t := e.GetType(); t != unix.F_RDLCK && t != unix.F_WRLCK {
		return fmt.Errorf("type: %d is neither F_RDLCK nor F_WRLCK", t)
	}
	if e.GetFd() < 0 || e.GetStart() < 0 || e.GetLen() < 0 {
		return fmt.Errorf("fd %d, start %d, len %d: negative", e.GetFd(), e.GetStart(), e.GetLen())
	}
	return nil
}

// RestoreLocks takes the tree's locks again, from inside the process
// that owns them, once its fds are at their numbers: flock(2) for flock
// locks, fcntl(F_SETLK) for POSIX ones (owned by the calling process) and
// fcntl(F_OFD_SETLK) for OFD ones. None waits: a lock someone else holds
// now makes the restore fail, naming it.
func RestoreLocks(t *remote.Task, off uint64, locks []*file_lock.FileLockEntry) error {
	for _, e := range locks {
		fd := uint64(e.GetFd())
		what := fmt.Sprintf("fd %d: %s lock, bytes %d+%d", e.GetFd(), lockName(e), e.GetStart(), e.GetLen())
		switch e.GetFlag() {
		case lockFLOCK:
			how := uint64(unix.LOCK_SH)
			if e.GetType() == unix.F_WRLCK {
				how = unix.LOCK_EX
			}
			if _, err := t.Syscall(unix.SYS_FLOCK, fd, how|unix.LOCK_NB); err != nil {
				return fmt.Errorf("%s: flock: %w", what, err)
			}
		case lockPOSIX, lockOFD:
			fl := unix.Flock_t{Type: int16(e.GetType()), Whence: 0, Start: e.GetStart(), Len: e.GetLen()}
			if err := t.Write(off, unsafe.Slice((*byte)(unsafe.Pointer(&fl)), unsafe.Sizeof(fl))); err != nil {
				return err
			}
			cmd := uint64(unix.F_SETLK)
			if e.GetFlag() == lockOFD {
				cmd = unix.F_OFD_SETLK
			}
			if _, err := t.Syscall(unix.SYS_FCNTL, fd, cmd, t.Scratch+off); err != nil {
				return fmt.Errorf("%s: fcntl: %w", what, err)
			}
		default:
			return fmt.Errorf("%s: %w", what, CheckLock(e))
		}
	}
	return nil
}

func lockName(e *file_lock.FileLockEntry) string {
	kind := map[uint32]string{lockPOSIX: "POSIX", lockFLOCK: "flock", lockOFD: "OFD", lockLease: "lease"}[e.GetFlag()]
	if e.GetType() == unix.F_WRLCK {
		return kind + " write"
	}
	return kind + " read"
}
