package workloads

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const cwdUmask = 0o027

// CwdUmask changes into a directory it creates under --dirname and sets
// umask 027. After SIGTERM it checks getcwd(2), /proc/self/cwd and the
// inode of "." against the directory, the Umask line of /proc/self/status,
// and that a file created with mode 0666 gets 0640.
var CwdUmask = lib.Workload{Name: "cwd_umask", Run: func(t *lib.T) {
	base, err := filepath.Abs(t.Opt("dirname", "cwd_umask.dir"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "cwd here")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	syscall.Umask(cwdUmask)
	var want unix.Stat_t
	if err := unix.Stat(".", &want); err != nil {
		t.Fatal(err)
	}
	if s, err := statusField("/proc/self/status", "Umask"); err != nil || s != "0027" {
		t.Fail("Umask in /proc/self/status is %q (%v) after umask(027)", s, err)
	}
	t.Ready()
	t.WaitSignal()

	if wd, err := unix.Getwd(); err != nil || wd != dir {
		t.Fail("getcwd: %q (%v), want %q", wd, err, dir)
	}
	if l, err := os.Readlink("/proc/self/cwd"); err != nil || l != dir {
		t.Fail("/proc/self/cwd: %q (%v), want %q", l, err, dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(".", &st); err != nil {
		t.Fatal(err)
	}
	if st.Dev != want.Dev || st.Ino != want.Ino {
		t.Fail("\".\" is dev %d ino %d, want dev %d ino %d", st.Dev, st.Ino, want.Dev, want.Ino)
	}
	if s, err := statusField("/proc/self/status", "Umask"); err != nil || s != fmt.Sprintf("%04o", cwdUmask) {
		t.Fail("Umask in /proc/self/status is %q (%v), want %04o", s, err, cwdUmask)
	}
	f, err := os.OpenFile("new-file", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fail("file created with 0666 under umask 027 has mode %04o, want 0640", fi.Mode().Perm())
	}
	if old := syscall.Umask(cwdUmask); old != cwdUmask {
		t.Fail("umask(2) returned %04o, want %04o", old, cwdUmask)
	}
	t.Pass()
}}
