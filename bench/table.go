package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// sample is one run of a case with one engine.
type sample struct {
	ok      bool   // dumped, restored, and the workload passed its check
	err     string // why not
	refused bool   // the engine failed (not the workload)

	dump, restore       time.Duration
	frozen              time.Duration
	hasFrozen           bool
	dumpRSS, restoreRSS int64 // bytes
	image               int64 // bytes
	payload             int64 // bytes of the workload's memory region; 0 when it has none
	verdict             string
}

func (s sample) summary() string {
	if !s.ok {
		return "FAILED: " + s.err
	}
	return fmt.Sprintf("dump %.3f s, restore %.3f s, %s", s.dump.Seconds(), s.restore.Seconds(), s.verdict)
}

// unit formats one figure.
type unit struct {
	format string
	scale  float64 // the figure is divided by it
}

var (
	seconds = unit{"%.3f s", 1}
	millis  = unit{"%.0f ms", 1e-3}
	rate    = unit{"%.0f MB/s", 1}
	mebi    = unit{"%.1f MiB", 1 << 20}
)

// figure is one line of a case's table.
type figure struct {
	label  string
	unit   unit
	memory bool // only for cases with a memory region
	value  func(s sample) (float64, bool)
	// limit is the machine's best for the figure, from the limits
	// measured and the workload's payload; ok false when there is none.
	limit func(l limits, payload float64) (v float64, what string, ok bool)
}

func per(payload, mbs float64) (float64, bool) {
	if payload <= 0 || mbs <= 0 {
		return 0, false
	}
	return payload / 1e6 / mbs, true
}

var figures = []figure{
	{label: "dump time", unit: seconds,
		value: func(s sample) (float64, bool) { return s.dump.Seconds(), true },
		limit: func(l limits, p float64) (float64, string, bool) {
			if v, ok := per(p, l.readvWrite); ok {
				return v, "readv + write", ok
			}
			return l.dump, l.dumpWhat, l.dump > 0
		}},
	{label: "dump throughput", unit: rate, memory: true,
		value: func(s sample) (float64, bool) { return float64(s.payload) / 1e6 / s.dump.Seconds(), s.payload > 0 },
		limit: func(l limits, p float64) (float64, string, bool) {
			return l.readvWrite, "readv + write", l.readvWrite > 0
		}},
	{label: "restore time", unit: seconds,
		value: func(s sample) (float64, bool) { return s.restore.Seconds(), true },
		limit: func(l limits, p float64) (float64, string, bool) {
			if v, ok := per(p, l.touch); ok {
				return v, "touch fresh memory", ok
			}
			return l.restore, l.restoreWhat, l.restore > 0
		}},
	{label: "restore throughput", unit: rate, memory: true,
		value: func(s sample) (float64, bool) { return float64(s.payload) / 1e6 / s.restore.Seconds(), s.payload > 0 },
		limit: func(l limits, p float64) (float64, string, bool) { return l.touch, "touch fresh memory", l.touch > 0 }},
	{label: "frozen time", unit: millis,
		value: func(s sample) (float64, bool) { return s.frozen.Seconds(), s.hasFrozen },
		limit: func(l limits, p float64) (float64, string, bool) {
			if v, ok := per(p, l.readv); ok {
				return v, "process_vm_readv", ok
			}
			return l.dump, l.dumpWhat, l.dump > 0
		}},
	{label: "dump peak RSS", unit: mebi,
		value: func(s sample) (float64, bool) { return float64(s.dumpRSS), s.dumpRSS > 0 }},
	{label: "restore peak RSS", unit: mebi,
		value: func(s sample) (float64, bool) { return float64(s.restoreRSS), s.restoreRSS > 0 }},
	{label: "image size", unit: mebi,
		value: func(s sample) (float64, bool) { return float64(s.image), s.image > 0 },
		limit: func(l limits, p float64) (float64, string, bool) { return p, "the memory itself", p > 0 }},
}

// stat is the median and half the spread (relative) of some values.
type stat struct {
	median, spread float64
	n              int
}

func summarize(vs []float64) (stat, bool) {
	if len(vs) == 0 {
		return stat{}, false
	}
	sort.Float64s(vs)
	m := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	sp := 0.0
	if m != 0 {
		sp = (vs[len(vs)-1] - vs[0]) / 2 / math.Abs(m)
	}
	return stat{median: m, spread: sp, n: len(vs)}, true
}

