package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The C workloads of process trees, built once for the tests below.
var (
	cOnce sync.Once
	cDir  string
	cErr  error
)

func cWorkload(t *testing.T, name string) string {
	t.Helper()
	needRoot(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc to build the C workloads")
	}
	cOnce.Do(func() {
		cDir = filepath.Join(filepath.Dir(selftestBin), "c") // removed with selftestBin
		var out []byte
		if out, cErr = exec.Command("sh", "../workloads/c/build.sh", cDir).CombinedOutput(); cErr != nil {
			cErr = fmt.Errorf("%v\n%s", cErr, out)
		}
	})
	if cErr != nil {
		t.Fatalf("build the C workloads: %v", cErr)
	}
	return filepath.Join(cDir, name)
}

func cSpec(t *testing.T, name, flavor string, e Engine) Spec {
	bin := cWorkload(t, name)
	// The uns flavor's root (UnsHostID outside) must reach the spec's dir.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Spec{
		Workload: Workload{Name: name, Command: []string{bin}, Gocr: true, Desc: Desc{Timeout: 40 * time.Second}},
		Flavor:   flavor, Mode: ModeLeaveRunning, Engine: e, Dir: filepath.Join(dir, "spec"),
	}
}

// lookEngine "dumps" by taking a snapshot of the tree and recording its
// processes, and changes nothing unless told to: with --leave-running the
// harness then compares two looks at an unchanged tree.
type lookEngine struct {
	NoEngine
	snap   *Snapshot
	procs  *procSet
	change func(pid int, s *Snapshot) error // run after the look
}

func (*lookEngine) Checkpoints() bool { return true }
func (e *lookEngine) Dump(ctx context.Context, pid int, d DumpSpec) error {
	var err error
	if e.snap, err = TakeSnapshot(pid); err != nil {
		return err
	}
	e.procs = newProcSet()
	e.procs.add(pid)
	if e.change != nil {
		return e.change(pid, e.snap)
	}
	return nil
}

