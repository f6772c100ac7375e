package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/file-lock"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	seccompimg "github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/arch"
	"github.com/gocr/gocr/engine/attr"
	"github.com/gocr/gocr/engine/creds"
	"github.com/gocr/gocr/engine/fault"
	"github.com/gocr/gocr/engine/files"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
	"github.com/gocr/gocr/engine/mem"
	"github.com/gocr/gocr/engine/mount"
	"github.com/gocr/gocr/engine/netlock"
	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/engine/remote"
	"github.com/gocr/gocr/engine/seccomp"
	"github.com/gocr/gocr/engine/sig"
)

// stubArg is argv[1] of the re-executed gocr that becomes a restored task.
const stubArg = "__restore-stub"

// IsStub reports whether gocr was started as a restore stub.
func IsStub(args []string) bool { return len(args) > 0 && args[0] == stubArg }

// RunStub is what a stub does if its code ever runs: nothing. A stub is
// stopped at the exit of its execve and its memory is replaced before it
// runs a single instruction of its own; one that gets this far was not
// started by a restoring gocr.
func RunStub(args []string) int { return 125 }

// getsid is gocr's own session.
func getsid() int {
	sid, _ := unix.Getsid(0)
	return sid
}

// Restored is a restored process.
type Restored struct {
	Pid int
}

