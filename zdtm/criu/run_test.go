package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleTAP = `TAP version 13
# Hardware architecture: x86_64
# Timestamp: 2026-12-07 05:50 (GMT+1)
# 
1..4
ok 1 - zdtm/static/env00
ok 2 - zdtm/static/aio01 # SKIP manual run only
not ok 3 - zdtm/static/pipe00 # flavor h
---
"output": |
  === Run 3/4 ================ zdtm/static/pipe00
  ========================= Run zdtm/static/pipe00 in h ==========================
  Start test
  Run criu dump
  (00.004) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted
  ############### Test zdtm/static/pipe00 FAIL at CRIU dump ###############
...
ok 4 - zdtm/static/maps00
`

func TestParseTAP(t *testing.T) {
	total, rs := parseTAP(sampleTAP)
	if total != 4 || len(rs) != 4 {
		t.Fatalf("total %d, %d results: %+v", total, len(rs), rs)
	}
	want := []result{
		{"zdtm/static/env00", "pass", ""},
		{"zdtm/static/aio01", "skip", "manual run only"},
		{"zdtm/static/pipe00", "fail", "(00.004) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted"},
		{"zdtm/static/maps00", "pass", ""},
	}
	for i, w := range want {
		if rs[i] != w {
			t.Errorf("result %d: got %+v, want %+v", i, rs[i], w)
		}
	}
}

func TestFirstErrorPrefersEngine(t *testing.T) {
	out := []string{"  output: |", "    Run criu dump", "    gocr: dump: unknown option --pidfile", "    ### Test zdtm/static/x FAIL at CRIU dump ###"}
	if got := firstError(out); got != "gocr: dump: unknown option --pidfile" {
		t.Errorf("got %q", got)
	}
	if got := firstError([]string{"  output: |", "    ### Test FAIL at result check"}); !strings.Contains(got, "FAIL") {
		t.Errorf("got %q", got)
	}
	if got := firstError(nil); got != "(no output)" {
		t.Errorf("got %q", got)
	}
}

func TestTestRegex(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "zdtm/static/.*",
		"zdtm/static/env.*":  "zdtm/static/env.*",
		"(env00|pipe00)":     "zdtm/static/((env00|pipe00))$",
		"sk-unix.*":          "zdtm/static/(sk-unix.*)$",
		"zdtm/transition/.*": "zdtm/transition/.*",
	} {
		if got := testRegex(in); got != want {
			t.Errorf("testRegex(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPatchSource(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "criu"), 0o755)
	src := "static int dump_task_rlimits(int pid, TaskRlimitsEntry *rls)\n{\n" + rlimitFallback.anchor + "\t\t}\n}\n"
	os.WriteFile(filepath.Join(tree, "criu", "cr-dump.c"), []byte(src), 0o644)
	if _, err := patchSource(tree); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(tree, "criu", "cr-dump.c"))
	if !strings.Contains(string(b), "gocr_proc_rlimit(pid, res, &lim)") || !strings.Contains(string(b), "static int gocr_proc_rlimit(") {
		t.Errorf("not patched:\n%s", b)
	}
	if _, err := patchSource(tree); err == nil {
		t.Errorf("a second patch of the same tree should fail: its anchors are gone")
	}
}
