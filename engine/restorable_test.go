package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/engine/procfs"
)

// A dump whose images restore would refuse fails with restore's message,
// and the tree runs on as it was: here a process left in its
// grandparent's session by a parent that made a session of its own after
// forking it, which the restore cannot make again yet.
func TestDumpRefusesWhatRestoreWould(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// The subshell X forks sleep Y, then becomes a session leader itself
	// (setsid(1) does not fork: X leads no group) and sleeps; Y stays in
	// the root's session.
	cmd := exec.Command("/bin/sh", "-c", "( sleep 1000 & exec setsid sleep 1001 ) & exec sleep 1002")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	defer syscall.Kill(-pid, syscall.SIGKILL) // the root's group: Y is in it too
	var x, y int
	for deadline := time.Now().Add(30 * time.Second); y == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the tree never took its shape")
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(b)) {
			fmt.Sscan(c, &x)
			if st, err := procfs.Stat(x); err != nil || st.Session != x {
				continue
			}
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", x, x))
			for _, g := range strings.Fields(string(b)) {
				fmt.Sscan(g, &y)
			}
		}
	}
	defer syscall.Kill(x, syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: filepath.Join(t.TempDir(), "img")})
	if err == nil || !strings.Contains(err.Error(), "the images would not restore") || !strings.Contains(err.Error(), "is not its parent's") {
		t.Fatalf("dump: %v", err)
	}
	for _, p := range []int{pid, x, y} {
		st, err := procfs.Stat(p)
		if err != nil || (st.State != 'S' && st.State != 'R') {
			t.Fatalf("pid %d after the refused dump: %+v, %v", p, st, err)
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if !strings.Contains(string(status), "TracerPid:\t0\n") {
			t.Fatalf("pid %d is still traced:\n%s", p, status)
		}
	}
}
