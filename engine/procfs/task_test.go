package procfs

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTasksAndChildren(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tids, err := Tasks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tids, os.Getpid()) || !slices.Contains(tids, unix.Gettid()) {
		t.Errorf("tids %v lack pid %d or tid %d", tids, os.Getpid(), unix.Gettid())
	}
	a := startSleeper(t, "")
	b := startSleeper(t, "")
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, a.Process.Pid) || !slices.Contains(kids, b.Process.Pid) {
		t.Errorf("children %v lack %d and %d", kids, a.Process.Pid, b.Process.Pid)
	}
	grand, err := Children(a.Process.Pid)
	if err != nil || len(grand) != 0 {
		t.Errorf("sleep has children %v (%v)", grand, err)
	}
	if _, err := ParsePidList([]byte("1 x")); err == nil {
		t.Error("bad pid list accepted")
	}
}

func TestAuxvSelf(t *testing.T) {
	a, err := Auxv(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 4 || len(a)%2 != 0 || a[len(a)-2] != 0 {
		t.Fatalf("auxv %v", a)
	}
	got := map[uint64]uint64{}
	for i := 0; i < len(a); i += 2 {
		got[a[i]] = a[i+1]
	}
	const atPagesz, atUID = 6, 11
	if got[atPagesz] != uint64(os.Getpagesize()) || got[atUID] != uint64(os.Getuid()) {
		t.Errorf("AT_PAGESZ %d AT_UID %d", got[atPagesz], got[atUID])
	}
	if _, err := ParseAuxv(make([]byte, 7)); err == nil {
		t.Error("odd-size auxv accepted")
	}
}

func TestSmallFiles(t *testing.T) {
	cmd := startSleeper(t, "")
	pid := cmd.Process.Pid
	if c, err := Comm(pid); err != nil || c != "sleep" {
		t.Errorf("comm %q %v", c, err)
	}
	if d, err := Cwd(pid); err != nil || d != cmd.Dir {
		t.Errorf("cwd %q %v, want %q", d, err, cmd.Dir)
	}
	if r, err := Root(pid); err != nil || r != "/" {
		t.Errorf("root %q %v", r, err)
	}
	exe, err := Exe(pid)
	if err != nil || filepath.Base(exe) != "sleep" {
		t.Errorf("exe %q %v", exe, err)
	}
	pers, err := Personality(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// personality(0xffffffff) queries without changing.
	cur, _, errno := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	if errno != 0 || uint32(cur) != pers {
		t.Errorf("personality %#x, syscall %#x (%v)", pers, cur, errno)
	}

	// timerslack is per thread: set it on a locked thread, read its tid.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 123457, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	if ns, err := TimerSlack(unix.Gettid()); err != nil || ns != 123457 {
		t.Errorf("timerslack %d %v", ns, err)
	}
	if _, err := Comm(1 << 30); err == nil {
		t.Error("comm of a pid that cannot exist")
	}
}

func FuzzParseAuxv(f *testing.F) {
	seed(f, "/proc/self/auxv")
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAuxv(b)
		if err == nil && len(a)%2 != 0 {
			t.Fatalf("odd auxv %v", a)
		}
	})
}
