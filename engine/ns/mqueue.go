package ns

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
)

// POSIX message queues live in the mqueue filesystem of an ipc namespace.
// CRIU's image format has no entry for them, so gocr keeps them in files
// of its own (see engine/image/gocrpb/mqueue.proto):
// gocr-mqueue-<ipc ns id>.img has every queue of an ipc namespace the tree
// owns, named or unlinked but still open, each followed by its messages;
// gocr-mqueue-files.img has the tree's open queues, which files.img lists
// as EXT files (CRIU, which restores those only through a plugin, refuses
// such an image instead of opening something else).
//
// The kernel has no way to read a queue's messages without taking them:
// the dump takes them all and sends them back at once, in the order it
// took them (by priority, oldest first), while the tree is frozen, so the
// queue ends as it was but for its access times. A queue someone asked to
// be notified about (mq_notify) is refused: emptying it could fire the
// notification, and restore could not register it again (the sigevent's
// value is not visible).
//
// A queue of an ipc namespace the tree does not own (the host's, in the h
// flavor) is not saved: it outlives the dump and its open files are
// reopened by name, as SysV objects are found by id. Such a queue that
// was unlinked dies with the tree, and is refused.

// mqueue is one queue of the image with its messages.
type mqueue struct {
	e    *gocrpb.MqueueEntry
	msgs []mqMsg
}

type mqMsg struct {
	prio uint32
	data []byte
}

// Mqueues collects, during a dump, the queues of the tree's ipc namespace
// and the tree's open queues; Write writes them at the end.
type Mqueues struct {
	nsID    uint32 // the tree's own ipc namespace; 0 if it has none
	dev     uint64 // st_dev of that namespace's mqueue filesystem
	hostNS  uint32 // gocr's ipc namespace
	hostDev uint64
	ids     IDMap
	queues  map[uint32]*mqueue // by inode number
	order   []uint32
	files   []*gocrpb.MqueueFileEntry
}

// NewMqueues starts the collection for a dump by gocr, whose ipc
// namespace is hostNS.
func NewMqueues(hostNS uint32) *Mqueues {
	return &Mqueues{hostNS: hostNS, queues: map[uint32]*mqueue{}}
}

// mqueue system calls; names go without the leading '/', as the kernel
// takes them.

func mqOpen(name string, flags int, mode uint32, attr *abi.MqAttr) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(mode), uintptr(unsafe.Pointer(attr)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func mqUnlink(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return e
	}
	return nil
}

func mqGetAttr(fd int) (abi.MqAttr, error) {
	var a abi.MqAttr
	if _, _, e := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&a))); e != 0 {
		return a, e
	}
	return a, nil
}

func mqReceive(fd int, buf []byte) (int, uint32, error) {
	var prio uint32
	n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&prio)), 0, 0)
	if e != 0 {
		return 0, 0, e
	}
	return int(n), prio, nil
}

func mqSend(fd int, data []byte, prio uint32) error {
	var p unsafe.Pointer // an empty message needs no buffer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	if _, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(data)), uintptr(prio), 0, 0); e != 0 {
		return e
	}
	return nil
}

// mqueueFS opens the mqueue filesystem of the calling thread's ipc
// namespace as a detached mount (nothing is mounted anywhere) and returns
// its root directory, from which the caller lists the queues.
func mqueueFS() (*os.File, error) {
	fsfd, err := unix.Fsopen("mqueue", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen mqueue: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("mqueue: fsconfig create: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, fmt.Errorf("mqueue: fsmount: %w", err)
	}
	defer unix.Close(mfd)
	// The mount's fd is a path only: open its root for reading.
	dfd, err := unix.Openat(mfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mqueue: open its root: %w", err)
	}
	return os.NewFile(uintptr(dfd), "mqueue"), nil
}

// fsDev gives st_dev of the mqueue filesystem of the calling thread's ipc
// namespace: an open queue is of that namespace if its st_dev is this.
func fsDev() (uint64, error) {
	root, err := mqueueFS()
	if err != nil {
		return 0, err
	}
	defer root.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
}

// dumpNS collects every named queue of the calling thread's ipc
// namespace, which the tree owns (id nsID).
func (m *Mqueues) dumpNS(nsID uint32, ids IDMap) error {
	root, err := mqueueFS()
	if err != nil {
		return err
	}
	defer root.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return err
	}
	m.nsID, m.dev, m.ids = nsID, st.Dev, ids
	names, err := root.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list the message queues: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		fd, err := mqOpen(name, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
		if err != nil {
			return fmt.Errorf("message queue /%s: open: %w", name, err)
		}
		q, err := dumpQueue(fd, name, false, ids)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("message queue /%s: %w", name, err)
		}
		m.add(q)
	}
	return nil
}

