package engine

import (
	"os"
	"slices"
	"strconv"

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
	// Wherever the allocator is (it wraps at pid_max), the next pids
	// come from above the highest one wanted.
	if err := ns.SetLastPid(slices.Max(want)); err != nil {
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