// Wait waits for the restored process to exit and returns its exit code
// (128+signal if a signal killed it), as criu does without
// --restore-detached. The process is a child of this gocr.
func (r *Restored) Wait(ctx context.Context) (int, error) {
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(r.Pid, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				done <- result{0, fmt.Errorf("wait for pid %d: %w", r.Pid, err)}
				return
			}
			switch {
			case ws.Exited():
				done <- result{ws.ExitStatus(), nil}
				return
			case ws.Signaled():
				done <- result{128 + int(ws.Signal()), nil}
				return
			}
		}
	}()
	select {
	case res := <-done:
		return res.code, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Scratch memory of a restore: a RWX area in a hole free in both the
// stub's and the image's layout. The last page holds the syscall
// instruction injected calls run through once the stub's own code is
// unmapped; the rest is for arguments, at fixed offsets.
const (
	restoreScratch = 64 << 10
	insnOff        = restoreScratch - 16 // `syscall` lives here
	scratchData    = restoreScratch - 4096
	fdPassOff      = 16 << 10 // SCM_RIGHTS buffers: from here to the end of the data area, during a Send only
	mmMapOff       = 20 << 10 // prctl_mm_map
	auxvOff        = 21 << 10 // saved auxv
	pathOff        = 24 << 10 // path strings (PATH_MAX)
	cloneOff       = 32 << 10 // clone_args and set_tid
)

// restoreImages is everything read from the image directory, validated
// before anything is created.
type restoreImages struct {
	procs     []*procImages // pstree order: parents before children, the root first
	byPid     map[int]*procImages
	files     []*fdinfo.FileEntry
	fileByID  map[uint32]*fdinfo.FileEntry
	remaps    map[uint32]*remap.RemapFilePathEntry // by orig_id: what stands in for deleted files
	pidfds    map[uint32]*gocrpb.PidfdEntry        // gocr-pidfds.img, by file id
	pipeData  map[uint32][]byte
	pipeSize  map[uint32]int // capacities, where pipes-data.img has them
	fifoSize  map[uint32]int
	skQueues  map[uint32][][]byte // by the receiving socket's file id
	skPending map[uint32][][]byte // by the sending client's file id
	fifoData  map[uint32][]byte
	memfds    map[uint64]*memfd.MemfdInodeEntry // memfd.img, by inode id
	pages     uint64
	ns        *nsImages
	mntNSs    []uint32 // the mount namespaces the restore makes, in tree order
	nlocks    int      // entries of filelocks.img
	// ttyInfos are tty-info.img's entries by id; ctty the pty that is
	// the controlling terminal of each session, by its leader's pid.
	ttyInfos map[uint32]*tty.TtyInfoEntry
	ctty     map[int]*tty.TtyInfoEntry
	ttyData  map[uint32][]byte // tty-data.img: what each pty side reads next, by the file id of one of its files
	// seccomp is seccomp.img's entry, nil without one; hasSeccomp says
	// some thread of the tree is in strict or filter mode.
	seccomp    *seccompimg.SeccompEntry
	hasSeccomp bool
}

// procImages are the images of one process of the tree.
type procImages struct {
	*restoreImages
	tree     *pstree.PstreeEntry
	pid      int                          // as the tree sees it (1 in a pid namespace of its own)
	tids     []int                        // the leader first, as the tree sees them
	cores    map[int]*criu_core.CoreEntry // by tid
	zombie   bool                         // only tree and the leader's core are read
	stopped  bool                         // in group stop: let go stopped
	stopSig  unix.Signal                  // the signal that stopped it (tc.stop_signo)
	exitCode int                          // a zombie's wait status
	mntNS    uint32                       // the id of its mount namespace
	timeNS   uint32                       // the id of its time namespace, 0 if the image has none
	filesID  uint32                       // whose fd table it has: its own pid, or its parent's table's
	fsID     uint32                       // whose fs info (cwd, root, umask) it has
	mm       *mm.MmEntry
	fs       *fs.FsEntry
	fds      []*fdinfo.FdinfoEntry
	locks    []*file_lock.FileLockEntry // filelocks.img's, for the fd table it owns
	seccomp  map[int]seccomp.Thread     // by tid: mode and filter chain
}

// restorer restores a whole tree; each of its processes has a
// procRestorer.
type restorer struct {
	ctx  context.Context
	o    RestoreOptions
	log  *slog.Logger
	dir  *image.Dir
	img  *restoreImages
	tr   *ptrace.Tracer
	pass *remote.FdPasser
	fr   *files.Restorer

	procs    []*procRestorer   // as img.procs
	sock     int               // every stub's end of pass, by its number in the stubs
	scratch  uint64            // the scratch area, at the same address in every stub
	hostTid  map[int]int       // image tid → tid in gocr's pid namespace, the whole tree
	shm      map[uint64]int    // shared anonymous memory objects: gocr's fd of each, by shmid
	ipc      *ns.IPCRestored   // the tree's own ipc namespace, once made
	mounts   *mount.Set        // every mount namespace's filesystems and mounts
	external map[string]string // --external mnt[KEY]:HOSTPATH
	// mntNS is the first process of each mount namespace: the one that
	// made it, whose /proc/PID/ns/mnt the others join.
	mntNS map[uint32]*procRestorer

	forkTime time.Duration
	pagesN   uint64
}

// procRestorer restores one process: a stub born from its parent's stub.
type procRestorer struct {
	*restorer
	img     *procImages
	parent  *procRestorer // nil for the root
	pid     int           // the stub's pid in gocr's pid namespace
	vpid    int           // its pid in its own: the image's
	spawned bool
	t       *remote.Task // the leader's session with scratch
	threads map[int]*remote.Task
}

// Restore brings back the process tree dumped in o.ImagesDir, with the
// same pids and thread ids.
//
// The checklist: read and check every image (nothing is created before
// they pass); start the root's stub — gocr re-executed, traced from birth
// — with the exact pid, in fresh namespaces of every kind the tree had of
// its own (pid 1 of a fresh pid namespace, with its old pid outside too; a
// fresh user namespace gets its maps before the stub executes); rebuild
// their state (mount tree first, then hostname, ipc limits, network
// devices) before anything is opened; make the tree's time namespace, if
// it has one, before anything is born in it; fork every other process's stub
// from its parent's with its pid, sessions as they are made (a session
// leader takes its controlling terminal right after its setsid), then
// process groups and the terminals' foreground groups, then zombies die
// with their status (makeTree); then, process by
// process, replace its address space with the image's (scratch area, vdso
// moved into place, VMAs mapped, pages written, mm fields and exe set);
// give it its files (a file shared by several processes is opened once);
// set what is process-wide (signal dispositions, timers, umask, limits,
// cwd, shared pending signals); make the other threads; set what is per
// thread (rseq, altstack, tid address, robust list, name, private pending
// signals, credentials and no_new_privs last); then each thread's seccomp
// mode and filters (see seccomp.go; the stubs are traced with seccomp
// suspended); then put the image's registers, FPU state
// and signal mask on every thread and let them go, the root last.
// Whatever fails, every stub is killed and reaped: a failed restore
// leaves nothing behind.
func Restore(ctx context.Context, o RestoreOptions) (*Restored, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ImagesDir == "" {
		return nil, fmt.Errorf("restore: no images directory given (-D)")
	}
	if o.Root == "/" {
		o.Root = ""
	}
	start := time.Now()
	external, err := parseExternalMounts(o.External, true)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if o.Root != "" {
		external[mount.RootKey] = o.Root
	}
	dir, err := image.Open(o.ImagesDir)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	r := &restorer{external: external, o: o, log: o.Log, dir: dir, hostTid: map[int]int{}, shm: map[uint64]int{},
		mounts: mount.NewSet(), mntNS: map[uint32]*procRestorer{}}
	defer r.mounts.Close()
	if r.img, err = checkImages(dir, o, r.mounts); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	byPid := map[int]*procRestorer{}
	for _, pi := range r.img.procs {
		p := &procRestorer{restorer: r, img: pi, vpid: pi.pid, pid: pi.pid, threads: map[int]*remote.Task{}}
		if r.img.ns.has("pid") {
			p.pid = r.img.ns.hostTids[pi.pid] // 0 if unknown: the kernel picks it
		}
		if len(r.procs) > 0 {
			p.parent = byPid[int(pi.tree.GetPpid())]
		}
		byPid[p.vpid] = p
		r.procs = append(r.procs, p)
	}
	root := r.procs[0]
	r.ctx = ctx
	if err := r.at("read"); err != nil {
		return nil, err
	}

	r.tr = ptrace.NewTracer()
	defer r.tr.Close()
	r.fr = files.NewRestorer(r.img.files, "")
	r.fr.PipeData = r.img.pipeData
	r.fr.FifoData = r.img.fifoData
	r.fr.PipeSize, r.fr.FifoSize = r.img.pipeSize, r.img.fifoSize
	r.fr.MqueueFiles = r.img.ns.mqFiles
	r.fr.Pidfds = r.img.pidfds
	r.fr.HostPid = func(vpid int) (int, bool) { h, ok := r.hostTid[vpid]; return h, ok }
	r.fr.Mounts = r.mounts
	r.fr.ShellJob = o.ShellJob
	if r.fr.TtyInfos, err = r.ttyInfosOutside(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	r.fr.TtyData = r.img.ttyData
	for _, f := range r.img.files {
		if reg := f.GetReg(); reg != nil && reg.GetMntId() >= 0 {
			r.mounts.Want(uint32(reg.GetMntId()), reg.GetName())
		}
	}
	r.fr.Remaps, r.fr.Dir, r.fr.UserMaps = r.img.remaps, dir, r.img.ns.user
	r.fr.MemfdInodes, r.fr.Dir, r.fr.HostIDs = r.img.memfds, dir, r.img.ns.hostIDs()
	r.fr.SkQueues, r.fr.SkPending = r.img.skQueues, r.img.skPending
	r.fr.UserNS = r.img.ns.user
	r.fr.TCPClose = o.TCPClose
	r.fr.FdFiles = map[uint32]bool{}
	for _, p := range r.img.procs {
		for _, fd := range p.fds {
			r.fr.FdFiles[fd.GetId()] = true
		}
	}
	defer r.fr.Close()
	// Everything from here runs on the tracer thread: one hand-off, not one
	// per injected call.
	err = r.tr.Do(func() error { return r.restore(ctx) })
	if r.pass != nil {
		r.pass.Close()
	}
	for _, fd := range r.shm {
		unix.Close(fd)
	}
	r.ipc.Close()
	if err != nil {
		r.killAll()
		var te *TaskError
		if errors.As(err, &te) {
			return nil, err
		}
		pid := root.pid
		if pid == 0 {
			pid = root.vpid // never started
		}
		return nil, &TaskError{Pid: pid, Op: "restore", Err: err}
	}
	if err := r.fr.RemoveLinkRemaps(); err != nil {
		r.log.Warn("restored, but a link the dump made for a deleted file is left", "err", err)
	}
	r.pagesN += r.fr.Pages
	elapsed := time.Since(start)
	us := func(d time.Duration) *uint32 { return ptr(uint32(d / time.Microsecond)) }
	if err := dir.WriteRestoreStats(&stats.RestoreStatsEntry{
		ForkingTime: us(r.forkTime), RestoreTime: us(elapsed), PagesRestored: &r.pagesN,
	}); err != nil {
		r.log.Warn("write stats-restore", "err", err)
	}
	r.log.Info("restore done", "pid", root.pid, "processes", len(r.procs), "threads", len(r.hostTid), "pages", r.pagesN, "time", elapsed, "injected", r.tr.Injected())
	return &Restored{Pid: root.pid}, nil
}

// unlockNetwork removes the network lock the dump left on the tree's
// connections (netlock), now that they exist again: in gocr's network
// namespace, which a tree restored into the host's shares (a tree in a
// namespace of its own left the lock in the old one, gone with it).
func (r *restorer) unlockNetwork() error {
	if r.o.NoNetworkLock {
		return nil
	}
	if r.o.JoinNetNS != "" {
		// The namespace the dump locked whole, joined again: the tree's
		// connections are in it, not in gocr's (whose table of the same
		// name may be another tree's).
		return netlock.Remove(r.o.JoinNetNS, netlock.TableName(r.procs[0].vpid))
	}
	established := false
	for _, f := range r.img.files {
		if e := f.GetIsk(); e != nil && e.GetState() == 1 && e.GetType() == unix.SOCK_STREAM {
			established = true
		}
	}
	if !established {
		return nil
	}
	return netlock.Remove("", netlock.TableName(r.procs[0].vpid))
}

// readRestoreImages reads and checks every image the restore uses.
func readRestoreImages(dir *image.Dir) (*restoreImages, error) {
	img := &restoreImages{byPid: map[int]*procImages{}, fileByID: map[uint32]*fdinfo.FileEntry{}, pipeData: map[uint32][]byte{},
		memfds:   map[uint64]*memfd.MemfdInodeEntry{},
		skQueues: map[uint32][][]byte{}, skPending: map[uint32][][]byte{}}
	inv, err := dir.ReadInventory()
	if err != nil {
		return nil, err
	}
	tree, err := image.ReadAll[pstree.PstreeEntry](dir, image.Pstree, image.PstreeFile)
	if err != nil {
		return nil, err
	}
	if err := image.ValidatePstree(image.PstreeFile, tree); err != nil {
		return nil, err
	}
	if img.files, err = image.ReadAll[fdinfo.FileEntry](dir, image.Files, image.FilesFile); err != nil {
		return nil, err
	}
	if err := readMemfds(dir, img); err != nil {
		return nil, err
	}
	for i, f := range img.files {
		img.fileByID[f.GetId()] = f
		if f.Reg != nil {
			if err := image.ValidatePath(image.FilesFile, fmt.Sprintf("[%d].reg.name", i), f.Reg.GetName()); err != nil {
				return nil, err
			}
		}
		if f.Memfd != nil && img.memfds[uint64(f.Memfd.GetInodeId())] == nil {
			return nil, fmt.Errorf("%s: [%d].memfd.inode_id: memfd inode %d is not in %s", image.FilesFile, i, f.Memfd.GetInodeId(), image.MemfdFile)
		}
		if u := f.Usk; u != nil && u.NameDir != nil {
			if err := image.ValidatePath(image.FilesFile, fmt.Sprintf("[%d].usk.name_dir", i), u.GetNameDir()); err != nil {
				return nil, err
			}
		}
		if e := f.Isk; e != nil {
			if err := files.CheckInet(dir, e, true); err != nil {
				return nil, fmt.Errorf("%s: [%d].isk (inet socket %d): %w", image.FilesFile, i, e.GetIno(), err)
			}
		}
	}
	if img.remaps, err = readRemaps(dir, img); err != nil {
		return nil, err
	}
	if img.pidfds, err = files.ReadPidfds(dir,
		func(id uint32) bool { return img.fileByID[id].GetExt() != nil },
		func(pid int) bool {
			return slices.ContainsFunc(tree, func(e *pstree.PstreeEntry) bool { return int(e.GetPid()) == pid })
		}); err != nil {
		return nil, err
	}
	if dir.Exists(image.SeccompFile) {
		if img.seccomp, err = image.ReadOne[seccompimg.SeccompEntry](dir, image.Seccomp, image.SeccompFile); err != nil {
			return nil, err
		}
	}
	for _, e := range tree {
		p, err := readProcImages(dir, img, e)
		if err != nil {
			return nil, err
		}
		img.procs = append(img.procs, p)
		img.byPid[p.pid] = p
	}
	if err := readTtyInfos(dir, img); err != nil {
		return nil, err
	}
	root := img.procs[0]
	if root.zombie {
		return nil, fmt.Errorf("%s: tc.task_state: the tree's root pid %d is a zombie", image.CoreFile(uint32(root.pid)), root.pid)
	}
	taskIDs := root.cores[root.pid].GetIds()
	if idsName := image.IdsFile(uint32(root.pid)); dir.Exists(idsName) {
		// Read even when core has the ids: a damaged file is refused,
		// and the two must agree.
		ids, err := image.ReadOne[criu_core.TaskKobjIdsEntry](dir, image.Ids, idsName)
		if err != nil {
			return nil, err
		}
		if taskIDs == nil {
			taskIDs = ids
		} else if !proto.Equal(ids, taskIDs) {
			return nil, fmt.Errorf("%s: does not match the ids in %s", idsName, image.CoreFile(uint32(root.pid)))
		}
	}
	if img.ns, err = readNamespaces(dir, img, inv.GetRootIds(), taskIDs); err != nil {
		return nil, err
	}
	if err := checkMountNamespaces(dir, img, inv.GetRootIds().GetMntNsId()); err != nil {
		return nil, err
	}
	if img.pipeData, img.pipeSize, err = readPipeData(dir, image.PipesData, image.PipesDataFile); err != nil {
		return nil, err
	}
	if img.fifoData, img.fifoSize, err = readPipeData(dir, image.FifoData, image.FifoDataFile); err != nil {
		return nil, err
	}
	if err := readFileLocks(dir, img); err != nil {
		return nil, err
	}
	if err := readSkQueues(dir, img); err != nil {
		return nil, err
	}
	// Shared memory objects: every run inside the object's mapped size,
	// whichever processes map it.
	shmSize := map[uint64]uint64{}
	for _, p := range img.procs {
		for _, v := range p.mm.GetVmas() {
			if v.GetStatus()&mem.AnonShared != 0 && !mem.IsSysV(v) {
				shmSize[v.GetShmid()] = max(shmSize[v.GetShmid()], v.GetPgoff()+v.GetEnd()-v.GetStart())
			}
		}
	}
	for id, size := range shmSize {
		name := image.ShmemPagemapFile(id)
		if !dir.Exists(name) {
			continue
		}
		spr, err := dir.ShmemPageReader(id)
		if err != nil {
			return nil, err
		}
		for spr.Next() {
			if r := spr.Run(); !r.Present() || r.End() > size {
				spr.Close()
				return nil, fmt.Errorf("%s: pages %#x-%#x: not present, or beyond the object's %d bytes", name, r.Vaddr, r.End(), size)
			}
		}
		err = spr.Err()
		spr.Close()
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// readPipeData reads the bytes in flight of pipes or FIFOs, by pipe id.
func readPipeData(dir *image.Dir, kind image.Kind, name string) (map[uint32][]byte, map[uint32]int, error) {
	out, sizes := map[uint32][]byte{}, map[uint32]int{}
	if !dir.Exists(name) {
		return out, sizes, nil
	}
	rd, err := dir.Reader(kind, name)
	if err != nil {
		return nil, nil, err
	}
	defer rd.Close()
	for {
		var e pipe_data.PipeDataEntry
		if !rd.Next(&e) {
			break
		}
		b, err := io.ReadAll(rd.Payload())
		if err != nil {
			return nil, nil, fmt.Errorf("%s: entry %d: %w", name, rd.Index(), err)
		}
		if sz := e.GetSize(); sz != 0 {
			if sz&(sz-1) != 0 || sz < 4096 || int(sz) < len(b) {
				return nil, nil, &image.Error{File: name, Entry: rd.Index(), Field: "size", Err: fmt.Errorf("%d: not a power of two of at least a page holding the %d bytes in flight: %w", sz, len(b), image.ErrInvalid)}
			}
			sizes[e.GetPipeId()] = int(sz)
		}
		out[e.GetPipeId()] = b
	}
	return out, sizes, rd.Err()
}

// readRemaps reads remap-fpath.img, if the dump wrote one, and checks it
// and the ghost files it names (see files.CheckRemaps).
func readRemaps(dir *image.Dir, img *restoreImages) (map[uint32]*remap.RemapFilePathEntry, error) {
	if !dir.Exists(image.RemapFpathFile) {
		return nil, nil
	}
	rms, err := image.ReadAll[remap.RemapFilePathEntry](dir, image.RemapFpath, image.RemapFpathFile)
	if err != nil {
		return nil, err
	}
	return files.CheckRemaps(dir, img.fileByID, rms)
}

// readMemfds reads memfd.img, the memfd inodes, if the dump had any.
func readMemfds(dir *image.Dir, img *restoreImages) error {
	if !dir.Exists(image.MemfdFile) {
		return nil
	}
	ms, err := image.ReadAll[memfd.MemfdInodeEntry](dir, image.MemfdInode, image.MemfdFile)
	if err != nil {
		return err
	}
	for i, m := range ms {
		if img.memfds[m.GetInodeId()] != nil {
			return fmt.Errorf("%s: [%d].inode_id: inode %d listed twice", image.MemfdFile, i, m.GetInodeId())
		}
		img.memfds[m.GetInodeId()] = m
	}
	return nil
}

// readProcImages reads and checks the images of the process e of the tree.
func readProcImages(dir *image.Dir, img *restoreImages, e *pstree.PstreeEntry) (*procImages, error) {
	p := &procImages{restoreImages: img, tree: e, pid: int(e.GetPid()), cores: map[int]*criu_core.CoreEntry{},
		seccomp: map[int]seccomp.Thread{}}
	p.tids = []int{p.pid}
	for _, t := range e.GetThreads() {
		if int(t) != p.pid {
			p.tids = append(p.tids, int(t))
		}
	}
	for i, tid := range p.tids {
		name := image.CoreFile(uint32(tid))
		c, err := image.ReadOne[criu_core.CoreEntry](dir, image.Core, name)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if c.GetTc() == nil {
				return nil, fmt.Errorf("%s: tc: missing in the leader's core", name)
			}
			switch st := c.GetTc().GetTaskState(); st {
			case taskAlive:
			case taskStopped:
				p.stopped = true
				switch sig := unix.Signal(c.GetTc().GetStopSigno()); sig {
				case 0: // images of old CRIUs
					p.stopSig = unix.SIGSTOP
				case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
					p.stopSig = sig
				default:
					return nil, fmt.Errorf("%s: tc.stop_signo: %d is not a stop signal", name, sig)
				}
			case taskDead:
				if len(p.tids) != 1 {
					return nil, fmt.Errorf("%s: threads: a zombie has %d threads", image.PstreeFile, len(p.tids))
				}
				p.zombie, p.exitCode = true, int(c.GetTc().GetExitCode())
				p.filesID, p.fsID = uint32(p.pid), uint32(p.pid) // nothing shared left
				p.cores[tid] = c
				return p, nil
			default:
				return nil, fmt.Errorf("%s: tc.task_state: %d: only live tasks and zombies are restored", name, st)
			}
		}
		if err := image.ValidateCore(name, c); err != nil {
			return nil, err
		}
		tc := c.GetThreadCore()
		if tc == nil {
			return nil, fmt.Errorf("%s: thread_core: missing", name)
		}
		sc, err := seccomp.ReadThread(tc, img.seccomp)
		if err != nil {
			return nil, fmt.Errorf("%s: thread_core.%w", name, err)
		}
		if sc.Mode != criu_core.SeccompMode_disabled {
			p.seccomp[tid] = sc
			img.hasSeccomp = true
		}
		p.cores[tid] = c
	}
	var err error
	mmName := image.MmFile(uint32(p.pid))
	if p.mm, err = image.ReadOne[mm.MmEntry](dir, image.Mm, mmName); err != nil {
		return nil, err
	}
	if err := image.ValidateMM(mmName, p.mm); err != nil {
		return nil, err
	}
	if p.fs, err = image.ReadOne[fs.FsEntry](dir, image.Fs, image.FsFile(uint32(p.pid))); err != nil {
		return nil, err
	}
	filesID := uint32(p.pid)
	if ids := p.cores[p.pid].GetIds(); ids != nil && ids.FilesId != nil {
		filesID = ids.GetFilesId()
	}
	p.mntNS = p.cores[p.pid].GetIds().GetMntNsId()
	p.timeNS = p.cores[p.pid].GetIds().GetTimeNsId()
	p.filesID, p.fsID = filesID, uint32(p.pid)
	if ids := p.cores[p.pid].GetIds(); ids != nil && ids.FsId != nil {
		p.fsID = ids.GetFsId()
	}
	fdName := image.FdinfoFile(filesID)
	if p.fds, err = image.ReadAll[fdinfo.FdinfoEntry](dir, image.Fdinfo, fdName); err != nil {
		return nil, err
	}
	seenFd := map[uint32]bool{}
	for i, f := range p.fds {
		if err := image.ValidateFd(fdName, fmt.Sprintf("[%d].fd", i), int64(f.GetFd())); err != nil {
			return nil, err
		}
		if seenFd[f.GetFd()] {
			return nil, fmt.Errorf("%s: [%d].fd: fd %d listed twice", fdName, i, f.GetFd())
		}
		seenFd[f.GetFd()] = true
		if img.fileByID[f.GetId()] == nil {
			return nil, fmt.Errorf("%s: [%d].id: fd %d names file id %d, not in %s", fdName, i, f.GetFd(), f.GetId(), image.FilesFile)
		}
	}
	regFile := func(field string, id uint32) error {
		if f := img.fileByID[id]; f == nil || f.Reg == nil {
			return fmt.Errorf("%s: %s: file id %d is not a regular file in %s", mmName, field, id, image.FilesFile)
		}
		return nil
	}
	if err := regFile("exe_file_id", p.mm.GetExeFileId()); err != nil {
		return nil, err
	}
	for i, v := range p.mm.GetVmas() {
		switch {
		case v.GetStatus()&(mem.FilePrivate|mem.FileShared) == 0:
		case v.GetStatus()&mem.AreaMemfd != 0:
			if f := img.fileByID[uint32(v.GetShmid())]; f == nil || f.Memfd == nil {
				return nil, fmt.Errorf("%s: vmas[%d].shmid: file id %d is not a memfd in %s", mmName, i, v.GetShmid(), image.FilesFile)
			}
		default:
			if err := regFile(fmt.Sprintf("vmas[%d].shmid", i), uint32(v.GetShmid())); err != nil {
				return nil, err
			}
		}
		if v.GetStatus()&mem.AreaRegular == 0 && v.GetStatus()&mem.AreaVsyscall == 0 {
			return nil, fmt.Errorf("%s: vmas[%d].status: %#x: not a regular area gocr can map", mmName, i, v.GetStatus())
		}
	}
	for _, id := range []uint32{p.fs.GetCwdId(), p.fs.GetRootId()} {
		if f := img.fileByID[id]; f == nil || f.Reg == nil {
			return nil, fmt.Errorf("%s: cwd/root file id %d is not in %s", image.FsFile(uint32(p.pid)), id, image.FilesFile)
		}
	}
	pr, err := dir.PageReader(uint32(p.pid))
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	pages, err := mem.CheckPages(pr, p.mm.GetVmas())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", image.PagemapFile(uint32(p.pid)), err)
	}
	img.pages += pages
	return p, nil
}

// checkImages reads an images directory and runs every check restore
// makes before it starts anything: the images' own consistency, this
// machine's privileges, the task attributes it can set, file locks and
// --root against the options, and the plan of the mount namespaces (peer
// groups this kernel can rebuild, a host path for each external mount).
// Restore calls it first; so does the dump, before it kills the tree or
// says it is done: a dump that succeeds restores.
func checkImages(dir *image.Dir, o RestoreOptions, mounts *mount.Set) (*restoreImages, error) {
	img, err := readRestoreImages(dir)
	if err != nil {
		return nil, err
	}
	if err := checkPrivileges(img); err != nil {
		return nil, err
	}
	if err := checkTreeShape(img); err != nil {
		return nil, err
	}
	for i, f := range img.files {
		if e := f.GetIsk(); e != nil {
			if err := files.CheckInet(dir, e, o.TCPClose); err != nil {
				return nil, fmt.Errorf("%s: [%d].isk (inet socket %d): %w", image.FilesFile, i, e.GetIno(), err)
			}
		}
	}
	if err := checkTaskAttrs(img); err != nil {
		return nil, err
	}
	if err := checkPosixTimers(img); err != nil {
		return nil, err
	}
	if err := checkMMState(img); err != nil {
		return nil, err
	}
	if img.nlocks > 0 && !o.FileLocks {
		return nil, fmt.Errorf("the images hold %d file locks (%s): restore with --file-locks to take them again", img.nlocks, image.FileLocksFile)
	}
	if err := checkRestoreRoot(dir, img, o.Root); err != nil {
		return nil, err
	}
	if err := mounts.Plan(dir, img.mntNSs, nil); err != nil {
		return nil, err
	}
	return img, nil
}

// checkTreeShape refuses, before anything is made, sessions, process
// groups and zombies that the tree's making (setSession, setGroup, die)
// cannot bring back.
func checkTreeShape(img *restoreImages) error {
	for i, p := range img.procs {
		pid, sid, pgid := uint32(p.pid), p.tree.GetSid(), p.tree.GetPgid()
		var parent *procImages
		if i > 0 {
			parent = img.byPid[int(p.tree.GetPpid())]
		}
		what := fmt.Sprintf("%s: pid %d", image.PstreeFile, pid)
		if parent != nil && sid != pid && sid != parent.tree.GetSid() {
			return fmt.Errorf("%s: session %d is not its parent's (%d), nor its own: not supported yet", what, sid, parent.tree.GetSid())
		}
		if parent != nil && pgid != sid && pgid != pid && img.byPid[int(pgid)] == nil {
			return fmt.Errorf("%s: process group %d: its leader is not in the image: not supported yet", what, pgid)
		}
		if p.zombie && p.exitCode&0x7f != 0 && p.exitCode&0x80 != 0 {
			return fmt.Errorf("%s: zombie killed by signal %d with a core dump: not supported yet", what, p.exitCode&0x7f)
		}
	}
	return nil
}

// checkTaskAttrs refuses, before anything is made, attributes of the
// images' tasks that restore cannot set (see package attr).
func checkTaskAttrs(img *restoreImages) error {
	for _, p := range img.procs {
		if p.zombie {
			continue
		}
		for tid, core := range p.cores {
			if tc := core.GetTc(); tc != nil && tc.Loginuid != nil {
				if err := attr.CheckLoginuid(tc.GetLoginuid()); err != nil {
					return fmt.Errorf("%s: tc.loginuid: %w", image.CoreFile(uint32(tid)), err)
				}
			}
			if th := core.GetThreadCore(); th != nil && (th.SchedPolicy != nil || th.SchedNice != nil) {
				s := attr.Sched{Policy: th.GetSchedPolicy(), Prio: th.GetSchedPrio(), Nice: th.GetSchedNice()}
				if err := attr.CheckSched(s); err != nil {
					return fmt.Errorf("%s: thread_core: %w", image.CoreFile(uint32(tid)), err)
				}
			}
		}
	}
	return nil
}

// readFileLocks reads filelocks.img, when the tree held locks: each lock
// goes to the process whose fd table its owner uses, and must name an fd
// of that table.
func readFileLocks(dir *image.Dir, img *restoreImages) error {
	if !dir.Exists(image.FileLocksFile) {
		return nil
	}
	locks, err := image.ReadAll[file_lock.FileLockEntry](dir, image.FileLocks, image.FileLocksFile)
	if err != nil {
		return err
	}
	for i, e := range locks {
		bad := func(field string, err error) error {
			return &image.Error{File: image.FileLocksFile, Entry: i, Field: field, Err: fmt.Errorf("%w: %w", err, image.ErrInvalid)}
		}
		if err := files.CheckLock(e); err != nil {
			return bad("", err)
		}
		p := img.byPid[int(e.GetPid())]
		if p == nil || p.zombie {
			return bad("pid", fmt.Errorf("%d is no live process of %s", e.GetPid(), image.PstreeFile))
		}
		owner := img.byPid[int(p.filesID)]
		if owner == nil || !slices.ContainsFunc(owner.fds, func(f *fdinfo.FdinfoEntry) bool { return int32(f.GetFd()) == e.GetFd() }) {
			return bad("fd", fmt.Errorf("pid %d has no fd %d", e.GetPid(), e.GetFd()))
		}
		owner.locks = append(owner.locks, e)
		img.nlocks++
	}
	return nil
}

// readSkQueues reads the packets in flight to unix sockets, and those the
// clients of pending connections had sent, each for a unix socket of
// files.img.
func readSkQueues(dir *image.Dir, img *restoreImages) error {
	if err := readPackets(dir, image.SkQueuesFile, img, img.skQueues); err != nil {
		return err
	}
	return readPackets(dir, image.SkPendingFile, img, img.skPending)
}

func readPackets(dir *image.Dir, name string, img *restoreImages, out map[uint32][][]byte) error {
	if !dir.Exists(name) {
		return nil
	}
	rd, err := dir.Reader(image.SkQueues, name)
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		var e sk_packet.SkPacketEntry
		if !rd.Next(&e) {
			break
		}
		if f := img.fileByID[e.GetIdFor()]; f == nil || f.Usk == nil {
			return fmt.Errorf("%s: entry %d: id_for %d is not a unix socket in %s", name, rd.Index(), e.GetIdFor(), image.FilesFile)
		}
		if len(e.GetScm()) > 0 {
			return fmt.Errorf("%s: entry %d: file descriptors in flight are not supported", name, rd.Index())
		}
		b, err := io.ReadAll(rd.Payload())
		if err != nil {
			return fmt.Errorf("%s: entry %d: %w", name, rd.Index(), err)
		}
		out[e.GetIdFor()] = append(out[e.GetIdFor()], b)
	}
	return rd.Err()
}

// restore runs the checklist on the tracer thread. Each step after the
// tree is made runs for every process before the next step starts.
func (r *restorer) restore(ctx context.Context) error {
	each := func(do func(p *procRestorer) error) func() error {
		return func() error {
			for _, p := range r.procs {
				if p.img.zombie {
					continue
				}
				if err := do(p); err != nil {
					return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
				}
			}
			return nil
		}
	}
	steps := []struct {
		name, fault string // fault: the step's name in fault.RestoreSteps, reached once it is done
		do          func() error
	}{
		{"start the stub", "spawn", r.spawn},
		{"restore namespaces", "namespaces", r.restoreNamespaces},
		{"prepare the stub", "prepare", r.prepare},
		{"make the time namespace", "", r.makeTimeNamespace},
		{"make the tree", "tree", r.makeTree},
		{"restore memory", "memory", each((*procRestorer).restoreMemory)},
		{"remove SysV segments removed while attached", "", r.removeShm},
		{"restore files", "files", r.restoreFiles},
		{"restore process state", "process", each((*procRestorer).restoreProcess)},
		{"remove ghost files", "", r.fr.RemoveGhosts}, // every process has what it needs of them
		{"create threads", "threads", each((*procRestorer).createThreads)},
		{"restore POSIX timers", "", each((*procRestorer).restorePosixTimers)}, // after the threads: SIGEV_THREAD_ID needs its own
		{"restore thread state", "thread-state", each((*procRestorer).restoreThreads)},
		{"remove the network lock", "", r.unlockNetwork},
		{"restore seccomp", "", each((*procRestorer).restoreSeccomp)}, // last: see seccomp.go
		{"resume", "", r.finish},                                      // its points are inside
	}
	for _, s := range steps {
		t0 := time.Now()
		err := s.do()
		if err == nil && s.fault != "" {
			err = r.at(s.fault)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.log.Debug("restore step done", "step", s.name, "took", time.Since(t0))
	}
	return nil
}

// killAll kills and reaps every stub made so far, children first. A
// zombie made already goes with its parent, to a reaper.
func (r *restorer) killAll() {
	for _, p := range slices.Backward(r.procs) {
		if !p.spawned || p.img.zombie {
			continue
		}
		if err := r.tr.KillAndReap(p.pid); err != nil {
			r.log.Warn("kill the half-restored stub", "pid", p.pid, "err", err)
		}
	}
}

// spawn starts the root's stub with the image's pid, holding our end of
// the fd passing socket.
func (r *restorer) spawn() error {
	var err error
	if r.pass, err = remote.NewFdPasser(); err != nil {
		return err
	}
	r.sock = r.pass.RemoteFd()
	t0 := time.Now()
	root := r.procs[0]
	// In a pid namespace of its own the stub is its init, with the image's
	// pid outside too when the image has it.
	tids := []int{root.vpid}
	if r.img.ns.has("pid") && root.pid != 0 {
		tids = append(tids, root.pid)
	}
	err = r.pass.Inheritable(func() error {
		kinds := r.img.ns.kinds()
		if r.o.JoinNetNS != "" {
			kinds = slices.DeleteFunc(kinds, func(k string) bool { return k == "net" })
		}
		spec := ptrace.StubSpec{
			Tids: tids, Flags: ns.CloneFlags(kinds...), Path: "/proc/self/exe", Argv: []string{"gocr", stubArg},
			NetNS:   r.o.JoinNetNS,
			Options: unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_EXITKILL,
		}
		if r.img.hasSeccomp {
			// Every stub and thread forked from this one inherits it: the
			// calls injected after a task's seccomp mode is set (the
			// last of them unmaps the scratch area) are not judged by it.
			spec.Options |= unix.PTRACE_O_SUSPEND_SECCOMP
		}
		if u := r.img.ns.user; u != nil {
			// Born in a fresh user namespace: its maps are written before
			// it executes, and it executes as that namespace's root, so
			// it has every capability there.
			spec.BeforeExec = func(pid int) error { return ns.WriteUserMaps(pid, u) }
			spec.Root = true
		}
		pid, err := r.tr.SpawnStub(spec)
		root.pid = pid
		return err
	})
	r.forkTime = time.Since(t0)
	if err != nil {
		if r.img.hasSeccomp && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
			err = fmt.Errorf("the image has tasks in seccomp mode, restored under PTRACE_O_SUSPEND_SECCOMP (gocr check --feature seccomp_suspend): %w", err)
		}
		return err
	}
	root.spawned = true
	r.hostTid[root.vpid] = root.pid
	r.pass.CloseRemote() // the stub has its own copy now
	r.fr.Root, r.fr.Pid = fmt.Sprintf("/proc/%d/root", root.pid), root.pid
	r.fr.NetNS = fmt.Sprintf("/proc/%d/ns/net", root.pid)
	return nil
}

// prepare maps the scratch area in the root's stub, moves injection onto
// its syscall instruction and closes the fds the stub inherited from
// gocr. The stubs of the other processes are forked from it afterwards
// and inherit all of this.
func (r *restorer) prepare() error {
	root := r.procs[0]
	insn, err := ptrace.FindSyscallInsn(root.pid)
	if err != nil {
		return err
	}
	lead, err := r.tr.BeginInject(root.pid, insn)
	if err != nil {
		return err
	}
	stubMaps, err := procfs.Maps(root.pid)
	if err != nil {
		return err
	}
	busy := r.busy(stubMaps)
	addr, ok := mem.FindHole(busy, restoreScratch, 1<<32, 1<<47-1<<24, 1<<20)
	if !ok {
		return fmt.Errorf("no hole of %d bytes free in both the stub's and the image's address space", restoreScratch)
	}
	t, err := remote.MapScratch(lead, root.pid, addr, restoreScratch, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC)
	if err != nil {
		return err
	}
	root.t, r.scratch = t, addr
	t.Size = scratchData
	if err := ptrace.WriteMem(root.pid, addr+insnOff, []byte{0x0f, 0x05}); err != nil {
		return err
	}
	lead.SetSyscallInsn(addr + insnOff)
	root.threads[root.vpid] = t
	// The stub inherited gocr's inheritable fds: keep only the socket.
	if r.sock > 0 {
		if _, err := t.Syscall(unix.SYS_CLOSE_RANGE, 0, uint64(r.sock-1), 0); err != nil {
			return fmt.Errorf("close inherited fds: %w", err)
		}
	}
	if _, err := t.Syscall(unix.SYS_CLOSE_RANGE, uint64(r.sock+1), uint64(^uint32(0)), 0); err != nil {
		return fmt.Errorf("close inherited fds: %w", err)
	}
	return nil
}

// makeTree forks every other process's stub from its parent's, parents
// first, with its pid; sessions are made as the processes are (a child
// inherits its parent's, and the controlling terminal its leader took
// before forking it; see terminal.go), then process groups and the
// foreground group of each terminal, then zombies die with their exit
// status.
func (r *restorer) makeTree() error {
	root := r.procs[0]
	if err := root.setSession(); err != nil {
		return &TaskError{Pid: root.vpid, Op: "restore", Err: err}
	}
	t0 := time.Now()
	for _, p := range r.procs[1:] {
		if err := p.fork(); err != nil {
			return &TaskError{Pid: p.vpid, Op: "restore", Err: fmt.Errorf("fork from pid %d: %w", p.parent.vpid, err)}
		}
		if err := p.setSession(); err != nil {
			return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
		}
	}
	r.forkTime += time.Since(t0)
	// Group leaders first: a group is joined only once it exists.
	for _, leaders := range []bool{true, false} {
		for _, p := range r.procs {
			if (int(p.img.tree.GetPgid()) == p.vpid) == leaders {
				if err := p.setGroup(); err != nil {
					return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
				}
			}
		}
	}
	for _, p := range r.procs {
		if err := p.setForeground(); err != nil {
			return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
		}
	}
	for _, p := range r.procs {
		if p.img.zombie {
			if err := p.die(); err != nil {
				return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
			}
		}
	}
	return nil
}

// fork makes the process's stub as a child of its parent's stub, stopped
// and with a session of its own that shares the scratch area (a copy, at
// the same address).
func (p *procRestorer) fork() error {
	spec, want := p.tidSpec(p.vpid, p.parent.t.Scratch+cloneOff)
	spec.Process = true
	for _, s := range []struct {
		mine, parents uint32
		flag          uint64
		what          string
	}{{p.img.filesID, p.parent.img.filesID, unix.CLONE_FILES, "fd table"}, {p.img.fsID, p.parent.img.fsID, unix.CLONE_FS, "fs info"}} {
		switch {
		case s.mine == uint32(p.vpid):
		case s.mine == s.parents:
			spec.Share |= s.flag
		default:
			return fmt.Errorf("its %s is pid %d's, not its own or its parent's (%d): not supported", s.what, s.mine, s.parents)
		}
	}
	got, err := p.parent.cloneThread(spec)
	if err != nil {
		return err
	}
	p.pid, p.spawned = got, true
	if want != 0 && got != want {
		if spec.Before == nil {
			return fmt.Errorf("created as %d, not %d (%s)", got, want, pidUser(want))
		}
		r := p.restorer
		r.log.Info("process has another pid outside its pid namespace", "pid", p.vpid, "outside", got, "dumped", want, "holder", pidUser(want))
	}
	r := p.restorer
	r.hostTid[p.vpid] = got
	rt, err := r.tr.BeginInject(got, r.scratch+insnOff)
	if err != nil {
		return err
	}
	p.t = p.parent.t.Forked(rt, got)
	p.threads[p.vpid] = p.t
	if p.img.mntNS != p.parent.img.mntNS {
		return p.enterMountNS()
	}
	return nil
}

// tidSpec says how to make the image's tid: its number in the tree's pid
// namespace, and outside too when the tree has a pid namespace of its own
// (want, 0 if unknown). A stub in a user namespace of its own may not
// pick its tid in gocr's pid namespace: gocr makes it the next one there
// instead (Before).
func (p *procRestorer) tidSpec(tid int, scratch uint64) (spec ptrace.ThreadSpec, want int) {
	spec = ptrace.ThreadSpec{Tids: []int{tid}, Scratch: scratch}
	want = tid
	if p.img.ns.has("pid") {
		want = p.img.ns.hostTids[tid]
		switch {
		case want == 0:
		case p.img.ns.user != nil:
			spec.Before = func() error { return ns.SetLastPid(want - 1) }
		default:
			spec.Tids = append(spec.Tids, want)
		}
	}
	return spec, want
}

// setSession makes the stub the leader of a session if the dumped process
// was; otherwise it keeps its parent's, which must be the image's. A
// session led by a process outside the image is kept only if gocr is in it
// too (the root's stub inherits gocr's).
func (p *procRestorer) setSession() error {
	pid, sid := uint32(p.vpid), p.img.tree.GetSid()
	switch {
	case sid == pid:
		if _, err := p.t.Syscall(unix.SYS_SETSID); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
		return p.takeTerminal()
	case p.parent != nil && sid != p.parent.img.tree.GetSid():
		return fmt.Errorf("session %d is not its parent's (%d), nor its own: not supported yet", sid, p.parent.img.tree.GetSid())
	case p.parent == nil && uint32(getsid()) != sid:
		p.log.Warn("session outside the image is not restored", "pid", pid, "sid", sid)
	}
	return nil
}

// setGroup puts the process in its process group: its own, or one led by
// another process of the tree in its session.
func (p *procRestorer) setGroup() error {
	pid, pgid := uint32(p.vpid), p.img.tree.GetPgid()
	switch {
	case pgid == p.img.tree.GetSid():
		// A session leader's group, made by setsid; its members inherit
		// it unless they were moved.
		if pgid != pid && p.parent != nil && p.parent.img.tree.GetPgid() != pgid {
			return p.joinGroup(pgid)
		}
	case pgid == pid:
		if _, err := p.t.Syscall(unix.SYS_SETPGID, 0, 0); err != nil {
			return fmt.Errorf("setpgid: %w", err)
		}
	case p.img.byPid[int(pgid)] != nil:
		return p.joinGroup(pgid)
	case p.parent == nil && uint32(unix.Getpgrp()) != pgid:
		p.log.Warn("process group outside the image is not restored", "pid", pid, "pgid", pgid)
	case p.parent != nil:
		return fmt.Errorf("process group %d: its leader is not in the image: not supported yet", pgid)
	}
	return nil
}

func (p *procRestorer) joinGroup(pgid uint32) error {
	if _, err := p.t.Syscall(unix.SYS_SETPGID, 0, uint64(pgid)); err != nil {
		return fmt.Errorf("setpgid %d: %w", pgid, err)
	}
	return nil
}

// die ends a zombie's stub the way the process ended: exit with its code,
// or killed by its signal. gocr, its tracer, takes the exit first; the
// parent's stub then has a zombie child with that status.
func (p *procRestorer) die() error {
	status := p.img.exitCode
	if comm := p.img.cores[p.vpid].GetTc().GetComm(); comm != "" {
		addr, err := p.t.WriteString(pathOff, comm)
		if err != nil {
			return err
		}
		if _, err := p.t.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, addr); err != nil {
			return fmt.Errorf("set comm %q: %w", comm, err)
		}
	}
	if sig := unix.Signal(status & 0x7f); sig != 0 {
		return p.dieBy(sig)
	}
	_, err := p.t.Syscall(unix.SYS_EXIT_GROUP, uint64(status>>8&0xff))
	switch {
	case errors.Is(err, ptrace.ErrExited):
		return nil
	case err == nil:
		return fmt.Errorf("exit_group returned")
	}
	return fmt.Errorf("exit %d: %w", status>>8&0xff, err)
}