func (m *Mqueues) add(q *mqueue) {
	m.queues[q.e.GetId()] = q
	m.order = append(m.order, q.e.GetId())
}

// dumpQueue reads a queue through fd, gocr's own read-write and
// non-blocking fd of it: attributes, owner and messages, which it takes
// and sends back in the same order.
func dumpQueue(fd int, name string, unlinked bool, ids IDMap) (*mqueue, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if err := checkNotify(fd); err != nil {
		return nil, err
	}
	a, err := mqGetAttr(fd)
	if err != nil {
		return nil, fmt.Errorf("mq_getattr: %w", err)
	}
	uid, gid := ids.inside(st.Uid, st.Gid)
	e := &gocrpb.MqueueEntry{Id: ptr(uint32(st.Ino)), Name: &name, Uid: &uid, Gid: &gid, Mode: ptr(st.Mode & 0o7777),
		Maxmsg: ptr(uint64(a.Maxmsg)), Msgsize: ptr(uint64(a.Msgsize))}
	if unlinked {
		e.Unlinked = ptr(true)
	}
	q := &mqueue{e: e}
	if err := q.takeAndGiveBack(fd, int(a.Curmsgs), int(a.Msgsize)); err != nil {
		return nil, err
	}
	e.Curmsgs = ptr(uint32(len(q.msgs)))
	return q, nil
}

// takeAndGiveBack reads the n messages of the queue by taking them all,
// then sends them back in the order taken. Whatever fails on the way,
// every message taken is sent back before the error is returned.
func (q *mqueue) takeAndGiveBack(fd, n, msgsize int) error {
	buf := make([]byte, max(msgsize, 1))
	var takeErr error
	for range n {
		k, prio, err := mqReceive(fd, buf)
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) {
				takeErr = fmt.Errorf("take message %d of %d: %w", len(q.msgs), n, err)
			}
			break
		}
		q.msgs = append(q.msgs, mqMsg{prio: prio, data: append([]byte(nil), buf[:k]...)})
	}
	for i, msg := range q.msgs {
		if err := mqSend(fd, msg.data, msg.prio); err != nil {
			return fmt.Errorf("give back message %d of %d (priority %d, %d bytes): %w: the queue lost %d messages",
				i, len(q.msgs), msg.prio, len(msg.data), err, len(q.msgs)-i)
		}
	}
	return takeErr
}

// checkNotify refuses a queue with a notification registered, as the
// queue's own read(2) text says ("QSIZE:… NOTIFY:… SIGNO:… NOTIFY_PID:…").
// It reads with pread on gocr's own fd: a read moves the file's offset.
func checkNotify(fd int) error {
	buf := make([]byte, 128)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("read its status: %w", err)
	}
	f := strings.Fields(string(buf[:n]))
	for _, kv := range f {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_PID:"); ok {
			if pid, _ := strconv.Atoi(v); pid != 0 {
				return fmt.Errorf("pid %d asked to be notified of its messages (mq_notify): not supported", pid)
			}
			return nil
		}
	}
	return fmt.Errorf("status %q: no NOTIFY_PID", buf[:n])
}

