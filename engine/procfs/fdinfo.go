package procfs

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// FdInfoData is /proc/PID/fdinfo/FD: the common header every file has, plus
// the lines of the one file kind it is (the kind pointers are nil
// otherwise). mnt_id is what lets restore reopen a file on the right mount of
// the right mount namespace.
type FdInfoData struct {
	Pos   int64
	Flags uint32 // open flags, printed in octal
	MntID int    // -1 when the kernel does not print it (< 3.15)
	Ino   uint64 // 0 when not printed (< 5.10)
	// TtyIndex is a pty master's index ("tty-index:", 5.x): N of its slave
	// /dev/pts/N. -1 for any other file.
	TtyIndex int
	EventFd  *EventFdInfo
	Epoll    []EpollTarget // one per watched file; the fd link says whether it is an epoll at all
	SignalFd *SignalFdInfo
	TimerFd  *TimerFdInfo
	Inotify  []InotifyWatch
	// Locks are the raw "lock:" lines (a /proc/locks line each).
	Locks []string
	// PidfdPid is a pidfd's process ("Pid:", in the pid namespace of the
	// /proc read; -1 once it has exited and been reaped); nil for any
	// other file.
	PidfdPid *int
	// Other keeps lines no field above took (fanotify, pidfd, tty, ...).
	Other []string
}

// EventFdInfo is an eventfd's counter; ID and Semaphore appeared in 6.8.
type EventFdInfo struct {
	Count     uint64
	ID        int // -1 when not printed
	Semaphore bool
}

// EpollTarget is one file watched by an epoll instance (a "tfd:" line).
type EpollTarget struct {
	TFD    int
	Events uint32
	Data   uint64
	Pos    int64  // of the watched file, since 4.x
	Ino    uint64 // inode of the watched file
	Sdev   uint32 // its device, kernel encoding
}

// SignalFdInfo is the mask a signalfd listens to.
type SignalFdInfo struct {
	Mask uint64
}

// Timespec is a (seconds, nanoseconds) pair as fdinfo prints it.
type Timespec struct {
	Sec, Nsec int64
}

// TimerFdInfo is a timerfd's clock and its remaining time and period.
type TimerFdInfo struct {
	ClockID      int
	Ticks        uint64
	SettimeFlags uint32
	Value        Timespec
	Interval     Timespec
}

// InotifyWatch is one watch of an inotify instance. The file handle lets
// restore find the watched inode with open_by_handle_at.
type InotifyWatch struct {
	WD           int
	Ino          uint64
	Sdev         uint32
	Mask         uint32
	IgnoredMask  uint32
	FhandleBytes uint32
	FhandleType  int32
	Fhandle      []byte
}

// FdInfo reads /proc/PID/fdinfo/FD.
func FdInfo(pid, fd int) (FdInfoData, error) {
	name := "fdinfo/" + strconv.Itoa(fd)
	b, err := readFile(pid, name)
	if err != nil {
		return FdInfoData{}, err
	}
	fi, err := ParseFdInfo(b)
	if err != nil {
		return FdInfoData{}, fmt.Errorf("parse %s: %w", path(pid, name), err)
	}
	return fi, nil
}