// dieBy kills a zombie's stub by sig: at its default action, unblocked,
// and with no core file to write (the image's status says none was).
func (p *procRestorer) dieBy(sig unix.Signal) error {
	if sig == unix.SIGKILL {
		// Neither caught, blocked nor dumped.
		return p.tr.KillBy(p.pid, sig)
	}
	// Not dumpable: no core, even for a core_pattern pipe, which ignores
	// RLIMIT_CORE.
	if _, err := p.t.Syscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0); err != nil {
		return fmt.Errorf("not dumpable: %w", err)
	}
	dfl, err := p.t.WriteU64s(pathOff, []uint64{0, 0, 0, 0}) // struct sigaction: SIG_DFL, no flags, empty mask
	if err != nil {
		return err
	}
	if _, err := p.t.Syscall(unix.SYS_RT_SIGACTION, uint64(sig), dfl, 0, 8); err != nil {
		return fmt.Errorf("default action of %v: %w", sig, err)
	}
	if _, err := p.t.Syscall(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_CORE, dfl, 0); err != nil {
		return fmt.Errorf("core size limit 0: %w", err)
	}
	set, err := p.t.WriteU64s(pathOff+64, []uint64{1 << (uint(sig) - 1)})
	if err != nil {
		return err
	}
	if _, err := p.t.Syscall(unix.SYS_RT_SIGPROCMASK, unix.SIG_UNBLOCK, set, 0, 8); err != nil {
		return fmt.Errorf("unblock %v: %w", sig, err)
	}
	return p.tr.KillBy(p.pid, sig)
}

