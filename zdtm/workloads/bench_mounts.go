package workloads

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/gocr/gocr/zdtm/lib"
)

// BenchMounts is a tree whose child lives in a mount namespace of its own
// holding --mounts tmpfs mounts (default 1000) besides its copy of the
// host's; the root checks after SIGTERM that the child still has them.
var BenchMounts = lib.Workload{Name: "bench_mounts", Run: func(t *lib.T) {
	n, err := strconv.Atoi(t.Opt("mounts", "1000"))
	if err != nil || n < 1 {
		t.Fatal(fmt.Errorf("--mounts: %q", t.Opt("mounts", "1000")))
	}
	dir := t.Opt("dirname", "")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "gocr-bench-mounts-"); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	script := fmt.Sprintf(`cd %q && i=0 && while [ $i -lt %d ]; do i=$((i+1)); mkdir -p m/$i && mount -t tmpfs -o size=64k t$i m/$i || exit 1; done && touch ready && exec sleep 1000000`, dir, n)
	// syscall.ForkExec, not os/exec: gocr does not dump pidfds yet.
	pid, err := syscall.ForkExec(unshare, []string{"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script},
		&syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) || syscall.Kill(pid, 0) != nil {
			t.Fatal(fmt.Errorf("the child never made its %d mounts", n))
		}
	}
	count := func() int {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
		return bytes.Count(b, []byte(" - tmpfs t"))
	}
	before := count()
	t.Ready()
	t.WaitSignal()
	if got := count(); got != before || got < n {
		t.Fail("the child has %d of its tmpfs mounts, had %d", got, before)
	}
	t.Pass()
}}
