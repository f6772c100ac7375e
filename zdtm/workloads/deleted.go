package workloads

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Helpers of the workloads about files deleted while in use: ghost_*,
// link_remap and cwd_deleted.

// dataRun is a run of a file that holds data, as SEEK_DATA/SEEK_HOLE
// show it.
type dataRun struct{ off, end int64 }

// dataLayout lists the data runs of the file open on fd, of size bytes.
func dataLayout(fd int, size int64) ([]dataRun, error) {
	var out []dataRun
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("SEEK_DATA from %d: %w", off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE from %d: %w", data, err)
		}
		out = append(out, dataRun{data, hole})
		off = hole
	}
	return out, nil
}

// fdTarget is what /proc/self/fd/N shows.
func fdTarget(fd int) string {
	l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err.Error()
	}
	return l
}

// restoreLeftovers lists what a checkpoint engine may have left in dir
// beside the workload's own files: criu-style ghost files
// ("NAME.cr.ID.ghost"), stand-in links ("NAME.cr_link") and link remaps
// ("link_remap.ID").
func restoreLeftovers(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.Contains(n, ".cr.") || strings.HasSuffix(n, ".cr_link") || strings.HasPrefix(n, "link_remap.") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out, nil
}

// mapsInode finds the mapping of addr in /proc/self/maps and returns its
// inode and name.
func mapsInode(addr uintptr) (uint64, string, error) {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var start, end uintptr
		var perms, off, dev string
		var ino uint64
		if n, _ := fmt.Sscanf(line, "%x-%x %s %s %s %d", &start, &end, &perms, &off, &dev, &ino); n < 6 || addr < start || addr >= end {
			continue
		}
		f := strings.Fields(line)
		return ino, strings.Join(f[5:], " "), nil
	}
	return 0, "", fmt.Errorf("no mapping of %#x in /proc/self/maps", addr)
}
