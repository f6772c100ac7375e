package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// limits are the machine's best for the big-memory case, measured on the
// live workload just before a dump (MB/s; 0 when a measurement failed).
type limits struct {
	readv      float64 // process_vm_readv into a buffer: the least a dump must spend frozen
	readvWrite float64 // the same, each buffer written to a file beside the images: the most a dump can do
	touch      float64 // allocate and touch fresh memory: the most a restore can do
}

func measureLimits(pid int, addr uint64, n int64, tmp string) *limits {
	var l limits
	// The best of a few buffer sizes: a buffer that stays in the CPU's
	// cache copies faster than a big one.
	for _, buf := range []int{256 << 10, 1 << 20} {
		l.readv = max(l.readv, readvLimit(pid, addr, n, buf, ""))
		l.readvWrite = max(l.readvWrite, readvLimit(pid, addr, n, buf, tmp))
	}
	// In a process of its own: a child forked from a bench that had
	// touched a gigabyte would inherit that peak in its own ru_maxrss.
	l.touch = touchLimitChild(n)
	return &l
}

// region finds "region 0xADDR LEN" in the workload's output.
func region(path string) (uint64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("workload output: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a uint64
		var n int64
		if _, err := fmt.Sscanf(sc.Text(), "region %v %d", &a, &n); err == nil {
			return a, n, nil
		}
	}
	return 0, 0, fmt.Errorf("the workload did not say where its region is (%s)", path)
}

// readvLimit copies the region out of the process with plain
// process_vm_readv, each buffer written to the file path unless path is
// empty, and returns MB/s (0 on error).
func readvLimit(pid int, addr uint64, n int64, bufSize int, path string) float64 {
	var f *os.File
	if path != "" {
		var err error
		if f, err = os.Create(path); err != nil {
			return 0
		}
		defer os.Remove(path)
		defer f.Close()
	}
	buf := make([]byte, bufSize)
	start := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), n-off)]
		local := []unix.Iovec{{Base: &chunk[0], Len: uint64(len(chunk))}}
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(off), Len: len(chunk)}}
		if _, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil {
			return 0
		}
		if f != nil {
			if _, err := f.Write(chunk); err != nil {
				return 0
			}
		}
	}
	return mbps(n, time.Since(start))
}

func touchLimitChild(n int64) float64 {
	out, err := exec.Command("/proc/self/exe", "-touch", strconv.FormatInt(n, 10)).Output()
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	return v
}

// touchLimit maps fresh anonymous memory and touches each page, the best
// of faulting pages in one by one and having the kernel populate them at
// mmap: the most a restore can do.
func touchLimit(n int64) float64 {
	var best float64
	for _, flags := range []int{0, unix.MAP_POPULATE} {
		start := time.Now()
		m, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|flags)
		if err != nil {
			return 0
		}
		for i := 0; i < len(m); i += 4096 {
			m[i] = 1
		}
		best = max(best, mbps(n, time.Since(start)))
		unix.Munmap(m)
	}
	return best
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }
