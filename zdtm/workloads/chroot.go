package workloads

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// Chroot changes its root to a directory under --dirname and its cwd to
// a directory inside that root, and opens a file there by its name in the
// new root. After restore its root and cwd are the same directories
// (device and inode), getcwd says "/sub", and the file is the same; then
// it leaves the chroot through an fd of its old root to give its verdict.
var Chroot = lib.Workload{Name: "chroot", Run: func(t *lib.T) {
	root := filepath.Join(t.Opt("dirname", "."), "root")
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sub", "file"), []byte("inside the chroot"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The way back, for the verdict: the library writes it by path.
	oldRoot, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldCwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Chroot(root); err != nil {
		t.Fatal(fmt.Errorf("chroot %s: %w", root, err))
	}
	if err := unix.Chdir("/sub"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("file")
	if err != nil {
		t.Fatal(err)
	}
	ids := func() (r, c unix.Stat_t) {
		if err := unix.Stat("/", &r); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat(".", &c); err != nil {
			t.Fatal(err)
		}
		return r, c
	}
	r0, c0 := ids()
	t.Ready()
	t.WaitSignal()
	r1, c1 := ids()
	if r1.Dev != r0.Dev || r1.Ino != r0.Ino {
		t.Fail("root is inode %d:%d, was %d:%d", r1.Dev, r1.Ino, r0.Dev, r0.Ino)
	}
	if c1.Dev != c0.Dev || c1.Ino != c0.Ino {
		t.Fail("cwd is inode %d:%d, was %d:%d", c1.Dev, c1.Ino, c0.Dev, c0.Ino)
	}
	if wd, err := os.Getwd(); err != nil || wd != "/sub" {
		t.Fail("getcwd %q (%v), want /sub", wd, err)
	}
	b := make([]byte, 64)
	if n, err := f.ReadAt(b, 0); string(b[:n]) != "inside the chroot" {
		t.Fail("the open file reads %q (%v)", b[:n], err)
	}
	if _, err := os.Stat("/sub/file"); err != nil {
		t.Fail("/sub/file in the new root: %v", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chroot("."); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chdir(oldCwd); err != nil {
		t.Fatal(err)
	}
	t.Pass()
}}
