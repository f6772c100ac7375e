package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// victim is one started workload: its pid, its directory, and whether a
// process of ours holds that pid now (false between dump and restore, and
// once it has been stopped and reaped), so that nothing is ever sent to
// a pid someone else may have been given since.
type victim struct {
	pid   int
	dir   string
	alive bool
}

// startWorkload starts a zdtm workload in a fresh directory; it daemonizes
// in a session of its own (the zdtm protocol), so neither engine needs
// --shell-job. The victim is returned even on error so that its directory
// is removed. With dirname the workload's own directory (--dirname) is
// made inside the victim's.
func startWorkload(ctx context.Context, bin, name string, dirname bool, args ...string) (*victim, error) {
	dir, err := os.MkdirTemp("", "gocr-bench-")
	if err != nil {
		return nil, fmt.Errorf("workload %s: %w", name, err)
	}
	v := &victim{dir: dir}
	if dirname {
		args = append(args, "--dirname="+filepath.Join(dir, "work"))
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{name, "--pidfile=" + filepath.Join(dir, "pid"), "--outfile=" + filepath.Join(dir, "out")}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		// The launcher failed: a daemon it may have started wrote no
		// pidfile, or dies with it (the zdtm library's pdeathsig).
		return v, fmt.Errorf("start %s: %w\n%s", name, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return v, fmt.Errorf("workload %s: %w", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return v, fmt.Errorf("workload %s: pidfile: %w", name, err)
	}
	v.pid, v.alive = pid, true
	return v, nil
}

// dumped notes that the dump killed the workload, and reaps it and the
// rest of its tree: their zombies would keep the pids from the restore.
func (v *victim) dumped() {
	reap(v.pid)
	reapOrphans()
	v.alive = false
}

// restored notes that the restore brought the workload back, in its pid.
func (v *victim) restored() { v.alive = true }

// stop sends SIGTERM, reaps the workload and returns its verdict.
func (v *victim) stop() string {
	if !v.alive {
		return "not running"
	}
	unix.Kill(v.pid, unix.SIGTERM)
	gone := false
	for range 500 {
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(v.pid, &ws, unix.WNOHANG, nil); p == v.pid {
			gone = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !gone {
		// Ten seconds after SIGTERM: it will not answer.
		reap(v.pid)
	}
	v.alive = false
	reapOrphans()
	b, err := os.ReadFile(filepath.Join(v.dir, "out"))
	if err != nil {
		return "no verdict: " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// cleanup stops the workload if it still runs and removes its directory.
func (v *victim) cleanup() {
	v.stop()
	os.RemoveAll(v.dir)
}

// reap waits for pid, a child of the bench (it inherited the workload as
// subreaper): ten seconds, then it kills it, so that a dump that left its
// workload running cannot hang the bench.
func reap(pid int) {
	var ws unix.WaitStatus
	for range 500 {
		p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if p == pid || (err != nil && err != unix.EINTR) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	unix.Kill(pid, unix.SIGKILL)
	for {
		if p, err := unix.Wait4(pid, &ws, 0, nil); p == pid || err != unix.EINTR {
			return
		}
	}
}

// ours says whether pid is a child of the bench, so a process the bench
// may signal: an engine that failed after bringing the workload back.
func ours(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			return strings.TrimSpace(v) == strconv.Itoa(os.Getpid())
		}
	}
	return false
}

// reapOrphans collects whatever else came to the bench as subreaper (the
// rest of a dumped tree, a half-restored one): zombies keep their pids.
func reapOrphans() {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil {
			return // ECHILD: no child left
		}
		if p == 0 {
			time.Sleep(time.Millisecond) // a killed tree's processes are still dying
		}
	}
}
