package mount

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
)

const nsFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// startIn runs sh -c script in fresh namespaces and waits for it to print
// "ready"; the process is killed and reaped when the test ends.
func startIn(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	return startWith(t, script, &syscall.SysProcAttr{Cloneflags: nsFlags})
}

// startWith is startIn with the namespaces (and id maps) of attr.
func startWith(t *testing.T, script string, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = attr
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "ready" {
			t.Fatalf("namespace builder said %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("namespace builder never got ready")
	}
	return cmd
}

// target starts a sleeping process in fresh namespaces to restore into,
// like the engine's first stub, and waits until it sleeps: it must not
// look anything up in its root while that is replaced.
func target(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: nsFlags}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c, err1 := procfs.Comm(pid)
		st, err2 := procfs.Stat(pid)
		if err1 == nil && err2 == nil && c == "sleep" && st.State == 'S' {
			return pid
		}
	}
	t.Fatal("target never went to sleep")
	return 0
}

func hostMountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// normalized renders a mount table without ids, device numbers and peer
// group numbers: every mount by its mount point and place in a stack of
// mounts on the same point, groups by their first member.
func normalized(t *testing.T, pid int) []string {
	t.Helper()
	ms, err := procfs.MountInfo(pid)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int]procfs.Mount{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	key := func(m procfs.Mount) string {
		level := 0
		for p, ok := byID[m.ParentID]; ok && p.MountPoint == m.MountPoint; p, ok = byID[p.ParentID] {
			level++
		}
		return fmt.Sprintf("%s#%d", m.MountPoint, level)
	}
	groupName := map[int]string{}
	for _, m := range ms {
		if m.Shared != 0 {
			if k := key(m); groupName[m.Shared] == "" || k < groupName[m.Shared] {
				groupName[m.Shared] = k
			}
		}
	}
	var out []string
	for _, m := range ms {
		parent := "-"
		if p, ok := byID[m.ParentID]; ok {
			parent = key(p)
		}
		prop := "private"
		if m.Shared != 0 {
			prop = "shared(" + groupName[m.Shared] + ")"
		}
		if m.Master != 0 {
			g, ok := groupName[m.Master]
			if !ok {
				g = "outside"
			}
			prop += " slave(" + g + ")"
		}
		if m.Unbindable {
			prop = "unbindable"
		}
		out = append(out, fmt.Sprintf("%s parent=%s root=%s %s src=%s opts=%s sb=%s %s",
			key(m), parent, m.Root, m.FSType, m.Source, m.Options, m.SuperOptions, prop))
	}
	sort.Strings(out)
	return out
}

func diffLines(t *testing.T, what string, want, got []string) {
	t.Helper()
	w, g := strings.Join(want, "\n"), strings.Join(got, "\n")
	if w != g {
		t.Errorf("%s differ:\n--- dumped\n%s\n--- restored\n%s", what, w, g)
	}
}

// tarListing summarizes the tmpfs tars of a dump by mount point: every
// member with type, mode, owner, size, content hash, link target, mtime and
// xattrs.
func tarListing(t *testing.T, dir string, entries []*mnt.MntEntry) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, e := range entries {
		name := filepath.Join(dir, TmpfsFile(e.GetRootDev()))
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		var lines []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sum := sha256.New()
			io.Copy(sum, tr)
			var xs []string
			for k, v := range h.PAXRecords {
				if strings.HasPrefix(k, "SCHILY.xattr.") {
					xs = append(xs, k+"="+v)
				}
			}
			sort.Strings(xs)
			mtime := h.ModTime.UnixNano()
			lines = append(lines, fmt.Sprintf("%s %c %o %d:%d %d %x %s %d %v",
				h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, sum.Sum(nil)[:6], h.Linkname, mtime, xs))
		}
		f.Close()
		out[e.GetMountpoint()+" root="+e.GetRoot()] = lines
	}
	return out
}

