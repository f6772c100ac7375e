package mount

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/kernel"
	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ent is a tmpfs mount entry (external when key is set) for the plans
// below.
func ent(id, parent uint32, mp, root string, dev, shared, master uint32, key string) *mnt.MntEntry {
	e := &mnt.MntEntry{
		MntId: proto.Uint32(id), ParentMntId: proto.Uint32(parent), Mountpoint: proto.String(mp), Root: proto.String(root),
		RootDev: proto.Uint32(dev), Fstype: proto.Uint32(uint32(mnt.Fstype_TMPFS)), Flags: proto.Uint32(0), SbFlags: proto.Uint32(0),
		Source: proto.String("t"), Options: proto.String(""),
	}
	if shared != 0 {
		e.SharedId = proto.Uint32(shared)
	}
	if master != 0 {
		e.MasterId = proto.Uint32(master)
	}
	if key != "" {
		e.ExtMount, e.ExtKey = proto.Bool(true), proto.String(key)
	}
	return e
}

// peersNS is the mnt_peers workload's shape: group 5 (shared/) and group
// 6 (shared/pre) have members in namespaces 1 and 3; namespace 2 holds
// slaves of both. Each namespace's root is a tmpfs of its own.
func peersNS() map[uint32][]*mnt.MntEntry {
	return map[uint32][]*mnt.MntEntry{
		1: {ent(10, 0, "/", "/", 100, 0, 0, ""), ent(11, 10, "/s", "/", 200, 5, 0, ""), ent(12, 11, "/s/pre", "/", 300, 6, 0, "")},
		2: {ent(20, 0, "/", "/", 101, 0, 0, ""), ent(21, 20, "/s", "/", 200, 0, 5, ""), ent(22, 21, "/s/pre", "/", 300, 0, 6, "")},
		3: {ent(30, 0, "/", "/", 102, 0, 0, ""), ent(31, 30, "/s", "/", 200, 5, 0, ""), ent(32, 31, "/s/pre", "/", 300, 6, 0, "")},
	}
}

func TestPeerTableAcrossNamespaces(t *testing.T) {
	nss := peersNS()
	// A group that is also the slave of another, in namespace 2 only.
	nss[2] = append(nss[2], ent(23, 20, "/x", "/sub", 200, 7, 5, ""))
	tb, err := newPeerTable([]uint32{1, 2, 3}, nss)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range tb.order {
		got = append(got, g.describe())
	}
	want := []string{
		"peer group 5 (mount 11 at /s in mount namespace 1, spanning 3 mount namespaces)",
		"peer group 6 (mount 12 at /s/pre in mount namespace 1, spanning 3 mount namespaces)",
		"peer group 7 (mount 23 at /x in mount namespace 2)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("groups:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if g := tb.byID[5]; len(g.members) != 2 || g.members[0].ns != 1 || g.members[1].ns != 3 {
		t.Errorf("members of group 5: %+v", g.members)
	}
	if !tb.has(6) || tb.has(8) {
		t.Error("has")
	}

	// Masters first, whatever order the namespaces come in.
	nss[2] = []*mnt.MntEntry{ent(20, 0, "/", "/", 101, 0, 0, ""), ent(23, 20, "/x", "/sub", 200, 7, 5, "")}
	tb, err = newPeerTable([]uint32{2, 1}, nss)
	if err != nil {
		t.Fatal(err)
	}
	if tb.order[0].id != 5 || tb.order[1].id != 7 {
		t.Errorf("order %d, %d: want the master 5 before 7", tb.order[0].id, tb.order[1].id)
	}
}

func TestPeerTableRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		ns2  []*mnt.MntEntry
		want string
	}{
		{"another master", []*mnt.MntEntry{ent(21, 0, "/", "/", 200, 5, 9, "")}, "mount namespace 2: mount 21 at /: plan propagation: peer of group 5 but slave of 9, not 0 like mount 11 of mount namespace 1"},
		{"another filesystem", []*mnt.MntEntry{ent(21, 0, "/", "/", 201, 5, 0, "")}, "peer group 5 spans different filesystems"},
		{"external and not", []*mnt.MntEntry{ent(21, 0, "/", "/", 200, 5, 0, "gocr-host:/x")}, "peer group 5 mixes external binds"},
		{"slave elsewhere", []*mnt.MntEntry{ent(21, 0, "/", "/", 201, 0, 5, "")}, "mount namespace 2: mount 21 at /: plan propagation: slave of peer group 5, which lives on another filesystem"},
		{"cycle", []*mnt.MntEntry{ent(21, 0, "/", "/", 200, 7, 8, ""), ent(22, 21, "/a", "/", 200, 8, 7, "")}, "is its own master through a cycle"},
	} {
		nss := map[uint32][]*mnt.MntEntry{1: {ent(11, 0, "/", "/", 200, 5, 0, "")}, 2: c.ns2}
		_, err := newPeerTable([]uint32{1, 2}, nss)
		var me *MountError
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &me) {
			t.Errorf("%s: got %v, want a MountError with %q", c.name, err, c.want)
		}
	}
}

