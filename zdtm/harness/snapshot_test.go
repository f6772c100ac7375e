package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDiffNamesEachDifference(t *testing.T) {
	before := &Snapshot{
		Procs: map[int]*ProcState{10: {Pid: 10, Tree: "state alive ppid out pgid 10 sid 10",
			Fds: []string{"fd 0: /dev/null flags 0100000", "fd 3: /tmp/a flags 02"}, Maps: []string{"1000-2000 r-xp /bin/x"},
			Status: []string{"SigBlk: 0"}, Namespaces: map[string]string{"mnt": "ns#1"}}},
		Mounts: map[string][]string{"ns#1": {"/ root=/ tmpfs t opts=rw super=rw prop=private"}},
	}
	after := &Snapshot{
		Procs: map[int]*ProcState{10: {Pid: 10, Tree: "state alive ppid out pgid 10 sid 10",
			Fds: []string{"fd 0: /dev/null flags 0100000", "fd 3: /tmp/b flags 02"}, Maps: []string{"1000-2000 r-xp /bin/x"},
			Status: []string{"SigBlk: 4"}, Namespaces: map[string]string{"mnt": "host"}}},
		Mounts: map[string][]string{"ns#1": {"/ root=/ tmpfs t opts=ro super=rw prop=private"}},
	}
	if d := Diff(before, before); d != "" {
		t.Fatalf("a snapshot differs from itself:\n%s", d)
	}
	d := Diff(before, after)
	for _, want := range []string{"pid 10 fds:", "- fd 3: /tmp/a", "+ fd 3: /tmp/b", "pid 10 status:", "+ SigBlk: 4",
		"pid 10 namespaces:", "+ mnt=host", "mountinfo of mnt ns#1:", "opts=ro"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	delete(after.Procs, 10)
	if d := Diff(before, after); !strings.Contains(d, "pid 10: missing after restore") {
		t.Errorf("a vanished process is not reported:\n%s", d)
	}
}

// A real process seen twice without change gives no diff; after it opens a
// file, the diff shows the new fd.
func TestSnapshotOfRealProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// Let it finish loading: it then sleeps in clock_nanosleep (230).
	for i := 0; ; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", cmd.Process.Pid))
		if strings.HasPrefix(string(b), "230 ") {
			break
		}
		if i > 500 {
			t.Fatalf("sleep never went to sleep: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a, err := TakeSnapshot(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TakeSnapshot(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(a, b); d != "" {
		t.Fatalf("idle process changed:\n%s", d)
	}
	p := a.Procs[cmd.Process.Pid]
	if p == nil || len(p.Maps) == 0 || len(p.Fds) < 3 || p.Namespaces["mnt"] != "host" {
		t.Fatalf("snapshot misses state: %+v", p)
	}
	if len(a.Mounts["host"]) == 0 {
		t.Fatal("no mount table for the host mount namespace")
	}
}

func TestDiffThreadsAndMaps(t *testing.T) {
	maps := []string{"1000-3000 rw-p ", "3000-8000 ---p ", "8000-9000 r-xp /bin/x"}
	var b strings.Builder
	// A lost thread and a lost or changed mapping always count.
	diffTids(&b, 1, []int{1, 2, 3}, []int{1, 3, 4, 5})
	diffMaps(&b, 1, maps, []string{"1000-3000 rw-p ", "3000-8000 ---p ", "8000-9000 r--p /bin/x"})
	for _, want := range []string{"lost 2", "- 8000-9000 r-xp /bin/x", "+ 8000-9000 r--p /bin/x"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("%q not reported:\n%s", want, b.String())
		}
	}
	// The Go runtime's growth passes: reservations committed, anonymous
	// memory added and merged; a new file mapping or executable memory not.
	b.Reset()
	diffMaps(&b, 1, maps, []string{"1000-5000 rw-p ", "5000-8000 ---p ", "8000-9000 r-xp /bin/x",
		"a000-b000 rw-p ", "b000-c000 r--p /etc/y", "c000-d000 rwxp "})
	if got := b.String(); got != "pid 1 maps:\n  + b000-c000 r--p /etc/y\n  + c000-d000 rwxp \n" {
		t.Fatalf("got:\n%s", got)
	}
	// Read-write memory that went away is a difference.
	b.Reset()
	diffMaps(&b, 1, maps, []string{"1000-2000 rw-p ", "3000-8000 ---p ", "8000-9000 r-xp /bin/x"})
	if !strings.Contains(b.String(), "- 1000-3000 rw-p") {
		t.Fatalf("lost memory not reported:\n%s", b.String())
	}
}

// Processes that share a pipe show the same label for it, and the label
// does not depend on the pipe's inode.
func TestSnapshotLabelsSharedPipes(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 | sleep 30; true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var s *Snapshot
	for i := 0; ; i++ {
		var err error
		if s, err = TakeSnapshot(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if len(s.Procs) == 3 && strings.Contains(strings.Join(s.Procs[cmd.Process.Pid].Status, " "), "Name: sh") {
			break
		}
		if i > 500 {
			t.Fatalf("sh never started its two sleeps: %d processes", len(s.Procs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var holders []int
	for pid, p := range s.Procs {
		if pid == cmd.Process.Pid {
			continue
		}
		for _, fd := range p.Fds {
			if strings.Contains(fd, "pipe:") {
				t.Errorf("pid %d: pipe inode not replaced: %s", pid, fd)
			}
			if strings.Contains(fd, " pipe#1 ") {
				holders = append(holders, pid)
			}
		}
		if !strings.Contains(p.Tree, "ppid "+strconv.Itoa(cmd.Process.Pid)+" pgid out sid out tty ") {
			t.Errorf("pid %d: tree links %q, want its parent in the tree and its group and session out", pid, p.Tree)
		}
	}
	if len(holders) != 2 {
		t.Errorf("pipe#1 held by %v, want both sleeps:\n%v", holders, s.Procs)
	}
}

// tty_nr of /proc/PID/stat is the kernel's new_encode_dev of the terminal.
func TestTtyName(t *testing.T) {
	for _, c := range []struct{ nr, want string }{
		{"0", "none"},
		{"34816", "pty 0"},     // 136:0
		{"34823", "pty 7"},     // 136:7
		{"1083392", "pty 256"}, // 136:256: minor bits 8.. go to 20..
		{"1025", "dev 4:1"},    // /dev/tty1
		{"x", "none"},
	} {
		if got := ttyName(c.nr); got != c.want {
			t.Errorf("ttyName(%s) = %q, want %q", c.nr, got, c.want)
		}
	}
}
