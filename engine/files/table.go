package files

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image/gocrpb"
	"github.com/gocr/gocr/engine/mount"
	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
)

// Set collects the file entries of a dump and hands out their ids.
type Set struct {
	Entries []*fdinfo.FileEntry
	nextID  uint32
	byKey   map[string]uint32 // files reopened by path, shared by key
	// PipeData holds the bytes in flight of each dumped pipe, by inode;
	// FifoData those of each FIFO.
	PipeData, FifoData map[uint64][]byte
	// fileIDs maps the fds of the task being dumped to their file ids, so
	// an epoll can name its targets.
	fileIDs map[int]uint32
	// The open file descriptions dumped so far, in every process of the
	// tree: an fd of another process on one of them shares its entry.
	descs, epollDescs descriptions
	// Mqueues collects the tree's open POSIX message queues (and the
	// unlinked queues of the tree's own ipc namespace they keep).
	Mqueues *ns.Mqueues
}

// NewSet starts an empty set.
func NewSet() *Set {
	return &Set{nextID: 1, byKey: map[string]uint32{}, PipeData: map[uint64][]byte{}, FifoData: map[uint64][]byte{}}
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
	case e.Fifo != nil:
		e.Fifo.Id = ptr(id)
	case e.Ext != nil:
		e.Ext.Id = ptr(id)
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
	files, epollFiles := &s.descs, &s.epollDescs
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
			d = files.insert(i, description{pid, f.Fd, id, typ})
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
			d = epollFiles.insert(i, description{pid, fd.Fd, id, fdinfo.FdTypes_EVENTPOLL})
		}
		out = append(out, fdEntry(fd, d.id, d.typ))
	}
	return out, nil
}

