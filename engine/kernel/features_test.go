package kernel

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// probed runs Probe once for the whole test binary's features tests.
func probed(t *testing.T) Features {
	t.Helper()
	f := Probe()
	if len(f.List) != len(probes) {
		t.Fatalf("Probe returned %d features, table has %d", len(f.List), len(probes))
	}
	return f
}

// TestProbeThisHost checks the facts DESIGN.md measured on this machine's
// kernel (6.18): these are present, soft-dirty is not. On another kernel
// the test says so and checks only the version-independent part.
func TestProbeThisHost(t *testing.T) {
	f := probed(t)
	for _, ft := range f.List {
		t.Logf("%-24s found=%-5v since=%-5s %s", ft.Name, ft.Found, ft.Since, ft.Detail)
		if ft.Name == "" || ft.Since == "" || ft.Cost == "" || ft.Detail == "" {
			t.Errorf("feature %+v has an empty field", ft)
		}
	}
	if !f.Kernel.AtLeast(Version{6, 13, 0}) {
		t.Skipf("kernel %s is older than the 6.18 host the expectations were measured on", f.Release)
	}
	for _, name := range []string{"clone3-set-tid", "pagemap-scan", "vvar-vclock", "fdinfo-mnt-id",
		"ptrace-rseq-config", "ptrace-peeksiginfo", "ptrace-getsigmask", "checkpoint-restore", "kcmp",
		"memfd", "timerfd-set-ticks", "eventfd-semaphore", "inotify-setnextwd", "process-vm-readv", "time-ns", "pidfd", "userfaultfd", "uffd-wp", "move-mount-set-group", "mount-setattr",
		"ipc-msg-copy", "ipc-next-id", "ptrace-suspend-seccomp", "ptrace-seccomp-filter", "ptrace-seccomp-metadata"} {
		if err := Require(f, name); err != nil {
			t.Errorf("Require(%s): %v", name, err)
		}
	}
	if f.Kernel.AtLeast(Version{6, 15, 0}) {
		if err := Require(f, "timer-restore-ids"); err != nil {
			t.Errorf("Require(timer-restore-ids) on %s: %v", f.Release, err)
		}
	}
	if f.Kernel.AtLeast(Version{6, 17, 0}) {
		if err := Require(f, "mremap-multi-vma"); err != nil {
			t.Errorf("Require(mremap-multi-vma) on %s: %v", f.Release, err)
		}
	}
	if f.Has("soft-dirty") {
		t.Error("soft-dirty found; DESIGN.md says this host kernel has none")
	}
	err := Require(f, "soft-dirty")
	var nse *NotSupportedError
	if !errors.As(err, &nse) || nse.Feature != "soft-dirty" || nse.Since != "3.11" {
		t.Errorf("Require(soft-dirty) = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "kernel lacks soft-dirty (added in 3.11): ") {
		t.Errorf("message %q", err)
	}
}

// Probing leaves no fd open and no child behind.
func TestProbeLeavesNothing(t *testing.T) {
	before := openFds(t)
	Probe()
	after := openFds(t)
	if after > before {
		t.Errorf("%d fds before Probe, %d after", before, after)
	}
	// A child belongs to the thread that forked it: look at every thread.
	kids := ""
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, tk := range tasks {
		c, _ := os.ReadFile("/proc/self/task/" + tk.Name() + "/children")
		kids += strings.TrimSpace(string(c))
	}
	if kids != "" {
		t.Errorf("children left behind: %q", kids)
	}
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil); err != unix.ECHILD {
		t.Errorf("wait4 after Probe = %d, %v; want ECHILD", pid, err)
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

func TestLookupAndRequire(t *testing.T) {
	f := Features{List: []Feature{
		{Name: "pagemap-scan", Found: false, Since: "6.7", Detail: "PAGEMAP_SCAN: ENOTTY"},
		{Name: "ptrace-rseq-config", Found: true, Since: "5.13"},
	}}
	if ft, ok := f.Lookup("get_rseq_conf"); !ok || ft.Name != "ptrace-rseq-config" {
		t.Errorf("CRIU alias lookup: %+v %v", ft, ok)
	}
	if _, ok := f.Lookup("nonsense"); ok {
		t.Error("unknown name found")
	}
	if err := Require(f, "ptrace-rseq-config"); err != nil {
		t.Error(err)
	}
	err := Require(f, "pagemap_scan")
	var nse *NotSupportedError
	if !errors.As(err, &nse) || err.Error() != "kernel lacks pagemap-scan (added in 6.7): PAGEMAP_SCAN: ENOTTY" {
		t.Errorf("Require = %v", err)
	}
	if err := Require(f, "nonsense"); !errors.As(err, &nse) {
		t.Errorf("unknown feature: %v", err)
	}
	for name, canon := range criuNames {
		if !slices.Contains(Names(), canon) {
			t.Errorf("alias %s points at unknown %s", name, canon)
		}
	}
	seen := map[string]bool{}
	for _, n := range Names() {
		if seen[n] || n != strings.ToLower(n) || strings.ContainsAny(n, "_ ") {
			t.Errorf("bad or duplicate name %q", n)
		}
		seen[n] = true
	}
}

func TestWriteTable(t *testing.T) {
	f := Features{Release: "6.18.44-test", List: []Feature{
		{Name: "pagemap-scan", Found: true, Since: "6.7", Cost: "slow", Detail: "ok"},
		{Name: "soft-dirty", Found: false, Since: "3.11", Cost: "no pre-dump", Optional: true, Detail: "bit 55 clear"},
		{Name: "kcmp", Found: false, Since: "3.5", Cost: "no sharing", Detail: "ENOSYS"},
	}}
	var b bytes.Buffer
	if err := WriteTable(&b, f, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "pagemap-scan") || !strings.Contains(out, "soft-dirty") ||
		!strings.Contains(out, "missing (optional)") || !strings.Contains(out, "1 required features missing") {
		t.Errorf("table without all:\n%s", out)
	}
	b.Reset()
	WriteTable(&b, f, true)
	out = b.String()
	if !strings.Contains(out, "pagemap-scan") || !strings.Contains(out, "DETAIL") || !strings.Contains(out, "bit 55 clear") ||
		!strings.Contains(out, "kernel 6.18.44-test: 1 of 3 features found") {
		t.Errorf("table with all:\n%s", out)
	}
	t.Logf("\n%s", out)
}

// The move-mount-set-group probe relies on the kernel checking flags before
// fds: an unknown flag must give EINVAL where the known one gives EBADF.
func TestMoveMountFlagOrder(t *testing.T) {
	err := unix.MoveMount(-1, "", -1, "", 1<<30|unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != unix.EINVAL {
		t.Errorf("move_mount with an unknown flag: %v, want EINVAL", err)
	}
}

// Check runs one probe and answers as Require on the full table does.
func TestCheck(t *testing.T) {
	var nse *NotSupportedError
	if err := Check("nonsense"); !errors.As(err, &nse) {
		t.Errorf("unknown feature: %v", err)
	}
	f := probed(t)
	for _, name := range []string{"open-tree", "move-mount-set-group"} {
		want, got := Require(f, name), Check(name)
		if (want == nil) != (got == nil) {
			t.Errorf("%s: Check says %v, the table %v", name, got, want)
		}
	}
}
