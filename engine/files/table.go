package files

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
	"github.com/gocr/gocr/engine/mount"
	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
	"github.com/gocr/gocr/engine/sockdiag"
)

// Set collects the file entries of a dump and hands out their ids.
type Set struct {
	Entries []*fdinfo.FileEntry
	nextID  uint32
	byKey   map[string]uint32 // files reopened by path, shared by key
	// PipeData holds the bytes in flight of each dumped pipe, by inode;
	// FifoData those of each FIFO.
	PipeData, FifoData map[uint64][]byte
	// PipeSize and FifoSize hold each one's capacity (F_GETPIPE_SZ).
	PipeSize, FifoSize map[uint64]int
	// fileIDs maps the fds of the task being dumped to their file ids, so
	// an epoll can name its targets.
	fileIDs map[int]uint32
	// The open file descriptions dumped so far, in every process of the
	// tree: an fd of another process on one of them shares its entry.
	descs, epollDescs descriptions

	// Remaps say what stands in for each deleted file: a ghost or a link
	// remap (remap-fpath.img).
	Remaps []*remap.RemapFilePathEntry
	// GhostLimit is the most data a ghost file may hold; 0 means
	// DefaultGhostLimit, below 0 only empty ones are saved.
	GhostLimit int64
	// UserMaps are the id maps of the tree's own user namespace, if it
	// has one: ghost owners are saved as the tree sees them.
	UserMaps *userns.UsernsEntry
	// ContentsSaved says whether the dump saves the contents of the
	// filesystem with that device number itself (a tmpfs of the tree's
	// own): a link remap made there now would not be among them.
	ContentsSaved func(dev uint64) bool
	dir           *image.Dir         // ghost file contents are written here as found
	ghosts        map[fileKey]uint32 // ghost id of each deleted inode saved
	nextGhost     uint32             // the id the next ghost gets
	linked        map[fileKey]uint32 // file id of the link remap of each inode
	linkRemaps    []linkRemap        // links the dump made, removed if it fails
	// The memfd inodes met so far, by inode number and in order of their
	// ids in memfd.img.
	memfds    map[uint64]*memfdInode
	memfdList []*memfdInode
	// TtyInfos are the entries of tty-info.img, one per side of each pty
	// the tree has open (see tty.go); ptys what was seen of each pty.
	TtyInfos []*tty.TtyInfoEntry
	ptys     map[uint32]*PtyDump
	devTty   []DevTtyFd // fds on /dev/tty (devtty.go)
	// TtyData are the entries of tty-data.img: the bytes queued in the
	// ptys (ttydata.go).
	TtyData []*tty.TtyDataEntry
	// SkQueues holds the packets in flight to each dumped unix socket.
	SkQueues []QueuedPacket
	// SkPending holds what the client of each pending connection had
	// sent (see TakePending).
	SkPending []QueuedPacket
	// NetNsID is the id of the tree's network namespace (its nsfs inode),
	// recorded in each socket's entry.
	NetNsID uint32
	// UserNS is the tree's own user namespace, nil if it has none: owners
	// of socket files are recorded as the tree sees them.
	UserNS *userns.UsernsEntry
	usk    *unixDump // read on the first unix socket
	// holders lists every descriptor of the tree on each unix socket.
	holders    map[uint32][]fdHolder
	pendingFds []int // gocr's sockets of TakePending
	// FileLocks saves the locks the tree holds (criu's --file-locks);
	// without it a tree holding one is refused. Locks collects them.
	FileLocks bool
	Locks     []LockDump
	lockSeen  map[string]bool
	// TCPEstablished lets established TCP connections be dumped
	// (criu's --tcp-established); Repair is told of each socket put in
	// repair mode for it (tcp.go); repaired are those sockets.
	TCPEstablished bool
	// TCPClose lets them be dumped without their state, to be restored
	// closed (criu's --tcp-close).
	TCPClose bool
	// SkipInFlight leaves out the connections waiting in a listener's
	// accept queue (criu's --skip-in-flight): the listener comes back
	// without them, and their clients find no one at the other end.
	SkipInFlight bool
	Repair       Repair
	repaired     []*repaired
	// LockName is the nftables table of the network lock (netlock), ""
	// for none (criu's --network-lock skip); lockedNS the namespaces it
	// was made in.
	LockName string
	lockedNS map[string]bool
	// inetDiag is what sock_diag says of the inet sockets of a network
	// namespace, family and protocol, read on first use.
	inetDiag map[string]map[uint32]*sockdiag.Inet
	// Pidfds are the tree's open pidfds, by the processes they name;
	// VPid numbers a process as the images do (false: not in the tree).
	Pidfds []*gocrpb.PidfdEntry
	VPid   func(hostPid int) (int, bool)
	// Mqueues collects the tree's open POSIX message queues (and the
	// unlinked queues of the tree's own ipc namespace they keep).
	Mqueues *ns.Mqueues
}

