package ns

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	ipc_desc "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-desc"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-var"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
)

// An ipc namespace the tree owns is saved whole, as CRIU does: its limits
// (here), its SysV shared memory segments (ipc_shm.go), semaphore sets
// (ipc_sem.go) and message queues (ipc_msg.go), and its POSIX message
// queues (mqueue.go). Restore recreates every object in the fresh
// namespace with its id (the kernel's *_next_id sysctls), creator, owner,
// mode and contents before any process uses it. The dump reads without
// taking anything: message queues are copied (MSG_COPY), semaphores read
// (GETALL), segments read through a file of their own; POSIX queues, which
// have no way to peek, are emptied and refilled in the same order while
// the tree is frozen.
//
// Objects of an ipc namespace the tree does not own (the host's, in the h
// flavor) are not saved: they outlive the dump, and restore finds them by
// id or name.

// ipcSysctls are the per-ipc-namespace limits under /proc/sys (as seen from
// a thread inside the namespace), in ipc_var_entry's terms.
var ipcSysctls = []struct {
	path string
	set  func(e *ipc_var.IpcVarEntry, v uint64)
	get  func(e *ipc_var.IpcVarEntry) (uint64, bool)
}{
	{"kernel/msgmax", func(e *ipc_var.IpcVarEntry, v uint64) { e.MsgCtlmax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMsgCtlmax()), e.MsgCtlmax != nil }},
	{"kernel/msgmnb", func(e *ipc_var.IpcVarEntry, v uint64) { e.MsgCtlmnb = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMsgCtlmnb()), e.MsgCtlmnb != nil }},
	{"kernel/msgmni", func(e *ipc_var.IpcVarEntry, v uint64) { e.MsgCtlmni = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMsgCtlmni()), e.MsgCtlmni != nil }},
	{"kernel/shmmax", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmCtlmax = ptr(v) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return e.GetShmCtlmax(), e.ShmCtlmax != nil }},
	{"kernel/shmall", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmCtlall = ptr(v) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return e.GetShmCtlall(), e.ShmCtlall != nil }},
	{"kernel/shmmni", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmCtlmni = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetShmCtlmni()), e.ShmCtlmni != nil }},
	{"kernel/shm_rmid_forced", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmRmidForced = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) {
		return uint64(e.GetShmRmidForced()), e.ShmRmidForced != nil
	}},
	{"fs/mqueue/queues_max", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqQueuesMax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqQueuesMax()), e.MqQueuesMax != nil }},
	{"fs/mqueue/msg_max", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqMsgMax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqMsgMax()), e.MqMsgMax != nil }},
	{"fs/mqueue/msgsize_max", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqMsgsizeMax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqMsgsizeMax()), e.MqMsgsizeMax != nil }},
	{"fs/mqueue/msg_default", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqMsgDefault = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqMsgDefault()), e.MqMsgDefault != nil }},
	{"fs/mqueue/msgsize_default", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqMsgsizeDefault = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) {
		return uint64(e.GetMqMsgsizeDefault()), e.MqMsgsizeDefault != nil
	}},
}

// ipcNextIDs are the sysctls that give the id of the next object of each
// kind: -1 (unset) unless someone wrote one that no object has used yet.
// Restore writes each object's id there before making it, and the image's
// values last.
var ipcNextIDs = []struct {
	path string
	val  func(e *ipc_var.IpcVarEntry) **uint32
}{
	{"kernel/msg_next_id", func(e *ipc_var.IpcVarEntry) **uint32 { return &e.MsgNextId }},
	{"kernel/sem_next_id", func(e *ipc_var.IpcVarEntry) **uint32 { return &e.SemNextId }},
	{"kernel/shm_next_id", func(e *ipc_var.IpcVarEntry) **uint32 { return &e.ShmNextId }},
}

// IDMap translates user and group ids between gocr's user namespace and
// the one the tree's ipc objects belong to: the image keeps them as the
// tree sees them, as CRIU does. Nil maps mean the same namespace.
type IDMap struct{ Uid, Gid []*userns.UidGidExtent }

// inside gives the ids the tree sees for ids gocr sees.
func (m IDMap) inside(uid, gid uint32) (uint32, uint32) {
	if m.Uid != nil {
		uid = Inside(m.Uid, uid)
	}
	if m.Gid != nil {
		gid = Inside(m.Gid, gid)
	}
	return uid, gid
}

