package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Modes of a spec.
const (
	ModePlain        = "plain"         // dump (the tree is killed), restore, verify
	ModeLeaveRunning = "leave-running" // dump --leave-running, verify the original
	ModeIter3        = "iter3"         // three dump/restore cycles, then verify
)

// AllModes lists the modes in the order specs are made.
var AllModes = []string{ModePlain, ModeLeaveRunning, ModeIter3}

// UnsHostID is the host uid/gid that is root inside the uns flavor's user
// namespace (65536 ids are mapped from it).
const UnsHostID = 100000

// Workload says how to start one zdtm-protocol test.
type Workload struct {
	Name string
	// Command is the binary and the arguments before the protocol's
	// options, e.g. ["/x/zdtm-workload", "counter"] or ["/x/sigaltstack"].
	Command []string
	// Gocr marks gocr's own workloads, which take --filename/--dirname
	// always and understand the ns and uns flavors.
	Gocr bool
	Desc Desc
}

// Spec is one run: a workload in a flavor and a mode with an engine.
type Spec struct {
	Workload Workload
	Flavor   string
	Mode     string
	Engine   Engine
	// Dir is the spec's own directory: pidfile, outfile, images, logs.
	Dir string
}

// Result of a spec that did not fail outright.
type Result struct {
	Verdict string // the workload's last line
	Pid     int
}