// DumpFile records fd of pid, an open message queue (files.Set calls it
// for an fd on the mqueue filesystem; flags are its open flags from
// fdinfo, target its /proc link: "/NAME"). The queue of the tree's own
// namespace was saved by DumpIPC, or is saved now if it was unlinked;
// one of gocr's namespace is recorded by name. The entry's id is left for
// the caller to set, with the file's id.
func (m *Mqueues) DumpFile(pid, fd int, flags uint32, target string) (*gocrpb.MqueueFileEntry, error) {
	p := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return nil, err
	}
	e := &gocrpb.MqueueFileEntry{Flags: ptr(flags & (unix.O_ACCMODE | unix.O_NONBLOCK))}
	unlinked := st.Nlink == 0
	switch {
	case m.nsID != 0 && st.Dev == m.dev:
		e.IpcNsId, e.Queue = ptr(m.nsID), ptr(uint32(st.Ino))
		q, ok := m.queues[uint32(st.Ino)]
		if !ok && !unlinked {
			return nil, fmt.Errorf("message queue %s (inode %d) is not in its namespace's mqueue filesystem", target, st.Ino)
		}
		if !ok {
			var err error
			if q, err = m.dumpUnlinked(p, target); err != nil {
				return nil, fmt.Errorf("unlinked message queue: %w", err)
			}
		}
		e.Name = q.e.Name
	case m.isHost(st.Dev):
		if unlinked {
			return nil, fmt.Errorf("message queue %s was unlinked, and lives in an ipc namespace the tree does not own: it dies with the tree", target)
		}
		if err := checkOpenNotify(p); err != nil {
			return nil, fmt.Errorf("message queue %s: %w", target, err)
		}
		name := strings.TrimPrefix(target, "/")
		e.IpcNsId, e.Name = ptr(m.hostNS), &name
	default:
		return nil, fmt.Errorf("message queue %s: of an ipc namespace that is neither the tree's nor gocr's: not supported", target)
	}
	m.files = append(m.files, e)
	return e, nil
}

// isHost says whether dev is gocr's own mqueue filesystem.
func (m *Mqueues) isHost(dev uint64) bool {
	if m.hostDev == 0 {
		d, err := fsDev()
		if err != nil {
			return false
		}
		m.hostDev = d
	}
	return dev == m.hostDev
}

// dumpUnlinked saves a queue the tree's namespace no longer lists,
// through a reopened /proc fd link p, whose target ("/NAME (deleted)")
// gives the name it had.
func (m *Mqueues) dumpUnlinked(p, target string) (*mqueue, error) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(target, "/"), " (deleted)")
	if !ok || name == "" {
		return nil, fmt.Errorf("%s: %q: not the link of an unlinked queue", p, target)
	}
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", p, err)
	}
	defer unix.Close(fd)
	q, err := dumpQueue(fd, name, true, m.ids)
	if err != nil {
		return nil, err
	}
	m.add(q)
	return q, nil
}

// checkOpenNotify is checkNotify on a queue reopened through p.
func checkOpenNotify(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", p, err)
	}
	defer unix.Close(fd)
	return checkNotify(fd)
}

