package kernel

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints the table `gocr check` shows. With all, every feature is
// listed with what its probe saw; without, only the missing ones, so a
// healthy kernel prints just the summary line.
func WriteTable(w io.Writer, f Features, all bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "FEATURE\tSTATUS\tSINCE\tCOST"
	if all {
		header += "\tDETAIL"
	}
	rows := 0
	for _, ft := range f.List {
		if ft.Found && !all {
			continue
		}
		if rows == 0 {
			fmt.Fprintln(tw, header)
		}
		rows++
		status := "found"
		if !ft.Found {
			status = "missing"
			if ft.Optional {
				status = "missing (optional)"
			}
		}
		cost := ft.Cost
		if ft.Found {
			cost = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", ft.Name, status, ft.Since, cost)
		if all {
			line += "\t" + ft.Detail
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	found, required := 0, 0
	for _, ft := range f.List {
		if ft.Found {
			found++
		} else if !ft.Optional {
			required++
		}
	}
	verdict := "gocr can checkpoint and restore here"
	if required > 0 {
		verdict = fmt.Sprintf("%d required features missing", required)
	}
	_, err := fmt.Fprintf(w, "kernel %s: %d of %d features found; %s\n", f.Release, found, len(f.List), verdict)
	return err
}