// busy is every range the scratch area must avoid: the stub's mappings and
// the image's.
func (r *restorer) busy(stubMaps []procfs.VMA) []mem.Range {
	var busy []mem.Range
	for _, m := range stubMaps {
		busy = append(busy, mem.Range{Start: m.Start, End: m.End})
	}
	for _, p := range r.img.procs {
		for _, v := range p.mm.GetVmas() {
			busy = append(busy, mem.Range{Start: v.GetStart(), End: v.GetEnd()})
		}
	}
	return busy
}

func (r *restorer) scratchRange() mem.Range {
	return mem.Range{Start: r.scratch, End: r.scratch + restoreScratch}
}

// restoreMemory replaces the stub's address space with the image's.
func (r *procRestorer) restoreMemory() error {
	t, img := r.t, r.img
	stubMaps, err := procfs.Maps(r.pid)
	if err != nil {
		return err
	}
	vdso := mem.VDSOMaps(stubMaps)
	keep := append([]mem.Range{r.scratchRange()}, vdso...)
	if err := mem.UnmapExcept(t, stubMaps, keep); err != nil {
		return err
	}
	var span uint64
	if len(vdso) > 0 {
		span = vdso[len(vdso)-1].End - vdso[0].Start
	}
	tmp, ok := mem.FindHole(append(r.busy(stubMaps), r.scratchRange()), max(span, 4096), 1<<32, 1<<47-1<<24, 1<<20)
	if !ok {
		return fmt.Errorf("no hole to move the vdso through")
	}
	if err := mem.MoveVDSO(t, vdso, img.mm.GetVmas(), tmp); err != nil {
		return err
	}

	// The files behind file mappings, and the exe, go in first.
	var ids []uint32
	var local []int
	seen := map[uint32]bool{}
	want := func(id uint32) error {
		if seen[id] {
			return nil
		}
		seen[id] = true
		fd, err := r.fr.Open(id)
		if err != nil {
			return err
		}
		ids, local = append(ids, id), append(local, fd)
		return nil
	}
	exeID := img.mm.GetExeFileId()
	if err := want(exeID); err != nil {
		return fmt.Errorf("exe: %w", err)
	}
	for _, v := range img.mm.GetVmas() {
		if v.GetStatus()&(mem.FilePrivate|mem.FileShared) != 0 {
			if err := want(uint32(v.GetShmid())); err != nil {
				return fmt.Errorf("VMA %#x-%#x: %w", v.GetStart(), v.GetEnd(), err)
			}
		}
	}
	got, err := r.pass.Send(t, r.sock, fdPassOff, local)
	if err != nil {
		return err
	}
	inStub := map[uint32]int{}
	for i, id := range ids {
		inStub[id] = got[i]
	}
	// The exe before the image's VMAs: the kernel refuses to change it
	// while the old one is still mapped, and the old one (gocr) may be the
	// very file the image maps.
	if err := r.setMM(inStub[exeID]); err != nil {
		return err
	}
	shm, err := r.restoreShmem(stubMaps)
	if err != nil {
		return err
	}
	// SysV attachments first: shmat wants its whole range free.
	if err := mem.AttachSysV(t, r.pid, img.mm.GetVmas()); err != nil {
		return err
	}
	var vmas []*vma.VmaEntry
	for _, v := range img.mm.GetVmas() {
		if !mem.IsSysV(v) {
			vmas = append(vmas, v)
		}
	}
	if err := mem.MapVMAs(t, vmas, mem.Fds{Files: inStub, Shmem: shm}); err != nil {
		return err
	}
	pr, err := r.dir.PageReader(uint32(r.vpid))
	if err != nil {
		return err
	}
	defer pr.Close()
	pages, err := mem.RestorePages(r.pid, pr, mem.Droppable(vmas))
	if err != nil {
		return err
	}
	r.pagesN += pages
	for _, fd := range shm {
		got = append(got, fd)
	}
	for _, fd := range got {
		if _, err := t.Syscall(unix.SYS_CLOSE, uint64(fd)); err != nil {
			return fmt.Errorf("close passed fd %d: %w", fd, err)
		}
	}
	return nil
}

