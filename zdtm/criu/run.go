package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// result is one test of one flavor as zdtm.py reported it.
type result struct {
	Test    string
	Verdict string // pass, fail, skip
	Detail  string // the first error line of a failure, a skip's reason
}

// flavorRun is one zdtm.py run: one flavor, one engine.
type flavorRun struct {
	flavor, engine string
	results        []result
	passed         int
	failed         int
	skipped        int
	incomplete     string // why zdtm.py did not finish, if it did not
	wall           time.Duration
}

func (r *flavorRun) summary() string {
	s := fmt.Sprintf("zdtm-criu: %d passed, %d failed, %d skipped (flavor %s, engine %s, %v)",
		r.passed, r.failed, r.skipped, r.flavor, r.engine, r.wall.Round(time.Second))
	if r.incomplete != "" {
		s += "; INCOMPLETE: " + r.incomplete
	}
	return s
}

// runFlavor runs zdtm.py over regex in one flavor with bin as criu, in
// CRIU's test directory, and parses its TAP report.
func runFlavor(ctx context.Context, s *source, bin, engine, flavor, regex, results string, jobs int) (*flavorRun, error) {
	name := engine + "-" + flavor
	report := filepath.Join(results, name)
	if err := os.RemoveAll(report); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(report, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(results, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	args := []string{"zdtm.py", "run", "-T", regex, "-f", flavor,
		"--criu-bin", bin, "--keep-going", "--report", report}
	if jobs > 1 {
		args = append(args, "-p", fmt.Sprint(jobs))
	}
	logf("flavor %s, engine %s: /usr/bin/python3 %s (in %s; log %s)", flavor, engine, strings.Join(args, " "), filepath.Join(s.Tree, "test"), logPath)
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Dir = filepath.Join(s.Tree, "test")
	cmd.Env = cleanEnv()
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Progress lines ("=== Run N/M ...") go to the terminal, all of it to the log.
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			fmt.Fprintln(lf, l)
			if strings.HasPrefix(l, "=== Run ") {
				fmt.Fprintf(os.Stderr, "zdtm-criu [%s]: %s\n", name, strings.TrimPrefix(l, "=== "))
			}
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	fr := &flavorRun{flavor: flavor, engine: engine}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		// zdtm.py cleans up on SIGINT (its launcher waits for the running
		// tests); then the whole group goes.
		fr.incomplete = "overall deadline reached (" + context.Cause(ctx).Error() + ")"
		logf("flavor %s: %s: interrupting zdtm.py", flavor, fr.incomplete)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case werr = <-waited:
		case <-time.After(60 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			werr = <-waited
		}
	}
	pw.Close()
	<-done
	fr.wall = time.Since(start)

	tap, terr := os.ReadFile(filepath.Join(report, "criu-testreport.tap"))
	if terr != nil {
		if fr.incomplete == "" {
			fr.incomplete = fmt.Sprintf("zdtm.py wrote no report (%v; exit %v); see %s", terr, werr, logPath)
		}
	} else {
		total, rs := parseTAP(string(tap))
		fr.results = rs
		if len(rs) < total && fr.incomplete == "" {
			fr.incomplete = fmt.Sprintf("zdtm.py reported %d of %d tests (exit %v); see %s", len(rs), total, werr, logPath)
		}
		if total > len(rs) {
			fr.results = append(fr.results, result{Test: fmt.Sprintf("(%d tests)", total-len(rs)), Verdict: "notrun", Detail: fr.incomplete})
		}
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) && fr.incomplete == "" {
		fr.incomplete = werr.Error()
	}
	sort.SliceStable(fr.results, func(i, j int) bool { return fr.results[i].Test < fr.results[j].Test })
	for _, r := range fr.results {
		switch r.Verdict {
		case "pass":
			fr.passed++
		case "fail":
			fr.failed++
		case "skip":
			fr.skipped++
		}
	}
	if err := writeTable(filepath.Join(results, name+".tsv"), fr); err != nil {
		return nil, err
	}
	logf("[%s] done, table in %s", name, filepath.Join(results, name+".tsv"))
	return fr, nil
}

func writeTable(path string, fr *flavorRun) error {
	var b strings.Builder
	b.WriteString("test\tverdict\tdetail\n")
	for _, r := range fr.results {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", r.Test, r.Verdict, strings.ReplaceAll(r.Detail, "\t", " "))
	}
	b.WriteString("# " + fr.summary() + "\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

var (
	tapPlan = regexp.MustCompile(`^1\.\.(\d+)$`)
	tapLine = regexp.MustCompile(`^(ok|not ok) \d+ - (\S+)(?: # (.*))?$`)
)

// parseTAP reads zdtm.py's criu-testreport.tap: "ok N - TEST", "ok N -
// TEST # SKIP reason", and "not ok N - TEST # flavor F" followed by a
// YAML block whose output holds the test's log. It returns the plan's
// count and the results in report order.
func parseTAP(tap string) (int, []result) {
	total := 0
	var rs []result
	lines := strings.Split(tap, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := tapPlan.FindStringSubmatch(l); m != nil {
			fmt.Sscan(m[1], &total)
			continue
		}
		m := tapLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		r := result{Test: m[2], Verdict: "pass"}
		switch {
		case m[1] == "ok" && strings.HasPrefix(m[3], "SKIP"):
			r.Verdict = "skip"
			r.Detail = strings.TrimSpace(strings.TrimPrefix(m[3], "SKIP"))
		case m[1] == "not ok":
			r.Verdict = "fail"
			// The YAML block runs to the next test line.
			var out []string
			for ; i+1 < len(lines) && !tapLine.MatchString(lines[i+1]); i++ {
				out = append(out, lines[i+1])
			}
			r.Detail = firstError(out)
		}
		rs = append(rs, r)
	}
	return total, rs
}

// Lines of a failed test's log that say what failed, best first: an
// engine's own error (criu's "Error (file:line): ...", gocr's "gocr:
// ..."), then zdtm's verdict lines.
var errorPatterns = []*regexp.Regexp{
	regexp.MustCompile(`\bError \(`),
	regexp.MustCompile(`^gocr: |\bgocr: [a-z-]+: `),
	regexp.MustCompile(`(?i)\bFAIL\b|Traceback|Exception|timed? ?out|\bkilled\b`),
}

// benign are errors CRIU logs and goes on from on every run here: not
// what made a test fail.
var benign = regexp.MustCompile(`Can't setup RLIMIT_NOFILE for self`)

// firstError picks the first line saying what went wrong in a failed
// test's output, trimmed of the YAML block's indentation.
func firstError(out []string) string {
	var body []string
	for _, l := range out {
		l = strings.TrimSpace(l)
		if l == "" || benign.MatchString(l) || l == "..." || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "output: |") || strings.HasPrefix(l, `"output": |`) || strings.HasPrefix(l, "? ") {
			continue
		}
		body = append(body, l)
	}
	for _, re := range errorPatterns {
		for _, l := range body {
			if re.MatchString(l) {
				return clip(l)
			}
		}
	}
	if len(body) > 0 {
		return clip(body[len(body)-1])
	}
	return "(no output)"
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// printList prints, one a line, the command line of each built static
// test matching regex (zdtm.py's re.match, anchored at the start): the
// binary's absolute path and the options CRIU's makefile gives it
// (--filename=NAME.test, --envname=..., found as zdtm.py finds them, with
// make --dry-run NAME.pid), without --pidfile and --outfile, which gocr's
// harness adds; relative paths are relative to the test's directory, as
// the harness runs it.
func printList(s *source, regex string) error {
	re, err := regexp.Compile("^(?:" + regex + ")")
	if err != nil {
		return fmt.Errorf("-T %q: %w", regex, err)
	}
	dir := filepath.Join(s.Tree, "test", "zdtm", "static")
	var targets []string
	for _, t := range staticTests(s) {
		if re.MatchString(t) {
			targets = append(targets, filepath.Base(t)+".pid")
		}
	}
	if len(targets) == 0 {
		return nil
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory", "-s", "--dry-run", "-k", "-C", dir}, targets...)...)
	cmd.Env = append(cleanEnv(), "MAKEFLAGS=")
	out, _ := cmd.Output() // -k: a test without a .pid rule is left out
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "./") || strings.ContainsAny(l, "'\"$;&|<>`") {
			continue
		}
		line := []string{filepath.Join(dir, f[0][2:])}
		for _, a := range f[1:] {
			if !strings.HasPrefix(a, "--pidfile=") && !strings.HasPrefix(a, "--outfile=") {
				line = append(line, a)
			}
		}
		fmt.Println(strings.Join(line, " "))
	}
	return nil
}
