// Command zdtm-criu runs CRIU's own zdtm suite, unmodified, against gocr
// (or against CRIU itself, the reference engine): `make zdtm-criu`.
//
// It fetches Debian sid's criu source package through a private apt
// configuration (internal/debapt, the same way vmtest fetches kernels;
// the system's apt sources are never touched), unpacks it in a cache
// ($CRIUCACHE, else $XDG_CACHE_HOME/gocr/criu, else ~/.cache/gocr/criu),
// applies the small patch of patch.go to CRIU's own dump, builds CRIU, its
// zdtm library and static tests once, and runs test/zdtm.py with
// --criu-bin pointing at the engine, one flavor at a time. From zdtm.py's
// TAP report it prints per flavor
//
//	zdtm-criu: N passed, N failed, N skipped (flavor F, engine E)
//
// and writes RESULTS/ENGINE-FLAVOR.tsv: test, verdict, first error line.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "zdtm-criu: "+format+"\n", args...)
}

func main() {
	var (
		cache    = flag.String("cache", defaultCacheDir(), "cache of CRIU's source and build")
		engine   = flag.String("engine", "gocr", "gocr or criu (the CRIU built in the cache)")
		gocrBin  = flag.String("gocr", "bin/gocr", "the gocr binary for -engine gocr")
		flavors  = flag.String("F", "", "flavors, comma-separated (h,ns,uns; empty: all three)")
		tests    = flag.String("T", "", "zdtm.py -T regex (empty: zdtm/static/.*; a regex not starting with zdtm/ is taken under zdtm/static/)")
		results  = flag.String("results", "/tmp/gocr-zdtm-criu", "results directory")
		jobs     = flag.Int("j", 2, "parallel jobs for make and zdtm.py's -p")
		deadline = flag.Duration("deadline", 3*time.Hour, "overall deadline of the runs (each test has zdtm.py's own timeouts too)")
		listAge  = flag.Duration("refresh", 24*time.Hour, "ask the archive again when its package lists are older than this")
		prepare  = flag.Bool("prepare", false, "only fetch and build")
		list     = flag.Bool("list", false, "fetch and build, then print the built static tests' paths matching -T, one a line")
		printBin = flag.Bool("print-criu", false, "fetch and build, then print the path of the criu binary built (what make bench runs)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *cache, *engine, *gocrBin, *flavors, *tests, *results, *jobs, *deadline, *listAge, *prepare, *list, *printBin); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cache, engine, gocrBin, flavors, tests, results string, jobs int, deadline, listAge time.Duration, prepare, list, printBin bool) error {
	var bin string
	switch engine {
	case "gocr":
		b, err := filepath.Abs(gocrBin)
		if err != nil {
			return err
		}
		if _, err := os.Stat(b); err != nil && !prepare && !list && !printBin {
			return fmt.Errorf("engine gocr: %w (make build first)", err)
		}
		bin = b
	case "criu":
	default:
		return fmt.Errorf("engine %q: want gocr or criu", engine)
	}
	fl := []string{"h", "ns", "uns"}
	if flavors != "" {
		fl = strings.Split(flavors, ",")
		for _, f := range fl {
			if f != "h" && f != "ns" && f != "uns" {
				return fmt.Errorf("flavor %q: want h, ns or uns", f)
			}
		}
	}
	regex := testRegex(tests)

	bl, err := lock(ctx, filepath.Join(cache, "build.lock"), "fetching or building CRIU")
	if err != nil {
		return err
	}
	s, err := fetchSource(ctx, cache, listAge)
	if err == nil {
		logf("CRIU %s in %s", s.Version, s.Tree)
		err = build(ctx, s, jobs)
	}
	bl.Close()
	if err != nil {
		return err
	}
	if list {
		return printList(s, regex)
	}
	if printBin {
		fmt.Println(criuBinary(s))
		return nil
	}
	if prepare {
		return nil
	}
	if engine == "criu" {
		bin = criuBinary(s)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("zdtm.py needs root")
	}
	if err := os.MkdirAll(results, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	rl, err := lock(ctx, filepath.Join(s.Dir, "run.lock"), "its zdtm.py run")
	if err != nil {
		return err
	}
	defer rl.Close()
	var sums []string
	failed := false
	for _, f := range fl {
		r, err := runFlavor(ctx, s, bin, engine, f, regex, results, jobs)
		if err != nil {
			return err
		}
		sums = append(sums, r.summary())
		if r.failed > 0 || r.incomplete != "" {
			failed = true
		}
	}
	fmt.Println()
	for _, l := range sums {
		fmt.Println(l)
	}
	if failed {
		os.Exit(1)
	}
	return nil
}

// criuBinary is the criu CRIU's build leaves in the cached tree: the
// reference engine of zdtm-criu -engine criu and of make bench.
func criuBinary(s *source) string { return filepath.Join(s.Tree, "criu", "criu") }

// testRegex is zdtm.py's -T for the T= of make: all static tests when
// empty; a regex that does not name a zdtm/ directory is taken as names
// under zdtm/static/.
func testRegex(t string) string {
	switch {
	case t == "":
		return "zdtm/static/.*"
	case strings.HasPrefix(t, "zdtm/"):
		return t
	default:
		return "zdtm/static/(" + t + ")$"
	}
}