// removeShm removes again the SysV shm segments of the tree's ipc
// namespace that the dump found removed but still attached (SHM_DEST): the
// restored processes have attached them by now, and the last detach
// destroys them, as it would have.
func (r *restorer) removeShm() error {
	if r.ipc == nil {
		return nil
	}
	return ns.RemoveShm(r.procs[0].pid, r.ipc.Removed)
}

// restoreShmem gives the stub each shared anonymous memory object its
// VMAs map, and returns the stub's fd of each. The first process that
// needs an object makes it: mapped anonymous and shared at a free spot (so
// the kernel makes it the same kind of shmem file as before), filled with
// its pages, opened by gocr through /proc/PID/map_files and unmapped
// again. gocr keeps that fd, so every process of the tree gets the same
// object; each VMA then maps it from the fd passed in.
func (r *procRestorer) restoreShmem(stubMaps []procfs.VMA) (map[uint64]int, error) {
	t := r.t
	size := map[uint64]uint64{}
	for _, p := range r.img.procs {
		for _, v := range p.mm.GetVmas() {
			if v.GetStatus()&mem.AnonShared != 0 && !mem.IsSysV(v) {
				size[v.GetShmid()] = max(size[v.GetShmid()], v.GetPgoff()+v.GetEnd()-v.GetStart())
			}
		}
	}
	var ids []uint64
	for _, v := range r.img.mm.GetVmas() {
		if v.GetStatus()&mem.AnonShared != 0 && !mem.IsSysV(v) && !slices.Contains(ids, v.GetShmid()) {
			ids = append(ids, v.GetShmid())
		}
	}
	out := map[uint64]int{}
	for _, id := range ids {
		fd, ok := r.shm[id]
		if !ok {
			var err error
			if fd, err = r.makeShmem(stubMaps, id, size[id]); err != nil {
				return nil, fmt.Errorf("shared memory %d: %w", id, err)
			}
			r.shm[id] = fd
		}
		got, err := r.pass.Send(t, r.sock, fdPassOff, []int{fd})
		if err != nil {
			return nil, fmt.Errorf("shared memory %d: %w", id, err)
		}
		out[id] = got[0]
	}
	return out, nil
}