// NewSet starts an empty set whose ghost files go to dir.
func NewSet(dir *image.Dir) *Set {
	return &Set{nextID: 1, byKey: map[string]uint32{}, PipeData: map[uint64][]byte{}, FifoData: map[uint64][]byte{}, dir: dir,
		PipeSize: map[uint64]int{}, FifoSize: map[uint64]int{},
		ghosts: map[fileKey]uint32{}, nextGhost: 1, linked: map[fileKey]uint32{}, memfds: map[uint64]*memfdInode{},
		holders: map[uint32][]fdHolder{}}
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
	case e.Sgfd != nil:
		e.Sgfd.Id = ptr(id)
	case e.Tfd != nil:
		e.Tfd.Id = ptr(id)
	case e.Ify != nil:
		e.Ify.Id = ptr(id)
		for _, w := range e.Ify.Wd {
			w.Id = ptr(id) // the watches name their instance, as in CRIU's old inotify-wd.img
		}
	case e.Memfd != nil:
		e.Memfd.Id = ptr(id)
	case e.Tty != nil:
		e.Tty.Id = ptr(id)
	case e.Usk != nil:
		e.Usk.Id = ptr(id)
	case e.Isk != nil:
		e.Isk.Id = ptr(id)
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
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d (to read file owners): %w", pid, err)
	}
	defer unix.Close(pfd)
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
			if err := s.dumpOwner(pfd, pid, fd, id); err != nil {
				return nil, fmt.Errorf("fd %d (%s): %w", f.Fd, f.Target, err)
			}
			d = files.insert(i, description{pid, f.Fd, id, typ})
		}
		s.fileIDs[f.Fd] = d.id
		if err := s.dumpLocks(pid, fd, d.id); err != nil {
			return nil, fmt.Errorf("fd %d (%s): %w", f.Fd, f.Target, err)
		}
		if d.typ == fdinfo.FdTypes_UNIXSK {
			s.holders[d.id] = append(s.holders[d.id], fdHolder{pid: pid, fd: f.Fd, cloexec: fd.Cloexec})
		}
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
	case strings.HasPrefix(t, memfdPrefix) && strings.HasSuffix(t, " (deleted)"):
		id, err := s.dumpMemfd(pid, fd)
		return id, fdinfo.FdTypes_MEMFD, err
	case strings.HasPrefix(t, "/"):
		return s.dumpRegFd(pid, fd)
	case strings.HasPrefix(t, "pipe:["):
		id, err := s.dumpPipe(pid, fd)
		return id, fdinfo.FdTypes_PIPE, err
	case t == "anon_inode:[eventfd]":
		id, err := s.dumpEventfd(fd)
		return id, fdinfo.FdTypes_EVENTFD, err
	case t == "anon_inode:[signalfd]":
		id, err := s.dumpSignalfd(fd)
		return id, fdinfo.FdTypes_SIGNALFD, err
	case t == "anon_inode:[timerfd]":
		id, err := s.dumpTimerfd(pid, fd)
		return id, fdinfo.FdTypes_TIMERFD, err
	case t == "anon_inode:[pidfd]":
		id, err := s.dumpPidfd(pid, fd)
		return id, fdinfo.FdTypes_EXT, err
	case t == "anon_inode:inotify":
		id, err := s.dumpInotify(pid, fd)
		return id, fdinfo.FdTypes_INOTIFY, err
	case strings.HasPrefix(t, "socket:["):
		return s.dumpSocket(pid, fd)
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
	// Pid is the task whose mount namespace files are found in (its
	// mountinfo); 0 for gocr's own.
	Pid int
	// PipeData is the bytes in flight of each pipe, by pipe id; FifoData
	// of each FIFO.
	PipeData, FifoData map[uint32][]byte
	// PipeSize and FifoSize are their capacities, where the image has them.
	PipeSize, FifoSize map[uint32]int
	// Mounts are the mounts the restore made, by image mount id: a file
	// on one of them is opened there.
	Mounts *mount.Set
	// Remaps are remap-fpath.img by orig_id: what stands in for each file
	// deleted at dump time.
	Remaps map[uint32]*remap.RemapFilePathEntry
	// Dir is the image directory, where ghost and memfd contents are read
	// from.
	Dir *image.Dir
	// UserMaps are the id maps of the tree's own user namespace, if it
	// has one: ghost owners are in the image as the tree saw them.
	UserMaps *userns.UsernsEntry
	// MemfdInodes are the entries of memfd.img, by inode id, and HostIDs,
	// if not nil, turns their owners into gocr's ids.
	MemfdInodes map[uint64]*memfd.MemfdInodeEntry
	HostIDs     IDMap
	// Pages counts the pages of file contents restored (memfds).
	Pages uint64

	// SkQueues is the packets in flight to each unix socket, by the
	// socket's file id, in queue order.
	SkQueues map[uint32][][]byte
	// SkPending is what the client of each pending connection had sent,
	// by the client's file id.
	SkPending map[uint32][][]byte
	// NetNS is the network namespace the tree's sockets are made in
	// ("/proc/PID/ns/net" of the task being restored; "" for gocr's own).
	NetNS string
	// UserNS is the tree's own user namespace, nil if it has none: owners
	// of socket files are recorded as the tree sees them.
	UserNS *userns.UsernsEntry

	// TtyInfos are the entries of tty-info.img by id, with owners as
	// gocr's user namespace sees them; ShellJob lets the files of a pty
	// whose master was outside the tree have gocr's own terminal.
	TtyInfos map[uint32]*tty.TtyInfoEntry
	ShellJob bool
	// TCPClose restores established TCP connections closed (criu's
	// --tcp-close).
	TCPClose bool

	order     []*fdinfo.FileEntry       // files.img order
	usk       map[uint32]int            // file id → unix socket made, not handed out yet
	isk       map[uint32]int            // file id → inet socket made, not handed out yet
	open      map[uint32]int            // file id → gocr's fd
	pipes     map[uint32]*pipeEnds      // pipe id → the pipe gocr made
	fifos     map[uint32]int            // FIFO pipe id → gocr's read-write fd of it
	ghosts    map[uint32]*ghost         // ghost id → the ghost made, ready
	dirs      map[string]int            // "mount id:dir" → gocr's O_PATH fd of it (pathOf)
	made      []*ghost                  // every ghost made, to remove
	memfds    map[uint64]*restoredMemfd // memfd inode id → the memfd gocr made
	ptys      map[uint32]*ptyPair       // pty index → the pty gocr made
	ptyMaster map[uint32]uint32         // pty index → the file id of its master
	ptySlaves map[uint32][]uint32       // pty index → the file ids of its slaves
	// TtyData are the bytes queued in the ptys (tty-data.img), by the
	// file id of one file of the side that reads them.
	TtyData map[uint32][]byte

	// MqueueFiles are the open message queues (EXT files), by file id;
	// MqueueFds gocr's fds of those of the tree's own ipc namespace,
	// opened when it was restored (ns.RestoreIPC), by file id.
	MqueueFiles map[uint32]*gocrpb.MqueueFileEntry
	// Pidfds are the open pidfds (EXT files), by file id; HostPid gives
	// the restored process of a pid of the tree.
	Pidfds    map[uint32]*gocrpb.PidfdEntry
	HostPid   func(vpid int) (int, bool)
	MqueueFds map[uint32]int
	// FdFiles are the file ids some fd of the tree has (the others are
	// files only VMAs map).
	FdFiles map[uint32]bool
}