// ParseFdInfo parses the text of an fdinfo file.
func ParseFdInfo(b []byte) (FdInfoData, error) {
	fi := FdInfoData{MntID: -1, TtyIndex: -1}
	err := lines(b, func(_ int, line []byte) error {
		if len(line) == 0 {
			return nil
		}
		s := string(line)
		switch {
		case strings.HasPrefix(s, "tfd:"):
			t, err := parseEpollLine(s)
			if err != nil {
				return err
			}
			fi.Epoll = append(fi.Epoll, t)
			return nil
		case strings.HasPrefix(s, "inotify "):
			w, err := parseInotifyLine(s[len("inotify "):])
			if err != nil {
				return err
			}
			fi.Inotify = append(fi.Inotify, w)
			return nil
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok {
			fi.Other = append(fi.Other, s)
			return nil
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "pos":
			fi.Pos, err = parseInt(v)
		case "flags":
			var f uint64
			f, err = parseUint(v, 8)
			if err == nil && f > 0xffffffff {
				err = fmt.Errorf("flags %q too large: %w", v, errSyntax)
			}
			fi.Flags = uint32(f)
		case "mnt_id":
			fi.MntID, err = atoi(v)
		case "ino":
			fi.Ino, err = parseUint(v, 10)
		case "tty-index":
			fi.TtyIndex, err = atoi(v)
		case "lock":
			fi.Locks = append(fi.Locks, v)
		case "Pid":
			var n int
			if n, err = strconv.Atoi(v); err == nil {
				fi.PidfdPid = &n
			}
		case "eventfd-count":
			fi.eventFd().Count, err = parseUint(v, 16)
		case "eventfd-id":
			fi.eventFd().ID, err = atoi(v)
		case "eventfd-semaphore":
			var n int
			n, err = atoi(v)
			fi.eventFd().Semaphore = n != 0
		case "sigmask":
			var m uint64
			m, err = parseUint(v, 16)
			fi.SignalFd = &SignalFdInfo{Mask: m}
		case "clockid":
			fi.timerFd().ClockID, err = atoi(v)
		case "ticks":
			fi.timerFd().Ticks, err = parseUint(v, 10)
		case "settime flags":
			var f uint64
			f, err = parseUint(v, 8)
			fi.timerFd().SettimeFlags = uint32(f)
		case "it_value":
			fi.timerFd().Value, err = parseTimespec(v)
		case "it_interval":
			fi.timerFd().Interval, err = parseTimespec(v)
		default:
			fi.Other = append(fi.Other, s)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return FdInfoData{}, err
	}
	return fi, nil
}

func (fi *FdInfoData) eventFd() *EventFdInfo {
	if fi.EventFd == nil {
		fi.EventFd = &EventFdInfo{ID: -1}
	}
	return fi.EventFd
}

func (fi *FdInfoData) timerFd() *TimerFdInfo {
	if fi.TimerFd == nil {
		fi.TimerFd = &TimerFdInfo{}
	}
	return fi.TimerFd
}

// parseTimespec parses "(99, 999630004)".
func parseTimespec(s string) (Timespec, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, ")") {
		return Timespec{}, fmt.Errorf("bad time %q: %w", s, errSyntax)
	}
	a, b, ok := strings.Cut(s[1:len(s)-1], ",")
	if !ok {
		return Timespec{}, fmt.Errorf("bad time %q: %w", s, errSyntax)
	}
	sec, err := parseInt(strings.TrimSpace(a))
	if err != nil {
		return Timespec{}, err
	}
	nsec, err := parseInt(strings.TrimSpace(b))
	if err != nil {
		return Timespec{}, err
	}
	return Timespec{Sec: sec, Nsec: nsec}, nil
}

// keyValues splits "k1: v1 k2:v2 ..." into pairs: the value is glued to its
// key ("pos:0") or is the next word ("tfd:        3").
func keyValues(s string) (map[string]string, error) {
	kv := make(map[string]string)
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		k, v, ok := strings.Cut(f[i], ":")
		if !ok {
			return nil, fmt.Errorf("word %q is not key:value: %w", f[i], errSyntax)
		}
		if v == "" {
			if i+1 >= len(f) {
				return nil, fmt.Errorf("key %q has no value: %w", k, errSyntax)
			}
			i++
			v = f[i]
		}
		kv[k] = v
	}
	return kv, nil
}

// kvNum reads key k from kv in the given base; a missing key is an error.
func kvNum(kv map[string]string, k string, base, bits int) (uint64, error) {
	v, ok := kv[k]
	if !ok {
		return 0, fmt.Errorf("missing %s: %w", k, errSyntax)
	}
	n, err := strconv.ParseUint(v, base, bits)
	if err != nil {
		return 0, fmt.Errorf("%s: bad number %q: %w", k, v, errSyntax)
	}
	return n, nil
}

// parseEpollLine parses
// "tfd:        3 events:       19 data:                3  pos:0 ino:40e sdev:10".
// pos, ino and sdev appeared in 3.x-4.x; tfd, events and data are required.
func parseEpollLine(s string) (EpollTarget, error) {
	var t EpollTarget
	kv, err := keyValues(s)
	if err != nil {
		return t, err
	}
	tfd, err := kvNum(kv, "tfd", 10, 31)
	if err != nil {
		return t, err
	}
	ev, err := kvNum(kv, "events", 16, 32)
	if err != nil {
		return t, err
	}
	data, err := kvNum(kv, "data", 16, 64)
	if err != nil {
		return t, err
	}
	t.TFD, t.Events, t.Data = int(tfd), uint32(ev), data
	if v, ok := kv["pos"]; ok {
		if t.Pos, err = parseInt(v); err != nil {
			return t, fmt.Errorf("pos: %w", err)
		}
	}
	if _, ok := kv["ino"]; ok {
		if t.Ino, err = kvNum(kv, "ino", 16, 64); err != nil {
			return t, err
		}
	}
	if _, ok := kv["sdev"]; ok {
		sdev, err := kvNum(kv, "sdev", 16, 32)
		if err != nil {
			return t, err
		}
		t.Sdev = uint32(sdev)
	}
	return t, nil
}

// parseInotifyLine parses the part after "inotify " of
// "inotify wd:1 ino:3c4a3 sdev:fe00000 mask:100 ignored_mask:0
// fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000000"; every number
// is hex. The handle fields are absent when the kernel could not encode one.
func parseInotifyLine(s string) (InotifyWatch, error) {
	var w InotifyWatch
	kv, err := keyValues(s)
	if err != nil {
		return w, err
	}
	get := func(k string, bits int) uint64 {
		if err != nil {
			return 0
		}
		var n uint64
		n, err = kvNum(kv, k, 16, bits)
		return n
	}
	w.WD = int(get("wd", 31))
	w.Ino = get("ino", 64)
	w.Sdev = uint32(get("sdev", 32))
	w.Mask = uint32(get("mask", 32))
	w.IgnoredMask = uint32(get("ignored_mask", 32))
	if err != nil {
		return w, err
	}
	if _, ok := kv["fhandle-bytes"]; ok {
		w.FhandleBytes = uint32(get("fhandle-bytes", 32))
		w.FhandleType = int32(get("fhandle-type", 32))
		if err != nil {
			return w, err
		}
		h, herr := hex.DecodeString(kv["f_handle"])
		if herr != nil {
			return w, fmt.Errorf("f_handle %q: %w", kv["f_handle"], errSyntax)
		}
		w.Fhandle = h
	}
	return w, nil
}

// FdEntry is one open descriptor and what its /proc/PID/fd link points to:
// a path, or "pipe:[123]", "socket:[456]", "anon_inode:[eventfd]", ...
type FdEntry struct {
	Fd     int
	Target string
}

// Fds lists /proc/PID/fd, sorted by fd. A descriptor closed between the
// listing and its readlink is left out.
func Fds(pid int) ([]FdEntry, error) {
	dir, fds, err := numberedEntries(pid, "fd")
	if err != nil {
		return nil, err
	}
	out := make([]FdEntry, 0, len(fds))
	for _, fd := range fds {
		t, err := os.Readlink(dir + "/" + strconv.Itoa(fd))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("readlink %s/%d: %w", dir, fd, err)
		}
		out = append(out, FdEntry{Fd: fd, Target: t})
	}
	return out, nil
}