// description is one open file description already dumped: the first fd
// seen on it (of process pid), and its file entry.
type description struct {
	pid int
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
		c, err := kcmpFiles(ds[i].pid, ds[i].fd, pid, fd)
		if err != nil && ferr == nil {
			ferr = err
		}
		return c >= 0
	})
	if ferr != nil {
		return nil, 0, ferr
	}
	if i < len(ds) {
		if c, err := kcmpFiles(ds[i].pid, ds[i].fd, pid, fd); err != nil {
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
	case strings.HasPrefix(t, "/") && isMqueue(pid, fd.Fd):
		id, err := s.dumpMqueue(pid, fd)
		return id, fdinfo.FdTypes_EXT, err
	case strings.HasPrefix(t, "/"):
		return s.dumpRegFd(pid, fd)
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

// kcmpFiles orders the open file descriptions behind fd1 of pid1 and fd2
// of pid2: -1, 0 or 1 as fd1's is below, the same as or above fd2's. The
// order is the kernel's for the whole system, so descriptions of several
// processes sort together.
func kcmpFiles(pid1, fd1, pid2, fd2 int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		return 0, fmt.Errorf("kcmp pid %d fd %d and pid %d fd %d: %w", pid1, fd1, pid2, fd2, errno)
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
	// PipeData is the bytes in flight of each pipe, by pipe id; FifoData
	// of each FIFO.
	PipeData, FifoData map[uint32][]byte
	// Mounts are the mounts the restore made, by image mount id: a file
	// on one of them is opened there.
	Mounts *mount.Set

	open  map[uint32]int       // file id → gocr's fd
	pipes map[uint32]*pipeEnds // pipe id → the pipe gocr made
	fifos map[uint32]int       // FIFO pipe id → gocr's read-write fd of it

	// MqueueFiles are the open message queues (EXT files), by file id;
	// MqueueFds gocr's fds of those of the tree's own ipc namespace,
	// opened when it was restored (ns.RestoreIPC), by file id.
	MqueueFiles map[uint32]*gocrpb.MqueueFileEntry
	MqueueFds   map[uint32]int
}

// NewRestorer indexes the file entries of files.img.
func NewRestorer(entries []*fdinfo.FileEntry, root string) *Restorer {
	r := &Restorer{entries: map[uint32]*fdinfo.FileEntry{}, Root: root, PipeData: map[uint32][]byte{},
		open: map[uint32]int{}, pipes: map[uint32]*pipeEnds{}, fifos: map[uint32]int{}, FifoData: map[uint32][]byte{}}
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
	case e.Fifo != nil:
		fd, err = r.openFifo(e.Fifo)
	case e.Efd != nil:
		fd, err = openEventfd(e.Efd)
	case e.Epfd != nil:
		fd, err = openEpoll(e.Epfd)
	case e.Ext != nil:
		fd, err = r.openMqueue(id)
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
	for id, fd := range r.fifos {
		unix.Close(fd)
		delete(r.fifos, id)
	}
}

// RestoreTable gives the task its fd table: every file of fds is opened in
// gocr, passed in, and moved to its number with its close-on-exec flag;
// then epolls get their targets, which needs every fd in place (epoll
// knows a target by file and fd number). The task's own fds other than
// sock (its end of p) must be closed already; sock is closed at the end.
// off is scratch memory the calls may use.
func (r *Restorer) RestoreTable(t *remote.Task, p *remote.FdPasser, sock int, off uint64, fds []*fdinfo.FdinfoEntry) error {
	// One passed fd per file id, in the order the table names them.
	var ids []uint32
	var local []int
	seen := map[uint32]bool{}
	maxFd := sock
	for _, f := range fds {
		maxFd = max(maxFd, int(f.GetFd()))
		if seen[f.GetId()] {
			continue
		}
		seen[f.GetId()] = true
		fd, err := r.Open(f.GetId())
		if err != nil {
			return fmt.Errorf("fd %d: %w", f.GetFd(), err)
		}
		ids = append(ids, f.GetId())
		local = append(local, fd)
	}
	// Move our socket above every number the table uses, so placing fds
	// never lands on it.
	hi := uint64(maxFd + 1)
	moved, err := t.Syscall(unix.SYS_FCNTL, uint64(sock), unix.F_DUPFD_CLOEXEC, hi)
	if err != nil {
		return fmt.Errorf("move fd passing socket: %w", err)
	}
	if _, err := t.Syscall(unix.SYS_CLOSE, uint64(sock)); err != nil {
		return fmt.Errorf("close fd passing socket: %w", err)
	}
	sock = int(moved)
	got, err := p.Send(t, sock, off, local)
	if err != nil {
		return err
	}
	// cur: where each file's passed fd is now; at: what sits on a number.
	cur := map[uint32]int{}
	at := map[int]uint32{}
	for i, id := range ids {
		cur[id], at[got[i]] = got[i], id
	}
	placed := map[int]bool{}
	for _, f := range fds {
		fd, id := int(f.GetFd()), f.GetId()
		cloexec := f.GetFlags()&unix.FD_CLOEXEC != 0
		if other, busy := at[fd]; busy && other != id && !placed[fd] {
			// A passed fd still waiting to be placed sits on our number:
			// move it out of the way first.
			nfd, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_DUPFD, hi)
			if err != nil {
				return fmt.Errorf("fd %d: move passed fd away: %w", fd, err)
			}
			cur[other], at[int(nfd)] = int(nfd), other
			delete(at, fd)
		}
		src := cur[id]
		if src == fd {
			flag := uint64(0)
			if cloexec {
				flag = unix.FD_CLOEXEC
			}
			if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFD, flag); err != nil {
				return fmt.Errorf("fd %d: set close-on-exec: %w", fd, err)
			}
		} else {
			flag := uint64(0)
			if cloexec {
				flag = unix.O_CLOEXEC
			}
			if _, err := t.Syscall(unix.SYS_DUP3, uint64(src), uint64(fd), flag); err != nil {
				return fmt.Errorf("fd %d: dup3 from passed fd %d: %w", fd, src, err)
			}
		}
		placed[fd] = true
		at[fd] = id
	}
	// Close the passed fds that are not table entries themselves.
	for _, fd := range cur {
		if !placed[fd] {
			if _, err := t.Syscall(unix.SYS_CLOSE, uint64(fd)); err != nil {
				return fmt.Errorf("close passed fd %d: %w", fd, err)
			}
		}
	}
	if _, err := t.Syscall(unix.SYS_CLOSE, uint64(sock)); err != nil {
		return fmt.Errorf("close fd passing socket %d: %w", sock, err)
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
