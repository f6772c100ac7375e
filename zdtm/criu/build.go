package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// buildSteps build CRIU (the reference engine, with lib/pycriu which
// zdtm.py imports), zdtm's test library, its static tests and zdtm.py's
// own helpers, in the cached tree. Each is a make in a directory of it.
var buildSteps = []struct {
	dir     string
	targets []string
	keep    bool // make -k: a test that does not build is reported, the rest still run
}{
	{".", []string{"criu", "lib"}, false},
	{"test", []string{"zdtm_ct", "umount2"}, false},
	{"test/zdtm/lib", nil, false},
	{"test/zdtm/static", nil, true},
}

// build builds the tree unless a previous build finished (the stamp
// "built" beside it); its output goes to build.log.
func build(ctx context.Context, s *source, jobs int) error {
	stamp := filepath.Join(s.Dir, "built")
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	logPath := filepath.Join(s.Dir, "build.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	start := time.Now()
	logf("building CRIU %s and its static zdtm tests in %s (log %s)", s.Version, s.Tree, logPath)
	var broken []string
	for _, st := range buildSteps {
		args := []string{"-j", fmt.Sprint(jobs), "-C", filepath.Join(s.Tree, st.dir)}
		if st.keep {
			args = append(args, "-k")
		}
		args = append(args, st.targets...)
		cmd := exec.CommandContext(ctx, "make", args...)
		cmd.Env = append(cleanEnv(), "MAKEFLAGS=")
		cmd.Stdout, cmd.Stderr = lf, lf
		fmt.Fprintf(lf, "\n### make %s\n", strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			if !st.keep {
				return fmt.Errorf("make %s: %v (see %s)", strings.Join(args, " "), err, logPath)
			}
			broken = append(broken, st.dir)
		}
	}
	if len(broken) > 0 {
		logf("warning: some targets of %s did not build (see %s); zdtm.py reports those tests as failed", strings.Join(broken, ", "), logPath)
	}
	if err := os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	logf("built in %v: %d static tests", time.Since(start).Round(time.Second), len(staticTests(s)))
	return nil
}

// cleanEnv is the environment zdtm.py and CRIU's makefiles are run with:
// Debian's own tools first (zdtm.py re-executes itself through
// /usr/bin/env python3, and only Debian's python3 has protobuf and yaml).
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "PATH=") || strings.HasPrefix(e, "PYTHON") || strings.HasPrefix(e, "MAKEFLAGS=") ||
			strings.HasPrefix(e, "MAKELEVEL=") || strings.HasPrefix(e, "MFLAGS=") {
			continue
		}
		env = append(env, e)
	}
	return append(env, "PATH=/usr/bin:/usr/sbin:/bin:/sbin")
}

// staticTests lists the static test binaries that were built, as
// zdtm/static/NAME, sorted.
func staticTests(s *source) []string {
	dir := filepath.Join(s.Tree, "test", "zdtm", "static")
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.Contains(name, ".") {
			continue
		}
		st, err := e.Info()
		if err != nil || st.Mode()&0o111 == 0 || !st.Mode().IsRegular() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name+".c")); err != nil {
			continue
		}
		out = append(out, "zdtm/static/"+name)
	}
	sort.Strings(out)
	return out
}
