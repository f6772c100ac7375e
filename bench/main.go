// Command bench measures gocr against the limits of the machine it runs on,
// measured in the same run: `make bench`. It prints figures; it never fails
// on timing.
//
//	bench -gocr bin/gocr -workload bin/zdtm-workload [-size 1G] [-vmas 10000 -fds 1000] [-procs 100 -pipes 10] [-mounts 1000]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	gocr := flag.String("gocr", "bin/gocr", "gocr binary")
	workload := flag.String("workload", "bin/zdtm-workload", "zdtm-workload binary")
	size := flag.String("size", "1G", "memory of the big-memory case")
	vmas := flag.Int("vmas", 10000, "VMAs of the many-objects case")
	fds := flag.Int("fds", 1000, "fds of the many-objects case")
	procs := flag.Int("procs", 100, "processes of the tree case")
	pipes := flag.Int("pipes", 10, "pipes shared by the tree case")
	mounts := flag.Int("mounts", 1000, "mounts of the mount namespace case")
	touch := flag.Int64("touch", 0, "internal: measure the touch limit for this many bytes and print MB/s")
	flag.Parse()
	if *touch > 0 {
		fmt.Printf("%.0f\n", touchLimit(*touch))
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: run as root (it checkpoints processes)")
		os.Exit(2)
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	b := &bench{gocr: *gocr, workload: *workload}
	ok := b.bigMem(*size)
	ok = b.manyObjects(*vmas, *fds) && ok
	ok = b.tree(*procs, *pipes) && ok
	ok = b.mounts(*mounts) && ok
	if !ok {
		os.Exit(1)
	}
}

type bench struct{ gocr, workload string }

// run is one gocr invocation: wall time and peak RSS.
type run struct {
	wall  time.Duration
	rssKB int64
	err   error
	out   string
}

func (b *bench) gocrRun(args ...string) run {
	cmd := exec.Command(b.gocr, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := run{wall: time.Since(start), err: err, out: string(out)}
	if cmd.ProcessState != nil {
		r.rssKB = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	}
	return r
}

// startWorkload starts a zdtm workload in a fresh directory and returns its
// pid and directory.
func (b *bench) startWorkload(name string, args ...string) (int, string, error) {
	dir, err := os.MkdirTemp("", "gocr-bench-")
	if err != nil {
		return 0, "", err
	}
	cmd := exec.Command(b.workload, append([]string{name, "--pidfile=" + filepath.Join(dir, "pid"), "--outfile=" + filepath.Join(dir, "out")}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, dir, fmt.Errorf("start %s: %v\n%s", name, err, out)
	}
	b2, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0, dir, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b2)))
	return pid, dir, err
}

// stop sends SIGTERM and returns the workload's verdict.
func stop(pid int, dir string) string {
	unix.Kill(pid, unix.SIGTERM)
	for range 500 {
		var ws unix.WaitStatus
		if p, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); p == pid {
			break
		}
		if unix.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		return "no verdict: " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// reap collects a dumped (killed) workload: as the subreaper the bench
// inherited it, and its zombie would keep the pid from a restore.
func reap(pid int) {
	var ws unix.WaitStatus
	for range 500 {
		if p, err := unix.Wait4(pid, &ws, 0, nil); p == pid || err != nil {
			return
		}
	}
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }

func (b *bench) bigMem(size string) bool {
	fmt.Printf("== %s of touched anonymous memory\n", size)
	pid, dir, err := b.startWorkload("bench_bigmem", "--size="+size)
	defer os.RemoveAll(dir)
	if err != nil {
		fmt.Println("  cannot start workload:", err)
		return false
	}
	addr, length, err := region(filepath.Join(dir, "out.inprogress"))
	if err != nil {
		fmt.Println("  ", err)
		stop(pid, dir)
		return false
	}
	img := filepath.Join(dir, "img")
	os.Mkdir(img, 0o700)
	// The best of a few buffer sizes: a buffer that stays in the CPU's
	// cache copies faster than a big one.
	var readLimit float64
	for _, buf := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		readLimit = max(readLimit, readvWriteLimit(pid, addr, length, buf, filepath.Join(img, "limit.tmp")))
	}
	// In a process of its own: a child forked from a bench that had touched
	// a gigabyte would inherit that peak in its own ru_maxrss.
	touchLimit := touchLimitChild(length)
	fmt.Printf("  machine limits, this run:\n")
	fmt.Printf("    process_vm_readv + write to the image dir   %8.0f MB/s\n", readLimit)
	fmt.Printf("    allocate and touch fresh memory             %8.0f MB/s\n", touchLimit)

	d := b.gocrRun("dump", "-t", strconv.Itoa(pid), "-D", img, "-o", "dump.log", "-v4")
	if d.err != nil {
		fmt.Printf("  gocr dump failed: %v\n%s", d.err, d.out)
		stop(pid, dir)
		return false
	}
	reap(pid)
	st := dumpStats(b.gocr, img)
	dumpRate := mbps(length, d.wall)
	fmt.Printf("  gocr dump      %7.2f s  %8.0f MB/s  (%3.0f%% of the readv+write limit; target ≥ 50%%)\n", d.wall.Seconds(), dumpRate, 100*dumpRate/readLimit)
	fmt.Printf("  frozen time    %7.0f ms (memory dump %0.f ms; target ≤ memory dump + 50 ms)\n", st["frozen_time"]/1000, st["memdump_time"]/1000)
	fmt.Printf("  gocr dump peak RSS     %5d MiB (target ≤ 64 MiB)\n", d.rssKB/1024)

	r := b.gocrRun("restore", "-D", img, "-d", "-o", "restore.log", "-v4")
	if r.err != nil {
		fmt.Printf("  gocr restore failed: %v\n%s", r.err, r.out)
		return false
	}
	restoreRate := mbps(length, r.wall)
	fmt.Printf("  gocr restore   %7.2f s  %8.0f MB/s  (%3.0f%% of the touch limit; target ≥ 70%%)\n", r.wall.Seconds(), restoreRate, 100*restoreRate/touchLimit)
	fmt.Printf("  gocr restore peak RSS  %5d MiB (target ≤ 64 MiB)\n", r.rssKB/1024)
	v := stop(pid, dir)
	fmt.Printf("  restored workload says: %s\n", v)
	return strings.Contains(v, "PASS")
}

