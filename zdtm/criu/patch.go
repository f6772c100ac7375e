package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A patch is a small change gocr makes to the fetched CRIU tree (in the
// cache, never in this repository) so that CRIU, the reference engine,
// runs on machines like the project's.
type patch struct {
	name   string
	file   string // relative to the tree
	anchor string // text that must be there exactly once
	before string // inserted before the anchor
	repl   string // the anchor is replaced by this (empty: kept)
}

// rlimitFallback: CRIU reads each task's rlimits with prlimit64(), which
// for a task of another uid needs CAP_SYS_RESOURCE; a root without it (a
// container's, this project's machines) fails every non-root zdtm test at
// dump with "Can't get rlimit". The kernel prints the same values in
// /proc/PID/limits, one line per resource in RLIMIT_* order after a
// header, soft and hard limits at columns 26 and 47.
var rlimitFallback = patch{
	name:   "rlimit-from-proc-limits",
	file:   "criu/cr-dump.c",
	anchor: "\t\tif (syscall(__NR_prlimit64, pid, res, NULL, &lim)) {\n",
	before: "",
	repl: "\t\t/* gocr zdtm-criu: without CAP_SYS_RESOURCE, read /proc/PID/limits. */\n" +
		"\t\tif (syscall(__NR_prlimit64, pid, res, NULL, &lim) &&\n" +
		"\t\t    (errno != EPERM || gocr_proc_rlimit(pid, res, &lim))) {\n",
}

var rlimitHelper = patch{
	name:   "rlimit-from-proc-limits (helper)",
	file:   "criu/cr-dump.c",
	anchor: "static int dump_task_rlimits(int pid, TaskRlimitsEntry *rls)\n",
	before: `/* Added by gocr's zdtm-criu driver (not part of CRIU). */
static int gocr_proc_limit_value(const char *s, rlim_t *v)
{
	char *end;

	if (!strcmp(s, "unlimited")) {
		*v = RLIM_INFINITY;
		return 0;
	}
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

static int gocr_proc_rlimit(int pid, int res, struct rlimit64 *lim)
{
	char path[64], line[256], soft[32], hard[32];
	rlim_t cur, max;
	int n = 0, ret = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (n++ != res + 1)
			continue;
		if (strlen(line) > 26 && sscanf(line + 26, "%31s %31s", soft, hard) == 2 &&
		    !gocr_proc_limit_value(soft, &cur) && !gocr_proc_limit_value(hard, &max)) {
			lim->rlim_cur = cur;
			lim->rlim_max = max;
			ret = 0;
		}
		break;
	}
	fclose(f);
	if (ret)
		errno = EPERM;
	return ret;
}

`,
}

var patches = []patch{rlimitHelper, rlimitFallback}

// patchSource applies patches to a freshly unpacked tree and returns
// their names.
func patchSource(tree string) ([]string, error) {
	var names []string
	for _, p := range patches {
		path := filepath.Join(tree, p.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("patch %s: %w", p.name, err)
		}
		s := string(b)
		if n := strings.Count(s, p.anchor); n != 1 {
			return nil, fmt.Errorf("patch %s: %s has %d copies of %q, want 1 (CRIU changed: update zdtm/criu/patch.go)", p.name, p.file, n, strings.TrimSpace(p.anchor))
		}
		with := p.anchor
		if p.repl != "" {
			with = p.repl
		}
		s = strings.Replace(s, p.anchor, p.before+with, 1)
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			return nil, err
		}
		names = append(names, p.name)
	}
	return names, nil
}
