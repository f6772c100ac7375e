package engine

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rootEnv makes the test binary enter the directory it names as its root
// (a bind mount of it in the mount namespace it was started in, then
// pivot_root) and exec the workload from there, as a container's init
// or zdtm's ns flavor is started.
const rootEnv = "GOCR_ENGINE_TEST_ROOT"

func enterRootAndExec(dir string) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "enter root %s: %s: %v\n", dir, what, err)
		return 2
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("make / private", err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fail("bind", err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fail("chdir", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fail("pivot_root", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fail("detach the old root", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fail("chdir /", err)
	}
	// stdio on a file inside the root: nothing of the tree points outside.
	out, err := unix.Open("/out", unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		return fail("open /out", err)
	}
	in, err := unix.Open("/out", unix.O_RDONLY, 0)
	if err != nil {
		return fail("open /out", err)
	}
	unix.Dup2(in, 0)
	unix.Dup2(out, 1)
	unix.Dup2(out, 2)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, rootEnv+"=") {
			env = append(env, e)
		}
	}
	err = unix.Exec("/engine.test", []string{"/engine.test"}, append(env, workloadEnv+"=1"))
	return fail("exec", err)
}

// copyFile copies src to dst with its mode and modification time, so the
// copy stands for the same executable in a copy of a root.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, _ := in.Stat()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
	os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// TestDumpRestoreRoot checkpoints a process whose root is a directory of
// the host (a bind mount of it in a mount namespace of its own, as criu's
// --root and zdtm's ns flavor have it) and restores it onto a copy of
// that directory given with --root.
func TestDumpRestoreRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open(self); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Skip("the test binary is dynamically linked (CGO_ENABLED=1) and cannot run alone in a root of its own; make unit builds it static")
			}
		}
		f.Close()
	}
	root, copyRoot := t.TempDir(), t.TempDir()
	os.Chmod(root, 0o755)
	os.Chmod(copyRoot, 0o755)
	copyFile(t, self, filepath.Join(root, "engine.test"))
	if err := os.WriteFile(filepath.Join(root, "out"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), rootEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWNS}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(root, "out")); strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(root, "out"))
			t.Fatalf("workload never got ready (%s): %q", stderr.String(), b)
		}
	}
	if !sameFile(t, fmt.Sprintf("/proc/%d/root", pid), root) {
		t.Fatal("the workload's root is not the directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	images := filepath.Join(t.TempDir(), "img")

	// A --root that is not the tree's is refused, and the tree runs on.
	err = Dump(ctx, DumpOptions{Pid: pid, ImagesDir: images, Root: copyRoot})
	if err == nil || !strings.Contains(err.Error(), "is not the root of pid") {
		t.Fatalf("dump with another --root: %v", err)
	}
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") S ") && !strings.Contains(string(st), ") R ") {
		t.Fatalf("after the refused dump: %s", st)
	}

	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: images, Root: root}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	critDecode(t, images)

	// The copy the tree comes back on: the same files.
	copyFile(t, filepath.Join(root, "engine.test"), filepath.Join(copyRoot, "engine.test"))
	copyFile(t, filepath.Join(root, "out"), filepath.Join(copyRoot, "out"))

	// Without --root the images cannot be restored, and nothing is left.
	if _, err := Restore(ctx, RestoreOptions{ImagesDir: images}); err == nil || !strings.Contains(err.Error(), "restore needs --root") {
		t.Fatalf("restore without --root: %v", err)
	}
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("pid %d exists after a refused restore: %v", pid, err)
	}

	res, err := Restore(ctx, RestoreOptions{ImagesDir: images, Root: copyRoot})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pid != pid {
		t.Fatalf("restored as pid %d, dumped %d", res.Pid, pid)
	}
	if !sameFile(t, fmt.Sprintf("/proc/%d/root", pid), copyRoot) {
		t.Error("the restored workload's root is not the --root given")
	}
	time.Sleep(50 * time.Millisecond)
	unix.Kill(pid, unix.SIGTERM)
	code, err := res.Wait(ctx)
	b, _ := os.ReadFile(filepath.Join(copyRoot, "out"))
	if err != nil || code != 0 || !strings.Contains(string(b), "PASS") {
		t.Fatalf("restored workload: exit %d, %v; output %q", code, err, b)
	}
}
