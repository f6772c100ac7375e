package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// usage is what gocr itself holds: fds, threads, mappings, mount table,
// namespaces, children.
type usage struct {
	fds, threads, maps, children int
	mounts, hostMounts, ns       string
}

func measure() usage {
	count := func(p string) int {
		ents, _ := os.ReadDir(p)
		return len(ents)
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	host, _ := os.ReadFile("/proc/1/mountinfo")
	var ns []string
	for _, k := range []string{"mnt", "pid", "pid_for_children", "net", "ipc", "uts", "user", "cgroup", "time"} {
		l, _ := os.Readlink("/proc/self/ns/" + k)
		ns = append(ns, l)
	}
	children := 0
	me := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == me {
				children++
			}
		}
	}
	return usage{
		fds: count("/proc/self/fd"), threads: count("/proc/self/task"), maps: bytes.Count(maps, []byte("\n")), children: children,
		mounts: string(mounts), hostMounts: string(host), ns: strings.Join(ns, " "),
	}
}

// TestNoLeaks runs 100 dump/restore cycles of a multi-threaded workload in
// this process and checks that gocr's own fds, threads, mappings, mounts,
// namespaces and children do not grow, and that the host's mount table is
// unchanged; the workload then checks itself.
func TestNoLeaks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	iterations := 100
	if testing.Short() {
		iterations = 10
	}
	dir := t.TempDir()
	cmd, out := startWorkload(t, dir)
	pid := cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var warm usage
	var res *Restored
	start := time.Now()
	for i := range iterations {
		images := filepath.Join(dir, fmt.Sprint("img", i))
		if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: images}); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if i == 0 {
			cmd.Wait()
		}
		var err error
		if res, err = Restore(ctx, RestoreOptions{ImagesDir: images}); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if res.Pid != pid {
			t.Fatalf("iteration %d: restored as %d", i, res.Pid)
		}
		os.RemoveAll(images)
		if i == 4 {
			warm = measure()
		}
	}
	end := measure()
	t.Logf("%d dump/restore cycles in %v; fds %d→%d, threads %d→%d, mappings %d→%d, children %d→%d",
		iterations, time.Since(start).Round(time.Millisecond), warm.fds, end.fds, warm.threads, end.threads, warm.maps, end.maps, warm.children, end.children)
	if end.fds > warm.fds {
		t.Errorf("fds grew from %d to %d", warm.fds, end.fds)
	}
	if end.threads > warm.threads+4 {
		t.Errorf("threads grew from %d to %d", warm.threads, end.threads)
	}
	// The Go heap may take an arena or two more; a leak per cycle would
	// show as ~100 more.
	if end.maps > warm.maps+16 {
		t.Errorf("mappings grew from %d to %d", warm.maps, end.maps)
	}
	if end.children > warm.children {
		t.Errorf("children grew from %d to %d", warm.children, end.children)
	}
	if end.mounts != warm.mounts {
		t.Errorf("gocr's mount table changed:\n%s\nwas\n%s", end.mounts, warm.mounts)
	}
	if end.hostMounts != warm.hostMounts {
		t.Errorf("the host's mount table changed")
	}
	if end.ns != warm.ns {
		t.Errorf("gocr's namespaces changed: %s, were %s", end.ns, warm.ns)
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := res.Wait(ctx)
	b, _ := os.ReadFile(out)
	if err != nil || code != 0 || !strings.Contains(string(b), "PASS") {
		t.Fatalf("workload after %d cycles: exit %d, %v; output %q", iterations, code, err, b)
	}
}
