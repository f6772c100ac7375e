package workloads

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// PidfdChild starts a child with os/exec, which keeps a pidfd of it (Go
// 1.23 and later), and opens one more itself with pidfd_open. After the
// restore the pidfd must still name the child (its fdinfo's Pid, a signal
// 0 through it), must not poll readable while the child lives, and Go's
// os.Process, which signals and waits through its pidfd, must end the
// child with SIGTERM and see it exit with status 7.
var PidfdChild = lib.Workload{Name: "pidfd_child", Run: func(t *lib.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, lib.SleeperArg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := cmd.Process.Pid
	pidfd, err := unix.PidfdOpen(child, 0)
	if err != nil {
		cmd.Process.Kill() //nolint:errcheck
		t.Fatal(err)
	}
	fail := func(format string, args ...any) {
		cmd.Process.Kill() //nolint:errcheck
		t.Fail(format, args...)
	}
	// The child, a Go program too, starts its runtime's threads first:
	// the harness compares the tree's threads before and after.
	time.Sleep(300 * time.Millisecond)
	t.Ready()
	t.WaitSignal()

	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", pidfd))
	if err != nil {
		fail("fdinfo of the pidfd: %v", err)
	}
	var got int
	for _, line := range splitLines(string(info)) {
		if n, _ := fmt.Sscanf(line, "Pid:\t%d", &got); n == 1 {
			break
		}
	}
	if got != child {
		fail("the pidfd names pid %d, want the child %d (fdinfo %q)", got, child, info)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		fail("signal 0 through the pidfd: %v", err)
	}
	p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 0); err != nil || n != 0 {
		fail("the pidfd polls %d (%v, revents %#x) while the child lives", n, err, p[0].Revents)
	}
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		fail("os.Process.Signal: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fail("the child ended with %v, want exit status 7", err)
		}
	case <-time.After(10 * time.Second):
		fail("the child did not end on SIGTERM")
	}
	t.Pass()
}}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// PidfdDead holds pidfds of processes that have exited and been reaped
// (zdtm's pidfd_dead): two of one child, one of another. After the
// restore the pair still names one process and the third another (pidfs
// inodes, Linux 6.9), each names no pid any more (fdinfo's Pid -1), polls
// readable (exited), and a signal through it finds no process (ESRCH).
// A kernel without pidfs cannot tell them apart (feature pidfs).
var PidfdDead = lib.Workload{Name: "pidfd_dead", Run: func(t *lib.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	reaped := func(n int) []int {
		cmd := exec.Command(exe, lib.SleeperArg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var fds []int
		for range n {
			fd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
		}
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck // killed: reaped is what counts
		return fds
	}
	pair, other := reaped(2), reaped(1)
	// Without pidfs (before 6.9) every pidfd has the same inode: nothing
	// tells them apart, which a dump needs (feature pidfs), and the
	// inodes are not checked (the none engine runs it there too).
	var fs unix.Statfs_t
	pidfs := unix.Fstatfs(other[0], &fs) == nil && fs.Type == 0x50494446 // PID_FS_MAGIC
	ino := func(fd int) uint64 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	check := func(when string) {
		if pidfs && (ino(pair[0]) != ino(pair[1]) || ino(pair[0]) == ino(other[0])) {
			t.Fail("%s: inodes %d %d of the pair, %d of the other: want the pair's equal, the other's not", when, ino(pair[0]), ino(pair[1]), ino(other[0]))
		}
		for _, fd := range append(append([]int{}, pair...), other...) {
			info, _ := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
			got := 0
			for _, line := range splitLines(string(info)) {
				if n, _ := fmt.Sscanf(line, "Pid:\t%d", &got); n == 1 {
					break
				}
			}
			if got != -1 {
				t.Fail("%s: pidfd %d names pid %d, want -1 (fdinfo %q)", when, fd, got, info)
			}
			if err := unix.PidfdSendSignal(fd, 0, nil, 0); !errors.Is(err, unix.ESRCH) {
				t.Fail("%s: signal 0 through pidfd %d: %v, want ESRCH", when, fd, err)
			}
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, err := unix.Poll(p, 0); err != nil || n != 1 {
				t.Fail("%s: pidfd %d polls %d (%v): want readable", when, fd, n, err)
			}
			if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
				t.Fail("%s: pidfd %d lost O_NONBLOCK (flags %#o)", when, fd, fl)
			}
		}
	}
	check("before the dump")
	t.Ready()
	t.WaitSignal()
	check("after restore")
	t.Pass()
}}
