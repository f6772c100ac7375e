package engine

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/files"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/mem"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
)

// The dump side of a process tree: every descendant of the pid given, found
// through /proc/PID/task/TID/children while its parent is already frozen,
// so the tree cannot change under the dump.

// Task states of TaskCoreEntry.task_state, as CRIU numbers them.
const (
	taskAlive = 1
	taskDead  = 2 // a zombie: only its exit status is left
	// taskStopped is a live process in group stop (state T), put back in
	// it before it is let go.
	taskStopped = 3
)

// procDump is one process of the tree being dumped.
type procDump struct {
	pid, ppid int   // as gocr sees them
	tids      []int // every thread, the leader first; none for a zombie
	seized    []int
	zombie    bool
	exitCode  int // a zombie's wait status
	stat      procfs.TaskStat
	// sharedPending is read right after the seize, before any process of
	// the tree is put in group stop: a child's stop queues a SIGCHLD in
	// its parent that is the dump's, not the task's.
	sharedPending []abi.Siginfo
	// stopped: the process is in the group stop freeze began;
	// wasStopped: it was stopped (state T) before the dump.
	stopped, wasStopped bool
	// stopSig is the signal that stopped it before the dump.
	stopSig unix.Signal
	secbits uint32
	mntNS   uint64 // the mount namespace's nsfs inode
	timeNS  uint64 // the time namespace's, 0 if the kernel has none
	// filesOwner and fsOwner are the process whose fd table and fs info
	// (cwd, root, umask) this one shares (clone with CLONE_FILES or
	// CLONE_FS but not CLONE_THREAD): its parent, or itself.
	filesOwner, fsOwner *procDump
	// seccomp is each thread's seccomp mode (0 off, 1 strict, 2 filter)
	// and nnp its no_new_privs bit, read once all its threads are stopped
	// (see suspendSeccomp), and threadStatus each thread's status as
	// read then, for the credentials of threads other than the main one.
	seccomp      map[int]int
	nnp          map[int]bool
	threadStatus map[int]procfs.TaskStatus
}

// freeze seizes every thread of every process of the tree, parents before
// their children, then puts each live process in group stop (see
// ptrace.StopGroup and watchdog.go), all within o.Timeout.
func (d *dumper) freeze() error {
	st, err := procfs.Stat(d.o.Pid)
	if err != nil {
		return err
	}
	if st.State == 'Z' {
		return fmt.Errorf("process is a zombie")
	}
	deadline := time.Now().Add(d.o.Timeout)
	if dl, ok := d.ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	d.tr.SetDeadline(deadline)
	defer d.tr.SetDeadline(time.Time{})
	queue := []int{d.o.Pid}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		p, err := d.seizeProc(pid)
		if p != nil {
			d.procs = append(d.procs, p)
		}
		if err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		if p.zombie {
			continue // a zombie has no children: they went to a reaper
		}
		// The whole process is stopped: its list of children is final.
		kids, err := procfs.Children(pid)
		if err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		queue = append(queue, kids...)
	}
	if err := d.checkShared(); err != nil {
		return err
	}
	if err := d.at("freeze"); err != nil {
		return err
	}
	if d.wd != nil {
		if err := d.wd.wait(max(d.o.Timeout, 5*time.Second)); err != nil {
			return err
		}
	}
	for _, p := range d.procs {
		if p.zombie {
			continue
		}
		wasStopped, stopSig := d.tr.WasGroupStopped(p.pid)
		p.stopSig = stopSig
		if err := d.wd.send(wdRecord{Kind: wdStopping, Tid: int32(p.pid), Mask: b2u(wasStopped)}); err != nil {
			return err
		}
		if p.wasStopped, err = d.tr.StopGroup(p.pid, p.tids); err != nil {
			if errors.Is(err, ptrace.ErrTimeout) {
				return fmt.Errorf("pid %d: not stopped within --timeout %v: %w", p.pid, d.o.Timeout, err)
			}
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		p.stopped = true
	}
	return d.at("group-stop")
}

