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
// and the tree runs on as it was: here a zombie killed by a signal, which
// the restore cannot make again yet.
func TestDumpRefusesWhatRestoreWould(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// sh starts a child, kills it and becomes sleep, which never reaps it.
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & kill -9 $!; exec sleep 1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var zombie int
	for deadline := time.Now().Add(30 * time.Second); zombie == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no zombie child appeared")
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(b)) {
			var cpid int
			fmt.Sscan(c, &cpid)
			if st, err := procfs.Stat(cpid); err == nil && st.State == 'Z' {
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasSuffix(exe, "sleep") {
					zombie = cpid
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: filepath.Join(t.TempDir(), "img")})
	if err == nil || !strings.Contains(err.Error(), "the images would not restore") || !strings.Contains(err.Error(), "zombie killed by signal 9") {
		t.Fatalf("dump: %v", err)
	}
	st, err := procfs.Stat(pid)
	if err != nil || (st.State != 'S' && st.State != 'R') {
		t.Fatalf("the tree's root after the refused dump: %+v, %v", st, err)
	}
	if st, err := procfs.Stat(zombie); err != nil || st.State != 'Z' {
		t.Fatalf("the zombie after the refused dump: %+v, %v", st, err)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !strings.Contains(string(status), "TracerPid:\t0\n") {
		t.Fatalf("the root is still traced:\n%s", status)
	}
}
