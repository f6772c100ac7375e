package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// limits are the machine's best for a case, measured on the live
// workload just before a dump; 0 when a measurement failed or does not
// apply.
type limits struct {
	// The big-memory case, MB/s.
	readv      float64 // process_vm_readv into a buffer: the least a dump must spend frozen
	readvWrite float64 // the same, each buffer written to a file beside the images: what a dump that copies can do
	touch      float64 // allocate and touch fresh memory: the most a restore can do

	// The other cases, seconds: the least a dump (and its frozen time)
	// and a restore of this workload take, and what was timed.
	dump, restore         float64
	dumpWhat, restoreWhat string
}

func measureMemory(pid int, addr uint64, n int64, tmp string) *limits {
	var l limits
	// The best of a few buffer sizes (a buffer that stays in the CPU's
	// cache copies faster than a big one) and of a few tries: writes to
	// the page cache vary fourfold from one try to the next here.
	for range 3 {
		for _, buf := range []int{256 << 10, 1 << 20} {
			l.readv = max(l.readv, readvLimit(pid, addr, n, buf, ""))
			l.readvWrite = max(l.readvWrite, readvLimit(pid, addr, n, buf, tmp))
		}
	}
	// In a process of its own: a child forked from a bench that had
	// touched a gigabyte would inherit that peak in its own ru_maxrss.
	l.touch = childLimit(fmt.Sprintf("touch:%d", n))
	return &l
}

// measureObjects times what a dump must at least do for the tree of pid,
// reading it in /proc, and what its restore must at least do: spec, run
// by the bench itself in a child process (see runLimit).
func measureObjects(pid int, spec, what string) *limits {
	l := &limits{dumpWhat: "read the tree in /proc", restoreWhat: what}
	// The best of three: the first read warms the kernel's caches.
	for range 3 {
		if d := procRead(pid); d > 0 && (l.dump == 0 || d < l.dump) {
			l.dump = d
		}
	}
	if spec != "" {
		l.restore = childLimit(spec)
	}
	return l
}

// best combines the limits of several runs: the highest rate, the
// shortest time.
func best(ls []limits) limits {
	var b limits
	least := func(cur, v float64) float64 {
		if v > 0 && (cur == 0 || v < cur) {
			return v
		}
		return cur
	}
	for _, l := range ls {
		b.readv, b.readvWrite, b.touch = max(b.readv, l.readv), max(b.readvWrite, l.readvWrite), max(b.touch, l.touch)
		b.dump, b.restore = least(b.dump, l.dump), least(b.restore, l.restore)
		if l.dumpWhat != "" {
			b.dumpWhat, b.restoreWhat = l.dumpWhat, l.restoreWhat
		}
	}
	return b
}

// procRead reads, for every process of the tree of pid, what a dump
// without a parasite reads about it from /proc: stat, status, maps,
// mountinfo, and each fd's link and fdinfo. It returns seconds, 0 when
// the tree could not be read.
func procRead(pid int) float64 {
	start := time.Now()
	pids := []int{pid}
	for i := 0; i < len(pids); i++ {
		p := fmt.Sprintf("/proc/%d", pids[i])
		for _, f := range []string{"stat", "status", "maps", "mountinfo"} {
			if _, err := os.ReadFile(p + "/" + f); err != nil {
				return 0
			}
		}
		fds, err := os.ReadDir(p + "/fd")
		if err != nil {
			return 0
		}
		for _, fd := range fds {
			os.Readlink(p + "/fd/" + fd.Name())
			os.ReadFile(p + "/fdinfo/" + fd.Name())
		}
		tasks, _ := os.ReadDir(p + "/task")
		for _, t := range tasks {
			b, _ := os.ReadFile(p + "/task/" + t.Name() + "/children")
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					pids = append(pids, n)
				}
			}
		}
	}
	return time.Since(start).Seconds()
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

// childLimit runs the bench itself with -limit spec and returns the
// number it prints (0 on failure).
func childLimit(spec string) float64 {
	out, err := exec.Command("/proc/self/exe", "-limit", spec).Output()
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	return v
}

// runLimit is the child side of childLimit, in a process of its own so
// that neither its memory nor its namespaces stay with the bench:
//
//	touch:BYTES        MB/s of touchLimit
//	vmas:N:FDS         seconds to make N unmergeable one-page VMAs and open FDS fds
//	procs:N            seconds to start N processes (fork + exec of sleep)
//	mounts:N:DIR       seconds to mount N tmpfs under DIR in a new mount namespace
func runLimit(spec string) (float64, error) {
	f := strings.Split(spec, ":")
	num := func(i int) (int64, error) {
		if i >= len(f) {
			return 0, fmt.Errorf("-limit %q: want more fields", spec)
		}
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("-limit %q: field %d: not a count", spec, i)
		}
		return n, nil
	}
	n, err := num(1)
	if err != nil {
		return 0, err
	}
	switch f[0] {
	case "touch":
		return touchLimit(n), nil
	case "vmas":
		fds, err := num(2)
		if err != nil {
			return 0, err
		}
		return vmasLimit(int(n), int(fds))
	case "procs":
		return procsLimit(int(n))
	case "mounts":
		if len(f) != 3 {
			return 0, fmt.Errorf("-limit %q: want mounts:N:DIR", spec)
		}
		return mountsLimit(int(n), f[2])
	}
	return 0, fmt.Errorf("-limit %q: no such limit", spec)
}

// vmasLimit maps n pages and splits them into n VMAs by protection, as
// bench_manyvmas does, and opens fds descriptors.
func vmasLimit(n, fds int) (float64, error) {
	start := time.Now()
	m, err := unix.Mmap(-1, 0, n*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("mmap: %w", err)
	}
	for i := 0; i < n; i += 2 {
		m[i*4096] = byte(i)
		if err := unix.Mprotect(m[i*4096:(i+1)*4096], unix.PROT_READ); err != nil {
			return 0, fmt.Errorf("mprotect: %w", err)
		}
	}
	for range fds {
		if _, err := unix.Open(os.DevNull, unix.O_RDONLY, 0); err != nil {
			return 0, fmt.Errorf("open: %w", err)
		}
	}
	return time.Since(start).Seconds(), nil
}

// procsLimit starts n processes, each a sleep, and kills them again.
func procsLimit(n int) (float64, error) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return 0, err
	}
	var pids []int
	defer func() {
		for _, p := range pids {
			unix.Kill(p, unix.SIGKILL)
			reap(p)
		}
	}()
	start := time.Now()
	for range n {
		// syscall.ForkExec returns once the child has exec'd.
		p, err := syscall.ForkExec(sleep, []string{"sleep", "1000000"}, &syscall.ProcAttr{
			Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
		if err != nil {
			return 0, fmt.Errorf("start sleep: %w", err)
		}
		pids = append(pids, p)
	}
	return time.Since(start).Seconds(), nil
}

// mountsLimit mounts n tmpfs under dir in a mount namespace of this
// thread's own, which goes when the process exits.
func mountsLimit(n int, dir string) (float64, error) {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return 0, fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return 0, fmt.Errorf("make / private: %w", err)
	}
	start := time.Now()
	for i := range n {
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		if err := unix.Mount(fmt.Sprintf("t%d", i), d, "tmpfs", 0, "size=64k"); err != nil {
			return 0, fmt.Errorf("mount tmpfs on %s: %w", d, err)
		}
	}
	return time.Since(start).Seconds(), nil
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
