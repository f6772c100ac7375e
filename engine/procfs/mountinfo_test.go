package procfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountInfoSelf(t *testing.T) {
	mounts, err := MountInfo(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]bool{}
	var root *Mount
	for i, m := range mounts {
		if ids[m.ID] {
			t.Errorf("duplicate mount id %d", m.ID)
		}
		ids[m.ID] = true
		if m.MountPoint == "/" {
			root = &mounts[i]
		}
		if m.FSType == "" || m.Options == "" {
			t.Errorf("mount %+v lacks type or options", m)
		}
	}
	if root == nil {
		t.Fatal("no / mount")
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	if root.Major != unix.Major(st.Dev) || root.Minor != unix.Minor(st.Dev) {
		t.Errorf("/ is %d:%d in mountinfo, stat says %d:%d", root.Major, root.Minor, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
}

// TestMountInfoEscapedPath mounts a tmpfs on a directory whose name holds a
// space, a tab, a newline and a backslash, in a mount namespace private to
// one OS thread; that thread is thrown away afterwards (the goroutine exits
// locked), so the host's mount table is never touched.
func TestMountInfoEscapedPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b\tc\nd\\e")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var mounts []Mount
	onThrowawayThread(t, func() error {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := unix.Mount("my src", dir, "tmpfs", unix.MS_NOSUID, "size=64k"); err != nil {
			return err
		}
		if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
			return err
		}
		var err error
		mounts, err = MountInfo(unix.Gettid())
		return err
	})
	var got *Mount
	for i := range mounts {
		if mounts[i].MountPoint == dir {
			got = &mounts[i]
		}
	}
	if got == nil {
		t.Fatalf("mount on %q not found", dir)
	}
	if got.FSType != "tmpfs" || got.Source != "my src" || got.Root != "/" || got.Shared == 0 ||
		got.SuperOptions == "" || got.Options[:2] != "rw" {
		t.Errorf("mount %+v", got)
	}
}

func TestParseMountInfoSamples(t *testing.T) {
	in := "36 35 98:0 /mnt\\0401 /mnt\\0402 rw,noatime master:1 shared:7 propagate_from:3 unbindable - ext3 /dev/root rw,errors=continue\n" +
		"21 26 0:20 / /proc rw,relatime - proc proc rw\n" +
		"22 26 0:21 / /x rw,relatime future:9 - fuse.sshfs user@host:/a\\134b rw,user_id=0\n"
	m, err := ParseMountInfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 {
		t.Fatalf("%d mounts", len(m))
	}
	a := m[0]
	if a.ID != 36 || a.ParentID != 35 || a.Major != 98 || a.Minor != 0 || a.Root != "/mnt 1" || a.MountPoint != "/mnt 2" ||
		a.Options != "rw,noatime" || a.Master != 1 || a.Shared != 7 || a.PropagateFrom != 3 || !a.Unbindable ||
		a.FSType != "ext3" || a.Source != "/dev/root" || a.SuperOptions != "rw,errors=continue" || len(a.Optional) != 4 {
		t.Errorf("line 1: %+v", a)
	}
	if m[1].Optional != nil || m[1].Shared != 0 {
		t.Errorf("line 2: %+v", m[1])
	}
	if m[2].FSType != "fuse.sshfs" || m[2].Source != `user@host:/a\b` || m[2].Optional[0] != "future:9" {
		t.Errorf("line 3: %+v", m[2])
	}
	for _, bad := range []string{"1 2 3:4 / /", "x 2 3:4 / / rw - t s o", "1 2 34 / / rw - t s o",
		"1 2 3:4 / / rw shared:x - t s o", "1 2 3:4 / / rw shared:1", "1 2 3:4 / / rw -"} {
		if _, err := ParseMountInfo([]byte(bad)); err == nil {
			t.Errorf("ParseMountInfo(%q) accepted garbage", bad)
		}
	}
	if unescapeOctal(`a\040b\\c\0`) != `a b\\c\0` || unescapeOctal(`\777`) != `\777` {
		t.Error("unescapeOctal mangles non-escapes")
	}
}

func FuzzParseMountInfo(f *testing.F) {
	seed(f, "/proc/self/mountinfo")
	f.Add([]byte("36 35 98:0 /mnt\\0401 /mnt2 rw master:1 - ext3 /dev/root rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseMountInfo(b)
	})
}