// NewRestorer indexes the file entries of files.img.
func NewRestorer(entries []*fdinfo.FileEntry, root string) *Restorer {
	r := &Restorer{entries: map[uint32]*fdinfo.FileEntry{}, Root: root, PipeData: map[uint32][]byte{},
		MemfdInodes: map[uint64]*memfd.MemfdInodeEntry{},
		open:        map[uint32]int{}, pipes: map[uint32]*pipeEnds{}, fifos: map[uint32]int{}, FifoData: map[uint32][]byte{},
		ghosts: map[uint32]*ghost{}, dirs: map[string]int{}, memfds: map[uint64]*restoredMemfd{},
		TtyInfos: map[uint32]*tty.TtyInfoEntry{}, ptys: map[uint32]*ptyPair{},
		SkQueues: map[uint32][][]byte{}, SkPending: map[uint32][][]byte{}, order: entries}
	for _, e := range entries {
		r.entries[e.GetId()] = e
	}
	r.indexPtys()
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
	case e.Sgfd != nil:
		fd, err = openSignalfd(e.Sgfd)
	case e.Tfd != nil:
		fd, err = openTimerfd(e.Tfd)
	case e.Ify != nil:
		fd, err = r.openInotify(e.Ify)
	case e.Memfd != nil:
		fd, err = r.openMemfd(id, e.Memfd)
	case e.Tty != nil:
		fd, err = r.openTty(id, e.Tty)
	case e.Usk != nil:
		fd, err = r.openUnix(e)
	case e.Isk != nil:
		fd, err = r.openInet(e)
	case e.Ext != nil && r.Pidfds[id] != nil:
		fd, err = r.openPidfd(r.Pidfds[id])
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

// Close closes every fd gocr opened and removes the ghosts still there
// (a restore that failed must leave none behind).
func (r *Restorer) Close() {
	r.RemoveGhosts() //nolint:errcheck // best effort: nothing left to report to
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
	for k, fd := range r.dirs {
		unix.Close(fd)
		delete(r.dirs, k)
	}
	for id, m := range r.memfds {
		unix.Close(m.fd)
		delete(r.memfds, id)
	}
	for id, fd := range r.usk {
		unix.Close(fd)
		delete(r.usk, id)
	}
	for index, p := range r.ptys {
		if p.peer >= 0 {
			unix.Close(p.peer)
		}
		delete(r.ptys, index)
	}
}

// mountsPid is the task whose mountinfo lists the mounts files are found
// on.
func (r *Restorer) mountsPid() int {
	if r.Pid == 0 {
		return os.Getpid()
	}
	return r.Pid
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
