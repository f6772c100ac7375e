package ns

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/timens"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

// Time namespaces (time_namespaces(7)) shift the monotonic and boot-time
// clocks of the processes in them by offsets from the initial namespace.
// The offsets can be written only while no process has ever been in the
// namespace, and a namespace is made only by unshare(CLONE_NEWTIME), which
// leaves the caller where it is and puts its later children in the new one
// (its time_for_children). So a tree uses one in two ways gocr restores:
//
//   - every process of the tree is in it (a container runtime made it
//     before starting the tree): the root's stub unshares one, gocr writes
//     the offsets, and the stub joins it with setns while it is still
//     single-threaded, before it forks anything;
//   - the root made it for its children: the root is in gocr's time
//     namespace and every other process in the root's time_for_children.
//     The root's stub unshares, gocr writes the offsets, and the children's
//     stubs, forked after that, are born in it.
//
// The image, timens-ID.img, is CRIU's: the namespace's clocks as they read
// inside it at dump time, so that a restore can carry them on from there
// (a tree in a container does not see its clocks jump back after a restore
// on a machine up for less time). When the root made the namespace for its
// children its own clocks are gocr's, which a restore cannot stop, and the
// distance between the two is what the tree knows: gocr's own clocks at
// the same instant go to gocr-timens-ref.img, so that the restore keeps
// that distance.
//
// The root's stub is not born in the namespace: it is forked by gocr's
// tracer thread, which it must stay a child of, and that thread cannot
// give up a time_for_children it unshared (setns into a time namespace is
// refused to a multi-threaded process). The stub joins instead, while it
// is single-threaded; the kernel then drops its [vvar] pages, which fault
// in again with the namespace's page (as after a fork into one), and the
// vdso is moved to the image's place later as always.

// initTimeNS is the inode of the initial time namespace (PROC_TIME_INIT_INO),
// whose offsets are zero.
const initTimeNS = 0xEFFFFFFA

// TimeTask is what the time namespace check needs of one live process of
// the tree: the nsfs inodes of its ns/time and ns/time_for_children.
type TimeTask struct {
	Pid               int
	Time, ForChildren uint64
}

// ReadTimeTask reads pid's time namespaces and checks that its other
// threads (tids) would bear children in the same one as the leader: a
// thread that unshared one by itself cannot be restored.
func ReadTimeTask(pid int, tids []int) (TimeTask, error) {
	t := TimeTask{Pid: pid}
	var err error
	if t.Time, err = procfs.NamespaceInode(pid, "time"); err != nil {
		return t, err
	}
	if t.ForChildren, err = procfs.NamespaceInode(pid, "time_for_children"); err != nil {
		return t, err
	}
	for _, tid := range tids {
		if tid == pid {
			continue
		}
		fc, err := procfs.NamespaceInode(tid, "time_for_children")
		if err != nil {
			return t, fmt.Errorf("thread %d of pid %d: %w", tid, pid, err)
		}
		if fc != t.ForChildren {
			return t, fmt.Errorf("thread %d of pid %d unshared a time namespace (%d) of its own; its process's children are born in %d: not supported", tid, pid, fc, t.ForChildren)
		}
	}
	return t, nil
}

// TimeLayout is how a tree uses a time namespace: ID is the one it has of
// its own (0: none), RootInside whether its root is in it too (a
// container's) or only the root's children (the root made it).
type TimeLayout struct {
	ID         uint64
	RootInside bool
}

