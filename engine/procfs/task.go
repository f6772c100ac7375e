package procfs

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Tasks lists the thread ids of PID from /proc/PID/task, sorted.
func Tasks(pid int) ([]int, error) {
	_, tids, err := numberedEntries(pid, "task")
	return tids, err
}

// numberedEntries lists the entries of /proc/PID/SUB that are numbers
// (tids, fds), sorted, and returns the directory's path too.
func numberedEntries(pid int, sub string) (string, []int, error) {
	dir := path(pid, sub)
	f, err := os.Open(dir)
	if err != nil {
		return dir, nil, fmt.Errorf("list %s: %w", dir, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return dir, nil, fmt.Errorf("list %s: %w", dir, err)
	}
	nums := make([]int, 0, len(names))
	for _, n := range names {
		if v, err := strconv.Atoi(n); err == nil {
			nums = append(nums, v)
		}
	}
	sort.Ints(nums)
	return dir, nums, nil
}

// Children lists the children of every thread of PID, from
// /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN), sorted. A child
// belongs to the thread that forked it, so all threads are read. The list is
// only stable while the tree is frozen.
func Children(pid int) ([]int, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, tid := range tids {
		name := "task/" + strconv.Itoa(tid) + "/children"
		b, err := os.ReadFile(path(pid, name))
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread exited
			}
			return nil, fmt.Errorf("read %s: %w", path(pid, name), err)
		}
		c, err := ParsePidList(b)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path(pid, name), err)
		}
		kids = append(kids, c...)
	}
	sort.Ints(kids)
	return kids, nil
}

// ParsePidList parses a space-separated list of pids ("123 456 ").
func ParsePidList(b []byte) ([]int, error) {
	f := strings.Fields(string(b))
	out := make([]int, 0, len(f))
	for _, x := range f {
		n, err := atoi(x)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad pid %q: %w", x, errSyntax)
		}
		out = append(out, n)
	}
	return out, nil
}
