package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocr/gocr/vmtest/qemu/qemutest"
)

func TestMain(m *testing.M) {
	qemutest.Main() // the test binary is also the stand-in QEMU
	os.Exit(m.Run())
}

// runFake runs a VM with the stand-in QEMU in mode and fails the test if
// Run does not return within limit (the bug these tests guard against is
// a Run that never returns) or leaves a QEMU behind.
func runFake(t *testing.T, ctx context.Context, mode string, c Config, limit time.Duration) (*Outcome, time.Duration) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	t.Setenv(qemutest.Env, mode)
	t.Setenv(qemutest.PidsEnv, pids)
	c.Binary, c.Dir = self, filepath.Join(dir, "vm")
	c.Kernel, c.Initrd, c.MemMiB, c.CPUs = filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd"), 64, 1
	if c.Timeout == 0 {
		c.Timeout = time.Minute
	}
	type result struct {
		o   *Outcome
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		o, err := Run(ctx, c)
		done <- result{o, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(limit):
		t.Fatalf("mode %s: Run did not return within %v", mode, limit)
	}
	took := time.Since(start)
	if r.err != nil {
		t.Fatalf("mode %s: %v", mode, r.err)
	}
	ps := qemutest.Pids(pids)
	if len(ps) == 0 {
		t.Fatalf("mode %s: the stand-in never started", mode)
	}
	if alive := qemutest.Alive(ps); len(alive) > 0 {
		t.Fatalf("mode %s: QEMU left behind: pids %v", mode, alive)
	}
	return r.o, took
}

func stderrOf(t *testing.T, o *Outcome) string {
	b, err := os.ReadFile(o.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunQEMUExitsAtOnce(t *testing.T) {
	o, took := runFake(t, context.Background(), qemutest.ExitAtOnce, Config{}, 20*time.Second)
	if o.End != EndExit || o.Exit != "status 134 (SIGABRT)" || o.Phase != "before QMP" {
		t.Fatalf("outcome %+v", o)
	}
	if !strings.Contains(stderrOf(t, o), "failed to set MSR 0x10a") {
		t.Fatalf("qemu.stderr lacks QEMU's error: %q", stderrOf(t, o))
	}
	if took > 5*time.Second {
		t.Errorf("took %v to notice a QEMU that died at once", took)
	}
}

func TestRunQEMUAbortsMidRun(t *testing.T) {
	o, took := runFake(t, context.Background(), qemutest.AbortLater, Config{}, 20*time.Second)
	if o.End != EndExit || o.Exit != "status 134 (SIGABRT)" || o.Phase != "running" {
		t.Fatalf("outcome %+v", o)
	}
	if took > 6*time.Second {
		t.Errorf("took %v to notice QEMU's abort", took)
	}
}

func TestRunQEMUWithoutQMPSocket(t *testing.T) {
	o, took := runFake(t, context.Background(), qemutest.NoQMP, Config{QMPWait: time.Second}, 20*time.Second)
	if o.End != EndNoQMP || !strings.Contains(o.Detail, "no QMP within 1s") {
		t.Fatalf("outcome %+v", o)
	}
	if took > 5*time.Second {
		t.Errorf("took %v to give up on a QEMU without QMP", took)
	}
}

// The per-VM wall clock holds before QMP is up too.
func TestRunTimeoutBeforeQMP(t *testing.T) {
	o, took := runFake(t, context.Background(), qemutest.NoQMP, Config{Timeout: time.Second}, 20*time.Second)
	if o.End != EndTimeout || o.Phase != "before QMP" {
		t.Fatalf("outcome %+v", o)
	}
	if took > 5*time.Second {
		t.Errorf("took %v for a 1s wall clock", took)
	}
}

// A QEMU that hangs with QMP up, answers nothing and ignores SIGTERM is
// killed once the wall clock runs out.
func TestRunQEMUHangsAfterQMP(t *testing.T) {
	o, took := runFake(t, context.Background(), qemutest.Hang, Config{Timeout: 2 * time.Second}, 30*time.Second)
	if o.End != EndTimeout || o.Phase != "running" {
		t.Fatalf("outcome %+v", o)
	}
	if took > 12*time.Second {
		t.Errorf("took %v for a 2s wall clock", took)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		time.Sleep(time.Second)
		cancel(errors.New("signal: terminated"))
	}()
	o, took := runFake(t, ctx, qemutest.Hang, Config{Timeout: time.Hour}, 20*time.Second)
	if o.End != EndInterrupted || o.Detail != "signal: terminated" {
		t.Fatalf("outcome %+v", o)
	}
	if took > 5*time.Second {
		t.Errorf("took %v to stop after the interrupt", took)
	}
}

func TestRunPoweroff(t *testing.T) {
	o, _ := runFake(t, context.Background(), qemutest.Poweroff, Config{}, 20*time.Second)
	if o.End != EndPoweroff || o.Reason != "guest-shutdown" || o.Exit != "status 0" {
		t.Fatalf("outcome %+v", o)
	}
	if fi, err := os.Stat(o.Results); err != nil || fi.Size() == 0 {
		t.Fatalf("results: %v", err)
	}
}

func TestArgs(t *testing.T) {
	c := Config{Kernel: "k", Initrd: "i", MemMiB: 512, CPUs: 1, Dir: "/d"}
	if got := strings.Join(c.Args(), " "); !strings.Contains(got, "accel=tcg -cpu max") {
		t.Errorf("default accel: %s", got)
	}
	c.Accel = Accel{Name: "kvm", CPU: "host,-arch-capabilities"}
	if got := strings.Join(c.Args(), " "); !strings.Contains(got, "accel=kvm -cpu host,-arch-capabilities") {
		t.Errorf("kvm: %s", got)
	}
}
