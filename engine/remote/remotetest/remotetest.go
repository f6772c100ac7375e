// Package remotetest gives tests a real process to inject into: /bin/sleep,
// seized and stopped, with scratch memory mapped in it. No mock of the
// kernel: what a test does to it, the kernel does.
package remotetest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/engine/remote"
)

// Task starts sleep with files as its fds 3, 4, …, waits until it sleeps,
// seizes it and opens an injection session with size bytes of read-write
// scratch memory. At cleanup the tracer is closed and the process killed
// and reaped. The tracer's Injected counts the calls a test makes.
func Task(t testing.TB, size uint64, files ...*os.File) (*remote.Task, *ptrace.Tracer) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tr := ptrace.NewTracer()
	t.Cleanup(func() {
		tr.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	waitAsleep(t, pid)
	if err := tr.Seize(pid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	insn, err := ptrace.FindSyscallInsn(pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tr.BeginInject(pid, insn)
	if err != nil {
		t.Fatal(err)
	}
	task, err := remote.MapScratch(r, pid, 0, size, unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		t.Fatal(err)
	}
	return task, tr
}

// waitAsleep waits until pid, past its exec, blocks in a syscall.
func waitAsleep(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		s := string(st)
		if f := strings.Fields(string(b)); len(f) > 0 && f[0] != "running" &&
			strings.HasPrefix(s[strings.LastIndexByte(s, ')')+1:], " S") {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("pid %d never blocked in a syscall", pid)
}