// outside gives the ids gocr sees for ids the tree sees.
func (m IDMap) outside(uid, gid uint32) (uint32, uint32, error) {
	if m.Uid != nil {
		u, ok := Outside(m.Uid, uid)
		if !ok {
			return 0, 0, fmt.Errorf("uid %d is not mapped in the user namespace", uid)
		}
		uid = u
	}
	if m.Gid != nil {
		g, ok := Outside(m.Gid, gid)
		if !ok {
			return 0, 0, fmt.Errorf("gid %d is not mapped in the user namespace", gid)
		}
		gid = g
	}
	return uid, gid, nil
}

// DumpIPC saves pid's ipc namespace, which the tree owns, under id:
// ipcns-var, ipcns-shm, ipcns-sem and ipcns-msg images, and its POSIX
// message queues into mq, which the files of the tree add unlinked queues
// to and which writes gocr-mqueue-ID.img at the end of the dump. tree are
// the pids of the tree's live processes, frozen.
func DumpIPC(pid int, dir *image.Dir, id uint32, ids IDMap, mq *Mqueues, tree []int) error {
	return Enter(pid, "ipc", func() error {
		e, err := dumpIPCVar()
		if err != nil {
			return err
		}
		if err := dir.WriteOne(image.IpcVar, image.IpcVarFile(id), e); err != nil {
			return err
		}
		if err := dumpShm(dir, id, ids, tree); err != nil {
			return err
		}
		if err := dumpSem(dir, id, ids); err != nil {
			return err
		}
		if err := dumpMsg(dir, id, ids, e.GetMsgCtlmax()); err != nil {
			return err
		}
		return mq.dumpNS(id, ids)
	})
}

// dumpIPCVar reads the limits of the calling thread's ipc namespace.
func dumpIPCVar() (*ipc_var.IpcVarEntry, error) {
	e := &ipc_var.IpcVarEntry{AutoMsgmni: ptr(uint32(0))}
	for _, s := range ipcSysctls {
		v, err := readSysctl(s.path)
		if err != nil {
			return nil, err
		}
		s.set(e, v)
	}
	for _, s := range ipcNextIDs {
		v, err := readSysctlInt(s.path)
		if err != nil {
			return nil, err
		}
		if v >= 0 {
			*s.val(e) = ptr(uint32(v))
		}
	}
	b, err := os.ReadFile("/proc/sys/kernel/sem")
	if err != nil {
		return nil, err
	}
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("/proc/sys/kernel/sem: %w", err)
		}
		e.SemCtls = append(e.SemCtls, uint32(n))
	}
	return e, nil
}

// IPCImages is the image of an ipc namespace the tree owned, read and
// checked before the restore creates anything.
type IPCImages struct {
	ID  uint32
	Var *ipc_var.IpcVarEntry
	Shm []*shmSegment
	Sem []*semSet
	Msg []*msgQueue
	Mq  []*mqueue
}

// ReadIPC reads the images of ipc namespace id. The SysV and message
// queue images are optional (CRIU always writes them; an image made by an
// older gocr has only the limits).
func ReadIPC(dir *image.Dir, id uint32) (*IPCImages, error) {
	img := &IPCImages{ID: id}
	var err error
	if img.Var, err = image.ReadOne[ipc_var.IpcVarEntry](dir, image.IpcVar, image.IpcVarFile(id)); err != nil {
		return nil, err
	}
	if img.Shm, err = readShm(dir, id); err != nil {
		return nil, err
	}
	if img.Sem, err = readSem(dir, id); err != nil {
		return nil, err
	}
	if img.Msg, err = readMsg(dir, id); err != nil {
		return nil, err
	}
	if img.Mq, err = readMqueues(dir, id); err != nil {
		return nil, err
	}
	return img, nil
}

// HasQueue says whether the image has the POSIX message queue of that
// mqueue_entry.id.
func (img *IPCImages) HasQueue(id uint32) bool {
	return slices.ContainsFunc(img.Mq, func(q *mqueue) bool { return q.e.GetId() == id })
}

// IPCRestored is what a restored ipc namespace leaves to the rest of the
// restore.
type IPCRestored struct {
	// MqueueFiles are gocr's fds of the tree's open POSIX message queues
	// of the namespace, by file id: a taker deletes what it takes, Close
	// closes the rest.
	MqueueFiles map[uint32]int
	// Removed are the SysV shm segments that were removed while still
	// attached (SHM_DEST): they are removed again once the restored
	// processes have attached them (RemoveShm).
	Removed []int
}