func (u unit) cell(st stat, runs int) string {
	s := fmt.Sprintf(u.format, st.median/u.scale)
	if st.n > 1 {
		s += fmt.Sprintf(" ±%.0f%%", 100*st.spread)
	}
	if st.n < runs {
		s += fmt.Sprintf(" (%d/%d)", st.n, runs)
	}
	return s
}

// printTable prints a case's table: one line per figure with each
// engine's median, the ratio gocr / criu and the machine's limit, then a
// line for each engine that failed or refused some run.
func printTable(w io.Writer, c benchCase, engines []*engine, res map[string][]sample, lims []limits) {
	lim := best(lims)
	var payload float64
	switch {
	case lim.readv > 0 || lim.touch > 0:
		fmt.Fprintf(w, "  machine limits (best of %d): process_vm_readv %.0f MB/s, readv + write to the image dir %.0f MB/s, touch fresh memory %.0f MB/s\n",
			len(lims), lim.readv, lim.readvWrite, lim.touch)
	case lim.dump > 0 || lim.restore > 0:
		fmt.Fprintf(w, "  machine limits (best of %d): %s %.0f ms, %s %.0f ms\n",
			len(lims), lim.dumpWhat, 1000*lim.dump, lim.restoreWhat, 1000*lim.restore)
	}
	for _, ss := range res {
		for _, s := range ss {
			if s.payload > 0 {
				payload = float64(s.payload)
			}
		}
	}
	runs := 0
	for _, ss := range res {
		runs = max(runs, len(ss))
	}
	row := func(cols ...string) {
		l := fmt.Sprintf("  %-20s %-19s %-19s %-9s %s", cols[0], cols[1], cols[2], cols[3], cols[4])
		fmt.Fprintln(w, strings.TrimRight(l, " "))
	}
	row("", engines[0].name, engines[1].name, engines[0].name+"/"+engines[1].name, "machine limit")
	for _, f := range figures {
		if f.memory && !c.memory {
			continue
		}
		cells := make([]string, len(engines))
		meds := make([]float64, len(engines))
		for i, e := range engines {
			var vs []float64
			for _, s := range res[e.name] {
				// Only runs that came back intact: a dump that cannot be
				// restored may have left out what made it hard (CRIU's dump
				// of the mount case writes no mounts, then refuses to
				// restore).
				if !s.ok {
					continue
				}
				if v, ok := f.value(s); ok {
					vs = append(vs, v)
				}
			}
			st, ok := summarize(vs)
			if !ok {
				cells[i] = "—"
				continue
			}
			cells[i], meds[i] = f.unit.cell(st, runs), st.median
		}
		ratio := "—"
		if meds[0] > 0 && meds[1] > 0 {
			ratio = fmt.Sprintf("%.2f×", meds[0]/meds[1])
		}
		limit := "—"
		if f.limit != nil {
			if v, what, ok := f.limit(lim, payload); ok {
				limit = fmt.Sprintf(f.unit.format, v/f.unit.scale) + " (" + what + ")"
			}
		}
		row(f.label, cells[0], cells[1], ratio, limit)
	}
	verdicts := make([]string, len(engines))
	for i, e := range engines {
		pass := 0
		for _, s := range res[e.name] {
			if s.ok {
				pass++
			}
		}
		verdicts[i] = "—"
		if e.missing == "" {
			verdicts[i] = fmt.Sprintf("PASS %d/%d", pass, len(res[e.name]))
		}
	}
	row("restored, checked", verdicts[0], verdicts[1], "", "")
	for _, e := range engines {
		if e.missing != "" {
			fmt.Fprintf(w, "  %s: not run (%s)\n", e.name, e.missing)
			continue
		}
		if l := failures(res[e.name]); l != "" {
			fmt.Fprintf(w, "  %s: %s\n", e.name, l)
		}
	}
}

// failures says how an engine's runs failed: "refused (ERROR)" when none
// passed because the engine gave up, "" when all passed.
func failures(ss []sample) string {
	var errs []string
	seen := map[string]bool{}
	failed, refused := 0, 0
	for _, s := range ss {
		if s.ok {
			continue
		}
		failed++
		if s.refused {
			refused++
		}
		if !seen[s.err] {
			seen[s.err] = true
			errs = append(errs, s.err)
		}
	}
	switch {
	case failed == 0:
		return ""
	case failed == len(ss) && refused == failed:
		return "refused (" + strings.Join(errs, "; ") + ")"
	case failed == len(ss):
		return "failed (" + strings.Join(errs, "; ") + ")"
	default:
		return fmt.Sprintf("%d of %d runs failed (%s)", failed, len(ss), strings.Join(errs, "; "))
	}
}
