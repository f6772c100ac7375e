package vmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/vmtest/kernel"
	"github.com/gocr/gocr/vmtest/qemu"
	"github.com/gocr/gocr/vmtest/qemu/qemutest"
)

// standIn makes the test binary the QEMU of this test, in mode, and
// returns its path and the file of the pids it started.
func standIn(t *testing.T, mode string) (bin, pids string) {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pids = filepath.Join(t.TempDir(), "pids")
	t.Setenv(qemutest.Env, mode)
	t.Setenv(qemutest.PidsEnv, pids)
	return bin, pids
}

// noneLeft fails the test if a stand-in QEMU it started still exists.
func noneLeft(t *testing.T, pids string) {
	t.Helper()
	ps := qemutest.Pids(pids)
	if len(ps) == 0 {
		t.Fatal("no stand-in QEMU was started")
	}
	if alive := qemutest.Alive(ps); len(alive) > 0 {
		t.Fatalf("QEMU left behind: pids %v", alive)
	}
}

// fakeKernel is a kernel of one's own whose image the stand-in "boots";
// mode, if set, is the stand-in's behaviour for it alone.
func fakeKernel(t *testing.T, line, mode string) *kernel.Kernel {
	t.Helper()
	img := filepath.Join(t.TempDir(), "vmlinux-"+line)
	if err := os.WriteFile(img, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	if mode != "" {
		os.WriteFile(qemutest.ModeFile(img), []byte(mode), 0o644)
	}
	k, err := kernel.Local(img, "")
	if err != nil {
		t.Fatal(err)
	}
	k.Line = line
	return k
}

func fakeInit(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "init")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	return p
}

// within runs f and fails the test if it has not returned after limit.
func within(t *testing.T, limit time.Duration, what string, f func()) time.Duration {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s did not return within %v", what, limit)
	}
	return time.Since(start)
}

func TestChooseAccelKVMAborts(t *testing.T) {
	bin, pids := standIn(t, qemutest.KVMAbort)
	p := AccelProbe{Kernel: fakeKernel(t, "6.1", ""), Init: fakeInit(t), Dir: t.TempDir(), QEMU: bin, Device: "/dev/null"}
	for _, mode := range []string{"auto", "on"} {
		p.Mode = mode
		var a qemu.Accel
		var why string
		var err error
		took := within(t, 30*time.Second, "ChooseAccel", func() { a, why, err = ChooseAccel(context.Background(), p) })
		switch mode {
		case "auto":
			if err != nil || a != qemu.TCG {
				t.Fatalf("auto: %v %v", a, err)
			}
			for _, want := range []string{"TCG: KVM does not work here", "-cpu host: QEMU qemu-exited (status 134 (SIGABRT)): qemu-system-x86_64: error: failed to set MSR 0x10a", "-cpu host,-arch-capabilities:"} {
				if !strings.Contains(why, want) {
					t.Errorf("auto: %q lacks %q", why, want)
				}
			}
		case "on":
			if err == nil || !strings.Contains(err.Error(), "failed to set MSR 0x10a to 0x69") {
				t.Fatalf("on: %v %v", a, err)
			}
		}
		if took > 10*time.Second {
			t.Errorf("%s: %v to find that KVM aborts", mode, took)
		}
	}
	noneLeft(t, pids)
}

func TestChooseAccelKVMGuestSilent(t *testing.T) {
	bin, pids := standIn(t, qemutest.KVMHang)
	p := AccelProbe{Mode: "auto", Kernel: fakeKernel(t, "6.1", ""), Init: fakeInit(t), Dir: t.TempDir(), QEMU: bin,
		Device: "/dev/null", Timeout: time.Second}
	var a qemu.Accel
	var why string
	var err error
	within(t, 60*time.Second, "ChooseAccel", func() { a, why, err = ChooseAccel(context.Background(), p) })
	if err != nil || a != qemu.TCG || !strings.Contains(why, "the guest did not answer within 1s") {
		t.Fatalf("%v %q %v", a, why, err)
	}
	noneLeft(t, pids)
}

func TestChooseAccelKVMWorks(t *testing.T) {
	bin, pids := standIn(t, qemutest.Poweroff)
	p := AccelProbe{Mode: "auto", Kernel: fakeKernel(t, "6.1", ""), Init: fakeInit(t), Dir: t.TempDir(), QEMU: bin, Device: "/dev/null"}
	a, why, err := ChooseAccel(context.Background(), p)
	if err != nil || a != (qemu.Accel{Name: "kvm", CPU: "host"}) || !strings.Contains(why, "reached /init and answered") {
		t.Fatalf("%v %q %v", a, why, err)
	}
	noneLeft(t, pids)
}

func TestChooseAccelNoDevice(t *testing.T) {
	p := AccelProbe{Kernel: fakeKernel(t, "6.1", ""), Device: filepath.Join(t.TempDir(), "kvm")}
	p.Mode = "auto"
	if a, why, err := ChooseAccel(context.Background(), p); err != nil || a != qemu.TCG || !strings.Contains(why, "no such file") {
		t.Fatalf("auto: %v %q %v", a, why, err)
	}
	p.Mode = "on"
	if _, _, err := ChooseAccel(context.Background(), p); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("on: %v", err)
	}
	p.Mode = "off"
	if a, _, err := ChooseAccel(context.Background(), p); err != nil || a != qemu.TCG {
		t.Fatalf("off: %v %v", a, err)
	}
}