// Close closes the fds of the queues not taken.
func (r *IPCRestored) Close() {
	if r == nil {
		return
	}
	for id, fd := range r.MqueueFiles {
		unix.Close(fd)
		delete(r.MqueueFiles, id)
	}
}

// RestoreIPC fills pid's fresh ipc namespace from img: every object first,
// with limits opened up as far as they need, then the image's limits and
// next ids; it opens the tree's open message queues of the namespace
// (mqFiles, all the image's, by file id) on the way. A failure leaves
// objects behind only in that namespace, which dies with the half-restored
// tree.
func RestoreIPC(pid int, dir *image.Dir, img *IPCImages, ids IDMap, mqFiles map[uint32]*gocrpb.MqueueFileEntry) (*IPCRestored, error) {
	out := &IPCRestored{MqueueFiles: map[uint32]int{}}
	var files []*gocrpb.MqueueFileEntry
	for _, f := range mqFiles {
		if f.Queue != nil {
			files = append(files, f)
		}
	}
	err := Enter(pid, "ipc", func() error {
		var err error
		if out.Removed, err = restoreShm(dir, img.ID, ids); err != nil {
			return err
		}
		for _, s := range img.Sem {
			if err := s.restore(ids); err != nil {
				return err
			}
		}
		for _, q := range img.Msg {
			if err := q.restore(ids); err != nil {
				return err
			}
		}
		if err := restoreMqueues(img.Mq, files, ids, out.MqueueFiles); err != nil {
			return err
		}
		return restoreIPCVar(img.Var)
	})
	if err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// restoreIPCVar sets the image's limits and next ids in the calling
// thread's ipc namespace.
func restoreIPCVar(e *ipc_var.IpcVarEntry) error {
	for _, s := range ipcNextIDs {
		if v := *s.val(e); v != nil {
			if err := setSysctl(s.path, strconv.FormatUint(uint64(*v), 10)); err != nil {
				return err
			}
		}
	}
	for _, s := range ipcSysctls {
		if v, ok := s.get(e); ok {
			if err := setSysctl(s.path, strconv.FormatUint(v, 10)); err != nil {
				return err
			}
		}
	}
	if len(e.SemCtls) == 4 {
		v := fmt.Sprintf("%d %d %d %d", e.SemCtls[0], e.SemCtls[1], e.SemCtls[2], e.SemCtls[3])
		if err := setSysctl("kernel/sem", v); err != nil {
			return err
		}
	}
	return nil
}

// RemoveShm removes SysV shm segments of pid's ipc namespace (IPC_RMID):
// those the dump found removed but still attached, once the restored
// processes have attached them again.
func RemoveShm(pid int, ids []int) error {
	if len(ids) == 0 {
		return nil
	}
	return Enter(pid, "ipc", func() error {
		for _, id := range ids {
			if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
				return fmt.Errorf("remove SysV shm segment %d: %w", id, err)
			}
		}
		return nil
	})
}

func readSysctl(path string) (uint64, error) {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/%s: %w", path, err)
	}
	return v, nil
}

func readSysctlInt(path string) (int64, error) {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/%s: %w", path, err)
	}
	return v, nil
}

// setSysctl writes an ipc sysctl of the calling thread's namespace. The
// limits of a namespace that belongs to another user namespace are
// writable only by that namespace's root (ipc_permissions: no capability
// overrides it), and gocr's root is not that root: then the thread acts as
// the file's owner for the write. The *_next_id ones are writable by
// whoever may checkpoint and restore that namespace, which gocr's root
// may, and an owner without capabilities may not.
func setSysctl(path, v string) error {
	p := "/proc/sys/" + path
	err := os.WriteFile(p, []byte(v), 0)
	if errors.Is(err, os.ErrPermission) {
		err = asOwnerOf(p, func() error { return os.WriteFile(p, []byte(v), 0) })
	}
	if err != nil {
		return fmt.Errorf("set %s=%s: %w", path, v, err)
	}
	return nil
}

// asOwnerOf runs fn with the effective ids that own file p.
func asOwnerOf(p string, fn func() error) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	return asIDs(st.Uid, st.Gid, fn)
}

