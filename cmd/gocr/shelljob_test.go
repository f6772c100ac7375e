package main

// --shell-job: a job started from an interactive shell has the shell's
// terminal as its controlling terminal, and fds on it, though the terminal
// (its master, its session) is outside the dumped tree. The test plays the
// terminal (it holds a pty master), a shell (a session leader with the
// pty's slave as its controlling terminal, which starts jobs in groups of
// their own in the foreground and runs gocr) and a job. gocr refuses the
// job without --shell-job; with it the job comes back in the shell's
// session with the same terminal, and reads what is typed on it.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

const (
	envAsShell = "GOCR_TEST_AS_SHELL"
	envAsJob   = "GOCR_TEST_AS_JOB" // the job's output file
)

// runShell is the shell: stdin, stdout and stderr are its terminal, its
// controlling terminal; commands come on fd 3, one a line, answers go to
// fd 4, one a line:
//
//	job         start a job in the foreground          → "pid N"
//	fg PID      put the group of PID in the foreground  → "ok"
//	gocr ARGS   run gocr with the terminal as stdin      → "exit CODE OUTPUT" (OUTPUT quoted)
func runShell() int {
	// As shells do: a background shell may still set the foreground group.
	signal.Ignore(syscall.SIGTTOU)
	cmds := bufio.NewScanner(os.NewFile(3, "commands"))
	answers := os.NewFile(4, "answers")
	for cmds.Scan() {
		f := strings.Fields(cmds.Text())
		var answer string
		switch f[0] {
		case "job":
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = testEnv(envAsJob + "=" + f[1])
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				answer = "error " + err.Error()
				break
			}
			go cmd.Wait() //nolint:errcheck // the shell reaps its jobs
			answer = fmt.Sprintf("pid %d", cmd.Process.Pid)
		case "fg":
			pid, _ := strconv.Atoi(f[1])
			answer = "ok"
			if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, pid); err != nil {
				answer = "error " + err.Error()
			}
		case "gocr":
			cmd := exec.Command("/proc/self/exe", f[1:]...)
			cmd.Env = testEnv(envAsGocr + "=1")
			var out bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, &out, &out
			code := 0
			if err := cmd.Run(); err != nil {
				code = -1
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				}
			}
			answer = fmt.Sprintf("exit %d %s", code, strconv.Quote(out.String()))
		}
		fmt.Fprintln(answers, answer)
	}
	return 0
}

// runJob is the job: it puts its terminal in non-canonical mode (VMIN 3),
// says "ready", and on SIGTERM checks that it still has the same
// controlling terminal, its session's, that /dev/tty opens, and reads three
// bytes typed on it; its verdict goes to out.
func runJob(out string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	verdict := func(msg string) int {
		os.WriteFile(out, []byte(msg+"\n"), 0o644) //nolint:errcheck // the test sees no verdict
		if msg != "PASS" {
			return 1
		}
		return 0
	}
	st, err := procfs.Stat(os.Getpid())
	if err != nil || st.TtyNr == 0 {
		return verdict(fmt.Sprintf("FAIL: no controlling terminal (%v)", err))
	}
	t, err := unix.IoctlGetTermios(0, unix.TCGETS)
	if err != nil {
		return verdict("FAIL: stdin: " + err.Error())
	}
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 3, 0
	if err := unix.IoctlSetTermios(0, unix.TCSETS, t); err != nil {
		return verdict("FAIL: set termios: " + err.Error())
	}
	os.WriteFile(out, []byte("ready\n"), 0o644) //nolint:errcheck
	<-term
	now, err := procfs.Stat(os.Getpid())
	if err != nil || now.TtyNr != st.TtyNr {
		return verdict(fmt.Sprintf("FAIL: controlling terminal %#x, had %#x (%v)", now.TtyNr, st.TtyNr, err))
	}
	sid, err := unix.IoctlGetInt(0, unix.TIOCGSID)
	if err != nil || sid != now.Session {
		return verdict(fmt.Sprintf("FAIL: stdin is session %d's terminal (%v), the job is in %d", sid, err, now.Session))
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return verdict("FAIL: " + err.Error())
	}
	tty.Close()
	b := make([]byte, 8)
	n, err := unix.Read(0, b)
	if err != nil || string(b[:max(n, 0)]) != "abc" {
		return verdict(fmt.Sprintf("FAIL: read %q (%v) from the terminal, want abc", b[:max(n, 0)], err))
	}
	return verdict("PASS")
}

// shell drives a runShell process.
type shell struct {
	cmd     *exec.Cmd
	in      *os.File
	answers *bufio.Scanner
}

func (s *shell) do(t *testing.T, line string) string {
	t.Helper()
	if _, err := fmt.Fprintln(s.in, line); err != nil {
		t.Fatal(err)
	}
	if !s.answers.Scan() {
		t.Fatalf("shell: no answer to %q: %v", line, s.answers.Err())
	}
	return s.answers.Text()
}