func payloadOf(t *testing.T) *Payload {
	return &Payload{Files: []File{{Dest: "/init", Src: fakeInit(t), Mode: 0o755}}}
}

// A QEMU that dies ends its kernel's run with its status and message;
// the matrix goes on with the other kernels.
func TestMatrixGoesOnAfterQEMUDies(t *testing.T) {
	bin, pids := standIn(t, qemutest.Poweroff)
	ks := []*kernel.Kernel{fakeKernel(t, "dies", qemutest.ExitAtOnce), fakeKernel(t, "aborts", qemutest.AbortLater), fakeKernel(t, "works", "")}
	out := t.TempDir()
	o := Options{Engine: "none", Out: out, MemMiB: 64, CPUs: 1, Jobs: 1, Timeout: time.Minute, QEMU: bin, Log: t.Logf}
	var rs []*Result
	within(t, 60*time.Second, "RunMatrix", func() { rs = RunMatrix(context.Background(), ks, payloadOf(t), o) })
	for _, r := range rs[:2] {
		if r.Verdict() != "FAIL (qemu-exited: status 134 (SIGABRT))" || !strings.Contains(r.Note, "failed to set MSR 0x10a") {
			t.Errorf("%s: %s %q", r.Line, r.Verdict(), r.Note)
		}
		b, _ := os.ReadFile(filepath.Join(r.Dir, "failure.txt"))
		if !strings.Contains(string(b), "qemu.stderr:") || !strings.Contains(string(b), "console:") {
			t.Errorf("%s: failure.txt lacks the tails:\n%s", r.Line, b)
		}
	}
	if !strings.Contains(rs[0].Note, "before QMP") || !strings.Contains(rs[1].Note, "running") {
		t.Errorf("phases: %q / %q", rs[0].Note, rs[1].Note)
	}
	if !rs[2].OK() || rs[2].Passed != 3 {
		t.Errorf("works: %+v", rs[2])
	}
	var sb strings.Builder
	WriteTable(&sb, rs, "none", time.Minute)
	if !strings.Contains(sb.String(), "vmtest: 3 passed, 2 failed, 0 skipped (3 kernels") {
		t.Errorf("table:\n%s", sb.String())
	}
	noneLeft(t, pids)
}

// SIGTERM to vmtest stops every QEMU it started, ones that ignore
// SIGTERM and answer nothing included, and the kernels not started yet
// are not started.
func TestMatrixStopsOnSIGTERM(t *testing.T) {
	bin, pids := standIn(t, qemutest.Hang)
	ks := []*kernel.Kernel{fakeKernel(t, "a", ""), fakeKernel(t, "b", ""), fakeKernel(t, "c", "")}
	o := Options{Engine: "none", Out: t.TempDir(), MemMiB: 64, CPUs: 1, Jobs: 2, Timeout: time.Hour, QEMU: bin, Log: t.Logf}
	ctx, stop := SignalContext(context.Background(), t.Logf)
	defer stop()
	go func() {
		time.Sleep(1500 * time.Millisecond)
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()
	var rs []*Result
	took := within(t, 30*time.Second, "RunMatrix", func() { rs = RunMatrix(ctx, ks, payloadOf(t), o) })
	for _, r := range rs {
		if r.End != qemu.EndInterrupted || !strings.Contains(r.Note, "signal: terminated") {
			t.Errorf("%s: %s %q", r.Line, r.End, r.Note)
		}
	}
	if took > 8*time.Second {
		t.Errorf("%v from start to every QEMU stopped (SIGTERM at 1.5s)", took)
	}
	if n := len(qemutest.Pids(pids)); n != 2 {
		t.Errorf("%d QEMUs started, want 2 (the third kernel waits for a slot)", n)
	}
	noneLeft(t, pids)
}

// The real QEMU, told to use KVM where it cannot (the device vmtest saw
// open is not what QEMU opens): the probe fails with QEMU's own message
// and vmtest falls back to TCG.
func TestChooseAccelRealQEMUWithoutKVM(t *testing.T) {
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (make vmdeps)")
	}
	if qemu.OpenKVM() == nil {
		t.Skip("this host has a KVM QEMU may use: the probe would boot for real")
	}
	p := AccelProbe{Mode: "auto", Kernel: fakeKernel(t, "6.1", ""), Init: fakeInit(t), Dir: t.TempDir(), Device: "/dev/null"}
	var a qemu.Accel
	var why string
	var err error
	took := within(t, 60*time.Second, "ChooseAccel", func() { a, why, err = ChooseAccel(context.Background(), p) })
	if err != nil || a != qemu.TCG || !strings.Contains(why, "qemu-exited (status 1)") || !strings.Contains(strings.ToLower(why), "kvm") {
		t.Fatalf("%v %q %v", a, why, err)
	}
	t.Logf("%v: %s", took, why)
}