// TreeTime works out the time namespace layout of the tree's live
// processes (the root first) from their namespaces, where gocr's own time
// namespace is gocr, and refuses a layout gocr cannot restore: processes
// in two time namespaces other than gocr's, a process other than the root
// that made one for its children, or a root that made one and has no
// child in it yet (the ids in the images could not say so).
func TreeTime(tasks []TimeTask, gocr uint64) (TimeLayout, error) {
	if len(tasks) == 0 {
		return TimeLayout{}, nil
	}
	root := tasks[0]
	var l TimeLayout
	switch {
	case root.Time != gocr:
		if root.ForChildren != root.Time {
			return l, fmt.Errorf("the tree's root pid %d is in time namespace %d and unshared another (%d) for its children: nested time namespaces are not supported", root.Pid, root.Time, root.ForChildren)
		}
		l = TimeLayout{ID: root.Time, RootInside: true}
	case root.ForChildren != gocr:
		l = TimeLayout{ID: root.ForChildren}
	default:
		l = TimeLayout{ID: gocr} // none of its own, but checked as one
	}
	for _, t := range tasks[1:] {
		if t.Time != l.ID {
			return TimeLayout{}, fmt.Errorf("pid %d is in time namespace %d, but the tree's root pid %d is in %d and bears children in %d: a tree in two time namespaces other than gocr's (%d) is not supported",
				t.Pid, t.Time, root.Pid, root.Time, root.ForChildren, gocr)
		}
		if t.ForChildren != t.Time {
			return TimeLayout{}, fmt.Errorf("pid %d unshared a time namespace (%d) its children would be born in, in time namespace %d: only the tree's root may, from gocr's time namespace", t.Pid, t.ForChildren, t.Time)
		}
	}
	if l.ID == gocr {
		return TimeLayout{}, nil
	}
	if !l.RootInside && len(tasks) == 1 {
		return TimeLayout{}, fmt.Errorf("the tree's root pid %d unshared a time namespace (%d) and has no child in it yet: not supported", root.Pid, l.ID)
	}
	return l, nil
}

// TreeTimeFromIDs is TreeTime on restore, from the images: each live
// process of the tree (the root first) with Time its time_ns_id (0 where
// an image has none, which says nothing) and ForChildren unused, and
// gocr's time namespace at dump time (the inventory's root_ids).
func TreeTimeFromIDs(tasks []TimeTask, gocr uint64) (TimeLayout, error) {
	if len(tasks) == 0 {
		return TimeLayout{}, nil
	}
	root, want := tasks[0], tasks[0].Time
	if want == gocr {
		// Its children are in its time_for_children, whatever it was.
		for _, t := range tasks[1:] {
			if t.Time != 0 {
				want = t.Time
				break
			}
		}
	}
	for _, t := range tasks[1:] {
		if t.Time != 0 && t.Time != want {
			return TimeLayout{}, fmt.Errorf("pid %d is in time namespace %d, another process in %d and the tree's root pid %d in %d: a tree in two time namespaces other than the dumper's (%d) is not supported",
				t.Pid, t.Time, want, root.Pid, root.Time, gocr)
		}
	}
	if want == gocr || want == 0 {
		return TimeLayout{}, nil
	}
	return TimeLayout{ID: want, RootInside: root.Time == want}, nil
}

// DumpTime reads the clocks of the time namespace pid's children are born
// in (its time_for_children), as they read inside it now, and gocr's own
// clocks at the same instant. Both are computed from the offsets, so no
// thread of gocr enters the namespace (setns into a time namespace is
// refused to a multi-threaded process anyway).
func DumpTime(pid int) (inside, ref *timens.TimensEntry, err error) {
	theirs, err := procfs.TimeNSOffsets(pid)
	if err != nil {
		return nil, nil, err
	}
	mine, err := gocrTimeOffsets()
	if err != nil {
		return nil, nil, err
	}
	mono, boot, err := clocks()
	if err != nil {
		return nil, nil, err
	}
	inside, err = timeEntry(mono+theirs.Monotonic-mine.Monotonic, boot+theirs.Boottime-mine.Boottime)
	if err != nil {
		return nil, nil, fmt.Errorf("time namespace of pid %d (offsets %+v): %w", pid, theirs, err)
	}
	ref, err = timeEntry(mono, boot)
	return inside, ref, err
}

// CheckTime refuses a timens entry whose clocks are no clock values: a
// missing field, nanoseconds of a second or more, or more seconds than a
// time.Duration holds (the kernel keeps a namespace's clocks below 146
// years, a Duration reaches 292).
func CheckTime(e *timens.TimensEntry) error {
	for _, c := range []struct {
		name string
		ts   *timens.Timespec
	}{{"monotonic", e.GetMonotonic()}, {"boottime", e.GetBoottime()}} {
		switch {
		case c.ts == nil:
			return fmt.Errorf("%s: missing", c.name)
		case c.ts.GetTvNsec() >= 1e9:
			return fmt.Errorf("%s.tv_nsec: %d is not below one second", c.name, c.ts.GetTvNsec())
		case c.ts.GetTvSec() > uint64(maxClock/time.Second):
			return fmt.Errorf("%s.tv_sec: %d seconds is more than a clock reaches", c.name, c.ts.GetTvSec())
		}
	}
	return nil
}

