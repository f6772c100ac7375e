package workloads

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	cwdDeletedMode       = 0o751
	cwdDeletedUID        = 1234 // an owner other than the workload's
	cwdDeletedGID        = 2345
	cwdDeletedDirName    = "gone"
	cwdDeletedNotCreated = "cannot-be-made"
)

// CwdDeleted makes --dirname/gone with mode 0751 owned by 1234:2345,
// changes into it and removes it: the cwd of every thread is a directory
// with no name left. After SIGTERM /proc/self/cwd must show "gone
// (deleted)", getcwd(2) must fail with ENOENT as for any removed cwd, "."
// must be an empty directory with nlink 0 and the same mode and owner,
// nothing may be created in it, and --dirname must hold nothing: no
// directory made again by the engine left behind.
var CwdDeleted = lib.Workload{Name: "cwd_deleted", Run: func(t *lib.T) {
	base, err := filepath.Abs(t.Opt("dirname", "cwd_deleted.dir"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, cwdDeletedDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, cwdDeletedMode); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chown(dir, cwdDeletedUID, cwdDeletedGID); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	if err := unix.Rmdir(dir); err != nil {
		t.Fatal(err)
	}
	var want unix.Stat_t
	if err := unix.Stat(".", &want); err != nil {
		t.Fatal(err)
	}
	if want.Nlink != 0 {
		t.Fail("removed directory has nlink %d", want.Nlink)
	}
	t.Ready()
	t.WaitSignal()

	if l, err := os.Readlink("/proc/self/cwd"); err != nil || l != dir+" (deleted)" {
		t.Fail("/proc/self/cwd: %q (%v), want %q", l, err, dir+" (deleted)")
	}
	buf := make([]byte, 4096)
	if _, err := unix.Getcwd(buf); !errors.Is(err, unix.ENOENT) {
		t.Fail("getcwd: %v, want ENOENT: the cwd is not a removed directory", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(".", &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != want.Mode || st.Uid != want.Uid || st.Gid != want.Gid || st.Nlink != 0 {
		t.Fail("\".\": mode %#o owner %d:%d nlink %d, want %#o %d:%d nlink 0", st.Mode, st.Uid, st.Gid, st.Nlink,
			want.Mode, want.Uid, want.Gid)
	}
	if fd, err := unix.Open(cwdDeletedNotCreated, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600); !errors.Is(err, unix.ENOENT) {
		unix.Close(fd)
		t.Fail("creating a file in the removed cwd: %v, want ENOENT", err)
	}
	ents, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fail("%s holds %v, want nothing", base, names)
	}
	t.Pass()
}}