// seizeProc seizes every thread of pid, or records it as a zombie.
func (d *dumper) seizeProc(pid int) (*procDump, error) {
	st, err := procfs.Stat(pid)
	if err != nil {
		return nil, err
	}
	p := &procDump{pid: pid, ppid: st.PPid, stat: st}
	if st.State == 'Z' {
		p.zombie, p.exitCode = true, st.ExitCode
		return p, nil
	}
	tids, err := d.tr.SeizeThreads(pid, unix.PTRACE_O_TRACESYSGOOD)
	p.seized = tids
	if err != nil {
		if errors.Is(err, ptrace.ErrTimeout) {
			return p, fmt.Errorf("not every thread stopped within --timeout %v: %w", d.o.Timeout, err)
		}
		return p, err
	}
	// The leader first, then the others in tid order as /proc lists them.
	p.tids = []int{pid}
	for _, t := range tids {
		if t != pid {
			p.tids = append(p.tids, t)
		}
	}
	if err := d.suspendSeccomp(p); err != nil {
		return p, err
	}
	if p.sharedPending, err = d.tr.PeekSiginfo(pid, true); err != nil {
		return p, err
	}
	// Stat again now that nothing runs: the first read may predate a
	// setsid or setpgid.
	if p.stat, err = procfs.Stat(pid); err != nil {
		return p, err
	}
	return p, nil
}

// suspendSeccomp reads each thread's seccomp mode and no_new_privs once
// every thread of the process is stopped (a running sibling could still
// spread a filter with SECCOMP_FILTER_FLAG_TSYNC), and suspends seccomp
// for each thread in strict or filter mode: injected calls would
// otherwise kill a strict task or meet the filters' verdicts. Nothing has
// been injected yet, so a kernel or a gocr that cannot suspend it fails
// the dump with the task untouched.
func (d *dumper) suspendSeccomp(p *procDump) error {
	p.seccomp, p.nnp, p.threadStatus = map[int]int{}, map[int]bool{}, map[int]procfs.TaskStatus{}
	for _, tid := range p.tids {
		st, err := procfs.ThreadStatus(p.pid, tid)
		if err != nil {
			return fmt.Errorf("tid %d: %w", tid, err)
		}
		p.seccomp[tid], p.nnp[tid], p.threadStatus[tid] = st.Seccomp, st.NoNewPrivs, st
		if st.Seccomp == 0 {
			continue
		}
		if err := d.tr.SuspendSeccomp(tid); err != nil {
			return fmt.Errorf("tid %d is in seccomp mode %s: injecting into it needs seccomp suspended (gocr check --feature seccomp_suspend): %w",
				tid, criu_core.SeccompMode(st.Seccomp), err)
		}
	}
	return nil
}

// Kinds of kcmp(2) comparisons of what processes can share.
const (
	kcmpVM      = 1
	kcmpFiles   = 2
	kcmpFS      = 3
	kcmpSighand = 4
)

// checkShared finds what processes of the tree share: an fd table or fs
// info shared with the parent (clone with CLONE_FILES or CLONE_FS but not
// CLONE_THREAD, as a vfork-style helper does) is kept as CRIU keeps it,
// by the ids of the owner; anything else shared (an address space or
// signal handlers, or a table shared with another than the parent) is
// refused: each process would come back with its own.
func (d *dumper) checkShared() error {
	kinds := []struct {
		kcmp  int
		what  string
		owner func(p *procDump) **procDump
	}{
		{kcmpVM, "address space (CLONE_VM)", nil},
		{kcmpFiles, "fd table (CLONE_FILES)", func(p *procDump) **procDump { return &p.filesOwner }},
		{kcmpFS, "fs info (CLONE_FS)", func(p *procDump) **procDump { return &p.fsOwner }},
		{kcmpSighand, "signal handlers (CLONE_SIGHAND)", nil},
	}
	var live []*procDump
	byPid := map[int]*procDump{}
	for _, p := range d.procs {
		p.filesOwner, p.fsOwner = p, p
		if !p.zombie {
			live = append(live, p)
			byPid[p.pid] = p
		}
	}
	for _, k := range kinds {
		for i, b := range live {
			for _, a := range live[:i] { // parents come first
				r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a.pid), uintptr(b.pid), uintptr(k.kcmp), 0, 0, 0)
				if errno != 0 {
					return fmt.Errorf("kcmp pids %d and %d: %w", a.pid, b.pid, errno)
				}
				if r != 0 {
					continue
				}
				parent := byPid[b.ppid]
				if k.owner == nil || parent == nil || *k.owner(parent) != a {
					return fmt.Errorf("pids %d and %d share one %s: not supported yet", a.pid, b.pid, k.what)
				}
				*k.owner(b) = a
				break
			}
		}
	}
	return nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// thaw ends the group stop of every process (unless it was stopped before