// Write writes gocr-mqueue-ID.img if the tree's own namespace has queues
// and gocr-mqueue-files.img if the tree has queues open.
func (m *Mqueues) Write(dir *image.Dir) error {
	if m.nsID != 0 && len(m.order) > 0 {
		w, err := dir.Writer(image.GocrMqueue, image.GocrMqueueFile(m.nsID))
		if err != nil {
			return err
		}
		for _, id := range m.order {
			if err := m.queues[id].write(w); err != nil {
				w.Abort()
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	if len(m.files) == 0 {
		return nil
	}
	w, err := dir.Writer(image.GocrMqueueFiles, image.GocrMqueueFilesFile)
	if err != nil {
		return err
	}
	for _, e := range m.files {
		if err := w.Write(e); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

func (q *mqueue) write(w *image.Writer) error {
	if err := w.Write(q.e); err != nil {
		return err
	}
	for _, msg := range q.msgs {
		if err := w.WritePayload(&gocrpb.MqueueMsg{Prio: ptr(msg.prio), Size: ptr(uint32(len(msg.data)))}, bytes.NewReader(msg.data)); err != nil {
			return err
		}
	}
	return nil
}

// readMqueues reads and checks gocr-mqueue-ID.img, if there is one.
func readMqueues(dir *image.Dir, nsID uint32) ([]*mqueue, error) {
	name := image.GocrMqueueFile(nsID)
	if !dir.Exists(name) {
		return nil, nil
	}
	rd, err := dir.Reader(image.GocrMqueue, name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []*mqueue
	seen := map[uint32]bool{}
	for {
		e := &gocrpb.MqueueEntry{}
		if !rd.Next(e) {
			break
		}
		what := fmt.Sprintf("%s: entry %d (queue %d)", name, rd.Index(), e.GetId())
		if seen[e.GetId()] {
			return nil, fmt.Errorf("%s: listed twice", what)
		}
		seen[e.GetId()] = true
		if n := e.GetName(); n == "" || strings.Contains(n, "/") || n == "." || n == ".." {
			return nil, fmt.Errorf("%s: name %q: not a queue name", what, n)
		}
		if e.GetMaxmsg() == 0 || e.GetMsgsize() == 0 || uint64(e.GetCurmsgs()) > e.GetMaxmsg() {
			return nil, fmt.Errorf("%s: maxmsg %d, msgsize %d, %d messages: impossible", what, e.GetMaxmsg(), e.GetMsgsize(), e.GetCurmsgs())
		}
		q := &mqueue{e: e}
		for range e.GetCurmsgs() {
			msg := &gocrpb.MqueueMsg{}
			if !rd.Next(msg) {
				if rd.Err() == nil {
					return nil, fmt.Errorf("%s: %d messages, the file ends after %d", what, e.GetCurmsgs(), len(q.msgs))
				}
				return nil, rd.Err()
			}
			if uint64(msg.GetSize()) > e.GetMsgsize() {
				return nil, fmt.Errorf("%s: message %d: %d bytes, the queue takes at most %d", what, len(q.msgs), msg.GetSize(), e.GetMsgsize())
			}
			data, err := io.ReadAll(rd.Payload())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			q.msgs = append(q.msgs, mqMsg{prio: msg.GetPrio(), data: data})
		}
		out = append(out, q)
	}
	return out, rd.Err()
}

// restoreMqueues makes every queue in the calling thread's (fresh) ipc
// namespace, as its owner (who pays for it), with its attributes, mode and
// messages, and opens there its open files (files, those of saved
// queues) into out, by file id: mq_open gives them exactly the flags
// they had (an open of /proc/self/fd would add O_LARGEFILE). The
// namespace's limits are opened up as far as the queues need (past them
// only CAP_SYS_RESOURCE may go); restoreIPCVar sets the image's
// afterwards. Unlinked queues come first, each made under its old name,
// opened and unlinked again before the next (a later queue may have taken
// the name since).
func restoreMqueues(list []*mqueue, files []*gocrpb.MqueueFileEntry, ids IDMap, out map[uint32]int) error {
	if len(list) == 0 {
		return nil
	}
	var maxmsg, msgsize uint64
	for _, q := range list {
		maxmsg, msgsize = max(maxmsg, q.e.GetMaxmsg()), max(msgsize, q.e.GetMsgsize())
	}
	for _, l := range []struct {
		path string
		need uint64
	}{{"fs/mqueue/queues_max", uint64(len(list))}, {"fs/mqueue/msg_max", maxmsg}, {"fs/mqueue/msgsize_max", msgsize}} {
		cur, err := readSysctl(l.path)
		if err != nil {
			return err
		}
		if cur < l.need {
			if err := setSysctl(l.path, strconv.FormatUint(l.need, 10)); err != nil {
				return err
			}
		}
	}
	ordered := slices.Clone(list)
	slices.SortStableFunc(ordered, func(a, b *mqueue) int {
		return cmpBool(!a.e.GetUnlinked(), !b.e.GetUnlinked())
	})
	for _, q := range ordered {
		if err := q.restore(ids, files, out); err != nil {
			return fmt.Errorf("message queue %s: %w", q.label(), err)
		}
	}
	return nil
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func (q *mqueue) label() string {
	if q.e.GetUnlinked() {
		return fmt.Sprintf("/%s (unlinked, inode %d)", q.e.GetName(), q.e.GetId())
	}
	return "/" + q.e.GetName()
}

// restore makes one queue, opens its files into out and, if it was
// unlinked, unlinks it.
func (q *mqueue) restore(ids IDMap, files []*gocrpb.MqueueFileEntry, out map[uint32]int) error {
	e := q.e
	uid, gid, err := ids.outside(e.GetUid(), e.GetGid())
	if err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	attr := abi.MqAttr{Maxmsg: int64(e.GetMaxmsg()), Msgsize: int64(e.GetMsgsize())}
	fd := -1
	err = asIDs(uid, gid, func() (err error) {
		fd, err = mqOpen(e.GetName(), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NONBLOCK|unix.O_CLOEXEC, e.GetMode()&0o777, &attr)
		return err
	})
	if err != nil {
		return fmt.Errorf("create as uid %d gid %d (maxmsg %d, msgsize %d): %w", uid, gid, attr.Maxmsg, attr.Msgsize, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, e.GetMode()&0o7777); err != nil { // mq_open applied gocr's umask
		return err
	}
	for i, msg := range q.msgs {
		if err := mqSend(fd, msg.data, msg.prio); err != nil {
			return fmt.Errorf("send message %d (priority %d, %d bytes): %w", i, msg.prio, len(msg.data), err)
		}
	}
	for _, f := range files {
		if f.GetQueue() != e.GetId() {
			continue
		}
		ffd, err := mqOpen(e.GetName(), int(f.GetFlags())|unix.O_CLOEXEC, 0, nil)
		if err != nil {
			return fmt.Errorf("open file %d with flags %#o: %w", f.GetId(), f.GetFlags(), err)
		}
		out[f.GetId()] = ffd
	}
	if e.GetUnlinked() {
		if err := mqUnlink(e.GetName()); err != nil {
			return fmt.Errorf("unlink: %w", err)
		}
	}
	return nil
}

// ReadMqueueFiles reads gocr-mqueue-files.img, if there is one, by file
// id. A queue the dump did not save must be of rootNS, gocr's ipc
// namespace at dump time, where restore reopens it by name; a saved one
// must be of ownNS (0: the tree had no ipc namespace of its own).
func ReadMqueueFiles(dir *image.Dir, ownNS, rootNS uint32) (map[uint32]*gocrpb.MqueueFileEntry, error) {
	out := map[uint32]*gocrpb.MqueueFileEntry{}
	name := image.GocrMqueueFilesFile
	if !dir.Exists(name) {
		return out, nil
	}
	list, err := image.ReadAll[gocrpb.MqueueFileEntry](dir, image.GocrMqueueFiles, name)
	if err != nil {
		return nil, err
	}
	for i, e := range list {
		what := fmt.Sprintf("%s: [%d] (file %d)", name, i, e.GetId())
		switch {
		case out[e.GetId()] != nil:
			return nil, fmt.Errorf("%s: listed twice", what)
		case e.Queue != nil && (ownNS == 0 || e.GetIpcNsId() != ownNS):
			return nil, fmt.Errorf("%s: a saved queue of ipc namespace %d, which the tree does not own", what, e.GetIpcNsId())
		case e.Queue == nil && e.GetIpcNsId() != rootNS:
			return nil, fmt.Errorf("%s: queue %q of ipc namespace %d, neither the tree's nor gocr's", what, e.GetName(), e.GetIpcNsId())
		case e.Queue == nil && (e.GetName() == "" || strings.Contains(e.GetName(), "/")):
			return nil, fmt.Errorf("%s: queue name %q", what, e.GetName())
		case e.GetFlags()&^uint32(unix.O_ACCMODE|unix.O_NONBLOCK) != 0 || e.GetFlags()&unix.O_ACCMODE == unix.O_ACCMODE:
			return nil, fmt.Errorf("%s: flags %#o", what, e.GetFlags())
		}
		out[e.GetId()] = e
	}
	return out, nil
}

// OpenMqueueFile opens, in gocr, an open queue of the image the dump did
// not save, with its flags (and close-on-exec): by name, in gocr's own ipc
// namespace, where it lived on. Those of saved queues were opened by
// RestoreIPC.
func OpenMqueueFile(e *gocrpb.MqueueFileEntry) (int, error) {
	if e.Queue != nil {
		return -1, fmt.Errorf("file %d of saved message queue %d: not opened when its namespace was restored", e.GetId(), e.GetQueue())
	}
	flags := int(e.GetFlags()) | unix.O_CLOEXEC
	fd, err := mqOpen(e.GetName(), flags, 0, nil)
	if err != nil {
		return -1, fmt.Errorf("message queue /%s: open with flags %#o: %w", e.GetName(), flags, err)
	}
	return fd, nil
}
