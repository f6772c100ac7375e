package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/files"
	"github.com/gocr/gocr/engine/netlock"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
)

// The watchdog makes a dump harmless even if gocr is SIGKILLed.
//
// While a dump has an injection session open, a thread's registers point
// at an injected syscall and its mask blocks every signal. The dump puts
// the process in group stop before the first session (ptrace.StopGroup),
// so if gocr dies the kernel leaves every thread stopped rather than
// running. The watchdog — gocr re-executed as `gocr __watchdog PID`, in a
// session of its own, started before the dump freezes anything — is told
// over a pipe each thread's saved registers and mask before its session
// changes them, and where the scratch mapping is. When the pipe ends
// without a "done" record (gocr died), it waits for the kernel to detach
// the threads, seizes those with an open session, puts their registers and
// masks back, unmaps the scratch area, lets them go and sends SIGCONT
// (unless the process was stopped before the dump).
//
// A program that embeds the engine must call RunWatchdog when IsWatchdog
// says so, as cmd/gocr does, or set DumpOptions.NoWatchdog.

const watchdogArg = "__watchdog"

// IsWatchdog reports whether gocr was started as a dump's watchdog.
func IsWatchdog(args []string) bool { return len(args) > 0 && args[0] == watchdogArg }

// Records gocr sends the watchdog.
const (
	wdStopping  = iota + 1 // about to put the process in group stop; Mask=1 if it was stopped before
	wdOpen                 // session open on Tid: Regs, Mask, Insn as saved
	wdClosed               // session on Tid ended
	wdScratch              // scratch mapping at Addr, Size bytes
	wdUnscratch            // scratch mapping removed
	wdContinued            // group stop ended (SIGCONT sent, or left stopped on purpose)
	wdDone                 // dump over: exit
	wdRepairOn             // socket at fd Addr of process Tid put in TCP repair mode; Mask=1 if it had SO_REUSEADDR
	wdRepairOff            // that socket left repair mode
	wdNetLocked            // the network namespace of process Tid has the network lock of root Mask
)

type wdRecord struct {
	Kind uint32
	Tid  int32
	Mask uint64
	Insn uint64
	Addr uint64
	Size uint64
	Regs abi.PtraceRegs
}

// watchdog is gocr's end of the watchdog.
type watchdog struct {
	cmd   *exec.Cmd
	w     *os.File // records
	ready *os.File // one byte once the watchdog listens
	mu    sync.Mutex
	err   error
	// lockRoot is the root pid the network lock's table is named after.
	lockRoot int
}

// startWatchdog starts the watchdog of a dump of pid. It does not wait for
// it: wait does, so its start overlaps the freeze.
func startWatchdog(pid int) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	cmd := exec.Command("/proc/self/exe", watchdogArg, strconv.Itoa(pid))
	cmd.ExtraFiles = []*os.File{r, rw} // fds 3 and 4
	cmd.Stderr = os.Stderr
	// A session of its own: a signal to gocr's process group or terminal
	// must not take the watchdog with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	r.Close()
	rw.Close()
	if err != nil {
		w.Close()
		rr.Close()
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, w: w, ready: rr}, nil
}

// wait waits until the watchdog listens.
func (wd *watchdog) wait(timeout time.Duration) error {
	wd.ready.SetReadDeadline(time.Now().Add(timeout)) //nolint:errcheck // a pipe supports deadlines
	var b [1]byte
	_, err := wd.ready.Read(b[:])
	wd.ready.Close()
	if err != nil {
		return fmt.Errorf("watchdog pid %d did not start (a program embedding the engine must call engine.RunWatchdog): %w", wd.cmd.Process.Pid, err)
	}
	return nil
}

func (wd *watchdog) send(rec wdRecord) error {
	if wd == nil {
		return nil
	}
	wd.mu.Lock()
	defer wd.mu.Unlock()
	if wd.err != nil {
		return wd.err
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, &rec) //nolint:errcheck // fixed-size struct
	// One write below PIPE_BUF: the watchdog reads whole records or none.
	if _, err := wd.w.Write(buf.Bytes()); err != nil {
		wd.err = fmt.Errorf("tell the watchdog: %w", err)
	}
	return wd.err
}

// RepairOn and RepairOff make the watchdog a files.Repair: a connection
// left in repair mode by a dead gocr would stay silent forever.
func (wd *watchdog) RepairOn(pid, fd int, reuse bool) error {
	var m uint64
	if reuse {
		m = 1
	}
	return wd.send(wdRecord{Kind: wdRepairOn, Tid: int32(pid), Addr: uint64(fd), Mask: m})
}

func (wd *watchdog) RepairOff(pid, fd int) error {
	return wd.send(wdRecord{Kind: wdRepairOff, Tid: int32(pid), Addr: uint64(fd)})
}