// makeShmem makes a shared anonymous memory object of n bytes in the
// stub, fills it and returns gocr's fd of it.
func (r *procRestorer) makeShmem(stubMaps []procfs.VMA, id, n uint64) (int, error) {
	t := r.t
	busy := append(r.busy(stubMaps), r.scratchRange())
	addr, ok := mem.FindHole(busy, n, 1<<32, 1<<47-1<<24, 1<<20)
	if !ok {
		return -1, fmt.Errorf("no hole of %d bytes to build it in", n)
	}
	if _, err := t.Syscall(unix.SYS_MMAP, addr, n, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return -1, fmt.Errorf("map %d bytes: %w", n, err)
	}
	pages, err := mem.RestoreShmem(r.pid, r.dir, id, addr, n)
	if err != nil {
		return -1, err
	}
	r.pagesN += pages
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", r.pid, addr, addr+n), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open through map_files: %w", err)
	}
	if _, err := t.Syscall(unix.SYS_MUNMAP, addr, n); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("unmap: %w", err)
	}
	return fd, nil
}

// setMM sets the mm fields, the auxv and the exe in one
// prctl(PR_SET_MM, PR_SET_MM_MAP); brk comes back with them.
func (r *procRestorer) setMM(exeFd int) error {
	t, m := r.t, r.img.mm
	auxv := m.GetMmSavedAuxv()
	auxvAddr, err := t.WriteU64s(auxvOff, auxv)
	if err != nil {
		return err
	}
	pm := abi.PrctlMMMap{
		StartCode: m.GetMmStartCode(), EndCode: m.GetMmEndCode(), StartData: m.GetMmStartData(), EndData: m.GetMmEndData(),
		StartBrk: m.GetMmStartBrk(), Brk: m.GetMmBrk(), StartStack: m.GetMmStartStack(),
		ArgStart: m.GetMmArgStart(), ArgEnd: m.GetMmArgEnd(), EnvStart: m.GetMmEnvStart(), EnvEnd: m.GetMmEnvEnd(),
		Auxv: auxvAddr, AuxvSize: uint32(8 * len(auxv)), ExeFd: uint32(exeFd),
	}
	if err := remote.WriteStruct(t, mmMapOff, &pm); err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, t.Scratch+mmMapOff, uint64(unsafe.Sizeof(pm))); err != nil {
		return fmt.Errorf("prctl PR_SET_MM_MAP (code %#x-%#x data %#x-%#x brk %#x-%#x stack %#x): %w",
			pm.StartCode, pm.EndCode, pm.StartData, pm.EndData, pm.StartBrk, pm.Brk, pm.StartStack, err)
	}
	return nil
}

// restoreFiles gives every process its fd table, then seals the memfds:
// a seal against writes must wait until every writable file and mapping
// of the memfd is made.
func (r *restorer) restoreFiles() error {
	for _, p := range r.procs {
		if p.img.zombie {
			continue
		}
		if err := p.restoreFiles(); err != nil {
			return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
		}
	}
	return r.fr.SealMemfds()
}

// restoreFiles gives the stub its fd table, unless it shares its parent's
// (CLONE_FILES), which the parent restores.
func (r *procRestorer) restoreFiles() error {
	if r.img.filesID != uint32(r.vpid) {
		return nil
	}
	if err := r.fr.RestoreTable(r.t, r.pass, r.sock, fdPassOff, r.img.fds); err != nil {
		return err
	}
	return files.RestoreLocks(r.t, fdPassOff, r.img.locks)
}