// gocr runs gocr in the shell and returns its exit code and output.
func (s *shell) gocr(t *testing.T, args ...string) (int, string) {
	t.Helper()
	a := s.do(t, "gocr "+strings.Join(args, " "))
	var code int
	var q string
	if _, err := fmt.Sscanf(a, "exit %d %q", &code, &q); err != nil {
		t.Fatalf("shell: answer %q: %v", a, err)
	}
	return code, q
}

// newPty opens a pty: its master, its slave and its index.
func newPty(t *testing.T) (master, slave *os.File, index int) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	if index, err = unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", index), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s, index
}

// startShell starts the shell as a session leader with slave as its
// controlling terminal.
func startShell(t *testing.T, slave *os.File) *shell {
	t.Helper()
	cr, cw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ar, aw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = testEnv(envAsShell + "=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.ExtraFiles = []*os.File{cr, aw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cr.Close()
	aw.Close()
	t.Cleanup(func() {
		cw.Close()
		cmd.Process.Kill()
		cmd.Wait()
		ar.Close()
	})
	return &shell{cmd: cmd, in: cw, answers: bufio.NewScanner(ar)}
}

// waitFile waits until the file at path holds one of want.
func waitFile(t *testing.T, path string, want ...string) string {
	t.Helper()
	var b []byte
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ = os.ReadFile(path)
		for _, w := range want {
			if strings.Contains(string(b), w) {
				return string(b)
			}
		}
	}
	t.Fatalf("%s: %q, want %q", path, b, want)
	return ""
}

// TestShellJob dumps a job of a shell and restores it from the same shell:
// in the shell's session, with the shell's terminal as its controlling
// terminal and on its stdin, stdout and stderr.
func TestShellJob(t *testing.T) {
	needRoot(t)
	master, slave, index := newPty(t)
	sh := startShell(t, slave)
	dir := t.TempDir()
	out := filepath.Join(dir, "job.out")
	a := sh.do(t, "job "+out)
	var pid int
	if _, err := fmt.Sscanf(a, "pid %d", &pid); err != nil {
		t.Fatalf("shell: %q", a)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL); reap(pid) })
	waitFile(t, out, "ready")
	st, err := procfs.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	wantTty := int(unix.Mkdev(136, uint32(index)))
	if st.TtyNr != wantTty || st.Session != sh.cmd.Process.Pid {
		t.Fatalf("job: tty %#x session %d, want pty %d (%#x) and the shell's session %d", st.TtyNr, st.Session, index, wantTty, sh.cmd.Process.Pid)
	}

	// Without --shell-job the terminal outside the tree is refused.
	img := filepath.Join(dir, "img")
	r := gocr(t, "", "dump", "-t", strconv.Itoa(pid), "-D", img+"-refused", "-v4")
	if r.code == 0 || !strings.Contains(r.out, "--shell-job") {
		t.Fatalf("dump without --shell-job: code %d: %s", r.code, r.out)
	}
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("the refused dump harmed the job: %v", err)
	}
	r = gocr(t, "", "dump", "-t", strconv.Itoa(pid), "-D", img, "--shell-job", "-o", filepath.Join(dir, "dump.log"), "-v4")
	if r.code != 0 {
		t.Fatalf("dump --shell-job: code %d: %s", r.code, r.out)
	}
	for deadline := time.Now().Add(10 * time.Second); unix.Kill(pid, 0) == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the dumped job is still there")
		}
	}

	// Nor is it given a terminal without --shell-job on restore.
	pidfile := filepath.Join(dir, "restored.pid")
	if code, msg := sh.gocr(t, "restore", "-D", img, "-d", "--pidfile", pidfile); code == 0 || !strings.Contains(msg, "--shell-job") {
		t.Fatalf("restore without --shell-job: code %d: %s", code, msg)
	}
	if code, msg := sh.gocr(t, "restore", "-D", img, "-d", "--shell-job", "--pidfile", pidfile,
		"-o", filepath.Join(dir, "restore.log"), "-v4"); code != 0 {
		t.Fatalf("restore --shell-job: code %d: %s", code, msg)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != pid {
		t.Fatalf("restored as pid %q, dumped %d", b, pid)
	}
	if st, err = procfs.Stat(pid); err != nil || st.TtyNr != wantTty || st.Session != sh.cmd.Process.Pid {
		t.Fatalf("restored job: tty %#x session %d (%v), want pty %d (%#x) and the shell's session %d",
			st.TtyNr, st.Session, err, index, wantTty, sh.cmd.Process.Pid)
	}
	for fd := range 3 {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); l != fmt.Sprintf("/dev/pts/%d", index) {
			t.Errorf("restored job: fd %d is %q, want /dev/pts/%d", fd, l, index)
		}
	}

	// As `fg` would: the job reads what is typed.
	if a := sh.do(t, fmt.Sprintf("fg %d", pid)); a != "ok" {
		t.Fatalf("shell: fg: %s", a)
	}
	if _, err := master.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if v := waitFile(t, out, "PASS", "FAIL"); !strings.HasPrefix(v, "PASS") {
		t.Fatalf("job: %s", v)
	}
}
