package workloads

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/gocr/gocr/zdtm/lib"
)

// BenchTree is a tree of --procs processes (default 100: the root and its
// children, each a sleep(1) holding both ends of every one of --pipes
// pipes, default 10), with a few bytes in flight in each pipe that the
// root reads back after SIGTERM.
var BenchTree = lib.Workload{Name: "bench_tree", Run: func(t *lib.T) {
	procs, err := strconv.Atoi(t.Opt("procs", "100"))
	if err != nil || procs < 1 {
		t.Fatal(fmt.Errorf("--procs: %q", t.Opt("procs", "100")))
	}
	npipes, err := strconv.Atoi(t.Opt("pipes", "10"))
	if err != nil || npipes < 1 {
		t.Fatal(fmt.Errorf("--pipes: %q", t.Opt("pipes", "10")))
	}
	var ends []*os.File
	var readers []*os.File
	for i := range npipes {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(w, "pipe %d in flight", i); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, r, w)
		readers = append(readers, r)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	// syscall.ForkExec, not os/exec: os/exec keeps a pidfd of each child,
	// and gocr does not dump pidfds yet.
	files := []uintptr{0, 1, 2}
	for _, f := range ends {
		files = append(files, f.Fd())
	}
	var kids []int
	defer func() {
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	}()
	for range procs - 1 {
		pid, err := syscall.ForkExec(sleep, []string{"sleep", "1000000"}, &syscall.ProcAttr{
			Files: files, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		})
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, pid)
	}
	t.Ready()
	t.WaitSignal()
	for i, r := range readers {
		want := fmt.Sprintf("pipe %d in flight", i)
		buf := make([]byte, len(want))
		if _, err := r.Read(buf); err != nil || string(buf) != want {
			t.Fail("pipe %d holds %q, not %q (%v)", i, buf, want, err)
		}
	}
	for _, pid := range kids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fail("child %d is gone: %v", pid, err)
		}
	}
	t.Pass()
}}
