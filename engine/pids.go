package engine

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/ns"
)

// ReservePids prepares gocr's pid namespace for restoring the images in
// dir: it moves ns_last_pid past the pids and tids the restore will ask
// for, so that no task started from now on, gocr's own threads included,
// takes one of them (pid_max is small on many machines and pids wrap
// around quickly). It returns the wanted pids that a thread of the calling
// process holds already; a caller that gets any should start afresh (the
// gocr command re-executes itself), as its own threads cannot give them
// back.
func ReservePids(dir string) (heldBySelf []int, err error) {
	d, err := image.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	name := image.PstreeFile
	if d.Exists(image.HostPstreeFile) {
		name = image.HostPstreeFile // a tree in its own pid namespace
	}
	tree, err := image.ReadAll[pstree.PstreeEntry](d, image.Pstree, name)
	if err != nil {
		return nil, err
	}
	var want []int
	for _, e := range tree {
		want = append(want, int(e.GetPid()))
		for _, t := range e.GetThreads() {
			want = append(want, int(t))
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	pidMax, err := readPidMax()
	if err != nil {
		return nil, err
	}
	if err := ns.SetLastPid(lastPidClearOf(want, pidMax)); err != nil {
		return nil, err
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil && slices.Contains(want, tid) {
			heldBySelf = append(heldBySelf, tid)
		}
	}
	return heldBySelf, nil
}

// firstPidAfterWrap is where the kernel's pid allocator starts again when
// it wraps at pid_max (RESERVED_PIDS in kernel/pid.c).
const firstPidAfterWrap = 300

// lastPidClearOf picks the value for ns_last_pid that sends the pids
// allocated next as far as possible from every wanted pid: the wanted pid
// followed by the widest run of pids nobody wants, counting around the
// wrap at pid_max. Taking simply the highest wanted pid is wrong for a tree
// whose pids straddle the wrap (32766, 32767, 300, 301): the next pid
// would then be 300.
func lastPidClearOf(want []int, pidMax int) int {
	w := slices.Clone(want)
	slices.Sort(w)
	w = slices.Compact(w)
	best, widest := w[len(w)-1], -1
	for i, p := range w {
		var gap int
		if i+1 < len(w) {
			gap = w[i+1] - p - 1
		} else { // up to pid_max, then from the wrap to the lowest wanted
			gap = max(pidMax-1-p, 0) + max(w[0]-firstPidAfterWrap, 0)
		}
		if gap > widest {
			best, widest = p, gap
		}
	}
	return best
}

// readPidMax reads pid_max of gocr's pid namespace.
func readPidMax() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/kernel/pid_max: %w", err)
	}
	return n, nil
}
