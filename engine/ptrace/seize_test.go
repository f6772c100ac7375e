package ptrace

import (
	"bufio"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A running multi-threaded Go program (whose runtime also signals its own
// threads with SIGURG) is stopped whole, and carries on after Detach.
func TestSeizeThreads(t *testing.T) {
	tr := newTracer(t)
	cmd := helperCmd("threads")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, tr, cmd)
	pid := cmd.Process.Pid
	ticks := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ticks <- sc.Text()
		}
		close(ticks)
	}()
	<-ticks // running, with its threads started
	time.Sleep(50 * time.Millisecond)

	tids, err := tr.SeizeThreads(pid, unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_TRACECLONE)
	if err != nil {
		t.Fatal(err)
	}
	list, err := listThreads(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) != len(list) || len(tids) < 5 {
		t.Fatalf("seized %v, /proc lists %v", tids, list)
	}
	for _, tid := range tids {
		if s := procState(tid); s != 't' {
			t.Errorf("tid %d state %c after SeizeThreads, want t", tid, s)
		}
		if _, err := tr.GetRegs(tid); err != nil {
			t.Error(err)
		}
	}
	// Nothing ticks while stopped: let the reader catch up with what was
	// written before the stop, drain, wait, look again.
	time.Sleep(50 * time.Millisecond)
	for len(ticks) > 0 {
		<-ticks
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(ticks); n > 0 {
		t.Errorf("%d ticks while stopped", n)
	}

	for _, tid := range tids {
		if err := tr.Detach(tid, 0); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case _, ok := <-ticks:
		if !ok {
			t.Fatal("helper died after detach")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no tick after detach")
	}
	for _, tid := range tids {
		if s := procState(tid); s == 't' || s == 'T' {
			t.Errorf("tid %d still stopped (%c) after detach", tid, s)
		}
	}
}

// Interrupting a task that is already stopped does nothing; seizing twice
// is harmless; detaching an unknown tid is an error naming it.
func TestInterruptIdempotent(t *testing.T) {
	tr := newTracer(t)
	pid := startSleep(t, tr)
	seizeStopped(t, tr, pid, 0)
	if err := tr.Seize(pid, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(pid, 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.Detach(pid, 0); err == nil {
		t.Fatal("second detach succeeded")
	}
	waitSyscall(t, pid)
}

// A signal that reaches a seized thread before the interrupt does is
// delivered (the task handles it), not lost.
func TestInterruptDeliversSignalArrivingFirst(t *testing.T) {
	tr := newTracer(t)
	cmd := helperCmd("signals")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, tr, cmd)
	pid := cmd.Process.Pid
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "ready" {
		t.Fatalf("helper said %q", l)
	}
	tids, err := listThreads(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if err := tr.Seize(tid, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	inDelivery := 0
	for deadline := time.Now().Add(2 * time.Second); inDelivery == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		for _, tid := range tids {
			if procState(tid) == 't' {
				inDelivery++
			}
		}
	}
	if inDelivery == 0 {
		t.Fatal("no thread reached signal-delivery-stop")
	}
	for _, tid := range tids {
		if _, err := tr.Interrupt(tid); err != nil {
			t.Fatal(err)
		}
	}
	for _, tid := range tids {
		if err := tr.Detach(tid, 0); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case l := <-lines:
		if l != "usr1" {
			t.Fatalf("helper said %q", l)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("SIGUSR1 lost")
	}
}
