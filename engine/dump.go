package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
	"unsafe"

	criu_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"
	creds_img "github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/rlimit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/rseq"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
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
	"github.com/gocr/gocr/engine/mem"
	"github.com/gocr/gocr/engine/mount"
	"github.com/gocr/gocr/engine/netlock"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/engine/remote"
	"github.com/gocr/gocr/engine/seccomp"
	"github.com/gocr/gocr/engine/sig"
)

// scratchSize is the memory injected into a task while it is dumped or
// restored for system call arguments and results.
const scratchSize = 64 << 10

// Dump checkpoints the process tree rooted at o.Pid into o.ImagesDir.
//
// The checklist: seize every thread of every process of the tree, parents
// before children (each stops where it is; see tree.go), save the
// namespaces the tree has of its own (user, pid, mnt, uts, ipc, net; see
// namespaces.go), then for each process read what /proc and ptrace show
// from outside, and read by injected system calls what only the task
// itself can see (dispositions, timers, brk, per-thread kernel pointers)
// while its memory is copied (see dumpProc); check the controlling
// terminals (terminal.go: a terminal outside the tree only with
// --shell-job); write the images, what the processes share last (pstree,
// files and ttys, shared memory, inventory), and finally kill the tree or
// let it run on. Whatever fails, no process that is not dumped to the end is
// harmed: each is detached with its registers and masks as they were, and
// runs on untouched.
func Dump(ctx context.Context, o DumpOptions) (err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Pid <= 0 {
		return fmt.Errorf("dump: no pid given")
	}
	if o.ImagesDir == "" {
		return fmt.Errorf("dump: no images directory given (-D)")
	}
	if o.Root == "/" {
		o.Root = ""
	}
	if o.Root != "" {
		if err := mount.CheckRoot(o.Pid, o.Root); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := image.Create(o.ImagesDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	d := &dumper{ctx: ctx, o: o, log: o.Log, dir: dir, tr: ptrace.NewTracer(), files: files.NewSet(dir), layout: arch.HostLayout()}
	d.files.FileLocks = o.FileLocks
	d.files.TCPEstablished, d.files.TCPClose, d.files.SkipInFlight = o.TCPEstablished, o.TCPClose, o.SkipInFlight
	d.files.GhostLimit = o.GhostLimit
	d.files.ContentsSaved = func(dev uint64) bool { return dir.Exists(mount.TmpfsFile(unix.Major(dev)<<20 | unix.Minor(dev))) }
	defer d.files.Close()
	// The watchdog stands down last, after the tracer is closed: the
	// kernel has let go of every thread by then.
	defer func() {
		d.tr.Close()
		d.wd.stop()
	}()
	if !o.NoWatchdog {
		if d.wd, err = startWatchdog(o.Pid); err != nil {
			return &TaskError{Pid: o.Pid, Op: "dump", Err: err}
		}
		d.tr.SetJournal(d.wd)
		d.files.Repair = d.wd
	}
	start := time.Now()
	if err := d.freeze(); err != nil {
		if terr := d.thaw(); terr != nil {
			err = errors.Join(err, terr)
		}
		return &TaskError{Pid: o.Pid, Op: "dump: freeze", Err: err}
	}
	d.frozenAt = time.Now()
	// Namespaces before the task, as CRIU does: they decide which pids
	// the images speak of.
	err = d.dumpNamespaces()
	if err == nil {
		d.files.UserMaps = d.userns
		d.files.NetNsID, d.files.UserNS = uint32(d.nsIDs["net"]), d.userns
		d.files.VPid = d.processVPid
		if !o.NoNetworkLock {
			root := int(d.vpidOf(o.Pid))
			d.files.LockName = netlock.TableName(root)
			if d.wd != nil {
				d.wd.lockRoot = root
			}
			if d.ownNet {
				// Nothing in or out of the tree's own network namespace
				// from here until the restore, as CRIU locks a
				// container's.
				err = d.files.LockNetns(o.Pid)
				if errors.Is(err, netlock.ErrNoNftables) {
					d.log.Warn("the tree's network namespace is not locked during the dump", "err", err)
					err = nil
				}
			}
		}
		if err == nil {
			err = d.at("namespaces")
		}
	}
	for _, p := range d.procs {
		if err == nil {
			err = d.dumpProc(p)
		}
	}
	if err == nil {
		err = d.dumpTerminals()
	}
	if err == nil {
		err = d.dumpShmem()
	}
	if err == nil {
		// Sockets are checked once every process's fds are known: a
		// peer may be another process's.
		err = d.files.FinishUnix()
	}
	if err == nil {
		err = d.files.SettleTCP()
	}
	if err == nil {
		err = d.takePendingConnections()
	}
	if err == nil {
		err = d.writeTreeImages()
	}
	if err == nil {
		err = d.writeStats(start)
	}
	if err == nil {
		err = d.checkRestorable()
	}
	if err == nil {
		d.log.Info("dump written", "pid", o.Pid, "pages", d.memStats.Written, "shared_pages", d.shStats.Written, "frozen", time.Since(d.frozenAt), "injected", d.tr.Injected())
		err = d.at("resume")
	}
	if err != nil || o.LeaveRunning {
		// Connections leave repair mode before the tree runs again.
		if rerr := d.files.EndRepair(); rerr != nil {
			if err != nil {
				err = errors.Join(err, rerr)
			} else {
				err = fmt.Errorf("dumped, but a connection stays in repair mode: %w", rerr)
			}
		}
		// The links made for deleted files go before the tree runs
		// again: it must find its filesystem as it left it.
		if lerr := d.files.DropLinkRemaps(); lerr != nil && err != nil {
			err = errors.Join(err, lerr)
		} else if lerr != nil {
			d.log.Warn("dumped, but a link made for a deleted file is left", "err", lerr)
		}
		if terr := d.thaw(); terr != nil && err == nil {
			err = terr
		}
		if err != nil {
			return &TaskError{Pid: o.Pid, Op: "dump", Err: err}
		}
		return nil
	}
	// A dumped tree is killed, as criu does without --leave-running.
	d.kill()
	return nil
}

// processVPid numbers a process of the tree as the images do; a pid that
// is no process of the tree (a thread other than a leader too: restore
// makes threads after files) is not found.
func (d *dumper) processVPid(host int) (int, bool) {
	for _, p := range d.procs {
		if p.pid == host {
			return int(d.vpidOf(host)), true
		}
	}
	return 0, false
}

// checkRestorable runs restore's own checks (checkImages) over the images
// just written, with the options a restore of them would need: anything
// restore would refuse fails the dump with the same message, the tree
// running on. External mounts named by key at dump get their host path
// only at restore: any path stands in for it here.
func (d *dumper) checkRestorable() error {
	dir, err := image.Open(d.o.ImagesDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	mounts := mount.NewSet()
	defer mounts.Close()
	if _, err := checkImages(dir, RestoreOptions{FileLocks: d.o.FileLocks, Root: d.o.Root, TCPClose: d.o.TCPClose && !d.o.TCPEstablished}, mounts); err != nil {
		return fmt.Errorf("the images would not restore: %w", err)
	}
	return nil
}

// at is a named step of the dump checklist: fault injection, and the place
// a cancelled context (SIGINT, SIGTERM) stops the dump.
// At -v4 it logs the step and the time since the tree was frozen.
func (d *dumper) at(step string) error {
	if !d.frozenAt.IsZero() {
		d.log.Debug("dump step", "step", step, "frozen_for", time.Since(d.frozenAt))
	}
	return d.o.Fault.At(d.ctx, fault.Dump, step)
}

type dumper struct {
	ctx    context.Context
	o      DumpOptions
	wd     *watchdog // nil with NoWatchdog
	log    *slog.Logger
	dir    *image.Dir
	tr     *ptrace.Tracer
	files  *files.Set
	layout arch.Layout

	// procs is every process of the tree, parents before children, the
	// root first (see tree.go).
	procs []*procDump
	// The pids the images speak of are those the tree sees: in a pid
	// namespace of its own the root is 1 (see dumpNamespaces).
	vtid      map[int]int         // host tid → tid in the tree's pid namespace
	vpid      int                 // the root's
	nsIDs     map[string]uint64   // the tree's namespaces, by kind
	ownNet    bool                // the tree has a network namespace of its own: it is locked whole
	rootNsIDs map[string]uint64   // gocr's
	userns    *userns.UsernsEntry // the maps of the tree's own user namespace, if it has one
	frozenAt  time.Time
	memStats  mem.PageStats  // private memory of the tasks (pages_*)
	shStats   mem.PageStats  // shared memory: shared anonymous, memfd (shpages_*)
	memTime   time.Duration  // copying memory into the pages images, summed over processes
	shmem     []mem.TaskVMAs // every process's shared anonymous VMAs, dumped once per object
	seccomp   seccomp.Table  // the tree's seccomp filter chains, for seccomp.img
}

// threadState is what the dump keeps of one thread.
type threadState struct {
	tid       int
	regs      abi.PtraceRegs
	xstate    []byte
	sigmask   uint64
	pending   []abi.Siginfo
	rseq      abi.PtraceRseqConfiguration
	hasRseq   bool
	rseqArea  []byte // the contents of the rseq area as the thread stopped
	noRseqCfg bool   // the kernel cannot tell where that area is (PTRACE_GET_RSEQ_CONFIGURATION is 5.13's)
	comm      string
	clearTid  uint64
	sas       abi.StackT
	pdeathSig uint64
	robust    uint64
	robustLen uint64
	sched     attr.Sched
	seccomp   criu_core.SeccompMode
	filters   seccomp.Chain // in filter mode, the oldest first
	nnp       bool
}

// dumpProc dumps one process of the tree: a zombie by its exit status
// alone, a live one whole.
//
// Its pages are copied (a second a GiB) in a goroutine from the start,
// while the registers are read, the system calls injected, the files read
// and the other images written: the tree is frozen until the copy ends,
// and the rest then costs it little more. The overlap is safe because
// nothing else the dump does changes the memory the copy reads, but one
// thing: the kernel rewrites each thread's rseq area (cpu ids, rseq_cs)
// whenever an injected call returns to user mode. Those areas are read
// with the registers, and from before the first injection the copy puts
// them back into the pages as they were (see mem.Overlays). Otherwise
// the injected calls write only into the scratch mapping, which is not
// among the VMAs copied; every signal is blocked while they run, so no
// handler frame lands on a stack; and registers and files are read from
// outside. The copy shares nothing with the rest of the dump: it has its
// own VMA list (copyList) and page writer.
func (d *dumper) dumpProc(p *procDump) (err error) {
	if p.zombie {
		return d.writeZombie(p)
	}
	pid := p.pid
	// The copy starts first: it needs only where the VMAs with contents
	// are, which /proc/PID/maps tells at once (see copyList).
	copyVMAs, err := copyList(pid)
	if err != nil {
		return err
	}
	var rseqAreas mem.Overlays
	md, err := d.startMemDump(pid, copyVMAs, &rseqAreas)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil { // stop the copy; its own error matters only if it failed by itself
			merr := md.wait(true)
			if merr != nil && !errors.Is(merr, context.Canceled) && !errors.Is(merr, context.DeadlineExceeded) {
				err = errors.Join(err, merr)
			}
		}
	}()

	stat, err := procfs.Stat(pid)
	if err != nil {
		return err
	}
	status, err := procfs.Status(pid)
	if err != nil {
		return err
	}
	// Registers before any injection, untouched by anything gocr does;
	// smaps meanwhile (it walks the page tables: ~10 ms a GiB).
	type smapsResult struct {
		vmas []procfs.VMA
		err  error
	}
	smapsc := make(chan smapsResult, 1)
	go func() {
		vmas, err := procfs.MapsWithFlags(pid)
		smapsc <- smapsResult{vmas, err}
	}()
	threads := make([]*threadState, len(p.tids))
	err = d.tr.Do(func() error { // one hand-off to the tracer thread for them all
		for i, tid := range p.tids {
			th, err := d.readThread(p, tid)
			if err != nil {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			threads[i] = th
		}
		return nil
	})
	sm := <-smapsc
	if err != nil {
		return err
	}
	if sm.err != nil {
		return sm.err
	}
	mmEntry, err := d.dumpMM(pid, stat, sm.vmas)
	if err != nil {
		return err
	}
	if err := sameContents(copyVMAs, mmEntry.Vmas); err != nil {
		return err
	}
	// From here on the copy puts the rseq areas back as they were: given
	// before the first injection, they cover every read that could see
	// them rewritten.
	var areas []mem.Overlay
	for _, th := range threads {
		if th.rseqArea != nil {
			areas = append(areas, mem.Overlay{Addr: th.rseq.RseqAbiPointer, Data: th.rseqArea})
		}
	}
	rseqAreas.Set(areas)
	if slices.ContainsFunc(threads, func(th *threadState) bool { return th.noRseqCfg }) {
		// Areas that cannot be found cannot be put back: the copy ends
		// before the first injection, as on kernels before 5.13 it must.
		if err := md.wait(false); err != nil {
			return err
		}
	}
	if err := d.at("registers"); err != nil {
		return err
	}

	// What only the task can tell: injected system calls.
	insn, err := ptrace.FindSyscallInsn(pid)
	if err != nil {
		return err
	}
	// One hand-off to the tracer thread for the whole batch: each injected
	// call then costs only its two ptrace stops.
	var tc *criu_core.TaskCoreEntry
	if err := d.tr.Do(func() (err error) {
		tc, err = d.injectDump(p, insn, threads, mmEntry)
		return err
	}); err != nil {
		return err
	}
	if err := d.at("inject-done"); err != nil {
		return err
	}

	// Files after dumpMM: file mappings already have their ids.
	var fdEntries []*fdinfo.FdinfoEntry
	if p.filesOwner == p { // else its parent's table, dumped with the parent
		if fdEntries, err = d.files.DumpTable(pid); err != nil {
			return err
		}
	}
	cwd, err := procfs.Cwd(pid)
	if err != nil {
		return err
	}
	root, err := procfs.Root(pid)
	if err != nil {
		return err
	}
	cwdID, err := d.files.PathFile(pid, procPath(pid, cwd, "cwd"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("cwd: %w", err)
	}
	if _, deleted := files.SplitDeleted(root); deleted {
		return fmt.Errorf("root: directory %s was deleted: not supported", root)
	}
	rootID, err := d.files.PathFile(pid, procPath(pid, root, "root"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}

	// Rlimits from /proc: prlimit64 on another uid needs CAP_SYS_RESOURCE.
	limits, err := procfs.Limits(pid)
	if err != nil {
		return err
	}
	tc.Rlimits = &criu_core.TaskRlimitsEntry{}
	for _, l := range limits {
		cur, max := l.Soft, l.Hard
		tc.Rlimits.Rlimits = append(tc.Rlimits.Rlimits, &rlimit.RlimitEntry{Cur: &cur, Max: &max})
	}
	tc.Comm = &stat.Comm
	tc.Personality = ptr(mustPersonality(pid))
	tc.TaskState = ptr(uint32(taskAlive))
	if p.wasStopped {
		// Stopped by a job-control signal before the dump: it comes back
		// stopped (CRIU's TASK_STOPPED).
		sig := p.stopSig
		if sig == 0 {
			sig = unix.SIGSTOP
		}
		tc.TaskState, tc.StopSigno = ptr(uint32(taskStopped)), ptr(uint32(sig))
	}
	tc.ExitCode = ptr(uint32(0))
	tc.Flags = ptr(uint32(stat.Flags))
	tc.BlkSigset = ptr(threads[0].sigmask)
	tc.SignalsS = sig.QueueEntry(p.sharedPending)
	if err := d.at("files"); err != nil {
		return err
	}
	// The copy writes only the pagemap and pages images: the others need
	// not wait for it.
	if err := d.writeImages(p, status, threads, tc, mmEntry, fdEntries, cwdID, rootID); err != nil {
		return err
	}
	if err := d.at("images"); err != nil {
		return err
	}
	if err := md.wait(false); err != nil {
		return err
	}
	d.memStats.Scanned += md.stats.Scanned
	d.memStats.Written += md.stats.Written
	d.memTime += md.took
	d.shmem = append(d.shmem, mem.TaskVMAs{Pid: pid, Vmas: mmEntry.Vmas})
	return d.at("memory")
}

// copyList describes the VMAs of /proc/PID/maps whose pages the dump
// saves, as far as the memory copy needs: where they are and their status.
// dumpMM describes them in full from smaps, whose VmFlags change neither;
// but maps reads fast, where smaps walks the page tables (~10 ms a GiB,
// far more on a busy machine), so the copy can start at once.
func copyList(pid int) ([]*vma.VmaEntry, error) {
	vmas, err := procfs.Maps(pid)
	if err != nil {
		return nil, err
	}
	noFileID := func(procfs.VMA) (uint32, error) { return 0, nil }
	var out []*vma.VmaEntry
	for _, v := range vmas {
		e, err := mem.DumpVMA(v, noFileID)
		if err != nil {
			return nil, err
		}
		if mem.HasContents(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// sameContents checks that the memory copy, started from copyList, saves
// the VMAs with contents of the image: the task is stopped, and no VMA
// may change until its injected calls map the scratch area.
func sameContents(copied, vmas []*vma.VmaEntry) error {
	i := 0
	for _, v := range vmas {
		if !mem.HasContents(v) {
			continue
		}
		if i >= len(copied) || copied[i].GetStart() != v.GetStart() || copied[i].GetEnd() != v.GetEnd() || copied[i].GetStatus() != v.GetStatus() {
			return fmt.Errorf("VMA %#x-%#x changed while the task was stopped (maps and smaps disagree)", v.GetStart(), v.GetEnd())
		}
		i++
	}
	if i < len(copied) {
		return fmt.Errorf("VMA %#x-%#x changed while the task was stopped (maps and smaps disagree)", copied[i].GetStart(), copied[i].GetEnd())
	}
	return nil
}

// memDump is the copy of one process's pages, running in a goroutine of
// its own beside the rest of dumpProc.
type memDump struct {
	cancel context.CancelFunc
	done   chan struct{}
	// Set by the goroutine, read after done is closed.
	stats mem.PageStats
	took  time.Duration
	err   error
}

// startMemDump starts copying pid's pages into its pagemap and pages
// images.
func (d *dumper) startMemDump(pid int, vmas []*vma.VmaEntry, overlays *mem.Overlays) (*memDump, error) {
	pw, err := d.dir.PageWriter(uint32(d.vtid[pid]))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(d.ctx)
	m := &memDump{cancel: cancel, done: make(chan struct{})}
	d.log.Debug("dump memory", "pid", pid, "frozen_for", time.Since(d.frozenAt))
	go func() {
		defer close(m.done)
		t0 := time.Now()
		m.stats, m.err = mem.DumpPages(ctx, pid, vmas, overlays, pw)
		if m.err != nil {
			pw.Abort()
			m.err = fmt.Errorf("dump memory: %w", m.err)
		} else {
			m.err = pw.Close()
		}
		m.took = time.Since(t0)
		d.log.Debug("dump memory done", "pid", pid, "took", m.took, "pages", m.stats.Written, "frozen_for", time.Since(d.frozenAt))
	}()
	return m, nil
}

// wait waits for the copy to end, stopping it first if stop is set, and
// returns its error. It may be called again.
func (m *memDump) wait(stop bool) error {
	if stop {
		m.cancel()
	}
	<-m.done
	m.cancel()
	return m.err
}

func mustPersonality(pid int) uint32 {
	p, _ := procfs.Personality(pid)
	return p
}

// readThread reads a stopped thread's state through ptrace alone, and
// the contents of its rseq area, which injected calls make the kernel
// rewrite (see dumpProc).
func (d *dumper) readThread(p *procDump, tid int) (*threadState, error) {
	pid := p.pid
	t := &threadState{tid: tid, seccomp: criu_core.SeccompMode(p.seccomp[tid]), nnp: p.nnp[tid]}
	var err error
	if t.regs, err = d.tr.GetRegs(tid); err != nil {
		return nil, err
	}
	// A thread stopped inside an interrupted system call resumes by
	// running it again (or returning EINTR), as the kernel itself would.
	t.regs = ptrace.RestartedRegs(t.regs)
	if t.xstate, err = d.tr.GetXState(tid); err != nil {
		return nil, err
	}
	if t.sigmask, err = d.tr.GetSigmask(tid); err != nil {
		return nil, err
	}
	if t.pending, err = d.tr.PeekSiginfo(tid, false); err != nil {
		return nil, err
	}
	if rc, err := d.tr.GetRseqConfig(tid); err == nil {
		t.rseq, t.hasRseq = rc, rc.RseqAbiPointer != 0
	} else if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
		t.noRseqCfg = true
	} else {
		return nil, err
	}
	if t.hasRseq {
		if t.rseq.RseqAbiSize == 0 || t.rseq.RseqAbiSize > image.PageSize {
			return nil, fmt.Errorf("rseq area at %#x: size %d", t.rseq.RseqAbiPointer, t.rseq.RseqAbiSize)
		}
		t.rseqArea = make([]byte, t.rseq.RseqAbiSize)
		if err := ptrace.ReadMem(pid, t.rseq.RseqAbiPointer, t.rseqArea); err != nil {
			return nil, fmt.Errorf("rseq area: %w", err)
		}
		if err := d.abortRseqCS(pid, t); err != nil {
			return nil, err
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", pid, tid)); err == nil {
		t.comm = strings.TrimSuffix(string(b), "\n")
	}
	if t.sched, err = attr.DumpSched(tid); err != nil {
		return nil, err
	}
	var head, size uint64
	if _, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid), uintptr(unsafePtr(&head)), uintptr(unsafePtr(&size))); e != 0 {
		return nil, fmt.Errorf("get_robust_list: %w", e)
	}
	t.robust, t.robustLen = head, size
	if t.seccomp == criu_core.SeccompMode_filter {
		fs, err := d.tr.SeccompFilters(tid)
		if err != nil {
			return nil, err
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("seccomp filter mode, but PTRACE_SECCOMP_GET_FILTER shows no filter")
		}
		for _, f := range fs {
			t.filters = append(t.filters, seccomp.Filter{Prog: f.Prog, Flags: uint32(f.Flags)})
		}
	}
	return t, nil
}

// dumpMM describes the address space: VMAs (with ids of mapped files) and
// the mm fields PR_SET_MM_MAP restores.
func (d *dumper) dumpMM(pid int, stat procfs.TaskStat, vmas []procfs.VMA) (*mm.MmEntry, error) {
	e := &mm.MmEntry{
		MmStartCode: &stat.StartCode, MmEndCode: &stat.EndCode, MmStartData: &stat.StartData, MmEndData: &stat.EndData,
		MmStartStack: &stat.StartStack, MmStartBrk: &stat.StartBrk, MmBrk: ptr(stat.StartBrk),
		MmArgStart: &stat.ArgStart, MmArgEnd: &stat.ArgEnd, MmEnvStart: &stat.EnvStart, MmEnvEnd: &stat.EnvEnd,
	}
	fileID := func(v procfs.VMA) (uint32, error) {
		// A shared mapping that may be made writable (VM_MAYWRITE, a
		// file opened for writing) needs the file opened so again, or
		// mprotect(PROT_WRITE) fails after restore.
		flags := uint32(unix.O_RDONLY)
		if v.Perms&procfs.PermShared != 0 && (v.Perms&procfs.PermWrite != 0 || v.Flags.Has(procfs.VmMayWrite)) {
			flags = unix.O_RDWR
		}
		if mem.IsMemfd(v) {
			return d.files.MemfdMapping(pid, v, flags)
		}
		what := fmt.Sprintf("VMA %#x-%#x", v.Start, v.End)
		return d.files.PathFile(pid, files.Path{Name: v.Path, Deleted: v.Deleted, What: what, MntID: -1,
			Proc: fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, v.Start, v.End)}, flags)
	}
	for _, v := range vmas {
		ve, err := mem.DumpVMA(v, fileID)
		if err != nil {
			return nil, err
		}
		if ve.GetStatus()&mem.AreaVsyscall != 0 {
			continue // the kernel's, at the same place in every process
		}
		e.Vmas = append(e.Vmas, ve)
	}
	exe, err := procfs.Exe(pid)
	if err != nil {
		return nil, err
	}
	if e.ExeFileId, err = ptrValue(d.files.PathFile(pid, procPath(pid, exe, "exe"), unix.O_RDONLY)); err != nil {
		return nil, fmt.Errorf("exe %s: %w", exe, err)
	}
	if e.MmSavedAuxv, err = procfs.Auxv(pid); err != nil {
		return nil, err
	}
	return e, nil
}

func ptrValue[T any](v T, err error) (*T, error) { return &v, err }

// procPath describes the file behind /proc/PID/<link> (cwd, root, exe),
// whose target is what that link shows.
func procPath(pid int, target, link string) files.Path {
	name, deleted := files.SplitDeleted(target)
	return files.Path{Name: name, Deleted: deleted, Proc: fmt.Sprintf("/proc/%d/%s", pid, link), What: link, MntID: -1}
}

// injectDump reads by injected system calls what the task alone can see.
// Each thread gets its own session; all share one scratch mapping that is
// removed before the sessions end.
func (d *dumper) injectDump(p *procDump, insn uint64, threads []*threadState, e *mm.MmEntry) (tc *criu_core.TaskCoreEntry, err error) {
	pid := p.pid
	lead, err := d.tr.BeginInject(pid, insn)
	if err != nil {
		return nil, err
	}
	defer func() {
		if eerr := lead.End(); eerr != nil && err == nil {
			err = eerr
		}
	}()
	if err := d.at("inject"); err != nil {
		return nil, err
	}
	t, err := remote.MapScratch(lead, pid, 0, scratchSize, unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		return nil, err
	}
	d.wd.send(wdRecord{Kind: wdScratch, Tid: int32(pid), Addr: t.Scratch, Size: t.Size}) //nolint:errcheck // left behind it is harmless
	defer func() {
		uerr := t.Unmap()
		if uerr == nil {
			d.wd.send(wdRecord{Kind: wdUnscratch, Tid: int32(pid)}) //nolint:errcheck
		} else if err == nil {
			err = uerr
		}
	}()
	if err := d.at("scratch"); err != nil {
		return nil, err
	}
	tc = &criu_core.TaskCoreEntry{}
	if tc.Sigactions, err = sig.DumpActions(t); err != nil {
		return nil, err
	}
	// Interval timers: getitimer(which, scratch) gives {interval, value}.
	var its [3]*timer.ItimerEntry
	for which := range 3 {
		if _, err := t.Syscall(unix.SYS_GETITIMER, uint64(which), t.Scratch); err != nil {
			return nil, fmt.Errorf("getitimer %d: %w", which, err)
		}
		var v [4]uint64 // it_interval {sec, usec}, it_value {sec, usec}
		if err := remote.ReadStruct(t, 0, &v); err != nil {
			return nil, err
		}
		its[which] = &timer.ItimerEntry{Isec: &v[0], Iusec: &v[1], Vsec: &v[2], Vusec: &v[3]}
	}
	tc.Timers = &timer.TaskTimersEntry{Real: its[0], Virt: its[1], Prof: its[2]}
	if tc.Timers.Posix, err = d.dumpPosixTimers(t, pid); err != nil {
		return nil, err
	}
	brk, err := t.Syscall(unix.SYS_BRK, 0)
	if err != nil {
		return nil, fmt.Errorf("brk: %w", err)
	}
	e.MmBrk = &brk
	dumpable, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE)
	if err != nil {
		return nil, fmt.Errorf("get dumpable: %w", err)
	}
	e.Dumpable = ptr(int32(dumpable))
	secbits, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_SECUREBITS)
	if err != nil {
		return nil, fmt.Errorf("get securebits: %w", err)
	}
	p.secbits = uint32(secbits)
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, t.Scratch); err != nil {
		return nil, fmt.Errorf("get child subreaper: %w", err)
	}
	sub, err := t.ReadU64(0)
	if err != nil {
		return nil, err
	}
	tc.ChildSubreaper = ptr(uint32(sub) != 0)
	if err := dumpMMState(t, e, tc); err != nil {
		return nil, err
	}
	if err := d.at("syscalls"); err != nil {
		return nil, err
	}

	for i, th := range threads {
		tt := t
		if i > 0 {
			r, err := d.tr.BeginInject(th.tid, insn)
			if err != nil {
				return nil, err
			}
			tt = t.On(r)
		}
		var err error
		if i == 1 {
			err = d.at("thread")
		}
		if err == nil {
			err = readThreadInjected(tt, th)
		}
		if i > 0 {
			if eerr := tt.End(); eerr != nil && err == nil {
				err = eerr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", th.tid, err)
		}
	}
	return tc, nil
}

// readThreadInjected reads a thread's kernel pointers from inside it.
func readThreadInjected(t *remote.Task, th *threadState) error {
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, t.Scratch); err != nil {
		return fmt.Errorf("get clear_child_tid: %w", err)
	}
	var err error
	if th.clearTid, err = t.ReadU64(0); err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_SIGALTSTACK, 0, t.Scratch); err != nil {
		return fmt.Errorf("sigaltstack: %w", err)
	}
	if err := remote.ReadStruct(t, 0, &th.sas); err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_PDEATHSIG, t.Scratch); err != nil {
		return fmt.Errorf("get pdeath_signal: %w", err)
	}
	v, err := t.ReadU64(0)
	th.pdeathSig = uint64(uint32(v))
	return err
}

