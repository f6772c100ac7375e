package ptrace

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary, re-executed, act as a traced child.
const helperEnv = "GOCR_PTRACE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "threads":
		helperThreads()
	case "seccomp":
		helperSeccomp()
	case "signals":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1)
		fmt.Println("ready")
		for range c {
			fmt.Println("usr1")
		}
	default:
		os.Exit(3)
	}
}

// helperThreads keeps several OS threads busy or sleeping and prints a tick
// every 10 ms, so a test can see it stop and carry on.
func helperThreads() {
	for i := 0; i < 4; i++ {
		go func(i int) {
			runtime.LockOSThread()
			x := 0
			for {
				if i%2 == 0 {
					for j := 0; j < 1e6; j++ {
						x += j
					}
				} else {
					time.Sleep(time.Millisecond)
				}
			}
		}(i)
	}
	for n := 0; ; n++ {
		fmt.Println("tick", n)
		time.Sleep(10 * time.Millisecond)
	}
}

func newTracer(t *testing.T) *Tracer {
	tr := NewTracer()
	t.Cleanup(tr.Close)
	return tr
}

// start runs cmd and, at cleanup, closes the tracer first (the kernel
// detaches what it still traces), then kills and reaps cmd.
func start(t *testing.T, tr *Tracer, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
}

func helperCmd(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// startSleep starts /bin/sleep: single-threaded, glibc (so rseq is
// registered), stopped in clock_nanosleep most of the time.
func startSleep(t *testing.T, tr *Tracer) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	start(t, tr, cmd)
	waitSyscall(t, cmd.Process.Pid)
	return cmd.Process.Pid
}

// seizeStopped seizes and interrupts pid.
func seizeStopped(t *testing.T, tr *Tracer, pid, opts int) {
	t.Helper()
	if err := tr.Seize(pid, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Interrupt(pid); err != nil {
		t.Fatal(err)
	}
}

// waitSyscall waits until pid sleeps in a syscall (after exec and loading).
func waitSyscall(t *testing.T, pid int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		s := string(b)
		if f := strings.Fields(s); len(f) > 0 && f[0] != "running" && procState(pid) == 'S' {
			return f[0]
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("pid %d never blocked in a syscall", pid)
	return ""
}

// procState is the state letter of /proc/TID/stat.
func procState(tid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0][0]
}

// statusField returns a field of /proc/PID/status.
func statusField(t *testing.T, pid int, name string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return ""
}

// freePids picks n pids that no task, process group or session uses.
func freePids(t *testing.T, n int) []int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	used := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		used[pid] = true
		if _, pg, sid, err := readStat(e.Name()); err == nil {
			used[pg], used[sid] = true, true
		}
		tasks, _ := os.ReadDir("/proc/" + e.Name() + "/task")
		for _, te := range tasks {
			if tid, err := strconv.Atoi(te.Name()); err == nil {
				used[tid] = true
			}
		}
	}
	var out []int
	for len(out) < n {
		p := max/2 + rand.IntN(max/2-1)
		if !used[p] {
			used[p] = true
			out = append(out, p)
		}
	}
	return out
}
