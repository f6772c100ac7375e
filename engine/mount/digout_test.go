package mount

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/image"
)

// TestDigOutInUserNS dumps a tmpfs hidden under another tmpfs in a mount
// namespace owned by a user namespace of its own (zdtm's uns flavor, root
// = uid 100000 outside): gocr's own copy of such a namespace has every
// mount locked, so digOut must make its copy from inside that user
// namespace. The hidden tmpfs's contents are saved and the namespace is
// left as it was.
func TestDigOutInUserNS(t *testing.T) {
	needRoot(t)
	b := startWith(t, `set -e
mount -t tmpfs base /tmp
mkdir /tmp/over
mount -t tmpfs lower /tmp/over
echo low > /tmp/over/lf
mount -t tmpfs upper /tmp/over
echo up > /tmp/over/uf
echo ready
exec sleep 1000
`, &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	})
	pid := b.Process.Pid
	before := normalized(t, pid)
	dir := t.TempDir()
	d, err := image.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// This machine stacks two tmpfs on /dev/shm, the lower one hidden in
	// gocr's namespace too; here, inherited, they are locked and cannot be
	// dug out: leave them to the caller.
	if err := DumpNS(pid, d, 1, DumpOptions{External: map[string]string{"/dev/shm": "shm"}}); err != nil {
		t.Fatalf("dump: %v", err)
	}
	entries, err := ReadNS(d, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Two tmpfs on /tmp/over: the upper one has uf, the hidden one lf.
	has := map[string]bool{}
	for _, e := range entries {
		if e.GetMountpoint() != "/tmp/over" {
			continue
		}
		for _, v := range tarListing(t, dir, []*mnt.MntEntry{e}) {
			t.Logf("tmpfs %s dev %d: %v", e.GetSource(), e.GetRootDev(), v)
			for _, f := range []string{"./lf", "./uf"} {
				if slices.ContainsFunc(v, func(l string) bool { return strings.HasPrefix(l, f+" ") }) {
					has[e.GetSource()+":"+f] = true
				}
			}
		}
	}
	if !has["lower:./lf"] || !has["upper:./uf"] || len(has) != 2 {
		t.Errorf("saved %v, want lower:./lf and upper:./uf", has)
	}
	diffLines(t, "the namespace's mounts before and after the dump", before, normalized(t, pid))
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/over/uf", pid)); err != nil || string(b) != "up\n" {
		t.Errorf("the namespace no longer shows the upper tmpfs: %q, %v", b, err)
	}
}
