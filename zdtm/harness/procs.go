package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// procSet holds every process the harness has seen in a workload's tree,
// so that none outlives its spec: each by pid and start time, so that a
// pid the kernel has since given to another process is not taken for it.
// The harness is a child subreaper (the suite and its tests make it one):
// what the tree leaves behind ends up as its children, which it reaps.
type procSet struct {
	start map[int]uint64 // pid → start time, in clock ticks after boot
}

func newProcSet() *procSet { return &procSet{start: map[int]uint64{}} }

// add records root and its descendants as they are now. A pid seen before
// with another start time is a new process (one restored, say).
func (ps *procSet) add(root int) {
	pids, _ := TreePids(root) // none when root is gone
	for _, p := range pids {
		if st, _, err := procStart(p); err == nil {
			ps.start[p] = st
		}
	}
}

// procStart reads the start time and state of pid.
func procStart(pid int) (uint64, byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	// Fields after comm start with the state, field 3; starttime is 22.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return st, f[0][0], err
}

// state tells whether the recorded pid is still the same process, and its
// state letter if so ('Z' for a zombie).
func (ps *procSet) state(pid int) (byte, bool) {
	st, state, err := procStart(pid)
	if err != nil || st != ps.start[pid] {
		return 0, false
	}
	return state, true
}

// reap reaps the recorded processes that are zombies of the harness and
// forgets those that are gone (reaped by their parents).
func (ps *procSet) reap() {
	for pid := range ps.start {
		if _, same := ps.state(pid); !same {
			delete(ps.start, pid)
			continue
		}
		var ws unix.WaitStatus
		if wpid, _ := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); wpid == pid {
			delete(ps.start, pid)
		}
	}
}

// running lists the recorded processes that still run: not zombies.
func (ps *procSet) running() []int {
	var out []int
	for pid := range ps.start {
		if state, same := ps.state(pid); same && state != 'Z' {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// wait reaps until every recorded process is gone or ctx ends, and returns
// those left, zombies included.
func (ps *procSet) wait(ctx context.Context) []int {
	for {
		ps.reap()
		if len(ps.start) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var left []int
			for pid := range ps.start {
				left = append(left, pid)
			}
			slices.Sort(left)
			return left
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill SIGKILLs every recorded process that still runs; by pid only, never
// by name.
func (ps *procSet) kill() {
	for _, pid := range ps.running() {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// cleanup kills and reaps all: zombies come to the harness as their
// parents die. It gives up after a few seconds and says what it left.
func (ps *procSet) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		ps.kill()
		wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		left := ps.wait(wctx)
		wcancel()
		if len(left) == 0 {
			return nil
		}
	}
	return fmt.Errorf("processes %v of the tree survived SIGKILL", ps.wait(ctx))
}

// settle waits a little for the processes of a tree whose root has exited
// to end by themselves, as they must, then kills those that did not.
func (ps *procSet) settle(ctx context.Context, grace time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	ps.wait(wctx)
	left := ps.running()
	if len(left) == 0 {
		return nil
	}
	err := fmt.Errorf("processes %v of the tree were still running %v after its root exited (they were killed)", left, grace)
	if cerr := ps.cleanup(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// straysOf finds the processes a failed launch of the spec left behind:
// the launcher's orphans, which came to the harness as a subreaper, known
// among its children by the spec's own pidfile on their command line.
func straysOf(s Spec) []int {
	want := []byte("--pidfile=" + s.pidFile() + "\x00")
	var out []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmd, want) {
				out = append(out, pid)
			}
		}
	}
	return out
}
