package procfs

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startSleeper starts `sleep` (optionally through sh, for traps), waits
// until it sleeps, and kills and reaps it when the test ends.
func startSleeper(t *testing.T, shell string) *exec.Cmd {
	t.Helper()
	var cmd *exec.Cmd
	if shell != "" {
		cmd = exec.Command("/bin/sh", "-c", shell+"; exec sleep 1000")
	} else {
		cmd = exec.Command("sleep", "1000")
	}
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := Comm(cmd.Process.Pid)
		st, err2 := Stat(cmd.Process.Pid)
		if err == nil && err2 == nil && c == "sleep" && st.State == 'S' {
			return cmd
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("child %d never went to sleep", cmd.Process.Pid)
	return nil
}

// seed adds the content of a real /proc file to a fuzz corpus.
func seed(f *testing.F, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		f.Fatalf("read seed %s: %v", file, err)
	}
	f.Add(b)
}

func itoa(n int) string { return strconv.Itoa(n) }

// onThrowawayThread runs fn on an OS thread that is not the thread-group
// leader and is destroyed afterwards (the goroutine exits still locked), so
// fn may unshare namespaces without leaking them into the rest of the test
// binary. The leader cannot be destroyed, and /proc/PID/ns shows its view.
// A goroutine that lands on the leader keeps it occupied until fn is done,
// so the next attempt is scheduled elsewhere.
func onThrowawayThread(t *testing.T, fn func() error) {
	t.Helper()
	hold := make(chan struct{})
	defer close(hold)
	for i := 0; i < 2; i++ {
		onLeader := make(chan bool, 1)
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if unix.Gettid() == unix.Getpid() {
				onLeader <- true
				<-hold
				runtime.UnlockOSThread()
				return
			}
			onLeader <- false
			done <- fn()
		}()
		if <-onLeader {
			continue
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("could not get off the main thread")
}
