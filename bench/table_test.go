package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in             []float64
		median, spread float64
	}{
		{[]float64{3, 1, 2}, 2, 0.5},
		{[]float64{4, 1, 2, 3}, 2.5, 0.6},
		{[]float64{5}, 5, 0},
	} {
		st, ok := summarize(c.in)
		if !ok || st.median != c.median || math.Abs(st.spread-c.spread) > 1e-9 {
			t.Errorf("summarize(%v) = %+v, want median %v spread %v", c.in, st, c.median, c.spread)
		}
	}
	if _, ok := summarize(nil); ok {
		t.Error("summarize(nil) is ok")
	}
}

func TestFirstLogError(t *testing.T) {
	log := filepath.Join(t.TempDir(), "dump.log")
	os.WriteFile(log, []byte("(00.000001) Version: 4.2.1\n"+
		"(00.046186) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n"+
		"(00.100000) Error (criu/pstree.c:969): Can't restore sub-task in NS (cflags 20000)\n"+
		"(00.100001) Error (criu/cr-restore.c:1): later\n"), 0o600)
	if got, want := firstLogError(log), "Error (criu/pstree.c:969): Can't restore sub-task in NS (cflags 20000)"; got != want {
		t.Errorf("firstLogError = %q, want %q", got, want)
	}
	if got := firstLogError(filepath.Join(t.TempDir(), "none")); got != "" {
		t.Errorf("firstLogError of no log = %q", got)
	}
}

func TestFailures(t *testing.T) {
	ok := sample{ok: true}
	refused := sample{err: "restore: Error X", refused: true}
	broken := sample{err: "the restored workload says: FAIL"}
	for _, c := range []struct {
		in   []sample
		want string
	}{
		{[]sample{ok, ok}, ""},
		{[]sample{refused, refused}, "refused (restore: Error X)"},
		{[]sample{refused, broken}, "failed (restore: Error X; the restored workload says: FAIL)"},
		{[]sample{ok, broken}, "1 of 2 runs failed (the restored workload says: FAIL)"},
	} {
		if got := failures(c.in); got != c.want {
			t.Errorf("failures = %q, want %q", got, c.want)
		}
	}
}