// restoreProcess sets what the whole process shares.
func (r *procRestorer) restoreProcess() error {
	t, img := r.t, r.img
	tc := img.cores[r.vpid].GetTc()
	if tc.OomScoreAdj != nil {
		if err := attr.RestoreOOMScoreAdj(r.pid, tc.GetOomScoreAdj()); err != nil {
			return err
		}
	}
	if err := sig.RestoreActions(t, tc.GetSigactions()); err != nil {
		return err
	}
	if err := r.restoreItimers(tc); err != nil {
		return err
	}
	if err := r.restoreMMState(); err != nil {
		return err
	}
	if img.fs.Umask != nil {
		if _, err := t.Syscall(unix.SYS_UMASK, uint64(img.fs.GetUmask())); err != nil {
			return fmt.Errorf("umask %#o: %w", img.fs.GetUmask(), err)
		}
	}
	if p := tc.GetPersonality(); p != 0 {
		if _, err := t.Syscall(unix.SYS_PERSONALITY, uint64(p)); err != nil {
			return fmt.Errorf("personality %#x: %w", p, err)
		}
	}
	if err := r.restoreRlimits(tc); err != nil {
		return err
	}
	// The cwd first: both names are as gocr sees them (readlink of
	// /proc/PID/cwd and root), from outside any chroot, and a chrooted
	// task's cwd name would not resolve inside its new root.
	cwd, err := r.fr.DirName(img.fs.GetCwdId())
	if err != nil {
		return fmt.Errorf("cwd: %w", err)
	}
	addr, err := t.WriteString(pathOff, cwd)
	if err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_CHDIR, addr); err != nil {
		return fmt.Errorf("chdir %s: %w", cwd, err)
	}
	root := img.fileByID[img.fs.GetRootId()].GetReg().GetName()
	if root != "/" {
		addr, err := t.WriteString(pathOff, root)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_CHROOT, addr); err != nil {
			return fmt.Errorf("chroot %s: %w", root, err)
		}
	}
	if tc.GetChildSubreaper() {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1); err != nil {
			return fmt.Errorf("set child subreaper: %w", err)
		}
	}
	if err := r.takeZombieSigchld(); err != nil {
		return err
	}
	if q := tc.GetSignalsS(); q != nil {
		if err := sig.Requeue(t, r.vpid, r.vpid, q, true); err != nil {
			return fmt.Errorf("shared pending signals: %w", err)
		}
	}
	return nil
}

// takeZombieSigchld takes back the SIGCHLD the restore's zombies queued
// in their parent when they died (makeTree): the dumped parent had taken
// it already, or has it among the pending signals of its image.
func (r *procRestorer) takeZombieSigchld() error {
	parent := false
	for _, p := range r.img.procs {
		parent = parent || p.zombie && int(p.tree.GetPpid()) == r.vpid
	}
	if !parent {
		return nil
	}
	t := r.t
	set := uint64(1) << (unix.SIGCHLD - 1)
	var zero [2]uint64 // a timeout of 0: poll
	if _, err := t.WriteU64s(0, append([]uint64{set}, zero[:]...)); err != nil {
		return err
	}
	for {
		_, err := t.Syscall(unix.SYS_RT_SIGTIMEDWAIT, t.Scratch, 0, t.Scratch+8, 8)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("take the zombies' SIGCHLD: %w", err)
		}
	}
}

// restoreItimers sets the three interval timers. setitimer adds one tick
// to the value of a CPU-time timer (ITIMER_VIRTUAL, ITIMER_PROF) so it can
// never fire early; the value getitimer gave at dump already had it, so
// the tick, measured here, is taken off again lest each restore add one.
func (r *procRestorer) restoreItimers(tc *criu_core.TaskCoreEntry) error {
	t, tm := r.t, tc.GetTimers()
	if tm == nil {
		return nil
	}
	set := func(which int, v [4]uint64) error {
		if err := remote.WriteStruct(t, 0, &v); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SETITIMER, uint64(which), t.Scratch, 0); err != nil {
			return fmt.Errorf("setitimer %d (%d.%06ds every %d.%06ds): %w", which, v[2], v[3], v[0], v[1], err)
		}
		return nil
	}
	// The tick is measured once, on ITIMER_VIRTUAL, before that timer is
	// set: measuring it later would disarm a timer already restored. The
	// task runs no user code meanwhile, so its virtual clock stands still
	// and what comes back is 1 s + tick (less, if a tick of user time was
	// charged in between: then no tick is taken off).
	var tick uint64 // in µs
	armed := func(it *timer.ItimerEntry) bool {
		return it.GetIsec()|it.GetIusec()|it.GetVsec()|it.GetVusec() != 0
	}
	if armed(tm.GetVirt()) || armed(tm.GetProf()) {
		if err := set(unix.ITIMER_VIRTUAL, [4]uint64{0, 0, 1, 0}); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_GETITIMER, unix.ITIMER_VIRTUAL, t.Scratch); err != nil {
			return fmt.Errorf("getitimer: %w", err)
		}
		var got [4]uint64
		if err := remote.ReadStruct(t, 0, &got); err != nil {
			return err
		}
		tick = max(got[2]*1e6+got[3], 1e6) - 1e6
		if err := set(unix.ITIMER_VIRTUAL, [4]uint64{}); err != nil {
			return err
		}
	}
	for which, it := range []*timer.ItimerEntry{tm.GetReal(), tm.GetVirt(), tm.GetProf()} {
		v := [4]uint64{it.GetIsec(), it.GetIusec(), it.GetVsec(), it.GetVusec()}
		if v == [4]uint64{} {
			continue
		}
		if v[2] == 0 && v[3] == 0 {
			// Expired, and rearmed only when its signal (pending in the
			// image) is taken: a value of 0 would disarm it for good, so
			// let it expire again at once; the signals merge.
			v[3] = 1
		}
		if us := v[2]*1e6 + v[3]; which != unix.ITIMER_REAL && us > tick {
			us -= tick
			v[2], v[3] = us/1e6, us%1e6
		}
		if err := set(which, v); err != nil {
			return err
		}
	}
	return nil
}

// restoreRlimits sets each limit with an injected prlimit64. A hard limit
// above the stub's cannot be restored without CAP_SYS_RESOURCE, and is
// refused by name rather than silently kept lower.
func (r *procRestorer) restoreRlimits(tc *criu_core.TaskCoreEntry) error {
	t := r.t
	for res, l := range tc.GetRlimits().GetRlimits() {
		if _, err := t.Syscall(unix.SYS_PRLIMIT64, 0, uint64(res), 0, t.Scratch); err != nil {
			return fmt.Errorf("read rlimit %d: %w", res, err)
		}
		var old [2]uint64
		if err := remote.ReadStruct(t, 0, &old); err != nil {
			return err
		}
		want := [2]uint64{l.GetCur(), l.GetMax()}
		if want == old {
			continue
		}
		if err := remote.WriteStruct(t, 0, &want); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_PRLIMIT64, 0, uint64(res), t.Scratch, 0); err != nil {
			if errors.Is(err, unix.EPERM) && want[1] > old[1] {
				return fmt.Errorf("rlimit %d: hard limit %d is above this restore's %d, and raising it needs CAP_SYS_RESOURCE: %w", res, want[1], old[1], err)
			}
			return fmt.Errorf("set rlimit %d to %d/%d: %w", res, want[0], want[1], err)
		}
	}
	return nil
}

// createThreads makes every other thread of the image with its tid.
func (r *procRestorer) createThreads() error {
	if r.img.ns.user != nil && len(r.img.tids) > 1 {
		// Outside tids then come from ns_last_pid, and a thread gocr's own
		// runtime starts in that window would take one: give the runtime
		// idle threads beforehand and no garbage collection to start.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		warmRuntimeThreads(2 * runtime.GOMAXPROCS(0))
	}
	for _, tid := range r.img.tids[1:] {
		// In a pid namespace of its own the thread has a tid at both
		// levels: innermost first.
		spec, want := r.tidSpec(tid, r.t.Scratch+cloneOff)
		got, err := r.cloneThread(spec)
		// With ns_last_pid another task of the host may take the tid
		// first: let the wrong thread exit and try again.
		for try := 1; err == nil && spec.Before != nil && got != want && try < 3; try++ {
			r.log.Debug("thread made with the wrong tid outside, again", "thread", tid, "got", got, "want", want)
			if err = r.dropThread(got); err == nil {
				got, err = r.cloneThread(spec)
			}
		}
		if err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("thread %d (%s): %w", tid, pidUser(want), err)
			}
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		switch {
		case want != 0 && got != want && spec.Before != nil:
			// Only the tid inside the tree's pid namespace is the tree's;
			// the one outside is the host's, which any fork on the host
			// may take first (CRIU does not keep it at all).
			r.log.Info("thread has another tid outside its pid namespace", "thread", tid, "outside", got, "dumped", want, "holder", pidUser(want))
		case want != 0 && got != want:
			return fmt.Errorf("thread %d: created as %d, not %d (%s)", tid, got, want, pidUser(want))
		}
		r.hostTid[tid] = got
		rt, err := r.tr.BeginInject(got, r.t.Scratch+insnOff)
		if err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		r.threads[tid] = r.t.On(rt)
	}
	return nil
}

// dropThread makes a thread just created, still stopped before its first
// instruction, run exit(2): only that thread ends.
func (r *procRestorer) dropThread(tid int) error {
	rt, err := r.tr.BeginInject(tid, r.t.Scratch+insnOff)
	if err != nil {
		return fmt.Errorf("drop thread %d: %w", tid, err)
	}
	_, err = rt.Syscall(unix.SYS_EXIT, 0)
	switch {
	case errors.Is(err, ptrace.ErrExited):
		return nil
	case err == nil:
		return fmt.Errorf("drop thread %d: exit returned", tid)
	}
	return fmt.Errorf("drop thread %d: %w", tid, err)
}

// pidUser says which process holds pid, for an error message.
func pidUser(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fmt.Sprintf("pid %d is not in use now", pid)
	}
	name, tgid := "?", "?"
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Name:\t"); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(l, "Tgid:\t"); ok {
			tgid = v
		}
	}
	return fmt.Sprintf("pid %d is held by %s, process %s", pid, name, tgid)
}

// restoreThreads sets the per-thread kernel state, the leader last so its
// credentials drop after every thread was made with the stub's.
func (r *procRestorer) restoreThreads() error {
	order := append(append([]int(nil), r.img.tids[1:]...), r.vpid)
	stubStatus, err := procfs.Status(r.pid)
	if err != nil {
		return err
	}
	secbits, err := r.t.Syscall(unix.SYS_PRCTL, unix.PR_GET_SECUREBITS)
	if err != nil {
		return fmt.Errorf("get securebits: %w", err)
	}
	if r.filtersFirst() {
		if err := r.installFilters(); err != nil {
			return err
		}
	}
	for _, tid := range order {
		tt, core := r.threads[tid], r.img.cores[tid]
		if err := r.restoreThread(tt, tid, core, stubStatus, uint32(secbits)); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	if d := r.img.mm.Dumpable; d != nil && (*d == 0 || *d == 1) {
		if _, err := r.t.Syscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uint64(*d)); err != nil {
			return fmt.Errorf("set dumpable %d: %w", *d, err)
		}
	}
	return nil
}