// A namespace whose mounts are only slaves of a group of another gets
// that group planned too (its helper comes from the Set or is made from
// its own filesystem); alone, it is refused as before.
func TestPlanSlaveOfAnotherNamespace(t *testing.T) {
	nss := peersNS()
	if _, err := plan(2, nss[2], RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "slave of peer group 5, which is outside the restore's mount namespaces") {
		t.Errorf("without a set: %v", err)
	}
	s := NewSet()
	defer s.Close()
	for _, id := range []uint32{1, 2, 3} {
		if err := s.addNS(id, nss[id]); err != nil {
			t.Fatal(err)
		}
	}
	b, err := plan(2, nss[2], RestoreOptions{Set: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.groups) != 2 || b.groups[0].id != 5 || b.groups[1].id != 6 {
		t.Fatalf("groups %+v, want 5 and 6", b.groups)
	}
	for _, g := range b.groups {
		if len(g.members) != 0 || g.sb == nil || g.sb.dev != g.at.e.GetRootDev() || g.at.e.GetMasterId() != g.id {
			t.Errorf("group %d: %d members, sb %+v, at mount %d", g.id, len(g.members), g.sb, g.at.e.GetMntId())
		}
	}
	b, err = plan(3, nss[3], RestoreOptions{Set: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.groups) != 2 || len(b.groups[0].members) != 1 || b.groups[0].members[0].e.GetMntId() != 31 {
		t.Errorf("namespace 3: groups %+v", b.groups)
	}
}

// External groups take the widest host path over every namespace.
func TestPlanExternalAcrossNamespaces(t *testing.T) {
	nss := map[uint32][]*mnt.MntEntry{
		1: {ent(10, 0, "/", "/", 100, 0, 0, ""), ent(11, 10, "/h", "/data/sub", 50, 4, 0, "gocr-host:/srv/data/sub")},
		2: {ent(20, 0, "/", "/", 101, 0, 0, ""), ent(21, 20, "/h", "/data", 50, 4, 0, "gocr-host:/srv/data")},
	}
	s := NewSet()
	defer s.Close()
	for _, id := range []uint32{1, 2} {
		if err := s.addNS(id, nss[id]); err != nil {
			t.Fatal(err)
		}
	}
	b, err := plan(1, nss[1], RestoreOptions{Set: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.groups) != 1 || b.groups[0].hostPath != "/srv/data" || b.groups[0].sb != nil {
		t.Errorf("groups %+v, want group 4 from /srv/data", b.groups)
	}
	nss[2][1] = ent(21, 20, "/h", "/data", 50, 4, 0, "gocr-host:/elsewhere")
	s2 := NewSet()
	defer s2.Close()
	for _, id := range []uint32{1, 2} {
		if err := s2.addNS(id, nss[id]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := plan(1, nss[1], RestoreOptions{Set: s2}); err == nil || !strings.Contains(err.Error(), "host path /srv/data/sub is not under /elsewhere") {
		t.Errorf("host paths that disagree with the roots: %v", err)
	}
}

// Plan refuses peer groups on a kernel without MOVE_MOUNT_SET_GROUP,
// naming one, and lets a tree without any through.
func TestPlanNeedsSetGroup(t *testing.T) {
	dir, err := image.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	nss := peersNS()
	nss[4] = []*mnt.MntEntry{ent(40, 0, "/", "/", 103, 0, 0, "")}
	for id, entries := range nss {
		w, err := dir.Writer(image.Mnts, image.MntsFile(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if err := w.Write(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	old := kernel.Features{List: []kernel.Feature{{Name: "move-mount-set-group", Since: "5.15", Detail: "move_mount(MOVE_MOUNT_SET_GROUP): invalid argument"}}}
	s := NewSet()
	defer s.Close()
	err = s.Plan(dir, []uint32{1, 2, 3}, &old)
	var nse *kernel.NotSupportedError
	if !errors.As(err, &nse) || !strings.Contains(err.Error(), "peer group 5 (mount 11 at /s in mount namespace 1, spanning 3 mount namespaces) (and 1 more)") {
		t.Errorf("old kernel: %v", err)
	}
	s2 := NewSet()
	defer s2.Close()
	if err := s2.Plan(dir, []uint32{4}, &old); err != nil {
		t.Errorf("no peer groups on an old kernel: %v", err)
	}
	// A tree with no mount namespace of its own (the h flavor) plans
	// nothing.
	s3 := NewSet()
	defer s3.Close()
	if err := s3.Plan(dir, nil, &old); err != nil {
		t.Errorf("no namespaces: %v", err)
	}
}

// TestPeersAcrossNamespaces restores two namespaces whose tmpfs is one
// peer group with members in both: namespace B was unshared from A and
// made its copy a slave; A has a second peer (a bind). After restore a
// mount made under A's member shows in B, and one made in B does not
// show in A.
func TestPeersAcrossNamespaces(t *testing.T) {
	needRoot(t)
	D := t.TempDir()
	T := D + "/t"
	os.MkdirAll(T, 0o755)
	a := startIn(t, `set -e
mount --make-rprivate /
T=`+T+`
mount -t tmpfs base $T
mkdir $T/s $T/peer
mount -t tmpfs -o size=1m grp $T/s
mount --make-shared $T/s
mount --bind $T/s $T/peer
mkdir $T/s/x $T/s/y
unshare -m --propagation unchanged sh -c "mount --make-slave $T/s && touch `+D+`/b && exec sleep 1000" &
until [ -e `+D+`/b ]; do sleep 0.05; done
echo ready
exec sleep 1000
`)
	pa := a.Process.Pid
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pa, pa))
	if err != nil {
		t.Fatal(err)
	}
	var pb int
	if _, err := fmt.Sscan(string(kids), &pb); err != nil {
		t.Fatalf("no namespace B: children %q", kids)
	}
	t.Cleanup(func() { unix.Kill(pb, unix.SIGKILL) })

	dir, err := image.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for i, pid := range []int{pa, pb} {
		if err := DumpNS(pid, dir, uint32(i+1), DumpOptions{}); err != nil {
			t.Fatalf("dump: %v", err)
		}
	}
	s := NewSet()
	defer s.Close()
	if err := s.Plan(dir, []uint32{1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	ta, tb := target(t), target(t)
	for i, pid := range []int{ta, tb} {
		if err := RestoreNSOf(pid, dir, uint32(i+1), RestoreOptions{Set: s}); err != nil {
			t.Fatalf("restore: %v", err)
		}
	}
	diffLines(t, "namespace A", normalized(t, pa), normalized(t, ta))
	diffLines(t, "namespace B", normalized(t, pb), normalized(t, tb))
	group := func(pid int, mp string) (shared, master int) {
		ms, err := procfs.MountInfo(pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.MountPoint == mp {
				shared, master = m.Shared, m.Master
			}
		}
		return
	}
	sa, _ := group(ta, T+"/s")
	sp, _ := group(ta, T+"/peer")
	sb, mb := group(tb, T+"/s")
	if sa == 0 || sp != sa || sb != 0 || mb != sa {
		t.Errorf("restored: A's s shared:%d, A's peer shared:%d, B's s shared:%d master:%d; want one group in A and B its slave", sa, sp, sb, mb)
	}
	mountIn := func(pid int, p string) {
		out, err := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-m", "mount", "-t", "tmpfs", "probe", p).CombinedOutput()
		if err != nil {
			t.Fatalf("mount %s in pid %d's namespace: %v: %s", p, pid, err, out)
		}
	}
	isMount := func(pid int, p string) bool {
		var st1, st2 unix.Stat_t
		q := fmt.Sprintf("/proc/%d/root%s", pid, p)
		return unix.Stat(q, &st1) == nil && unix.Stat(q+"/..", &st2) == nil && st1.Dev != st2.Dev
	}
	mountIn(ta, T+"/s/x")
	if !isMount(tb, T+"/s/x") || !isMount(ta, T+"/peer/x") {
		t.Error("a mount under A's member does not propagate to its peer and to B's slave")
	}
	mountIn(tb, T+"/s/y")
	if isMount(ta, T+"/s/y") {
		t.Error("a mount under B's slave propagated back to A")
	}
}