// Locked tells the watchdog where the network lock is, to remove it if
// gocr dies (the tree runs on).
func (wd *watchdog) Locked(pid int) error {
	return wd.send(wdRecord{Kind: wdNetLocked, Tid: int32(pid), Mask: uint64(wd.lockRoot)})
}

// SessionOpen and SessionClosed make the watchdog a ptrace.Journal.
func (wd *watchdog) SessionOpen(tid int, regs abi.PtraceRegs, mask, insn uint64) error {
	return wd.send(wdRecord{Kind: wdOpen, Tid: int32(tid), Regs: regs, Mask: mask, Insn: insn})
}

func (wd *watchdog) SessionClosed(tid int) error {
	return wd.send(wdRecord{Kind: wdClosed, Tid: int32(tid)})
}

// stop tells the watchdog the dump is over and waits for it to exit.
func (wd *watchdog) stop() {
	if wd == nil {
		return
	}
	wd.send(wdRecord{Kind: wdDone}) //nolint:errcheck // it exits at EOF regardless
	wd.w.Close()
	done := make(chan struct{})
	go func() { wd.cmd.Wait(); close(done) }() //nolint:errcheck
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		wd.cmd.Process.Kill() //nolint:errcheck
		<-done
	}
}

// RunWatchdog is the watchdog process: `gocr __watchdog PID`, with the
// record pipe on fd 3 and the ready pipe on fd 4. It returns the exit
// code.
func RunWatchdog(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("watchdog", os.Getpid())
	if len(args) != 2 {
		log.Error("usage: gocr __watchdog PID (started by gocr dump)")
		return 2
	}
	pid, err := strconv.Atoi(args[1])
	if err != nil || pid <= 0 {
		log.Error("bad pid", "arg", args[1])
		return 2
	}
	// Only gocr's death or its "done" ends the watchdog.
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE, unix.SIGQUIT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	in := os.NewFile(3, "watchdog-records")
	ready := os.NewFile(4, "watchdog-ready")
	if in == nil || ready == nil {
		log.Error("no record pipe: the watchdog is started by gocr dump")
		return 2
	}
	ready.Write([]byte{1}) //nolint:errcheck // gocr times out otherwise
	ready.Close()

	st := wdState{root: pid, procs: map[int]*wdProc{}, open: map[int]wdRecord{}, insn: map[int]uint64{}, repairing: map[[2]int]bool{}, netLocks: map[int]string{}}
	size := binary.Size(wdRecord{})
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(in, buf); err != nil {
			break // EOF (or a torn record): gocr is gone
		}
		var rec wdRecord
		binary.Read(bytes.NewReader(buf), binary.LittleEndian, &rec) //nolint:errcheck
		switch rec.Kind {
		case wdDone:
			return 0
		case wdStopping:
			p := st.proc(int(rec.Tid))
			p.stopping, p.wasStopped = true, rec.Mask != 0
		case wdContinued:
			st.proc(int(rec.Tid)).continued = true
		case wdOpen:
			st.open[int(rec.Tid)] = rec
			st.insn[int(rec.Tid)] = rec.Insn
		case wdClosed:
			delete(st.open, int(rec.Tid))
		case wdScratch:
			p := st.proc(int(rec.Tid))
			p.scratch, p.scratchSize = rec.Addr, rec.Size
		case wdUnscratch:
			st.proc(int(rec.Tid)).scratch = 0
		case wdRepairOn:
			st.repairing[[2]int{int(rec.Tid), int(rec.Addr)}] = rec.Mask != 0
		case wdRepairOff:
			delete(st.repairing, [2]int{int(rec.Tid), int(rec.Addr)})
		case wdNetLocked:
			st.netLocks[int(rec.Tid)] = netlock.TableName(int(rec.Mask))
		}
	}
	if err := st.repair(log); err != nil {
		log.Error("gocr died during the dump; putting the tree back failed", "pid", pid, "err", err)
		return 1
	}
	return 0
}

// wdState is what the watchdog knows of the dump.
type wdState struct {
	root  int
	procs map[int]*wdProc  // by pid
	open  map[int]wdRecord // open sessions, by tid
	insn  map[int]uint64   // the syscall instruction of the last session of each tid
	// repairing are the sockets in TCP repair mode, by pid and fd, with
	// their SO_REUSEADDR.
	repairing map[[2]int]bool
	// netLocks are the network lock's tables, by a pid in their namespace.
	netLocks map[int]string
}

// wdProc is what the watchdog knows of one process of the tree.
type wdProc struct {
	stopping, wasStopped bool
	continued            bool
	scratch, scratchSize uint64
}

func (st *wdState) proc(pid int) *wdProc {
	p := st.procs[pid]
	if p == nil {
		p = &wdProc{}
		st.procs[pid] = p
	}
	return p
}

