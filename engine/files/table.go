package files

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
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
	var files, epollFiles descriptions
	s.fileIDs = map[int]uint32{}
	var epolls []Fd
	for _, f := range fds {
		info, err := procfs.FdInfo(pid, f.Fd)
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", f.Fd, err)
		}
		fd := Fd{Fd: f.Fd, Target: f.Target, Info: info, Cloexec: info.Flags&unix.O_CLOEXEC != 0}
		if f.Target == "anon_inode:[eventpoll]" {
			// Epolls last: their targets must have ids first.
			epolls = append(epolls, fd)
			continue
		}
		d, i, err := files.find(pid, f.Fd)
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", f.Fd, err)
		}
		if d == nil {
			id, typ, err := s.dumpFile(pid, fd)
			if err != nil {
				return nil, fmt.Errorf("fd %d (%s): %w", f.Fd, f.Target, err)
			}
			d = files.insert(i, description{f.Fd, id, typ})
		}
		s.fileIDs[f.Fd] = d.id
		out = append(out, fdEntry(fd, d.id, d.typ))
	}
	for _, fd := range epolls {
		d, i, err := epollFiles.find(pid, fd.Fd)
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", fd.Fd, err)
		}
		if d == nil {
			id, err := s.dumpEpoll(fd)
			if err != nil {
				return nil, fmt.Errorf("fd %d (%s): %w", fd.Fd, fd.Target, err)
			}
			d = epollFiles.insert(i, description{fd.Fd, id, fdinfo.FdTypes_EVENTPOLL})
		}
		out = append(out, fdEntry(fd, d.id, d.typ))
	}
	return out, nil
}

// description is one open file description already dumped: the first fd
// seen on it, and its file entry.
type description struct {
	fd  int
	id  uint32
	typ fdinfo.FdTypes
}

// descriptions are kept in the kernel's order of open file descriptions
// (KCMP_FILE orders them), so finding whether an fd shares one already
// dumped is a binary search: O(n log n) kcmp calls for n fds, not O(n²).
type descriptions []description

// find returns the description fd refers to, or nil and where to insert it.
func (ds descriptions) find(pid, fd int) (*description, int, error) {
	var ferr error
	i := sort.Search(len(ds), func(i int) bool {
		c, err := kcmpFiles(pid, ds[i].fd, fd)
		if err != nil && ferr == nil {
			ferr = err
		}
		return c >= 0
	})
	if ferr != nil {
		return nil, 0, ferr
	}
	if i < len(ds) {
		if c, err := kcmpFiles(pid, ds[i].fd, fd); err != nil {
			return nil, 0, err
		} else if c == 0 {
			return &ds[i], i, nil
		}
	}
	return nil, i, nil
}

func (ds *descriptions) insert(i int, d description) *description {
	*ds = slices.Insert(*ds, i, d)
	return &(*ds)[i]
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

// kcmpFiles orders the open file descriptions behind two fds of pid:
// -1, 0 or 1 as fd1's is below, the same as or above fd2's.
func kcmpFiles(pid, fd1, fd2 int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		return 0, fmt.Errorf("kcmp fds %d and %d: %w", fd1, fd2, errno)
	}
	switch r {
	case 0:
		return 0, nil
	case 1:
		return -1, nil
	case 2:
		return 1, nil
	}
	return 0, fmt.Errorf("kcmp fds %d and %d: the kernel gives no order of files", fd1, fd2)
}

const kcmpFile = 0 // KCMP_FILE

// noOwner is the fown of a file with no F_SETOWN owner.
func noOwner() *fown.FownEntry {
	z := uint32(0)
	return &fown.FownEntry{Uid: &z, Euid: &z, Signum: &z, PidType: &z, Pid: &z}
}

func ptr[T any](v T) *T { return &v }

// Restorer opens, on the restore side, the files of an image: gocr opens or
// creates each file itself (openFile, by kind), then hands it to the task
// through a remote.FdPasser. One open file per file id, so fds that shared
// a description share one again.
type Restorer struct {
	entries map[uint32]*fdinfo.FileEntry
	// Root is where the task's paths are looked up: "/proc/PID/root" of
	// the task being restored.
	Root string
	// PipeData is the bytes in flight of each pipe, by pipe id.
	PipeData map[uint32][]byte

	open  map[uint32]int       // file id → gocr's fd
	pipes map[uint32]*pipeEnds // pipe id → the pipe gocr made
}

// NewRestorer indexes the file entries of files.img.
func NewRestorer(entries []*fdinfo.FileEntry, root string) *Restorer {
	r := &Restorer{entries: map[uint32]*fdinfo.FileEntry{}, Root: root, PipeData: map[uint32][]byte{},
		open: map[uint32]int{}, pipes: map[uint32]*pipeEnds{}}
	for _, e := range entries {
		r.entries[e.GetId()] = e
	}
	return r
}

// Entry returns the file entry with that id.
func (r *Restorer) Entry(id uint32) (*fdinfo.FileEntry, bool) {
	e, ok := r.entries[id]
	return e, ok
}

// Open returns gocr's fd of the file with that id, opening or creating it
// on first use. The fd stays gocr's until Close.
func (r *Restorer) Open(id uint32) (int, error) {
	if fd, ok := r.open[id]; ok {
		return fd, nil
	}
	e, ok := r.entries[id]
	if !ok {
		return -1, fmt.Errorf("file id %d: not in files.img", id)
	}
	var fd int
	var err error
	switch {
	case e.Reg != nil:
		fd, err = r.openReg(e.Reg)
	case e.Pipe != nil:
		fd, err = r.openPipe(e.Pipe)
	case e.Efd != nil:
		fd, err = openEventfd(e.Efd)
	case e.Epfd != nil:
		fd, err = openEpoll(e.Epfd)
	default:
		err = fmt.Errorf("type %s is not supported yet", e.GetType())
	}
	if err != nil {
		return -1, fmt.Errorf("file id %d: %w", id, err)
	}
	r.open[id] = fd
	return fd, nil
}

// Close closes every fd gocr opened.
func (r *Restorer) Close() {
	for id, fd := range r.open {
		unix.Close(fd)
		delete(r.open, id)
	}
	for id, p := range r.pipes {
		p.close()
		delete(r.pipes, id)
	}
}

// RestoreTable gives the task its fd table: every file of fds is opened in
// gocr and passed in so that it lands on its number (see placement), with
// its close-on-exec flag, in a few injected calls whatever the size of the
// table; then epolls get their targets, which needs every fd in place
// (epoll knows a target by file and fd number). The task's own fds other
// than sock (its end of p) must be closed already; sock is closed too, or
// replaced by the table's fd of that number. off is scratch memory the
// calls may use, up to the end of the data area.
func (r *Restorer) RestoreTable(t *remote.Task, p *remote.FdPasser, sock int, off uint64, fds []*fdinfo.FdinfoEntry) error {
	slots, local, err := r.tableSlots(fds)
	if err != nil {
		return err
	}
	if err := place(t, p, sock, off, planPlacement(slots, sock), local); err != nil {
		return err
	}
	// Epoll targets last: all fds are at their numbers now. An epoll
	// reached by several fds is filled once.
	filled := map[uint32]bool{}
	for _, f := range fds {
		e := r.entries[f.GetId()]
		if e.GetEpfd() == nil || filled[f.GetId()] {
			continue
		}
		filled[f.GetId()] = true
		if err := restoreEpollTargets(t, off, int(f.GetFd()), e.GetEpfd()); err != nil {
			return fmt.Errorf("fd %d: %w", f.GetFd(), err)
		}
	}
	return nil
}