// restoreThread sets the state of thread tid (the image's tid) through its
// session t.
func (r *procRestorer) restoreThread(t *remote.Task, tid int, core *criu_core.CoreEntry, stub procfs.TaskStatus, stubSecbits uint32) error {
	tc := core.GetThreadCore()
	comm := tc.GetComm()
	if comm == "" && core.GetTc() != nil {
		comm = core.GetTc().GetComm()
	}
	if comm != "" {
		addr, err := t.WriteString(pathOff, comm)
		if err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, addr); err != nil {
			return fmt.Errorf("set comm %q: %w", comm, err)
		}
	}
	if sas := tc.GetSas(); sas != nil && sas.GetSsFlags()&abi.SS_DISABLE == 0 && sas.GetSsSize() != 0 {
		st := abi.StackT{Sp: sas.GetSsSp(), Flags: int32(sas.GetSsFlags() &^ abi.SS_ONSTACK), Size: sas.GetSsSize()}
		if err := remote.WriteStruct(t, 0, &st); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_SIGALTSTACK, t.Scratch, 0); err != nil {
			return fmt.Errorf("sigaltstack %#x+%d: %w", st.Sp, st.Size, err)
		}
	}
	if a := core.GetThreadInfo().GetClearTidAddr(); a != 0 {
		if _, err := t.Syscall(unix.SYS_SET_TID_ADDRESS, a); err != nil {
			return fmt.Errorf("set_tid_address %#x: %w", a, err)
		}
	}
	if head := tc.GetFutexRla(); head != 0 {
		if _, err := t.Syscall(unix.SYS_SET_ROBUST_LIST, head, uint64(tc.GetFutexRlaLen())); err != nil {
			return fmt.Errorf("set_robust_list %#x: %w", head, err)
		}
	}
	if rs := tc.GetRseqEntry(); rs != nil && rs.GetRseqAbiPointer() != 0 {
		if _, err := t.Syscall(unix.SYS_RSEQ, rs.GetRseqAbiPointer(), uint64(rs.GetRseqAbiSize()), 0, uint64(rs.GetSignature())); err != nil {
			return fmt.Errorf("rseq %#x size %d: %w", rs.GetRseqAbiPointer(), rs.GetRseqAbiSize(), err)
		}
	}
	if q := tc.GetSignalsP(); q != nil {
		if err := sig.Requeue(t, r.vpid, tid, q, false); err != nil {
			return fmt.Errorf("pending signals: %w", err)
		}
	}
	if tc.SchedPolicy != nil || tc.SchedNice != nil {
		s := attr.Sched{Policy: tc.GetSchedPolicy(), Prio: tc.GetSchedPrio(), Nice: tc.GetSchedNice()}
		if err := attr.RestoreSched(t.Tid(), s); err != nil {
			return err
		}
	}
	// In a fresh user namespace /proc shows the stub's ids as gocr sees
	// them, not as the image has them: always set them.
	if c := tc.GetCreds(); c != nil && (r.img.ns.user != nil || !creds.Same(c, stub, stubSecbits)) {
		if err := creds.Restore(t, c); err != nil {
			return err
		}
	}
	if creds.NoNewPrivs(tc.GetCreds()) {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	// After the credentials: changing ids clears the parent-death signal.
	if s := tc.GetPdeathSig(); s != 0 {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uint64(s)); err != nil {
			return fmt.Errorf("set parent-death signal %d: %w", s, err)
		}
	}
	return nil
}

// finish puts the image's registers, FPU state and signal mask on every
// thread of every process and lets them all go, the root last. File
// owners first: every process and thread they may name exists now.
func (r *restorer) finish() error {
	if err := r.fr.RestoreOwners(); err != nil {
		return fmt.Errorf("restore: file owners: %w", err)
	}
	for _, p := range r.procs {
		if p.img.zombie {
			continue
		}
		if err := p.finish(); err != nil {
			return &TaskError{Pid: p.vpid, Op: "restore", Err: err}
		}
	}
	if err := r.at("resume"); err != nil {
		return err
	}
	// Let go: the threads first, so each leader finds them running, and
	// the children before the root. Until the root goes too, a dead gocr
	// takes the whole tree with it (PTRACE_O_EXITKILL kills every traced
	// process of it).
	for _, p := range slices.Backward(r.procs) {
		if p.img.zombie {
			continue
		}
		if p.img.stopped {
			// Queued while every thread is still ours: the first thread
			// let go takes it before any instruction of its own and stops
			// the whole process, as before the dump, by the same signal
			// (its parent's waitid sees which).
			if err := unix.Kill(p.pid, r.stopSignal(p)); err != nil {
				return &TaskError{Pid: p.vpid, Op: "restore: put back in group stop", Err: err}
			}
		}
		for _, tid := range p.img.tids[1:] {
			if err := r.tr.Detach(r.hostTid[tid], 0); err != nil {
				return err
			}
		}
		if p.parent == nil {
			if err := r.at("detach"); err != nil {
				return err
			}
		}
		if err := r.tr.Detach(p.pid, 0); err != nil {
			return err
		}
	}
	return r.running()
}

// finish puts the image's registers, FPU state and signal mask on every
// thread of the process. The leader's last injected call removes the
// scratch area; since the syscall instruction lived there, the leader
// leaves that call straight onto the image's registers (SetSaved + End).
func (r *procRestorer) finish() error {
	layout := arch.HostLayout()
	set := func(tid int, core *criu_core.CoreEntry) error {
		tc := core.GetThreadCore()
		mask := tc.GetBlkSigset()
		if tc.BlkSigset == nil && core.GetTc() != nil {
			mask = core.GetTc().GetBlkSigset()
		}
		if err := r.tr.SetSigmask(tid, mask); err != nil {
			return err
		}
		tmpl, err := r.tr.GetXState(tid)
		if err != nil {
			return err
		}
		xs, err := layout.XStateFromFPRegs(core.GetThreadInfo().GetFpregs(), tmpl)
		if err != nil {
			return err
		}
		return r.tr.SetXState(tid, xs)
	}
	for _, tid := range r.img.tids[1:] {
		core, htid := r.img.cores[tid], r.hostTid[tid]
		if err := r.threads[tid].End(); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		if err := r.tr.SetRegs(htid, arch.RegsFromImage(core.GetThreadInfo().GetGpregs())); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		if err := set(htid, core); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	core := r.img.cores[r.vpid]
	r.t.SetSaved(arch.RegsFromImage(core.GetThreadInfo().GetGpregs()))
	if _, err := r.t.Syscall(unix.SYS_MUNMAP, r.t.Scratch, restoreScratch); err != nil {
		return fmt.Errorf("unmap scratch memory: %w", err)
	}
	if err := r.t.End(); err != nil {
		return err
	}
	return set(r.pid, core)
}

// running checks that every thread of the restored tree runs, and that
// each zombie is one: gocr reports success only for a whole tree.
func (r *restorer) running() error {
	for _, p := range r.procs {
		for _, tid := range p.img.tids {
			htid := r.hostTid[tid]
			st, err := procfs.Stat(htid)
			switch {
			case err != nil:
			case p.img.zombie && st.State != 'Z':
				err = fmt.Errorf("state %c, not a zombie", st.State)
			case !p.img.zombie && (st.State == 'Z' || st.State == 'X'):
				err = fmt.Errorf("state %c", st.State)
			}
			if err != nil {
				return fmt.Errorf("pid %d thread %d (tid %d here) is not running after being let go: %w", p.vpid, tid, htid, err)
			}
		}
	}
	return nil
}

// at is a named step of the restore checklist: fault injection, and where
// a cancelled context (SIGINT, SIGTERM) stops the restore.
func (r *restorer) at(step string) error { return r.o.Fault.At(r.ctx, fault.Restore, step) }

// checkPrivileges refuses, for a gocr without full privileges, credentials
// in the image beyond those of the user running it.
func checkPrivileges(img *restoreImages) error {
	inv, err := procfs.Status(os.Getpid())
	if err != nil {
		return err
	}
	if creds.FullyPrivileged(inv) {
		return nil
	}
	for _, p := range img.procs {
		for _, tid := range p.tids {
			c := p.cores[tid].GetThreadCore().GetCreds()
			if c == nil {
				continue
			}
			if err := creds.Within(c, inv); err != nil {
				return fmt.Errorf("%s: thread_core.%w", image.CoreFile(uint32(tid)), err)
			}
		}
	}
	return nil
}

// warmRuntimeThreads leaves n idle OS threads in the Go runtime's pool:
// each goroutine locked to a thread makes the runtime start one, and the
// thread stays idle for reuse once it is unlocked.
func warmRuntimeThreads(n int) {
	var locked, done sync.WaitGroup
	start := make(chan struct{})
	for range n {
		locked.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			locked.Done()
			<-start // parked while locked: its thread can serve no one else
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(start)
	done.Wait()
}

// cloneThread makes one thread, waiting a little while its tid is still
// taken: the threads of the task killed by the dump are released by the
// kernel only once they have all finished exiting.
func (r *procRestorer) cloneThread(spec ptrace.ThreadSpec) (int, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, err := r.t.CloneThread(spec)
		if !errors.Is(err, unix.EEXIST) || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopSignal is the signal that puts p back in group stop: the one that
// stopped it before the dump, but SIGSTOP for a terminal stop signal
// (SIGTSTP, SIGTTIN, SIGTTOU) when p's process group is orphaned in the
// restored tree, where the kernel would discard it and let p run. A group
// is orphaned when no member has a parent of the same session in another
// group; the root's parent, outside the tree, is not counted.
func (r *restorer) stopSignal(p *procRestorer) unix.Signal {
	sig := p.img.stopSig
	if sig == unix.SIGSTOP {
		return sig
	}
	pgid := p.img.tree.GetPgid()
	for _, m := range r.procs {
		t := m.img.tree
		if t.GetPgid() != pgid || m.parent == nil {
			continue
		}
		if pt := m.parent.img.tree; pt.GetPgid() != pgid && pt.GetSid() == t.GetSid() {
			return sig
		}
	}
	return unix.SIGSTOP
}