// the dump) and detaches every seized thread; the tree runs on as it was.
func (d *dumper) thaw() error {
	var errs []error
	for _, p := range d.procs {
		if p.zombie {
			continue
		}
		// Even when StopGroup failed half-way: its SIGSTOP may have been
		// sent.
		if err := d.tr.ContinueGroup(p.pid); err != nil {
			errs = append(errs, err)
		}
		d.wd.send(wdRecord{Kind: wdContinued, Tid: int32(p.pid)}) //nolint:errcheck // the watchdog would send one SIGCONT more
		for _, tid := range p.seized {
			if err := d.tr.Detach(tid, 0); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// kill ends the dumped tree, children first. The tracer takes the exit of
// every thread, so each parent (or reaper) can then reap the process: a
// traced task's exit goes to its tracer first.
func (d *dumper) kill() {
	for _, p := range slices.Backward(d.procs) {
		if p.zombie {
			continue
		}
		if err := d.tr.KillAndReap(p.pid); err != nil {
			d.log.Warn("kill the dumped process", "pid", p.pid, "err", err)
		}
	}
}

// writeZombie writes what is left of a zombie: its core with the exit
// status, as CRIU does.
func (d *dumper) writeZombie(p *procDump) error {
	vpid := uint32(d.vtid[p.pid])
	mtype := criu_core.CoreEntry_X86_64
	core := &criu_core.CoreEntry{
		Mtype: &mtype,
		Tc: &criu_core.TaskCoreEntry{
			TaskState: ptr(uint32(taskDead)), ExitCode: ptr(uint32(p.exitCode)),
			Comm: ptr(p.stat.Comm), Flags: ptr(uint32(p.stat.Flags)),
			Personality: ptr(uint32(0)), BlkSigset: ptr(uint64(0)),
		},
	}
	return d.dir.WriteOne(image.Core, image.CoreFile(vpid), core)
}

// dumpShmem saves each shared anonymous memory object once, whichever
// processes map it.
func (d *dumper) dumpShmem() error {
	t0 := time.Now()
	st, err := mem.DumpShmem(d.shmem, d.dir)
	if err != nil {
		return fmt.Errorf("dump shared memory: %w", err)
	}
	d.shStats.Scanned += st.Scanned
	d.shStats.Written += st.Written
	// Memfd contents are shmem pages too, saved from the files (CRIU
	// counts them as shpages as well).
	n, err := d.files.WriteMemfds(d.dir, d.idsInside())
	if err != nil {
		return fmt.Errorf("dump memfds: %w", err)
	}
	d.shStats.Scanned += d.files.MemfdPages()
	d.shStats.Written += n
	d.memTime += time.Since(t0)
	return nil
}

// pstreeEntry is the process as pstree.img has it: pids as the tree sees
// them.
func (d *dumper) pstreeEntry(p *procDump) *pstree.PstreeEntry {
	ppid := uint32(0)
	if p.pid != d.o.Pid {
		ppid = uint32(d.vtid[p.ppid])
	}
	e := &pstree.PstreeEntry{Pid: ptr(uint32(d.vtid[p.pid])), Ppid: &ppid,
		Pgid: ptr(d.vpidOf(p.stat.Pgrp)), Sid: ptr(d.vpidOf(p.stat.Session))}
	tids := p.tids
	if p.zombie {
		tids = []int{p.pid}
	}
	for _, tid := range tids {
		e.Threads = append(e.Threads, uint32(d.vtid[tid]))
	}
	return e
}

// writeTreeImages writes what the whole tree shares: pstree, the files,
// what stands in for deleted ones (their ghosts are written as found),
// pipe contents and message queues, and the inventory last — a directory with one holds
// a finished dump.
func (d *dumper) writeTreeImages() error {
	w, err := d.dir.Writer(image.Pstree, image.PstreeFile)
	if err != nil {
		return err
	}
	for _, p := range d.procs {
		if err := w.Write(d.pstreeEntry(p)); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := d.writeHostPstree(); err != nil {
		return err
	}
	if err := image.WriteAll(d.dir, image.Files, image.FilesFile, d.files.Entries); err != nil {
		return err
	}
	if len(d.files.Locks) > 0 {
		w, err = d.dir.Writer(image.FileLocks, image.FileLocksFile)
		if err != nil {
			return err
		}
		for _, l := range d.files.Locks {
			l.Entry.Pid = ptr(int32(d.vtid[l.HostPid]))
			if err := w.Write(l.Entry); err != nil {
				w.Abort()
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	if len(d.files.TtyInfos) > 0 {
		if err := image.WriteAll(d.dir, image.TtyInfo, image.TtyInfoFile, d.files.TtyInfos); err != nil {
			return err
		}
	}
	if len(d.files.TtyData) > 0 {
		if err := image.WriteAll(d.dir, image.TtyData, image.TtyDataFile, d.files.TtyData); err != nil {
			return err
		}
	}
	if err := writePipeData(d.dir, image.PipesData, image.PipesDataFile, d.files.PipeData, d.files.PipeSize); err != nil {
		return err
	}
	if err := writePipeData(d.dir, image.FifoData, image.FifoDataFile, d.files.FifoData, d.files.FifoSize); err != nil {
		return err
	}
	if len(d.files.Remaps) > 0 {
		if err := image.WriteAll(d.dir, image.RemapFpath, image.RemapFpathFile, d.files.Remaps); err != nil {
			return err
		}
	}
	if err := d.files.Mqueues.Write(d.dir); err != nil {
		return err
	}
	if err := d.writeSkQueues(); err != nil {
		return err
	}
	if err := d.files.WritePidfds(d.dir); err != nil {
		return err
	}
	if !d.seccomp.Empty() {
		if err := d.dir.WriteOne(image.Seccomp, image.SeccompFile, d.seccomp.Entry()); err != nil {
			return err
		}
	}
	return d.dir.WriteInventory(image.NewInventory(d.rootIDs(), inventory.Lsmtype_NO_LSM))
}

// writePipeData writes the bytes in flight of pipes or FIFOs, by inode;
// defaultPipeSize is the capacity of a new pipe (16 pages); pipes of
// another size get an entry in pipes-data.img even when empty.
const defaultPipeSize = 16 * 4096

// none, no file.
func writePipeData(dir *image.Dir, kind image.Kind, name string, data map[uint64][]byte, sizes map[uint64]int) error {
	var inos []uint64
	for ino, b := range data {
		if len(b) > 0 || sizes[ino] != defaultPipeSize {
			inos = append(inos, ino)
		}
	}
	if len(inos) == 0 {
		return nil
	}
	slices.Sort(inos)
	w, err := dir.Writer(kind, name)
	if err != nil {
		return err
	}
	for _, ino := range inos {
		b := data[ino]
		e := &pipe_data.PipeDataEntry{PipeId: ptr(uint32(ino)), Bytes: ptr(uint32(len(b))), Size: ptr(uint32(sizes[ino]))}
		if err := w.WritePayload(e, bytes.NewReader(b)); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// writeSkQueues writes the packets in flight to the tree's unix sockets,
// each followed by its bytes, as CRIU's sk-queues.img, and what the
// clients of pending connections had sent to gocr-sk-pending.img.
func (d *dumper) writeSkQueues() error {
	if err := d.writePackets(image.SkQueuesFile, d.files.SkQueues); err != nil {
		return err
	}
	return d.writePackets(image.SkPendingFile, d.files.SkPending)
}

func (d *dumper) writePackets(name string, packets []files.QueuedPacket) error {
	if len(packets) == 0 {
		return nil
	}
	w, err := d.dir.Writer(image.SkQueues, name)
	if err != nil {
		return err
	}
	for _, p := range packets {
		e := &sk_packet.SkPacketEntry{IdFor: ptr(p.IDFor), Length: ptr(uint32(len(p.Data)))}
		if err := w.WritePayload(e, bytes.NewReader(p.Data)); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
