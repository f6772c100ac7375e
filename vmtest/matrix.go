package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gocr/gocr/vmtest/kernel"
)

// RunMatrix runs the payload on every kernel, at most o.Jobs at once, and
// returns the results in the kernels' order.
func RunMatrix(ctx context.Context, ks []*kernel.Kernel, p *Payload, o Options) []*Result {
	res := make([]*Result, len(ks))
	sem := make(chan struct{}, max(1, o.Jobs))
	var wg sync.WaitGroup
	for i, k := range ks {
		sem <- struct{}{} // in order: the first kernels start first
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res[i] = RunKernel(ctx, k, p, o)
			r := res[i]
			o.Log("kernel %s: %s in %v: %d passed, %d failed, %d skipped %s", k.Line, r.Verdict(), r.Wall.Round(time.Second), r.Passed, r.Failed, r.Skipped, r.Note)
			if !r.OK() && r.Detail != "" {
				o.Log("kernel %s: what it left:\n%s", k.Line, indent(r.Detail, "    "))
			}
		}()
	}
	wg.Wait()
	return res
}

// WriteTable prints the matrix: kernel × passed/failed/skipped/time, and
// a closing line in the suite's own format.
func WriteTable(w io.Writer, rs []*Result, engine string, wall time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kernel\trelease\tpassed\tfailed\tskipped\tsuite\tVM wall\tmnt_id\tresult\t")
	var p, f, s int
	for _, r := range rs {
		rel := r.Release
		if rel == "" && r.Kernel != nil {
			rel = r.Kernel.ABI
		}
		verdict := r.Verdict()
		mnt := "-"
		if r.Release != "" {
			mnt = map[bool]string{true: "yes", false: "NO"}[r.Fdinfo]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", r.Line, rel, r.Passed, r.Failed, r.Skipped,
			fmtDur(r.Suite), fmtDur(r.Wall), mnt, verdict)
		p, f, s = p+r.Passed, f+r.Failed, s+r.Skipped
	}
	tw.Flush()
	for _, r := range rs {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Line, firstLine(r.Note))
		}
	}
	fmt.Fprintf(w, "\nvmtest: %d passed, %d failed, %d skipped (%d kernels, engine %s, wall %s)\n", p, f, s, len(rs), engine, fmtDur(wall))
}

// SaveMatrix writes matrix.txt and matrix.json under dir.
func SaveMatrix(dir string, rs []*Result, engine string, wall time.Duration) error {
	var sb strings.Builder
	WriteTable(&sb, rs, engine, wall)
	if err := os.WriteFile(filepath.Join(dir, "matrix.txt"), []byte(sb.String()), 0o644); err != nil {
		return err
	}
	type row struct {
		Kernel, Release, Package, End, Note string
		Passed, Failed, Skipped             int
		SuiteSeconds, WallSeconds           float64
		FdinfoMntID                         bool
	}
	var rows []row
	for _, r := range rs {
		pkg := ""
		if r.Kernel != nil {
			pkg = strings.Join(r.Kernel.Packages, " ")
		}
		rows = append(rows, row{r.Line, r.Release, pkg, r.End, r.Note, r.Passed, r.Failed, r.Skipped,
			r.Suite.Seconds(), r.Wall.Seconds(), r.Fdinfo})
	}
	b, _ := json.MarshalIndent(rows, "", "  ")
	return os.WriteFile(filepath.Join(dir, "matrix.json"), b, 0o644)
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	d = d.Round(time.Second)
	if d < time.Minute {
		return d.String()
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