// maxClock bounds the clock values gocr accepts; see CheckTime.
const maxClock = 200 * 365 * 24 * time.Hour

// RestoreTimeOffsets works out the offsets a fresh time namespace needs
// now, from its image and, when the restore must keep the distance to
// gocr's clocks rather than the clocks themselves, gocr's clocks at dump
// time (ref; nil: carry the clocks on from the image's values, as CRIU
// does). Call it right before WriteTimeOffsets: the offsets it gives hold
// for this instant.
func RestoreTimeOffsets(e, ref *timens.TimensEntry) (procfs.TimeOffsets, error) {
	mine, err := gocrTimeOffsets()
	if err != nil {
		return procfs.TimeOffsets{}, err
	}
	var mono, boot time.Duration
	if ref != nil {
		mono, boot = duration(ref.GetMonotonic()), duration(ref.GetBoottime())
	} else if mono, boot, err = clocks(); err != nil {
		return procfs.TimeOffsets{}, err
	}
	return procfs.TimeOffsets{
		Monotonic: duration(e.GetMonotonic()) - mono + mine.Monotonic,
		Boottime:  duration(e.GetBoottime()) - boot + mine.Boottime,
	}, nil
}

// WriteTimeOffsets sets the offsets of pid's time_for_children, a time
// namespace no process has been in yet. The kernel refuses offsets that
// would put a clock below zero (ERANGE): a namespace made for its
// children by a root whose clocks were behind theirs by more than this
// machine has been up.
func WriteTimeOffsets(pid int, o procfs.TimeOffsets) error {
	p := fmt.Sprintf("/proc/%d/timens_offsets", pid)
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	text := o.String()
	n, err := unix.Write(fd, []byte(text))
	switch {
	case errors.Is(err, unix.ERANGE):
		return fmt.Errorf("write %q to %s: a clock of the namespace would be below zero or too far ahead: %w", text, p, err)
	case err != nil:
		return fmt.Errorf("write %q to %s: %w", text, p, err)
	case n != len(text):
		return fmt.Errorf("write %q to %s: took %d bytes", text, p, n)
	}
	return nil
}

// gocrTimeOffsets reads the offsets of gocr's own time namespace, through
// /proc/self, which shows the thread-group leader's time_for_children.
func gocrTimeOffsets() (procfs.TimeOffsets, error) {
	pid := os.Getpid()
	own, err := procfs.NamespaceInode(pid, "time")
	if err != nil {
		return procfs.TimeOffsets{}, err
	}
	if own == initTimeNS {
		return procfs.TimeOffsets{}, nil
	}
	fc, err := procfs.NamespaceInode(pid, "time_for_children")
	if err != nil {
		return procfs.TimeOffsets{}, err
	}
	if fc != own {
		return procfs.TimeOffsets{}, fmt.Errorf("gocr is in time namespace %d but bears children in %d: the offsets of its own cannot be read", own, fc)
	}
	return procfs.TimeNSOffsets(pid)
}

// clocks reads gocr's monotonic and boot-time clocks, as close together as
// two calls get.
func clocks() (mono, boot time.Duration, err error) {
	var m, b unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m); err != nil {
		return 0, 0, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &b); err != nil {
		return 0, 0, fmt.Errorf("clock_gettime(CLOCK_BOOTTIME): %w", err)
	}
	return time.Duration(m.Nano()), time.Duration(b.Nano()), nil
}

// timeEntry is a timens entry holding two clock values.
func timeEntry(mono, boot time.Duration) (*timens.TimensEntry, error) {
	ts := func(name string, d time.Duration) (*timens.Timespec, error) {
		if d < 0 {
			return nil, fmt.Errorf("%s clock at %v, below zero", name, d)
		}
		sec, nsec := uint64(d/time.Second), uint64(d%time.Second)
		return &timens.Timespec{TvSec: &sec, TvNsec: &nsec}, nil
	}
	m, err := ts("monotonic", mono)
	if err != nil {
		return nil, err
	}
	b, err := ts("boottime", boot)
	if err != nil {
		return nil, err
	}
	return &timens.TimensEntry{Monotonic: m, Boottime: b}, nil
}

// duration is a checked (CheckTime) clock value as a Duration.
func duration(ts *timens.Timespec) time.Duration {
	return time.Duration(ts.GetTvSec())*time.Second + time.Duration(ts.GetTvNsec())
}