// gone fails the test for each process of the tree still there.
func (e *lookEngine) gone(t *testing.T) {
	t.Helper()
	for pid := range e.procs.start {
		if _, same := e.procs.state(pid); same {
			t.Errorf("process %d of the tree outlived its spec", pid)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// The tree workloads pass with two looks at their trees in every flavor:
// zombies, orphans, sessions, groups and shared pipes read the same twice,
// and no process of theirs is left behind.
func TestTreeWorkloadsLookTheSame(t *testing.T) {
	for _, name := range []string{"tree", "pipe_tree", "fifo", "shared_anon", "shared_file"} {
		for _, flavor := range []string{"h", "ns", "uns"} {
			t.Run(name+"/"+flavor, func(t *testing.T) {
				e := &lookEngine{}
				res, err := Run(context.Background(), cSpec(t, name, flavor, e))
				if err != nil {
					t.Fatal(err)
				}
				if res.Verdict != "PASS" {
					t.Fatalf("verdict %q", res.Verdict)
				}
				e.gone(t)
				checkShape(t, name, flavor, e.snap)
			})
		}
	}
}

// checkShape checks what the harness saw of a tree against its design.
func checkShape(t *testing.T, name, flavor string, s *Snapshot) {
	t.Helper()
	root := s.Procs[minPid(s)]
	if flavor != "h" && root.Pid != 1 {
		t.Errorf("%s: the root is pid %d in its pid namespace, want 1", flavor, root.Pid)
	}
	var links [][]string // state ppid pgid sid of each process
	for _, p := range s.Procs {
		f := strings.Fields(p.Tree)
		links = append(links, []string{f[1], f[3], f[5], f[7]})
		if p != root && f[3] == "out" {
			t.Errorf("pid %d: parent outside the tree: %s", p.Pid, p.Tree)
		}
	}
	switch name {
	case "tree":
		if len(s.Procs) != 12 {
			t.Fatalf("%d processes, want 12:\n%s", len(s.Procs), dumpTree(s))
		}
		sids, pgids, zombies := map[string]bool{}, map[string]bool{}, 0
		for _, l := range links {
			sids[l[3]], pgids[l[2]] = true, true
			if l[0] == "Z" {
				zombies++
			}
		}
		if len(sids) != 2 || len(pgids) != 4 || sids["out"] || pgids["out"] || zombies != 3 {
			t.Errorf("want 2 sessions, 4 groups, all in the tree, and 3 zombies (exited, killed by SIGTERM, by SIGKILL):\n%s", dumpTree(s))
		}
		for _, p := range s.Procs {
			if strings.HasPrefix(p.Tree, "state Z") && (len(p.Fds) > 0 || len(p.Maps) > 0 || p.Namespaces["mnt"] != "") {
				t.Errorf("zombie %d has fds, maps or a mount namespace: %+v", p.Pid, p)
			}
		}
	case "pipe_tree", "fifo":
		// The pipe or FIFO joins two processes: in pipe_tree each end is
		// in a child, in fifo the read end in the root.
		holders := map[string]map[int]bool{}
		for _, p := range s.Procs {
			for _, fd := range p.Fds {
				if target := strings.Fields(fd)[2]; strings.HasPrefix(target, "pipe#") || strings.HasSuffix(target, "/fifo") {
					if holders[target] == nil {
						holders[target] = map[int]bool{}
					}
					holders[target][p.Pid] = true
				}
			}
		}
		shared := 0
		for _, h := range holders {
			if len(h) == 2 {
				shared++
			}
		}
		if shared == 0 {
			t.Errorf("no pipe held by two processes:\n%s", dumpTree(s))
		}
	}
}

func minPid(s *Snapshot) int {
	m := -1
	for p := range s.Procs {
		if m < 0 || p < m {
			m = p
		}
	}
	return m
}

func dumpTree(s *Snapshot) string {
	var b strings.Builder
	for _, p := range s.Procs {
		b.WriteString(strconv.Itoa(p.Pid) + " (host " + strconv.Itoa(p.HostPid) + "): " + p.Tree + "\n")
		for _, fd := range p.Fds {
			b.WriteString("    " + fd + "\n")
		}
	}
	return b.String()
}

// A process of the tree that dies between the looks is a difference, named
// by its pid in the tree's pid namespace.
func TestTreeChangeIsSeen(t *testing.T) {
	for _, flavor := range []string{"h", "ns"} {
		t.Run(flavor, func(t *testing.T) {
			var victim int
			e := &lookEngine{change: func(_ int, s *Snapshot) error {
				// A living grandchild: one of the session leader's
				// children, which their parent leaves a zombie until SIGTERM.
				root := strconv.Itoa(minPid(s))
				for _, p := range s.Procs {
					f := strings.Fields(p.Tree) // state S ppid P pgid G sid S
					if f[1] != "alive" || f[3] == "out" || f[3] == root {
						continue
					}
					victim = p.Pid
					unix.Kill(p.HostPid, unix.SIGKILL)
					for {
						if _, state, err := procStart(p.HostPid); err != nil || state == 'Z' {
							return nil
						}
						time.Sleep(time.Millisecond)
					}
				}
				t.Fatalf("no grandchild in the tree:\n%s", dumpTree(s))
				return nil
			}}
			_, err := Run(context.Background(), cSpec(t, "tree", flavor, e))
			if err == nil {
				t.Fatal("the spec passed although a process of the tree died between the looks")
			}
			want := "pid " + strconv.Itoa(victim) + " tree:"
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "+ state Z") {
				t.Fatalf("the error does not show %q turning into a zombie: %v", want, err)
			}
			e.gone(t)
		})
	}
}

// A workload that leaves a process running after its verdict fails, and
// the process is killed.
func TestLeftoverFails(t *testing.T) {
	needRoot(t)
	s := selftestSpec(t, "leftover", "h", ModePlain, NoEngine{}, 20*time.Second)
	_, err := Run(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("want a failure naming the leftover, got %v", err)
	}
	b, rerr := os.ReadFile(filepath.Join(s.Dir, "leftover.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil || pid <= 0 {
		t.Fatalf("the workload did not say its leftover's pid: %v", rerr)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(pid)) {
		t.Errorf("the error does not name the leftover %d: %v", pid, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("the leftover %d is still there after the spec", pid)
	}
}
