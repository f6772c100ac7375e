// Package ci holds the scripts CI and `make test` run; its tests prove
// them.
package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A step that outlives its deadline is stopped with its children and
// fails, naming itself.
func TestStepDeadline(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("bash", "step.sh", "demo", "1s", "bash", "-c", `sleep 300 & echo $! >`+pidFile+`; wait`)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 124 {
		t.Fatalf("exit %v, want 124\n%s", err, out)
	}
	if !strings.Contains(string(out), "make test: step 'demo' hit its deadline of 1s") {
		t.Errorf("output lacks the step's name:\n%s", out)
	}
	if took > 10*time.Second {
		t.Errorf("took %v for a 1s deadline", took)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("the step's child wrote no pid")
	}
	for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond) // the reaper (init) may need a moment
	}
	if syscall.Kill(pid, 0) == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the step's child %d outlived the deadline", pid)
	}
}

// A step within its deadline keeps its own exit status.
func TestStepStatus(t *testing.T) {
	for _, code := range []int{0, 3} {
		err := exec.Command("bash", "step.sh", "demo", "30s", "bash", "-c", "exit "+strconv.Itoa(code)).Run()
		got := 0
		if ee, ok := err.(*exec.ExitError); ok {
			got = ee.ExitCode()
		}
		if got != code {
			t.Errorf("exit %d, want %d (%v)", got, code, err)
		}
	}
}

// SIGTERM (or a terminal's Ctrl-C) to the step reaches the command, in
// its process group of its own.
func TestStepPassesSignals(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("bash", "step.sh", "demo", "5m", "bash", "-c", `trap 'echo got TERM; exit 7' TERM; echo $$ >`+pidFile+`; while :; do sleep 0.1; done`)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(pidFile); len(b) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 || !strings.Contains(out.String(), "got TERM") {
			t.Fatalf("exit %v, output %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the step did not pass SIGINT on")
	}
}
