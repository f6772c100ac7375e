package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// tree dumps and restores a tree of procs processes sharing pipes pipes
// (the bench_tree workload) and prints both times.
func (b *bench) tree(procs, pipes int) bool {
	fmt.Printf("== a tree of %d processes sharing %d pipes\n", procs, pipes)
	return b.cycle("bench_tree", fmt.Sprintf("--procs=%d", procs), fmt.Sprintf("--pipes=%d", pipes))
}

// cycle starts a workload, dumps it (killing it), restores it and prints
// both times, frozen time and peak RSS, then lets the restored workload
// check itself.
func (b *bench) cycle(name string, args ...string) bool {
	pid, dir, err := b.startWorkload(name, args...)
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
	reapOrphans()
	fmt.Printf("  gocr dump      %7.3f s (frozen %s), peak RSS %d MiB\n", d.wall.Seconds(), frozen(b.gocr, img), d.rssKB>>10)
	r := b.gocrRun("restore", "-D", img, "-d", "-o", "restore.log", "-v4")
	if r.err != nil {
		fmt.Printf("  gocr restore failed: %v\n%s", r.err, r.out)
		return false
	}
	fmt.Printf("  gocr restore   %7.3f s, peak RSS %d MiB\n", r.wall.Seconds(), r.rssKB>>10)
	v := stop(pid, dir)
	fmt.Printf("  restored workload says: %s\n", v)
	return strings.Contains(v, "PASS")
}

// frozen is the frozen time the dump recorded, as gocr show prints it.
func frozen(gocr, img string) string {
	if us, ok := dumpStats(gocr, img)["frozen_time"]; ok {
		return fmt.Sprintf("%.0f ms", us/1000)
	}
	return "?"
}

// reapOrphans collects the rest of a dumped tree: its processes were
// killed with it and, their parent gone, came to the bench as subreaper;
// their zombies would keep the pids from the restore.
func reapOrphans() {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil {
			return // ECHILD: no child left
		}
		if p == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// mounts dumps and restores a tree whose child has a mount namespace of
// n tmpfs mounts (the bench_mounts workload) and prints both times.
func (b *bench) mounts(n int) bool {
	fmt.Printf("== a mount namespace of %d mounts\n", n)
	return b.cycle("bench_mounts", fmt.Sprintf("--mounts=%d", n))
}
