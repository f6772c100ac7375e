package ptrace

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// beginInject seizes a stopped pid and opens a session through its vdso.
func beginInject(t testing.TB, tr *Tracer, pid int) *Remote {
	t.Helper()
	insn, err := FindSyscallInsn(pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tr.BeginInject(pid, insn)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInjectGetpidAndMemory(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, unix.PTRACE_O_TRACESYSGOOD)
	before, _ := tr.GetRegs(pid)
	mask0, _ := tr.GetSigmask(pid)
	r := beginInject(t, tr, pid)

	got, err := r.Syscall(unix.SYS_GETPID)
	if err != nil || int(got) != pid {
		t.Fatalf("injected getpid = %d, %v; want %d", got, err, pid)
	}
	// A signal arriving mid-injection stays queued, not handled.
	if err := unix.Kill(pid, unix.SIGWINCH); err != nil {
		t.Fatal(err)
	}

	const page = 4096
	addr, err := r.Syscall(unix.SYS_MMAP, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("written by gocr into another address space")
	if err := WriteMem(pid, addr+page-10, msg); err != nil { // across the page boundary
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if err := ReadMem(pid, addr+page-10, buf); err != nil || !bytes.Equal(buf, msg) {
		t.Fatalf("ReadMem = %q, %v", buf, err)
	}
	// PROT_NONE: process_vm_* refuse, /proc/PID/mem does not.
	if _, err := r.Syscall(unix.SYS_MPROTECT, addr, 2*page, unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	if _, err := processVM(pid, addr, buf, false); err == nil {
		t.Fatal("process_vm_readv read a PROT_NONE page")
	}
	clear(buf)
	if err := ReadMem(pid, addr+page-10, buf); err != nil || !bytes.Equal(buf, msg) {
		t.Fatalf("ReadMem PROT_NONE = %q, %v", buf, err)
	}
	if err := WriteMem(pid, addr, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A failing call comes back as the errno.
	if _, err := r.Syscall(unix.SYS_MUNMAP, addr+1, page); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("munmap of unaligned address: %v, want EINVAL", err)
	}
	if _, err := r.Syscall(unix.SYS_MUNMAP, addr, 2*page); err != nil {
		t.Fatal(err)
	}
	if err := ReadMem(pid, addr, buf[:1]); err == nil {
		t.Fatal("read of unmapped memory succeeded")
	}

	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	after, _ := tr.GetRegs(pid)
	if want := resumeRegs(before); after != want {
		t.Errorf("regs after End\n %+v\nwant\n %+v", after, want)
	}
	if m, _ := tr.GetSigmask(pid); m != mask0 {
		t.Errorf("sigmask after End %#x, want %#x", m, mask0)
	}
	q, err := tr.PeekSiginfo(pid, true)
	if err != nil || len(q) != 1 || q[0].Signo != int32(unix.SIGWINCH) {
		t.Errorf("shared queue after injection: %+v, %v", q, err)
	}
	if err := tr.Detach(pid, 0); err != nil {
		t.Fatal(err)
	}
	waitSyscall(t, pid) // back asleep, not crashed
}

// cat blocked in read(0) is interrupted (-ERESTARTSYS), injected into and
// let go; its read must still get the data written afterwards.
func TestInjectBlockedReadCompletes(t *testing.T) {
	tr := newTracer(t)
	cmd := exec.Command("cat")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	start(t, tr, cmd)
	pid := cmd.Process.Pid
	if nr := waitSyscall(t, pid); nr != "0" {
		t.Fatalf("cat blocked in syscall %s, want read", nr)
	}
	seizeStopped(t, tr, pid, unix.PTRACE_O_TRACESYSGOOD)
	regs, _ := tr.GetRegs(pid)
	if regs.OrigRax != unix.SYS_READ || int64(regs.Rax) != -abi.ERESTARTSYS {
		t.Fatalf("cat stopped with orig_rax %d rax %d", int64(regs.OrigRax), int64(regs.Rax))
	}
	r := beginInject(t, tr, pid)
	for i := 0; i < 3; i++ {
		if got, err := r.Syscall(unix.SYS_GETPPID); err != nil || int(got) != unix.Getpid() {
			t.Fatalf("getppid = %d, %v", got, err)
		}
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(pid, 0); err != nil {
		t.Fatal(err)
	}
	waitSyscall(t, pid)

	echo := make(chan []byte, 1)
	go func() {
		b := make([]byte, 5)
		io.ReadFull(stdout, b)
		echo <- b
	}()
	stdin.Write([]byte("ping\n"))
	select {
	case b := <-echo:
		if string(b) != "ping\n" {
			t.Fatalf("cat answered %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cat did not answer after injection")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cat exited with %v", err)
	}
}

// An injected call into a bad rip is reported, not mistaken for the task's.
func TestInjectBadInsn(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, 0)
	r, err := tr.BeginInject(pid, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Syscall(unix.SYS_GETPID); err == nil {
		t.Fatal("syscall through an unmapped rip succeeded")
	} else {
		t.Log(err)
	}
}

func BenchmarkInjectGetpid(b *testing.B) {
	tr := NewTracer()
	defer tr.Close()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { tr.Close(); cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(50 * time.Millisecond)
	pid := cmd.Process.Pid
	if err := tr.Seize(pid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Interrupt(pid); err != nil {
		b.Fatal(err)
	}
	r := beginInject(b, tr, pid)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Syscall(unix.SYS_GETPID); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	r.End()
}

// Batching on the tracer thread (one Do for many calls) saves the hand-off.
func BenchmarkInjectGetpidBatched(b *testing.B) {
	tr := NewTracer()
	defer tr.Close()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { tr.Close(); cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(50 * time.Millisecond)
	pid := cmd.Process.Pid
	if err := tr.Seize(pid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Interrupt(pid); err != nil {
		b.Fatal(err)
	}
	r := beginInject(b, tr, pid)
	b.ResetTimer()
	err := tr.Do(func() error {
		for i := 0; i < b.N; i++ {
			if _, err := r.Syscall(unix.SYS_GETPID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	r.End()
}
