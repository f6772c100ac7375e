package procfs

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNamespacesSelfAndChild(t *testing.T) {
	self, err := Namespaces(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range NamespaceKinds() {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+kind, &st); err != nil {
			if _, ok := self[kind]; ok {
				t.Errorf("%s reported but stat fails: %v", kind, err)
			}
			continue
		}
		if self[kind] != st.Ino {
			t.Errorf("%s: %d, stat says %d", kind, self[kind], st.Ino)
		}
	}
	if len(self) < 8 {
		t.Errorf("only %d namespaces: %v", len(self), self)
	}
	cmd := startSleeper(t, "")
	child, err := Namespaces(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range self {
		if child[k] != v {
			t.Errorf("child %s ns %d, ours %d", k, child[k], v)
		}
	}
}

// A thread that unshares its UTS namespace shows a new inode for uts only.
func TestNamespacesThreadUnshare(t *testing.T) {
	before, err := Namespaces(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var after map[string]uint64
	onThrowawayThread(t, func() error {
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			return err
		}
		var err error
		after, err = Namespaces(unix.Gettid())
		return err
	})
	if after["uts"] == before["uts"] || after["mnt"] != before["mnt"] {
		t.Errorf("before %v after %v", before, after)
	}
}
func TestParseNamespaceLink(t *testing.T) {
	if n, err := ParseNamespaceLink("mnt:[4026531832]"); err != nil || n != 4026531832 {
		t.Errorf("got %d, %v", n, err)
	}
	for _, bad := range []string{"mnt:4026531832", "mnt:[x]", "", "mnt:[1"} {
		if _, err := ParseNamespaceLink(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
