package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/procfs"
)

// workloadEnv makes the test binary a workload (see TestMain): it counts
// with short sleeps in several goroutines and, on SIGTERM, exits 0 if the
// counting went on, 1 otherwise.
const workloadEnv = "GOCR_ENGINE_TEST_WORKLOAD"

func TestMain(m *testing.M) {
	if d := os.Getenv(rootEnv); d != "" {
		os.Exit(enterRootAndExec(d))
	}
	if os.Getenv(workloadEnv) != "" {
		os.Exit(runWorkload())
	}
	if IsWatchdog(os.Args[1:]) {
		os.Exit(RunWatchdog(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// nsHostname is what the workload sets in its own uts namespace when
// started with workloadEnv=ns.
const nsHostname = "gocr-engine-ns"

func runWorkload() int {
	inNS := os.Getenv(workloadEnv) == "ns"
	if inNS {
		if err := unix.Sethostname([]byte(nsHostname)); err != nil {
			fmt.Println("FAIL: sethostname:", err)
			return 2
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var n atomic.Int64
	for range 4 {
		go func() {
			for {
				n.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	r, w, err := os.Pipe() // a pipe with bytes in flight and an eventfd
	if err != nil {
		return 2
	}
	w.Write([]byte("in flight"))
	efd, err := unix.Eventfd(7, unix.EFD_CLOEXEC)
	if err != nil {
		return 2
	}
	if os.Getenv(workloadEnv) == "shmem" {
		if err := shmemWorkload(); err != nil {
			fmt.Println("FAIL:", err)
			return 2
		}
	}
	time.Sleep(50 * time.Millisecond)
	fmt.Println("ready")
	<-term
	before := n.Load()
	time.Sleep(20 * time.Millisecond)
	buf := make([]byte, 9)
	if k, err := r.Read(buf); err != nil || string(buf[:k]) != "in flight" {
		fmt.Printf("FAIL: pipe gave %q, %v\n", buf[:k], err)
		return 1
	}
	var c [8]byte
	if _, err := unix.Read(efd, c[:]); err != nil || c[0] != 7 {
		fmt.Printf("FAIL: eventfd gave %v, %v\n", c, err)
		return 1
	}
	if n.Load() <= before {
		fmt.Println("FAIL: counting stopped")
		return 1
	}
	if inNS {
		var u unix.Utsname
		unix.Uname(&u)
		if h := unix.ByteSliceToString(u.Nodename[:]); h != nsHostname || os.Getpid() != 1 {
			fmt.Printf("FAIL: hostname %q, pid %d in the namespace\n", h, os.Getpid())
			return 1
		}
	}
	fmt.Println("PASS")
	return 0
}

// Shared memory of the shmem workload: shmemTouched of the pages of a
// shared anonymous mapping of shmemPages, and a memfd of memfdPages.
const (
	shmemPages   = 8
	shmemTouched = 5
	memfdPages   = 3
)

// shmemWorkload makes the shared memory the stats test counts; it stays
// mapped and open for the life of the process.
func shmemWorkload() error {
	m, err := unix.Mmap(-1, 0, shmemPages*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap shared: %w", err)
	}
	for _, pg := range []int{0, 1, 2, 5, 6}[:shmemTouched] {
		m[pg*os.Getpagesize()] = byte(pg + 1)
	}
	fd, err := unix.MemfdCreate("gocr-stats", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	if _, err := unix.Write(fd, bytes.Repeat([]byte{'m'}, memfdPages*os.Getpagesize())); err != nil {
		return fmt.Errorf("write memfd: %w", err)
	}
	return nil
}

// TestDumpRestore dumps a running multi-threaded Go program, restores it
// with the same pid and threads, and lets it check itself.
func TestDumpRestore(t *testing.T) {
	dumpRestore(t, "")
}

// TestDumpRestoreNamespaces does the same with the program as pid 1 of
// fresh pid, mount, uts, ipc and net namespaces: it comes back in fresh
// ones, pid 1 inside and the same pid outside.
func TestDumpRestoreNamespaces(t *testing.T) {
	dumpRestore(t, "ns")
}

// TestDumpRestoreAcrossPidWrap restores a tree whose tids straddle the
// wrap of the pid allocator at pid_max (32766, 32767, 300, 301, ...), as
// the CLI does: ReservePids first, then other processes start (they must
// not take the tree's pids), then the restore. It runs as pid 1 of a pid
// namespace of its own, whose allocator it may move without disturbing
// the tests of other packages running beside it.
func TestDumpRestoreAcrossPidWrap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if os.Getenv(wrapEnv) == "" {
		inPidNamespace(t, "TestDumpRestoreAcrossPidWrap")
		return
	}
	// A /proc of this pid namespace, in a mount namespace of our own.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Fatal(err)
	}
	dumpRestore(t, "ns-wrap")
}

// wrapEnv runs the test binary as pid 1 of a pid namespace of its own
// (see inPidNamespace).
const wrapEnv = "GOCR_ENGINE_TEST_OWN_PIDNS"

// inPidNamespace runs the test named test again, in a new process that
// is pid 1 of new pid and mount namespaces, and fails if it fails there.
func inPidNamespace(t *testing.T, test string) {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run", "^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), wrapEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	t.Logf("as pid 1 of a pid namespace of its own:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s in its own pid namespace: %v", test, err)
	}
}

// TestDumpRestoreUserNamespace does it once more inside a user namespace
// too (root inside is uid 100000 outside), as zdtm's uns flavor does, but
// in gocr's mount namespace.
func TestDumpRestoreUserNamespace(t *testing.T) {
	dumpRestore(t, "uns")
}

// dumpRestore runs the workload in the given zdtm flavor ("" for h),
// dumps it, restores it and lets it check itself; "ns-wrap" is ns with
// tids that straddle the wrap of the pid allocator.
func dumpRestore(t *testing.T, flavor string) {
	wrap := flavor == "ns-wrap"
	if wrap {
		flavor = "ns"
	}
	inNS := flavor != ""
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), workloadEnv+"=1")
	// A session of its own: not the terminal go test may run on, which
	// the dump would refuse as outside the tree (see --shell-job).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if inNS {
		cmd.Env = append(os.Environ(), workloadEnv+"=ns")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true,
			Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET}
	}
	if flavor == "uns" {
		a := cmd.SysProcAttr
		// The host's mount namespace, not a copy: a copy made for a user
		// namespace locks its mounts, and a tmpfs the host stacks under
		// another (/dev/shm here) can then not be uncovered to be read.
		a.Cloneflags = a.Cloneflags&^syscall.CLONE_NEWNS | syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		a.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		a.GidMappingsEnableSetgroups = true
		// The binary must be reachable for uid 100000.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(out, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	cmd.Stdout, cmd.Stderr = f, f
	if wrap {
		pidMax, err := readPidMax()
		if err != nil {
			t.Fatal(err)
		}
		// The workload and its first thread get the last two pids; its
		// other threads come after the wrap.
		if err := ns.SetLastPid(pidMax - 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload never got ready: %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	threads := func() int {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		return len(ents)
	}
	nBefore := threads()
	if wrap {
		tids, err := procfs.Tasks(pid)
		if err != nil {
			t.Fatal(err)
		}
		// Across the wrap, the tids are far apart; without it, close.
		if pidMax, _ := readPidMax(); slices.Max(tids)-slices.Min(tids) < pidMax/2 {
			t.Fatalf("workload tids %v do not straddle the wrap of the pid allocator", tids)
		}
		t.Logf("workload tids %v", tids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	images := filepath.Join(dir, "img")
	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: images}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() // the dump killed it; reap it, or its pid stays taken
	critDecode(t, images)
	if wrap {
		host, err := ReservePids(images)
		if err != nil || len(host) > 0 {
			t.Fatalf("ReservePids: %v, held by the test itself: %v", err, host)
		}
		// Processes started now take pids from where ReservePids left
		// the allocator, and hold them during the restore.
		for range 8 {
			sleeper := exec.Command("/bin/sleep", "60")
			if err := sleeper.Start(); err != nil {
				t.Fatal(err)
			}
			defer sleeper.Wait()
			defer sleeper.Process.Kill()
		}
	}

	res, err := Restore(ctx, RestoreOptions{ImagesDir: images})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pid != pid {
		t.Fatalf("restored as pid %d, dumped %d", res.Pid, pid)
	}
	if n := threads(); n < nBefore {
		t.Errorf("restored with %d threads, dumped %d", n, nBefore)
	}
	if inNS {
		kinds := []string{"pid", "mnt", "uts", "ipc", "net"}
		if flavor == "uns" {
			kinds = []string{"user", "pid", "uts", "ipc", "net"}
		}
		for _, kind := range kinds {
			mine, _ := os.Readlink("/proc/self/ns/" + kind)
			theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
			if err != nil || mine == theirs {
				t.Errorf("restored %s namespace %q (%v), gocr's %q: want a fresh one", kind, theirs, err, mine)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := res.Wait(ctx)
	b, _ := os.ReadFile(out)
	if err != nil || code != 0 {
		t.Fatalf("restored workload: exit %d, %v; output %q", code, err, b)
	}
	if !strings.Contains(string(b), "PASS") {
		t.Fatalf("restored workload output %q", b)
	}
}

// critDecode checks that CRIU's crit decodes every protobuf image of dir,
// when crit is installed.
func critDecode(t *testing.T, dir string) {
	t.Helper()
	crit, err := exec.LookPath("crit")
	if err != nil {
		t.Log("crit not installed: images not checked with it")
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".tar.gz.img") || strings.HasPrefix(n, "pages-") {
			continue // raw data, not protobuf
		}
		if strings.HasPrefix(n, "gocr-mqueue") {
			continue // gocr's own magic, which crit does not know (see image.GocrMqueue)
		}
		if b, err := exec.Command(crit, "decode", "-i", filepath.Join(dir, n)).CombinedOutput(); err != nil {
			t.Errorf("crit decode %s: %v: %s", n, err, b)
		}
	}
}
