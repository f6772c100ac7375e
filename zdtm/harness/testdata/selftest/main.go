// Command selftest holds workloads that misbehave on purpose, so the
// harness's tests can show that each misbehaviour fails a spec.
package main

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

func main() {
	lib.Main(
		lib.Workload{Name: "good", Run: func(t *lib.T) {
			t.Ready()
			t.WaitSignal()
			t.Pass()
		}},
		// fail reports a failed check after SIGTERM.
		lib.Workload{Name: "fail", Run: func(t *lib.T) {
			t.Ready()
			t.WaitSignal()
			t.Fail("state lost on purpose")
		}},
		// die exits without a verdict some time after it said it was ready.
		lib.Workload{Name: "die", Run: func(t *lib.T) {
			t.Ready()
			time.Sleep(100 * time.Millisecond)
			os.Exit(0)
		}},
		// crash dies before it is ready.
		lib.Workload{Name: "crash", Run: func(t *lib.T) {
			os.Exit(3)
		}},
		// never-ready never says it is ready: no pidfile appears.
		lib.Workload{Name: "never-ready", Run: func(t *lib.T) {
			t.WaitSignal()
			t.Pass()
		}},
		// leftover starts a child that outlives its verdict (and writes
		// the child's pid to leftover.pid beside the outfile).
		lib.Workload{Name: "leftover", Run: func(t *lib.T) {
			cmd := exec.Command("/bin/sleep", "1000")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pidFile := filepath.Join(filepath.Dir(t.Opt("outfile", "")), "leftover.pid")
			if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Ready()
			t.WaitSignal()
			t.Pass()
		}},
		// mount-on-usr1 mounts a tmpfs in its mount namespace on SIGUSR1,
		// which must show as a mountinfo difference.
		lib.Workload{Name: "mount-on-usr1", Run: func(t *lib.T) {
			usr1 := make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			dir := filepath.Join(filepath.Dir(t.Opt("outfile", "")), "mnt")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Ready()
			<-usr1
			if err := unix.Mount("selftest", dir, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			t.WaitSignal()
			t.Pass()
		}},
	)
}