// writeImages writes the image files of the dumped task.
func (d *dumper) writeImages(p *procDump, status procfs.TaskStatus, threads []*threadState,
	tc *criu_core.TaskCoreEntry, mmEntry *mm.MmEntry, fdEntries []*fdinfo.FdinfoEntry, cwdID, rootID uint32) error {
	pid := uint32(d.vtid[p.pid])
	ids := &criu_core.TaskKobjIdsEntry{VmId: ptr(pid), FilesId: ptr(uint32(d.vtid[p.filesOwner.pid])),
		FsId: ptr(uint32(d.vtid[p.fsOwner.pid])), SighandId: ptr(pid)}
	setNsIDs(ids, d.nsIDs)
	ids.MntNsId = ptr(uint32(p.mntNS))
	if p.timeNS != 0 {
		ids.TimeNsId = ptr(uint32(p.timeNS))
	}
	// The ids live in core too; crit's tools still read ids-PID.img.
	if err := d.dir.WriteOne(image.Ids, image.IdsFile(pid), ids); err != nil {
		return err
	}
	cr := creds.Dump(status, p.secbits)
	d.credsInside(cr)
	oom, err := attr.DumpOOMScoreAdj(p.pid)
	if err != nil {
		return err
	}
	loginuid, err := attr.DumpLoginuid(p.pid)
	if err != nil {
		return err
	}
	tc.OomScoreAdj, tc.Loginuid = &oom, &loginuid
	for i, th := range threads {
		// Credentials are per thread: ids, capability sets (a thread may
		// have capset or raised ambient capabilities of its own) and
		// no_new_privs. Securebits are read from the main thread only.
		thCreds := cr
		if st, ok := p.threadStatus[th.tid]; ok && th.tid != p.pid {
			thCreds = creds.Dump(st, p.secbits)
			d.credsInside(thCreds)
		}
		if th.nnp {
			thCreds = proto.Clone(thCreds).(*creds_img.CredsEntry)
			creds.SetNoNewPrivs(thCreds, true)
		}
		var filterIdx *uint32
		if th.seccomp == criu_core.SeccompMode_filter {
			idx, err := d.seccomp.Add(th.filters)
			if err != nil {
				return fmt.Errorf("thread %d: %w", th.tid, err)
			}
			filterIdx = &idx
		}
		fp, err := d.layout.FPRegsFromXState(th.xstate)
		if err != nil {
			return fmt.Errorf("thread %d: %w", th.tid, err)
		}
		mtype := criu_core.CoreEntry_X86_64
		core := &criu_core.CoreEntry{
			Mtype: &mtype,
			ThreadInfo: &criu_x86.ThreadInfoX86{
				ClearTidAddr: &th.clearTid,
				Gpregs:       arch.RegsToImage(th.regs),
				Fpregs:       fp,
			},
			ThreadCore: &criu_core.ThreadCoreEntry{
				FutexRla: &th.robust, FutexRlaLen: ptr(uint32(th.robustLen)),
				BlkSigset: &th.sigmask, SignalsP: sig.QueueEntry(th.pending),
				Sas:       &criu_core.ThreadSasEntry{SsSp: &th.sas.Sp, SsSize: &th.sas.Size, SsFlags: ptr(uint32(th.sas.Flags))},
				PdeathSig: ptr(uint32(th.pdeathSig)), Comm: &th.comm, Creds: thCreds,
				SeccompMode: ptr(th.seccomp), SeccompFilter: filterIdx,
				SchedPolicy: &th.sched.Policy, SchedPrio: &th.sched.Prio, SchedNice: &th.sched.Nice,
			},
		}
		if th.hasRseq {
			core.ThreadCore.RseqEntry = &rseq.RseqEntry{
				RseqAbiPointer: &th.rseq.RseqAbiPointer, RseqAbiSize: &th.rseq.RseqAbiSize,
				Signature: &th.rseq.Signature,
			}
		}
		if i == 0 {
			core.Tc, core.Ids = tc, ids
		}
		if err := d.dir.WriteOne(image.Core, image.CoreFile(uint32(d.vtid[th.tid])), core); err != nil {
			return err
		}
	}
	if err := d.dir.WriteOne(image.Mm, image.MmFile(pid), mmEntry); err != nil {
		return err
	}
	umask := uint32(status.Umask)
	if err := d.dir.WriteOne(image.Fs, image.FsFile(pid), &fs.FsEntry{CwdId: &cwdID, RootId: &rootID, Umask: &umask}); err != nil {
		return err
	}
	if p.filesOwner != p {
		return nil // its parent's table, written with the parent
	}
	w, err := d.dir.Writer(image.Fdinfo, image.FdinfoFile(pid))
	if err != nil {
		return err
	}
	for _, e := range fdEntries {
		if err := w.Write(e); err != nil {
			w.Abort()
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return nil
}

// setNsIDs records namespaces by their nsfs inode: the task's in its ids,
// gocr's in the inventory's root_ids; restore creates afresh every kind
// whose two ids differ.
func setNsIDs(ids *criu_core.TaskKobjIdsEntry, ns map[string]uint64) {
	set := func(dst **uint32, kind string) {
		if ino, ok := ns[kind]; ok {
			*dst = ptr(uint32(ino))
		}
	}
	set(&ids.PidNsId, "pid")
	set(&ids.NetNsId, "net")
	set(&ids.IpcNsId, "ipc")
	set(&ids.UtsNsId, "uts")
	set(&ids.MntNsId, "mnt")
	set(&ids.UserNsId, "user")
	set(&ids.CgroupNsId, "cgroup")
	set(&ids.TimeNsId, "time")
}

func (d *dumper) writeStats(start time.Time) error {
	now := time.Now()
	us := func(t time.Duration) *uint32 { return ptr(uint32(t / time.Microsecond)) }
	// memdump_time is the whole copy of memory into the images (gocr
	// reads the task and writes the file in one pass, where CRIU first
	// drains pages into pipes); memwrite_time the part of it spent in
	// writes of the pages files. No parent images, page pipes, lazy pages
	// or irmap: those are zero.
	return d.dir.WriteDumpStats(&stats.DumpStatsEntry{
		FreezingTime: us(d.frozenAt.Sub(start)), FrozenTime: us(now.Sub(d.frozenAt)),
		MemdumpTime: us(d.memTime), MemwriteTime: us(d.dir.PagesWriteTime()),
		PagesScanned: &d.memStats.Scanned, PagesSkippedParent: ptr(uint64(0)), PagesWritten: &d.memStats.Written,
		PagesLazy: ptr(uint64(0)), IrmapResolve: ptr(uint32(0)), PagePipes: ptr(uint64(0)), PagePipeBufs: ptr(uint64(0)),
		ShpagesScanned: &d.shStats.Scanned, ShpagesSkippedParent: ptr(uint64(0)), ShpagesWritten: &d.shStats.Written,
	})
}

func ptr[T any](v T) *T { return &v }

func unsafePtr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