// Run runs a spec to its end and returns an error describing the first
// thing that went wrong. The workload and every process of its tree that
// the harness saw are gone when Run returns: a process left running after
// the root gave its verdict fails the spec.
func Run(ctx context.Context, s Spec) (res *Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.Workload.Desc.Timeout)
	defer cancel()
	if err := prepareDir(s); err != nil {
		return nil, err
	}
	pid, err := start(ctx, s)
	if err != nil {
		// A launcher that failed or timed out may leave its daemon behind.
		strays := newProcSet()
		for _, p := range straysOf(s) {
			strays.add(p)
		}
		if cerr := strays.cleanup(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	// From here on the tree must not outlive the spec, whatever happens.
	procs := newProcSet()
	procs.add(pid)
	defer func() {
		if cerr := procs.cleanup(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()

	crfail := s.Workload.Desc.HasFlag("crfail")
	iterations := 1
	if s.Mode == ModeIter3 {
		iterations = 3
	}
	for i := 1; i <= iterations && s.Engine.Checkpoints(); i++ {
		procs.add(pid)
		before, err := TakeSnapshot(pid)
		if err != nil {
			return nil, fmt.Errorf("iteration %d: snapshot before dump: %w", i, err)
		}
		img := filepath.Join(s.Dir, fmt.Sprintf("img-%d", i))
		leave := s.Mode == ModeLeaveRunning
		err = s.Engine.Dump(ctx, pid, DumpSpec{ImagesDir: img, LogFile: filepath.Join(s.Dir, fmt.Sprintf("dump-%d.log", i)),
			LeaveRunning: leave, Opts: s.opts(s.Workload.Desc.DumpOpts)})
		if crfail {
			if err == nil {
				return nil, fmt.Errorf("iteration %d: dump succeeded but the workload is flagged crfail (the engine should refuse it)", i)
			}
			if !alive(pid) {
				return nil, fmt.Errorf("iteration %d: failed dump killed the workload: %v", i, err)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("iteration %d: dump: %w", i, err)
		}
		if !leave {
			// Every process of the tree, not just its root: a child left
			// a zombie (reparented to the harness, a subreaper) would
			// keep its pid, session and group ids taken from the restore.
			// By the pids the harness sees (before.Procs is keyed by the
			// tree's own).
			for _, ps := range before.Procs {
				if err := waitGone(ctx, ps.HostPid); err != nil {
					return nil, fmt.Errorf("iteration %d: after dump: %w", i, err)
				}
			}
			// The rest of the tree went with the root: its zombies come to
			// the harness, and would hold their pids against the restore.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			left := procs.wait(wctx)
			cancel()
			if len(left) > 0 {
				return nil, fmt.Errorf("iteration %d: after dump: processes of the tree still there: %v", i, left)
			}
			rpid, err := s.Engine.Restore(ctx, RestoreSpec{ImagesDir: img, LogFile: filepath.Join(s.Dir, fmt.Sprintf("restore-%d.log", i)),
				PidFile: filepath.Join(s.Dir, fmt.Sprintf("restore-%d.pid", i)), Opts: s.opts(s.Workload.Desc.RestoreOpts)})
			if err != nil {
				return nil, fmt.Errorf("iteration %d: restore: %w", i, err)
			}
			procs.add(rpid)
			if rpid != pid {
				return nil, fmt.Errorf("iteration %d: restored root has pid %d, want %d", i, rpid, pid)
			}
		}
		// A process that was inside a signal handler or a sigsuspend
		// shows a passing mask for a moment after it runs again, longer
		// on a loaded machine: a difference must last to count.
		var d string
		for try := 0; try < 5; try++ {
			if try > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			after, err := TakeSnapshot(pid)
			if err != nil {
				return nil, fmt.Errorf("iteration %d: snapshot after %s: %w", i, map[bool]string{true: "dump", false: "restore"}[leave], err)
			}
			if d = Diff(before, after); d == "" {
				break
			}
		}
		if d != "" {
			return nil, fmt.Errorf("iteration %d: the kernel shows a different state after %s:\n%s", i,
				map[bool]string{true: "dump --leave-running", false: "restore"}[leave], d)
		}
	}
	procs.add(pid)
	verdict, err := stop(ctx, s, pid)
	if err != nil {
		return nil, err
	}
	// The root is gone: the rest of its tree must end with it.
	if err := procs.settle(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	return &Result{Verdict: verdict, Pid: pid}, nil
}

func (s Spec) pidFile() string { return filepath.Join(s.Dir, "pid") }
func (s Spec) outFile() string { return filepath.Join(s.Dir, "out") }

func prepareDir(s Spec) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	if s.Flavor == "uns" {
		// Root inside the user namespace is UnsHostID outside.
		return os.Chown(s.Dir, UnsHostID, UnsHostID)
	}
	return nil
}

// opts are the descriptor's engine options for both dump and restore and
// then those of one of them, with {dirname} expanded.
func (s Spec) opts(only []string) []string {
	var out []string
	for _, o := range append(slices.Clone(s.Workload.Desc.Opts), only...) {
		out = append(out, strings.ReplaceAll(o, "{dirname}", filepath.Join(s.Dir, "test.dir")))
	}
	return out
}

// start runs the workload's launcher and returns the daemon's pid once the
// launcher says it is ready.
func start(ctx context.Context, s Spec) (int, error) {
	args := append([]string{}, s.Workload.Command[1:]...)
	args = append(args, "--pidfile="+s.pidFile(), "--outfile="+s.outFile())
	if s.Workload.Gocr {
		args = append(args, "--filename="+filepath.Join(s.Dir, "test.file"), "--dirname="+filepath.Join(s.Dir, "test.dir"))
	}
	cmd := exec.CommandContext(ctx, s.Workload.Command[0], args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "ZDTM_FLAVOR="+s.Flavor, "ZDTM_UNS_UIDMAP="+strconv.Itoa(UnsHostID))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("the pidfile never appeared: the launcher did not exit within %v\n%s", s.Workload.Desc.Timeout, out)
	}
	if err != nil {
		return 0, fmt.Errorf("launcher failed (%v): the workload died before it was ready\n%s%s", err, out, outfileTail(s))
	}
	pid, err := readPidFile(s.pidFile())
	if err != nil {
		return 0, fmt.Errorf("launcher exited 0 but: %w", err)
	}
	return pid, nil
}

// stop sends SIGTERM and reads the verdict.
func stop(ctx context.Context, s Spec, pid int) (string, error) {
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return "", fmt.Errorf("SIGTERM to workload %d: %w (did it die?)%s", pid, err, outfileTail(s))
	}
	if err := waitGone(ctx, pid); err != nil {
		return "", fmt.Errorf("after SIGTERM: %w", err)
	}
	b, err := os.ReadFile(s.outFile())
	if err != nil {
		return "", fmt.Errorf("no verdict: %w%s", err, outfileTail(s))
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "PASS") {
		return last, fmt.Errorf("workload says: %s\n%s", last, string(b))
	}
	return last, nil
}

func outfileTail(s Spec) string {
	for _, p := range []string{s.outFile(), s.outFile() + ".inprogress"} {
		if _, err := os.Stat(p); err == nil {
			return "\n" + p + ":\n" + tail(p, 10)
		}
	}
	return ""
}

func alive(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// waitGone waits until pid has exited, reaping it when it is a child of
// ours (the harness is a subreaper, so orphaned workloads are).
func waitGone(ctx context.Context, pid int) error {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if wpid == pid {
			return nil
		}
		if errors.Is(err, unix.ECHILD) && !alive(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d still running: %w", pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