// repair puts the tree back after gocr's death.
func (st *wdState) repair(log *slog.Logger) error {
	errs := []error{st.endRepair(log)}
	if err := st.putBack(log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// endRepair takes the tree's sockets out of TCP repair mode, through
// copies of the tasks' fds.
func (st *wdState) endRepair(log *slog.Logger) error {
	var errs []error
	for k, reuse := range st.repairing {
		fd, err := files.CopyFd(k[0], k[1])
		if err == nil {
			err = files.LeaveRepair(fd, reuse)
			unix.Close(fd)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("socket of pid %d fd %d out of repair mode: %w", k[0], k[1], err))
			continue
		}
		log.Warn("connection out of repair mode", "pid", k[0], "fd", k[1])
	}
	for pid, name := range st.netLocks {
		if err := netlock.Remove(fmt.Sprintf("/proc/%d/ns/net", pid), name); err != nil {
			errs = append(errs, fmt.Errorf("network lock: %w", err))
			continue
		}
		log.Warn("network lock removed", "pid", pid, "table", name)
	}
	return errors.Join(errs...)
}

// putBack puts the tree's threads back as they were.
func (st *wdState) putBack(log *slog.Logger) error {
	var pids []int
	for pid, p := range st.procs {
		if p.stopping {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil // never stopped or changed: the kernel let it run on
	}
	slices.Sort(pids)
	log.Warn("gocr died during the dump; putting the tree back", "pid", st.root, "processes", len(pids), "open sessions", len(st.open))
	tids := []int{}
	for tid := range st.open {
		tids = append(tids, tid)
	}
	for _, pid := range pids {
		if st.procs[pid].scratch != 0 && st.open[pid].Kind == 0 {
			tids = append(tids, pid) // the scratch is unmapped through the leader
		}
	}
	// gocr's tracer thread lets go of the threads as it exits, which may
	// come after its fds (our pipe) are closed.
	deadline := time.Now().Add(10 * time.Second)
	for _, tid := range append(slices.Clone(tids), pids...) {
		for tracerOf(tid) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("tid %d is still traced by pid %d", tid, tracerOf(tid))
			}
			time.Sleep(time.Millisecond)
		}
	}
	var errs []error
	if len(tids) > 0 {
		errs = append(errs, st.fix(tids))
	}
	for _, pid := range pids {
		p := st.procs[pid]
		if !p.wasStopped && !p.continued {
			if err := unix.Kill(pid, unix.SIGCONT); err != nil && err != unix.ESRCH {
				errs = append(errs, fmt.Errorf("SIGCONT pid %d: %w", pid, err))
			}
		}
	}
	err := errors.Join(errs...)
	if err == nil {
		log.Warn("tree put back", "pid", st.root)
	}
	return err
}

// fix seizes tids, puts back what open sessions changed, removes the
// scratch mappings and detaches.
func (st *wdState) fix(tids []int) error {
	tr := ptrace.NewTracer()
	defer tr.Close()
	var errs []error
	var seized []int
	for _, tid := range tids {
		if err := tr.Seize(tid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue // gone
			}
			errs = append(errs, err)
			continue
		}
		seized = append(seized, tid)
		if _, err := tr.Interrupt(tid); err != nil {
			errs = append(errs, err)
			continue
		}
		// What it runs now must not be judged by the task's seccomp
		// mode: a strict task would be killed by the munmap below.
		if ts, err := procfs.Status(tid); err == nil && ts.Seccomp != 0 {
			if err := tr.SuspendSeccomp(tid); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if rec, ok := st.open[tid]; ok {
			if err := tr.PutBack(tid, rec.Regs, rec.Mask); err != nil {
				errs = append(errs, fmt.Errorf("put back tid %d: %w", tid, err))
			}
		}
	}
	for pid, p := range st.procs {
		if p.scratch == 0 || len(errs) > 0 || !slices.Contains(seized, pid) {
			continue
		}
		// Left in place it would be harmless; removed it leaves no trace.
		if r, err := tr.BeginInject(pid, st.insn[pid]); err == nil {
			if _, err := r.Syscall(unix.SYS_MUNMAP, p.scratch, p.scratchSize); err != nil {
				errs = append(errs, fmt.Errorf("pid %d: unmap scratch %#x: %w", pid, p.scratch, err))
			}
			if err := r.End(); err != nil {
				errs = append(errs, err)
			}
		} else if !errors.Is(err, ptrace.ErrExited) {
			errs = append(errs, err)
		}
	}
	for _, tid := range seized {
		if err := tr.Detach(tid, 0); err != nil && !strings.Contains(err.Error(), "not traced") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tracerOf is TracerPid of tid: 0 when untraced, -1 when gone.
func tracerOf(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}
