package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var selftestBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "harness-test-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	selftestBin = filepath.Join(dir, "selftest")
	cmd := exec.Command("go", "build", "-o", selftestBin, "./testdata/selftest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build selftest: %v\n%s", err, out)
		os.Exit(1)
	}
	// The harness reaps its workloads as a subreaper, as the suite does.
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: workloads run in fresh namespaces")
	}
}

func selftestSpec(t *testing.T, name, flavor, mode string, e Engine, timeout time.Duration) Spec {
	return Spec{
		Workload: Workload{Name: name, Command: []string{selftestBin, name}, Gocr: true, Desc: Desc{Timeout: timeout}},
		Flavor:   flavor, Mode: mode, Engine: e, Dir: filepath.Join(t.TempDir(), "spec"),
	}
}

func TestGoodWorkloadPasses(t *testing.T) {
	needRoot(t)
	for _, flavor := range []string{"h", "ns"} {
		res, err := Run(context.Background(), selftestSpec(t, "good", flavor, ModePlain, NoEngine{}, 20*time.Second))
		if err != nil {
			t.Fatalf("%s: %v", flavor, err)
		}
		if res.Verdict != "PASS" {
			t.Fatalf("%s: verdict %q", flavor, res.Verdict)
		}
		if alive(res.Pid) {
			t.Fatalf("%s: workload %d still alive after its verdict", flavor, res.Pid)
		}
	}
}

// Each misbehaviour must fail the spec, with a message that says what
// happened, and leave no process behind.
func TestMisbehavingWorkloadsFail(t *testing.T) {
	needRoot(t)
	cases := []struct {
		workload, want string
		timeout        time.Duration
	}{
		{"fail", "FAIL: state lost on purpose", 20 * time.Second},
		{"die", "no verdict", 20 * time.Second},
		{"crash", "died before it was ready", 20 * time.Second},
		{"never-ready", "pidfile never appeared", 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.workload, func(t *testing.T) {
			s := selftestSpec(t, c.workload, "h", ModePlain, NoEngine{}, c.timeout)
			_, err := Run(context.Background(), s)
			if err == nil {
				t.Fatalf("spec passed; want a failure mentioning %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
			if b, err := os.ReadFile(s.pidFile()); err == nil {
				var pid int
				fmt.Sscan(string(b), &pid)
				if pid > 0 && alive(pid) {
					unix.Kill(pid, unix.SIGKILL)
					t.Fatalf("workload %d outlived its failed spec", pid)
				}
			}
			// Without a pidfile: any process started for this spec.
			if left := processesMentioning(s.Dir); len(left) > 0 {
				for _, p := range left {
					unix.Kill(p, unix.SIGKILL)
				}
				t.Fatalf("processes %v started for the spec outlived it", left)
			}
		})
	}
}

// usr1Engine stands in for a checkpoint engine that changes the workload's
// mount table: its "dump" makes the workload mount a tmpfs, for real.
type usr1Engine struct{ NoEngine }

func (usr1Engine) Checkpoints() bool { return true }
func (usr1Engine) Dump(ctx context.Context, pid int, d DumpSpec) error {
	before, err := mountTable(pid)
	if err != nil {
		return err
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		return err
	}
	for ctx.Err() == nil {
		after, err := mountTable(pid)
		if err != nil {
			return err
		}
		if len(after) != len(before) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ctx.Err()
}

func TestChangedMountinfoFails(t *testing.T) {
	needRoot(t)
	s := selftestSpec(t, "mount-on-usr1", "ns", ModeLeaveRunning, usr1Engine{}, 20*time.Second)
	_, err := Run(context.Background(), s)
	if err == nil {
		t.Fatal("spec passed although the workload's mountinfo changed during the dump")
	}
	if !strings.Contains(err.Error(), "mountinfo of mnt") || !strings.Contains(err.Error(), "+ "+filepath.Join(s.Dir, "mnt")) {
		t.Fatalf("error does not show the new mount: %v", err)
	}
}

// acceptingEngine accepts every dump with --leave-running and changes
// nothing: an engine that should have refused.
type acceptingEngine struct{ NoEngine }

func (acceptingEngine) Checkpoints() bool { return true }

func TestCrfailDumpThatSucceedsFails(t *testing.T) {
	needRoot(t)
	s := selftestSpec(t, "good", "h", ModeLeaveRunning, acceptingEngine{}, 20*time.Second)
	s.Workload.Desc.Flags = []string{"crfail"}
	if _, err := Run(context.Background(), s); err == nil || !strings.Contains(err.Error(), "crfail") {
		t.Fatalf("want a crfail failure, got %v", err)
	}
}

// processesMentioning lists the running processes whose command line holds
// s, zombies excepted.
func processesMentioning(s string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(cmd), s) {
			out = append(out, pid)
		}
	}
	return out
}
