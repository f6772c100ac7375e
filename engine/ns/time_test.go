package ns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/timens"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

func TestTreeTime(t *testing.T) {
	const g, x, y = 10, 20, 30
	task := func(pid int, tm, fc uint64) TimeTask { return TimeTask{Pid: pid, Time: tm, ForChildren: fc} }
	good := []struct {
		name  string
		tasks []TimeTask
		want  TimeLayout
	}{
		{"none", []TimeTask{task(1, g, g), task(2, g, g)}, TimeLayout{}},
		{"container", []TimeTask{task(1, x, x), task(2, x, x)}, TimeLayout{ID: x, RootInside: true}},
		{"container, root alone", []TimeTask{task(1, x, x)}, TimeLayout{ID: x, RootInside: true}},
		{"root made it", []TimeTask{task(1, g, y), task(2, y, y), task(3, y, y)}, TimeLayout{ID: y}},
	}
	for _, c := range good {
		if l, err := TreeTime(c.tasks, g); err != nil || l != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, l, err, c.want)
		}
	}
	bad := []struct {
		name, msg string
		tasks     []TimeTask
	}{
		{"two namespaces", "pid 3 is in time namespace 30", []TimeTask{task(1, x, x), task(2, x, x), task(3, y, y)}},
		{"child outside the root's", "pid 2 is in time namespace 10", []TimeTask{task(1, g, y), task(2, g, g)}},
		{"child made one", "pid 2 unshared a time namespace (30)", []TimeTask{task(1, g, g), task(2, g, y)}},
		{"nested", "nested", []TimeTask{task(1, x, y), task(2, y, y)}},
		{"no child yet", "no child in it yet", []TimeTask{task(1, g, y)}},
	}
	for _, c := range bad {
		if _, err := TreeTime(c.tasks, g); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.msg)
		}
	}
}

func TestTreeTimeFromIDs(t *testing.T) {
	const g, x, y = 10, 20, 30
	tasks := func(ids ...uint64) []TimeTask {
		var out []TimeTask
		for i, id := range ids {
			out = append(out, TimeTask{Pid: i + 1, Time: id})
		}
		return out
	}
	good := []struct {
		ids  []uint64
		want TimeLayout
	}{
		{[]uint64{g, g, g}, TimeLayout{}},
		{[]uint64{g}, TimeLayout{}},
		{[]uint64{x, x, 0}, TimeLayout{ID: x, RootInside: true}},
		{[]uint64{g, y, y}, TimeLayout{ID: y}},
		{[]uint64{g, 0, y}, TimeLayout{ID: y}},
		{[]uint64{0, 0}, TimeLayout{}},
	}
	for _, c := range good {
		if l, err := TreeTimeFromIDs(tasks(c.ids...), g); err != nil || l != c.want {
			t.Errorf("%v: %+v, %v; want %+v", c.ids, l, err, c.want)
		}
	}
	for _, ids := range [][]uint64{{x, y}, {x, x, g}, {g, y, g}, {g, y, x}} {
		if l, err := TreeTimeFromIDs(tasks(ids...), g); err == nil {
			t.Errorf("%v: accepted as %+v", ids, l)
		}
	}
}

func TestCheckTime(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	ok := &timens.TimensEntry{Monotonic: &timens.Timespec{TvSec: u(5), TvNsec: u(999999999)}, Boottime: &timens.Timespec{TvSec: u(0), TvNsec: u(0)}}
	if err := CheckTime(ok); err != nil {
		t.Error(err)
	}
	for _, e := range []*timens.TimensEntry{
		{Monotonic: ok.Monotonic},
		{Monotonic: ok.Monotonic, Boottime: &timens.Timespec{TvSec: u(0), TvNsec: u(1e9)}},
		{Monotonic: &timens.Timespec{TvSec: u(1 << 62), TvNsec: u(0)}, Boottime: ok.Boottime},
	} {
		if err := CheckTime(e); err == nil {
			t.Errorf("CheckTime accepted %v", e)
		}
	}
}

// inTimeNS starts `sleep` in a fresh time namespace with offsets o, made
// on a throwaway thread, and returns its pid.
func inTimeNS(t *testing.T, o procfs.TimeOffsets) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a time namespace")
	}
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		t.Skip("no time namespaces here")
	}
	var cmd *exec.Cmd
	err := OnThrowawayThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
			return err
		}
		if err := WriteTimeOffsets(unix.Gettid(), o); err != nil {
			return err
		}
		cmd = exec.Command("sleep", "60")
		return cmd.Start()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestDumpAndRestoreTime dumps the clocks of a time namespace, then
// works out the offsets a new one needs both ways: carrying the clocks on
// (they stood still in between) and keeping their distance to gocr's.
func TestDumpAndRestoreTime(t *testing.T) {
	o := procfs.TimeOffsets{Monotonic: 10 * 24 * time.Hour, Boottime: 20*24*time.Hour + 1}
	pid := inTimeNS(t, o)
	inside, ref, err := DumpTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if d := duration(inside.GetMonotonic()) - duration(ref.GetMonotonic()); d != o.Monotonic {
		t.Errorf("monotonic inside is %v ahead of ours, want %v", d, o.Monotonic)
	}
	if d := duration(inside.GetBoottime()) - duration(ref.GetBoottime()); d != o.Boottime {
		t.Errorf("boottime inside is %v ahead of ours, want %v", d, o.Boottime)
	}
	if err := CheckTime(inside); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	keep, err := RestoreTimeOffsets(inside, ref)
	if err != nil || keep != o {
		t.Errorf("keeping the distance: %+v, %v; want %+v", keep, err, o)
	}
	carry, err := RestoreTimeOffsets(inside, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lag := o.Monotonic - carry.Monotonic; lag < 20*time.Millisecond || lag > time.Minute {
		t.Errorf("carrying the clocks on: offset %v, %v behind the dumped one; want the time since the dump", carry.Monotonic, lag)
	}
	// The offsets are written as they are read back.
	back := inTimeNS(t, carry)
	if got, err := procfs.TimeNSOffsets(back); err != nil || got != carry {
		t.Errorf("wrote %+v, read back %+v, %v", carry, got, err)
	}
}
