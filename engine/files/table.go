package files

import (
	"fmt"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

// Set collects the file entries of a dump and hands out their ids.
type Set struct {
	Entries []*fdinfo.FileEntry
	nextID  uint32
	byKey   map[string]uint32 // files reopened by path, shared by key
	// PipeData holds the bytes in flight of each dumped pipe, by inode.
	PipeData map[uint64][]byte
	// fileIDs maps the fds of the task being dumped to their file ids, so
	// an epoll can name its targets.
	fileIDs map[int]uint32
}

// NewSet starts an empty set.
func NewSet() *Set {
	return &Set{nextID: 1, byKey: map[string]uint32{}, PipeData: map[uint64][]byte{}}
}

// add gives e the next id, also in its kind-specific message, and keeps it.
func (s *Set) add(e *fdinfo.FileEntry) uint32 {
	id := s.nextID
	s.nextID++
	e.Id = ptr(id)
	switch {
	case e.Reg != nil:
		e.Reg.Id = ptr(id)
	case e.Pipe != nil:
		e.Pipe.Id = ptr(id)
	case e.Efd != nil:
		e.Efd.Id = ptr(id)
	case e.Epfd != nil:
		e.Epfd.Id = ptr(id)
	}
	s.Entries = append(s.Entries, e)
	return id
}

// Fd is one descriptor of a task: its number, its close-on-exec flag and
// the file it refers to.
type Fd struct {
	Fd      int
	Target  string
	Info    procfs.FdInfoData
	Cloexec bool
}

// DumpTable records every fd of a stopped task. Descriptors that share one
// open file description (dup, inherited) share one file entry, found with
// kcmp, so they share offset and flags again after restore.
func (s *Set) DumpTable(pid int) ([]*fdinfo.FdinfoEntry, error) {
	fds, err := procfs.Fds(pid)
	if err != nil {
		return nil, err
	}
	var out []*fdinfo.FdinfoEntry
	type seen struct {
		fd int
		id uint32
		t  fdinfo.FdTypes
	}
	var done []seen
	s.fileIDs = map[int]uint32{}
	var epolls []Fd
	for _, f := range fds {
		info, err := procfs.FdInfo(pid, f.Fd)
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", f.Fd, err)
		}
		fd := Fd{Fd: f.Fd, Target: f.Target, Info: info, Cloexec: info.Flags&unix.O_CLOEXEC != 0}
		var id uint32
		var typ fdinfo.FdTypes
		for _, d := range done {
			if same, err := sameFile(pid, d.fd, f.Fd); err != nil {
				return nil, fmt.Errorf("fd %d: %w", f.Fd, err)
			} else if same {
				id, typ = d.id, d.t
				break
			}
		}
		if id == 0 && f.Target == "anon_inode:[eventpoll]" {
			// Epolls last: their targets must have ids first.
			epolls = append(epolls, fd)
			continue
		}
		if id == 0 {
			if id, typ, err = s.dumpFile(pid, fd); err != nil {
				return nil, fmt.Errorf("fd %d (%s): %w", f.Fd, f.Target, err)
			}
			done = append(done, seen{f.Fd, id, typ})
		}
		s.fileIDs[f.Fd] = id
		out = append(out, fdEntry(fd, id, typ))
	}
	for _, fd := range epolls {
		id, err := s.dumpEpoll(fd)
		if err != nil {
			return nil, fmt.Errorf("fd %d (%s): %w", fd.Fd, fd.Target, err)
		}
		out = append(out, fdEntry(fd, id, fdinfo.FdTypes_EVENTPOLL))
	}
	return out, nil
}

func fdEntry(fd Fd, id uint32, typ fdinfo.FdTypes) *fdinfo.FdinfoEntry {
	var flags uint32
	if fd.Cloexec {
		flags = unix.FD_CLOEXEC
	}
	return &fdinfo.FdinfoEntry{Id: ptr(id), Flags: &flags, Type: &typ, Fd: ptr(uint32(fd.Fd))}
}

// dumpFile describes the open file behind fd by its kind.
func (s *Set) dumpFile(pid int, fd Fd) (uint32, fdinfo.FdTypes, error) {
	t := fd.Target
	switch {
	case strings.HasPrefix(t, "/"):
		id, err := s.dumpRegFd(pid, fd)
		return id, fdinfo.FdTypes_REG, err
	case strings.HasPrefix(t, "pipe:["):
		id, err := s.dumpPipe(pid, fd)
		return id, fdinfo.FdTypes_PIPE, err
	case t == "anon_inode:[eventfd]":
		id, err := s.dumpEventfd(fd)
		return id, fdinfo.FdTypes_EVENTFD, err
	case strings.HasPrefix(t, "socket:["):
		return 0, 0, fmt.Errorf("sockets are not supported yet")
	}
	return 0, 0, fmt.Errorf("this kind of file is not supported yet")
}

// sameFile reports whether two fds of pid refer to one open file
// description.
func sameFile(pid, fd1, fd2 int) (bool, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		return false, fmt.Errorf("kcmp fds %d and %d: %w", fd1, fd2, errno)
	}
	return r == 0, nil
}

const kcmpFile = 0 // KCMP_FILE

// noOwner is the fown of a file with no F_SETOWN owner.
func noOwner() *fown.FownEntry {
	z := uint32(0)
	return &fown.FownEntry{Uid: &z, Euid: &z, Signum: &z, PidType: &z, Pid: &z}
}

func ptr[T any](v T) *T { return &v }