// region finds "region 0xADDR LEN" in the workload's output.
func region(path string) (uint64, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
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
	return 0, 0, fmt.Errorf("workload did not say where its region is")
}

// readvWriteLimit copies the region out of the process with plain
// process_vm_readv into a buffer written to a file: the most a dump can do.
func readvWriteLimit(pid int, addr uint64, n int64, bufSize int, path string) float64 {
	f, err := os.Create(path)
	if err != nil {
		return 0
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, bufSize)
	start := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), n-off)]
		local := []unix.Iovec{{Base: &chunk[0], Len: uint64(len(chunk))}}
		remote := []unix.RemoteIovec{{Base: uintptr(addr) + uintptr(off), Len: len(chunk)}}
		if _, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil {
			return 0
		}
		if _, err := f.Write(chunk); err != nil {
			return 0
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

// dumpStats reads the times of stats-dump as `gocr show` prints them:
// "dump: freezing 8878us, frozen 185584us, memdump 81529us, ...".
func dumpStats(gocr, img string) map[string]float64 {
	out, _ := exec.Command(gocr, "show", img).Output()
	st := map[string]float64{}
	for _, l := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(l, "dump: ")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			f := strings.Fields(kv)
			if len(f) == 2 && strings.HasSuffix(f[1], "us") {
				if v, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "us"), 64); err == nil {
					st[f[0]+"_time"] = v
				}
			}
		}
	}
	return st
}

func (b *bench) manyObjects(vmas, fds int) bool {
	fmt.Printf("== %d VMAs and %d fds\n", vmas, fds)
	pid, dir, err := b.startWorkload("bench_manyvmas", fmt.Sprintf("--vmas=%d", vmas), fmt.Sprintf("--fds=%d", fds))
	defer os.RemoveAll(dir)
	if err != nil {
		fmt.Println("  cannot start workload:", err)
		return false
	}
	img := filepath.Join(dir, "img")
	d := b.gocrRun("dump", "-t", strconv.Itoa(pid), "-D", img, "-o", "dump.log", "-v4")
	if d.err != nil {
		fmt.Printf("  gocr dump failed: %v\n%s", d.err, d.out)
		stop(pid, dir)
		return false
	}
	reap(pid)
	fmt.Printf("  gocr dump      %7.3f s, %s injected syscalls\n", d.wall.Seconds(), injected(filepath.Join(img, "dump.log")))
	r := b.gocrRun("restore", "-D", img, "-d", "-o", "restore.log", "-v4")
	if r.err != nil {
		fmt.Printf("  gocr restore failed: %v\n%s", r.err, r.out)
		return false
	}
	fmt.Printf("  gocr restore   %7.3f s, %s injected syscalls\n", r.wall.Seconds(), injected(filepath.Join(img, "restore.log")))
	v := stop(pid, dir)
	fmt.Printf("  restored workload says: %s\n", v)
	return strings.Contains(v, "PASS")
}

// injected finds the count of injected system calls the engine logs.
func injected(log string) string {
	b, err := os.ReadFile(log)
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "injected="); i >= 0 {
			return strings.Fields(l[i+len("injected="):])[0]
		}
	}
	return "?"
}