// roundTrip dumps pid's namespace, restores it into a fresh one, and
// compares the mount tables and, by dumping the restored namespace again,
// the tmpfs contents. It returns the dumped entries.
func roundTrip(t *testing.T, pid int, opts DumpOptions) []*mnt.MntEntry {
	t.Helper()
	before := hostMountinfo(t)
	dir1, dir2 := t.TempDir(), t.TempDir()
	d1, err := image.Create(dir1)
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	if err := DumpNS(pid, d1, 1, opts); err != nil {
		t.Fatalf("dump: %v", err)
	}
	entries, err := ReadNS(d1, 1)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	for _, e := range entries {
		t.Logf("dumped %d %s root=%s type=%s ext=%q shared=%d master=%d flags=%#x", e.GetMntId(), e.GetMountpoint(), e.GetRoot(), fstypeName(e), e.GetExtKey(), e.GetSharedId(), e.GetMasterId(), e.GetFlags())
	}
	tpid := target(t)
	if err := RestoreNSOf(tpid, d1, 1, RestoreOptions{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	diffLines(t, "mount tables", normalized(t, pid), normalized(t, tpid))

	d2, err := image.Create(dir2)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := DumpNS(tpid, d2, 1, opts); err != nil {
		t.Fatalf("dump of the restored namespace: %v", err)
	}
	entries2, err := ReadNS(d2, 1)
	if err != nil {
		t.Fatal(err)
	}
	l1, l2 := tarListing(t, dir1, entries), tarListing(t, dir2, entries2)
	for k, v := range l1 {
		diffLines(t, "tmpfs contents of "+k, v, l2[k])
	}
	if len(l1) != len(l2) {
		t.Errorf("%d tmpfs saved from the dump, %d from the restored namespace", len(l1), len(l2))
	}
	if after := hostMountinfo(t); after != before {
		t.Errorf("the test's own mount table changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
	return entries
}

// TestShapes builds a namespace that keeps gocr's mounts (an unshare
// without pivot: every inherited mount is an automatic external bind) and
// adds, on a tmpfs: a deep mount point hiding a file, binds of a
// subdirectory and of a single file, a read-only bind, binds of a host
// directory and (read-only) file, shared and slave propagation with a
// child mounted after the split, a private and an unbindable mount, a
// tmpfs over a tmpfs, proc, sysfs, devpts and mqueue.
func TestShapes(t *testing.T) {
	needRoot(t)
	D := t.TempDir()
	os.MkdirAll(D+"/hostdir/in", 0o755)
	os.WriteFile(D+"/hostdir/in/x", []byte("host"), 0o644)
	os.WriteFile(D+"/hostfile", []byte("hostfile"), 0o600)
	os.MkdirAll(D+"/t", 0o755)
	script := `set -e
mount --make-rprivate /
# This machine stacks two tmpfs on /dev/shm; the lower one is hidden in
# gocr's namespace too, a case gocr refuses (see the package gaps).
while umount -l /dev/shm 2>/dev/null; do :; done
T=` + D + `/t
mount -t tmpfs -o size=8m,mode=0751 tfs $T
mkdir -p $T/a/b/c/d/e $T/sub $T/bsub $T/ro $T/hd $T/sh $T/sl $T/peer $T/unb $T/over $T/proc $T/sys $T/pts $T/mq
echo hidden > $T/a/b/c/d/e/hidden
echo hi > $T/file; chmod 640 $T/file; chown 1234:5678 $T/file
ln $T/file $T/hardlink
ln -s file $T/link
mkfifo -m 600 $T/fifo
chmod 1777 $T/sub; echo x > $T/sub/f; chmod 4755 $T/sub/f
touch $T/bfile $T/hf
mount -t tmpfs -o size=1m deep $T/a/b/c/d/e
echo deep > $T/a/b/c/d/e/in-deep
mount --bind $T/sub $T/bsub
mount --bind $T/file $T/bfile
mount --bind $T/sub $T/ro
mount -o remount,bind,ro,nosuid,nodev,noexec $T/ro
mount --bind ` + D + `/hostdir $T/hd
mount --bind ` + D + `/hostfile $T/hf
mount -o remount,bind,ro $T/hf
mount -t tmpfs -o mode=0700 shs $T/sh
mount --make-shared $T/sh
mount --bind $T/sh $T/peer
mount --bind $T/sh $T/sl
mount --make-slave $T/sl
mkdir $T/sh/child
mount -t tmpfs -o noatime kid $T/sh/child
echo kid > $T/sh/child/k
mount -t tmpfs unb $T/unb
mount --make-unbindable $T/unb
mount -t tmpfs lower $T/over
echo low > $T/over/lf
mount -t tmpfs -o nodiratime,strictatime upper $T/over
echo up > $T/over/uf
mount -t proc -o nosuid,nodev,noexec proc $T/proc
mount -t sysfs -o ro sys $T/sys
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 pts $T/pts
mount -t mqueue mq $T/mq
echo ready
exec sleep 1000
`
	b := startIn(t, script)
	pid := b.Process.Pid
	// An xattr on the tmpfs, set from outside through the builder's root.
	if err := unix.Lsetxattr(fmt.Sprintf("/proc/%d/root%s/t/file", pid, D), "trusted.gocr", []byte("v1"), 0); err != nil {
		t.Logf("no trusted xattr on tmpfs: %v", err)
	}
	entries := roundTrip(t, pid, DumpOptions{})
	kinds := map[string]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.GetMountpoint(), D) {
			k := "fresh"
			if e.GetExtMount() {
				k = "ext"
			}
			kinds[strings.TrimPrefix(e.GetMountpoint(), D)] = k
		}
	}
	for p, want := range map[string]string{"/t": "fresh", "/t/hd": "ext", "/t/hf": "ext", "/t/bsub": "fresh", "/t/proc": "fresh"} {
		if kinds[p] != want {
			t.Errorf("%s dumped as %q, want %s", p, kinds[p], want)
		}
	}
}

// TestZdtmNS dumps the mount namespace of a zdtm workload in the ns
// flavor (a tmpfs root with binds of host files and directories, /proc,
// a /dev tmpfs with bound device nodes, a /tmp tmpfs) and restores it.
func TestZdtmNS(t *testing.T) {
	needRoot(t)
	bin := filepath.Join(t.TempDir(), "zw")
	build := exec.Command("go", "build", "-o", bin, "./zdtm/cmd/zdtm-workload")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build zdtm-workload: %v\n%s", err, out)
	}
	D := t.TempDir()
	cmd := exec.Command(bin, "counter", "--pidfile="+D+"/p", "--outfile="+D+"/o")
	cmd.Env = append(os.Environ(), "ZDTM_FLAVOR=ns")
	cmd.Dir = D
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start workload: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(D + "/p")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(raw), &pid)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			unix.Kill(pid, unix.SIGTERM)
		}
	}
	t.Cleanup(stop)
	entries := roundTrip(t, pid, DumpOptions{})
	var ext, fresh int
	for _, e := range entries {
		if e.GetExtMount() {
			ext++
		} else {
			fresh++
		}
	}
	if ext == 0 || fresh == 0 {
		t.Errorf("%d external and %d fresh mounts; the ns flavor has both", ext, fresh)
	}
	// The dump left the workload alone: it still passes its own check.
	stop()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(D + "/o"); err == nil {
			if !strings.Contains(string(b), "PASS") {
				t.Errorf("workload says %q", b)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("workload wrote no verdict")
}

// TestRefuseUnknownFS: a disk filesystem that gocr's namespace does not
// show is refused, naming the mount, unless it is marked external.
func TestRefuseUnknownFS(t *testing.T) {
	d := &dumpMount{m: procfs.Mount{ID: 7, MountPoint: "/data", FSType: "ext4", Source: "/dev/sdz1", Root: "/", Options: "rw,noexec", SuperOptions: "rw,errors=remount-ro"}, fd: -1}
	err := d.classify(DumpOptions{NoAutoExternal: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "mount 7 at /data") || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want a refusal naming mount 7 at /data", err)
	}
	if err := d.classify(DumpOptions{External: map[string]string{"/data": "data"}}, nil); err != nil || !d.e.GetExtMount() || d.e.GetExtKey() != "data" {
		t.Fatalf("with --external: %v", err)
	}
	if d.e.GetFlags() != unix.MS_NOEXEC || d.e.GetOptions() != "errors=remount-ro" || d.e.GetFsname() != "ext4" {
		t.Errorf("entry %v", d.e)
	}
}
