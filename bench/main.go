// Command bench runs each case with both engines, gocr and CRIU, on the
// same workload in the same run, several times, and prints one line per
// figure: gocr's median, CRIU's, their ratio and the machine's limit,
// measured in the same run: `make bench`. It prints figures; it never
// fails on timing. It fails only when gocr does not dump, restore or
// bring a workload back intact; CRIU failing or refusing a case is printed
// in its column.
//
//	bench -gocr bin/gocr -criu PATH -workload bin/zdtm-workload [-runs 3] [-case bigmem,tree]
//	      [-size 1G] [-vmas 10000 -fds 1000] [-procs 100 -pipes 10] [-mounts 1000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	gocr := flag.String("gocr", "bin/gocr", "gocr binary")
	criu := flag.String("criu", "", "criu binary, the peer engine (make bench passes the one zdtm/criu builds); empty: gocr alone")
	workload := flag.String("workload", "bin/zdtm-workload", "zdtm-workload binary")
	runs := flag.Int("runs", 3, "runs of each case with each engine; medians and spreads are printed")
	only := flag.String("case", "", "comma-separated cases to run (bigmem, manyvmas, tree, mounts); empty: all")
	size := flag.String("size", "1G", "memory of the big-memory case")
	vmas := flag.Int("vmas", 10000, "VMAs of the many-objects case")
	fds := flag.Int("fds", 1000, "fds of the many-objects case")
	procs := flag.Int("procs", 100, "processes of the tree case")
	pipes := flag.Int("pipes", 10, "pipes shared by the tree case")
	mounts := flag.Int("mounts", 1000, "mounts of the mount namespace case")
	limit := flag.String("limit", "", "internal: measure one limit in a process of its own (see runLimit) and print it")
	flag.Parse()
	if *limit != "" {
		v, err := runLimit(*limit)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("%g\n", v)
		return
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: run as root (it checkpoints processes)")
		os.Exit(2)
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}
	engines, err := newEngines(*gocr, *criu)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	wl, err := filepath.Abs(*workload)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Dumped processes and the rest of a dumped tree come back to the
	// bench, which reaps them so their pids are free for the restore.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "bench: PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(2)
	}
	b := &bench{engines: engines, workload: wl, runs: *runs}
	all := []benchCase{
		{name: "bigmem", title: *size + " of touched anonymous memory", workload: "bench_bigmem",
			args: []string{"--size=" + *size}, memory: true},
		{name: "manyvmas", title: fmt.Sprintf("%d VMAs and %d fds", *vmas, *fds), workload: "bench_manyvmas",
			args: []string{fmt.Sprintf("--vmas=%d", *vmas), fmt.Sprintf("--fds=%d", *fds)},
			restoreLimit: func(string) (string, string) {
				return fmt.Sprintf("vmas:%d:%d", *vmas, *fds), fmt.Sprintf("map %d VMAs, open %d fds", *vmas, *fds)
			}},
		{name: "tree", title: fmt.Sprintf("a tree of %d processes sharing %d pipes", *procs, *pipes), workload: "bench_tree",
			args: []string{fmt.Sprintf("--procs=%d", *procs), fmt.Sprintf("--pipes=%d", *pipes)},
			restoreLimit: func(string) (string, string) {
				return fmt.Sprintf("procs:%d", *procs-1), fmt.Sprintf("start %d processes", *procs-1)
			}},
		{name: "mounts", title: fmt.Sprintf("a mount namespace of %d mounts", *mounts), workload: "bench_mounts",
			args: []string{fmt.Sprintf("--mounts=%d", *mounts)}, dirname: true,
			restoreLimit: func(dir string) (string, string) {
				return fmt.Sprintf("mounts:%d:%s", *mounts, filepath.Join(dir, "limit-mounts")), fmt.Sprintf("mount %d tmpfs", *mounts)
			}},
	}
	selected, err := selectCases(all, *only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	fmt.Printf("bench: each case %d× with each engine (%s)\n", b.runs, engineList(engines))
	fmt.Printf("a cell is the median ±half the spread of the runs; the limit is this machine's best, measured in this run\n")
	ok := true
	for _, c := range selected {
		if ctx.Err() != nil {
			break
		}
		ok = b.run(ctx, c) && ok
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// selectCases keeps the cases -case names, in their own order.
func selectCases(all []benchCase, only string) ([]benchCase, error) {
	if only == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []benchCase
	for _, c := range all {
		if want[c.name] {
			out = append(out, c)
			delete(want, c.name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("-case %q: no such case (bigmem, manyvmas, tree, mounts)", n)
	}
	return out, nil
}

func engineList(es []*engine) string {
	var s []string
	for _, e := range es {
		if e.missing != "" {
			s = append(s, e.name+": not run")
			continue
		}
		s = append(s, e.name+" "+e.bin)
	}
	return strings.Join(s, ", ")
}

// bench is one `make bench`: the engines and the workload binary.
type bench struct {
	engines  []*engine
	workload string
	runs     int
}

// benchCase is one workload the bench measures.
type benchCase struct {
	name, title string
	workload    string
	args        []string
	// memory: the workload says where its region is ("region 0xADDR
	// LEN"); throughputs and the machine's limits are measured on it.
	memory bool
	// dirname: the workload takes --dirname, a directory of its own that
	// must go with the bench's (a dump kills it before it can clean up).
	dirname bool
	// restoreLimit is what to time as the least a restore of the
	// workload must do, a spec of runLimit, and how to call it; dir is a
	// scratch directory. Nil for the memory case, whose limits are rates.
	restoreLimit func(dir string) (spec, what string)
}

// run measures c with every engine, runs times each, the engines taking
// turns in going first, and prints its table. It reports whether gocr
// passed every run.
func (b *bench) run(ctx context.Context, c benchCase) bool {
	fmt.Printf("\n== %s\n", c.title)
	res := map[string][]sample{}
	var lims []limits
	for i := range b.runs {
		order := b.engines
		if i%2 == 1 {
			order = []*engine{b.engines[1], b.engines[0]}
		}
		measured := false
		for _, e := range order {
			if e.missing != "" || ctx.Err() != nil {
				continue
			}
			s, l := b.once(ctx, c, e, !measured)
			if l != nil {
				lims = append(lims, *l)
				measured = true
			}
			fmt.Fprintf(os.Stderr, "bench: %s run %d/%d %s: %s\n", c.name, i+1, b.runs, e.name, s.summary())
			res[e.name] = append(res[e.name], s)
		}
	}
	if ctx.Err() != nil {
		return false // interrupted: no table of half a case
	}
	printTable(os.Stdout, c, b.engines, res, lims)
	for _, s := range res["gocr"] {
		if !s.ok {
			return false
		}
	}
	return len(res["gocr"]) == b.runs
}

// once starts the workload, dumps it with e (which kills it), restores it
// and lets the restored workload check itself. With measure it first
// measures the machine's limits on the live workload.
func (b *bench) once(ctx context.Context, c benchCase, e *engine, measure bool) (sample, *limits) {
	var s sample
	v, err := startWorkload(ctx, b.workload, c.workload, c.dirname, c.args...)
	if v != nil {
		defer v.cleanup()
	}
	if err != nil {
		s.err = fmt.Sprintf("cannot start workload: %v", err)
		return s, nil
	}
	var lim *limits
	if c.memory {
		addr, length, err := region(filepath.Join(v.dir, "out.inprogress"))
		if err != nil {
			s.err = err.Error()
			return s, nil
		}
		s.payload = length
		if measure {
			lim = measureMemory(v.pid, addr, length, filepath.Join(v.dir, "limit.tmp"))
		}
	} else if measure {
		spec, what := "", ""
		if c.restoreLimit != nil {
			spec, what = c.restoreLimit(v.dir)
		}
		lim = measureObjects(v.pid, spec, what)
	}
	img := filepath.Join(v.dir, "img")
	if err := os.Mkdir(img, 0o700); err != nil {
		s.err = err.Error()
		return s, lim
	}
	d := e.run(ctx, "dump", "-t", strconv.Itoa(v.pid), "-D", img, "-o", "dump.log", "-v4")
	if d.err != nil {
		// A failed dump leaves the workload running: cleanup stops it.
		s.err, s.refused = "dump: "+e.failure(d, filepath.Join(img, "dump.log")), true
		return s, lim
	}
	v.dumped()
	s.dump, s.dumpRSS = d.wall, d.rss
	s.frozen, s.hasFrozen = frozenTime(img)
	s.image = imageSize(img)
	r := e.run(ctx, "restore", "-D", img, "-d", "-o", "restore.log", "-v4")
	if r.err != nil {
		if ours(v.pid) {
			v.restored() // the tree runs after all: cleanup stops it
		}
		reapOrphans()
		s.err, s.refused = "restore: "+e.failure(r, filepath.Join(img, "restore.log")), true
		return s, lim
	}
	v.restored()
	s.restore, s.restoreRSS = r.wall, r.rss
	s.verdict = v.stop()
	if !strings.Contains(s.verdict, "PASS") {
		s.err = "the restored workload says: " + s.verdict
		return s, lim
	}
	s.ok = true
	return s, lim
}
