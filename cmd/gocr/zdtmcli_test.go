package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
)

// gocr run with exactly the command lines CRIU 4.2's zdtm.py gives criu
// for a test in the h flavor: an images directory made 0777, --pidfile
// (the test's own) and --pre-dump-mode on the dump, the stats checked as
// zdtm.py checks them, restore --restore-detached --pidfile. The workload
// comes back with its pid and passes.
func TestZdtmCommandLines(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	v := startVictim(t, dir, "counter")
	testPidfile := filepath.Join(dir, "counter.pid")
	os.WriteFile(testPidfile, []byte(strconv.Itoa(v.pid)), 0o644)
	imgs := filepath.Join(dir, "dump", "1")
	os.MkdirAll(imgs, 0o755)
	os.Chmod(imgs, 0o777)

	r := gocr(t, "", "check", "--no-default-config", "-verbosity=0", "--feature", "timerfd")
	if r.code != 0 || r.signal != 0 {
		t.Fatalf("check --feature timerfd: %+v", r)
	}
	r = gocr(t, "", "dump", "--no-default-config", "--log-file", "dump.log", "--images-dir", imgs, "--verbosity=4",
		"--tree", strconv.Itoa(v.pid), "--pidfile", testPidfile, "--timeout", "10", "--pre-dump-mode", "splice", "--display-stats")
	if r.code != 0 || r.signal != 0 {
		t.Fatalf("dump: %+v", r)
	}
	if !strings.Contains(r.out, "Displaying dump stats:") || !strings.Contains(r.out, "Memory pages written: ") {
		t.Errorf("--display-stats printed %q", r.out)
	}
	// The dump leaves the test's pidfile alone, as criu's does.
	if b, _ := os.ReadFile(testPidfile); string(b) != strconv.Itoa(v.pid) {
		t.Errorf("dump changed the pidfile: %q", b)
	}
	ds, err := crit.GetDumpStats(imgs)
	if err != nil {
		t.Fatal(err)
	}
	var bytes int64
	ents, _ := os.ReadDir(imgs)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pages-") {
			fi, _ := e.Info()
			bytes += fi.Size()
		}
	}
	if pg := int64(os.Getpagesize()); int64(ds.GetShpagesWritten()+ds.GetPagesWritten()) != bytes/pg || bytes%pg != 0 {
		t.Errorf("bad page counts, stats = %d real = %d(%d)", ds.GetShpagesWritten()+ds.GetPagesWritten(), bytes/pg, bytes%pg)
	}
	reap(v.pid)

	os.Remove(testPidfile)
	r = gocr(t, "", "restore", "--no-default-config", "--log-file", "restore.log", "--images-dir", imgs, "--verbosity=4",
		"--pidfile", testPidfile, "--restore-detached")
	if r.code != 0 || r.signal != 0 {
		t.Fatalf("restore: %+v", r)
	}
	if b, _ := os.ReadFile(testPidfile); strings.TrimSpace(string(b)) != strconv.Itoa(v.pid) {
		t.Errorf("restore wrote pidfile %q, want %d", b, v.pid)
	}
	if _, err := os.Stat(filepath.Join(imgs, "stats-restore")); err != nil {
		t.Error(err)
	}
	v.finish(t)
}
