package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// workloadEnv makes the test binary a workload (see TestMain): it counts
// with short sleeps in several goroutines and, on SIGTERM, exits 0 if the
// counting went on, 1 otherwise.
const workloadEnv = "GOCR_ENGINE_TEST_WORKLOAD"

func TestMain(m *testing.M) {
	if os.Getenv(workloadEnv) != "" {
		os.Exit(runWorkload())
	}
	os.Exit(m.Run())
}

func runWorkload() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var n atomic.Int64
	for range 4 {
		go func() {
			for {
				n.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	r, w, err := os.Pipe() // a pipe with bytes in flight and an eventfd
	if err != nil {
		return 2
	}
	w.Write([]byte("in flight"))
	efd, err := unix.Eventfd(7, unix.EFD_CLOEXEC)
	if err != nil {
		return 2
	}
	time.Sleep(50 * time.Millisecond)
	fmt.Println("ready")
	<-term
	before := n.Load()
	time.Sleep(20 * time.Millisecond)
	buf := make([]byte, 9)
	if k, err := r.Read(buf); err != nil || string(buf[:k]) != "in flight" {
		fmt.Printf("FAIL: pipe gave %q, %v\n", buf[:k], err)
		return 1
	}
	var c [8]byte
	if _, err := unix.Read(efd, c[:]); err != nil || c[0] != 7 {
		fmt.Printf("FAIL: eventfd gave %v, %v\n", c, err)
		return 1
	}
	if n.Load() <= before {
		fmt.Println("FAIL: counting stopped")
		return 1
	}
	fmt.Println("PASS")
	return 0
}

// TestDumpRestore dumps a running multi-threaded Go program, restores it
// with the same pid and threads, and lets it check itself.
func TestDumpRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), workloadEnv+"=1")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload never got ready: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	threads := func() int {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		return len(ents)
	}
	nBefore := threads()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	images := filepath.Join(dir, "img")
	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: images}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // the dump killed it; reap it, or its pid stays taken

	res, err := Restore(ctx, RestoreOptions{ImagesDir: images})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pid != pid {
		t.Fatalf("restored as pid %d, dumped %d", res.Pid, pid)
	}
	if n := threads(); n < nBefore {
		t.Errorf("restored with %d threads, dumped %d", n, nBefore)
	}
	time.Sleep(50 * time.Millisecond)
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := res.Wait(ctx)
	b, _ := os.ReadFile(out)
	if err != nil || code != 0 {
		t.Fatalf("restored workload: exit %d, %v; output %q", code, err, b)
	}
	if !strings.Contains(string(b), "PASS") {
		t.Fatalf("restored workload output %q", b)
	}
}