// asIDs runs fn with the calling thread's real and effective (and so fs)
// uid and gid set to uid and gid, and gives root back afterwards: objects
// fn makes get them as their creator's, and what they cost is charged to
// that user (a POSIX message queue counts against its creator's
// RLIMIT_MSGQUEUE, kept per real uid). Only this thread changes (raw
// system calls, not Go's all-threads Setuid); it must be a throwaway one
// (Enter) running as root, whose saved ids stay 0 so root can come back.
// Leaving uid 0 drops the effective capabilities, coming back restores
// them.
func asIDs(uid, gid uint32, fn func() error) error {
	if uid == 0 && gid == 0 {
		return fn()
	}
	keep := ^uintptr(0) // -1: leave that id as it is
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), keep); e != 0 {
		return fmt.Errorf("act as gid %d: setresgid: %w", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), keep); e != 0 {
		unix.RawSyscall(unix.SYS_SETRESGID, 0, 0, keep)
		return fmt.Errorf("act as uid %d: setresuid: %w", uid, e)
	}
	err := fn()
	_, _, eu := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, keep)
	_, _, eg := unix.RawSyscall(unix.SYS_SETRESGID, 0, 0, keep)
	if err == nil && (eu != 0 || eg != 0) {
		err = fmt.Errorf("act as root again after uid %d gid %d: %w", uid, gid, errors.Join(errnoOrNil(eu), errnoOrNil(eg)))
	}
	return err
}

func errnoOrNil(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// ipcDesc is the permission block of an object as the image keeps it:
// ids as the tree sees them, the whole mode (with SHM_DEST and SHM_LOCKED).
func ipcDesc(id int, p *unix.SysvIpcPerm, ids IDMap) *ipc_desc.IpcDescEntry {
	uid, gid := ids.inside(p.Uid, p.Gid)
	cuid, cgid := ids.inside(p.Cuid, p.Cgid)
	return &ipc_desc.IpcDescEntry{Key: ptr(uint32(p.Key)), Uid: &uid, Gid: &gid, Cuid: &cuid, Cgid: &cgid,
		Mode: ptr(p.Mode), Id: ptr(uint32(id))}
}

// descName names an object in errors: its kind, id and key.
func descName(kind string, d *ipc_desc.IpcDescEntry) string {
	return fmt.Sprintf("SysV %s %d (key %#x)", kind, d.GetId(), d.GetKey())
}

// makeIPC makes one object with the image's id and creator: the id goes
// to the kind's next_id sysctl, create runs as the creator (IPC_CREAT and
// IPC_EXCL in its flags) and returns the id the kernel gave, which must be
// the image's.
func makeIPC(kind, nextID string, d *ipc_desc.IpcDescEntry, ids IDMap, create func() (int, error)) error {
	cuid, cgid, err := ids.outside(d.GetCuid(), d.GetCgid())
	if err != nil {
		return fmt.Errorf("%s: creator: %w", descName(kind, d), err)
	}
	if err := setSysctl(nextID, strconv.FormatUint(uint64(d.GetId()), 10)); err != nil {
		return fmt.Errorf("%s: %w", descName(kind, d), err)
	}
	var got int
	if err := asIDs(cuid, cgid, func() (err error) { got, err = create(); return err }); err != nil {
		return fmt.Errorf("%s: create as uid %d gid %d: %w", descName(kind, d), cuid, cgid, err)
	}
	if got != int(d.GetId()) {
		return fmt.Errorf("%s: created with id %d: the id is taken", descName(kind, d), got)
	}
	return nil
}

// setPerm fills perm for IPC_SET with the image's owner and mode: ids as
// gocr sees them, only the permission bits (the kernel sets no others).
func setPerm(kind string, p *unix.SysvIpcPerm, d *ipc_desc.IpcDescEntry, ids IDMap) error {
	uid, gid, err := ids.outside(d.GetUid(), d.GetGid())
	if err != nil {
		return fmt.Errorf("%s: owner: %w", descName(kind, d), err)
	}
	p.Uid, p.Gid, p.Mode = uid, gid, d.GetMode()&abi.IpcModeBits
	return nil
}

// sysvIDs lists the ids of one kind of SysV object in the calling
// thread's ipc namespace, from /proc/sysvipc/KIND (the second column).
func sysvIDs(kind string) ([]int, error) {
	p := "/proc/sysvipc/" + kind
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var out []int
	for i, line := range lines[1:] { // a header first
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("%s line %d: %q: too few fields", p, i+2, line)
		}
		id, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: id: %w", p, i+2, err)
		}
		out = append(out, id)
	}
	return out, nil
}
