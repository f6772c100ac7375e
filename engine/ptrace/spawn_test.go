package ptrace

import (
	"errors"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// spawnStub spawns the test binary (as a sleeping helper) with pid want and
// kills and reaps it at cleanup.
func spawnStub(t *testing.T, tr *Tracer, want []int, opts int) int {
	t.Helper()
	pid, err := tr.SpawnStub(StubSpec{
		Tids:    want,
		Path:    "/proc/self/exe",
		Argv:    []string{"stub", "-test.run=^$"},
		Env:     []string{helperEnv + "=sleep"},
		Options: opts,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.KillAndReap(pid); err != nil {
			t.Error(err)
		}
	})
	return pid
}

func TestSpawnStubExactPid(t *testing.T) {
	tr := newTracer(t)
	want := freePids(t, 1)[0]
	pid := spawnStub(t, tr, []int{want}, unix.PTRACE_O_EXITKILL)
	if pid != want {
		t.Fatalf("stub pid %d, want %d", pid, want)
	}
	self, _ := os.Readlink("/proc/self/exe")
	if exe, err := os.Readlink("/proc/" + itoa(pid) + "/exe"); err != nil || exe != self {
		t.Errorf("stub exe %q (%v), want %q", exe, err, self)
	}
	// Stopped at the exit of execve: rax is execve's 0, already returned.
	regs, err := tr.GetRegs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if regs.OrigRax != unix.SYS_EXECVE || regs.Rax != 0 {
		t.Errorf("stub stopped at orig_rax %d rax %d, want execve exit", int64(regs.OrigRax), int64(regs.Rax))
	}
	if m, _ := tr.GetSigmask(pid); m != ^uint64(0)&^(abi.SigBit(int(unix.SIGKILL))|abi.SigBit(int(unix.SIGSTOP))) {
		t.Errorf("stub sigmask %#x, want everything blocked", m)
	}
	r := beginInject(t, tr, pid)
	if got, err := r.Syscall(unix.SYS_GETPID); err != nil || int(got) != want {
		t.Fatalf("injected getpid = %d, %v; want %d", got, err, want)
	}
	if got, err := r.Syscall(unix.SYS_GETPPID); err != nil || int(got) != unix.Getpid() {
		t.Fatalf("injected getppid = %d, %v; want %d", got, err, unix.Getpid())
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
}

// TestSpawnStubAnyPid: without Tids the kernel picks the pid (a helper,
// such as the one that digs out hidden mounts).
func TestSpawnStubAnyPid(t *testing.T) {
	tr := newTracer(t)
	pid := spawnStub(t, tr, nil, unix.PTRACE_O_EXITKILL)
	r := beginInject(t, tr, pid)
	if got, err := r.Syscall(unix.SYS_GETPID); err != nil || int(got) != pid {
		t.Fatalf("injected getpid = %d, %v; want %d", got, err, pid)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
}

func TestSpawnStubPidTaken(t *testing.T) {
	tr := newTracer(t)
	cmd := exec.Command("sleep", "1000")
	start(t, tr, cmd)
	_, err := tr.SpawnStub(StubSpec{
		Tids:     []int{cmd.Process.Pid},
		Path:     "/bin/true",
		RetryFor: 50 * time.Millisecond,
	})
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "sleep") {
		t.Fatalf("spawn over a live pid: %v; want EEXIST naming sleep", err)
	}
	t.Log(err)
}

func TestSpawnStubExecFails(t *testing.T) {
	tr := newTracer(t)
	want := freePids(t, 1)[0]
	_, err := tr.SpawnStub(StubSpec{Tids: []int{want}, Path: "/nonexistent/stub"})
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("spawn of a missing binary: %v; want ENOENT", err)
	}
	if _, err := os.Stat("/proc/" + itoa(want)); err == nil {
		t.Fatalf("failed stub %d left behind", want)
	}
}

func TestCloneThreadExactTid(t *testing.T) {
	tr := newTracer(t)
	ids := freePids(t, 2)
	pid := spawnStub(t, tr, ids[:1], unix.PTRACE_O_TRACECLONE|unix.PTRACE_O_EXITKILL)
	r := beginInject(t, tr, pid)
	const page = 4096
	mem, err := r.Syscall(unix.SYS_MMAP, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	tid, err := r.CloneThread(ThreadSpec{Tids: ids[1:], Scratch: mem, Stack: mem + page, StackSize: page})
	if err != nil {
		t.Fatal(err)
	}
	if tid != ids[1] {
		t.Fatalf("new thread %d, want %d", tid, ids[1])
	}
	tids, err := listThreads(pid)
	if err != nil {
		t.Fatal(err)
	}
	sort.Ints(tids)
	if len(tids) != 2 || tids[0] != min(ids[0], ids[1]) || tids[1] != max(ids[0], ids[1]) {
		t.Fatalf("threads %v, want %v", tids, ids)
	}
	if s := procState(tid); s != 't' {
		t.Errorf("new thread state %c, want t (stopped before running)", s)
	}
	// The new thread takes injection too: it is a full member of the group.
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	rt := beginInject(t, tr, tid)
	if got, err := rt.Syscall(unix.SYS_GETTID); err != nil || int(got) != tid {
		t.Fatalf("gettid in new thread = %d, %v", got, err)
	}
	if got, err := rt.Syscall(unix.SYS_GETPID); err != nil || int(got) != pid {
		t.Fatalf("getpid in new thread = %d, %v", got, err)
	}
	if err := rt.End(); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A pid nobody runs as, but which is still an orphaned process group's id
// (its leader exited and was reaped), stays taken; the error says so.
func TestSpawnStubPidIsProcessGroup(t *testing.T) {
	tr := newTracer(t)
	sh := exec.Command("sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!")
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := sh.Output() // the leader exits and is reaped here
	if err != nil {
		t.Fatal(err)
	}
	leader := sh.Process.Pid
	t.Cleanup(func() { unix.Kill(-leader, unix.SIGKILL) })
	if _, err := strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
		t.Fatalf("no background pid: %q", out)
	}
	_, err = tr.SpawnStub(StubSpec{Tids: []int{leader}, Path: "/bin/true", RetryFor: 50 * time.Millisecond})
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "process group id") {
		t.Fatalf("spawn over a process group id: %v", err)
	}
	t.Log(err)
}
