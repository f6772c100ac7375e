package main

import (
	"fmt"
	"io"

	"github.com/gocr/gocr/engine/image"
)

// displayStats prints stats-dump or stats-restore of dir the way criu's
// --display-stats does, one "Name: value" line each.
func displayStats(w io.Writer, dir, which string) error {
	d, err := image.Open(dir)
	if err != nil {
		return fmt.Errorf("--display-stats: %w", err)
	}
	defer d.Close()
	name := image.StatsDumpFile
	if which == "restore" {
		name = image.StatsRestoreFile
	}
	st, err := d.ReadStats(name)
	if err != nil {
		return fmt.Errorf("--display-stats: %w", err)
	}
	pages := func(label string, n uint64) { fmt.Fprintf(w, "%s: %d (%#x)\n", label, n, n) }
	if s := st.GetDump(); s != nil {
		fmt.Fprintln(w, "Displaying dump stats:")
		fmt.Fprintf(w, "Freezing time: %d us\n", s.GetFreezingTime())
		fmt.Fprintf(w, "Frozen time: %d us\n", s.GetFrozenTime())
		fmt.Fprintf(w, "Memory dump time: %d us\n", s.GetMemdumpTime())
		fmt.Fprintf(w, "Memory write time: %d us\n", s.GetMemwriteTime())
		pages("Memory pages scanned", s.GetPagesScanned())
		pages("Memory pages skipped from parent", s.GetPagesSkippedParent())
		pages("Memory pages written", s.GetPagesWritten())
		pages("Lazy memory pages", s.GetPagesLazy())
		pages("Shared memory pages scanned", s.GetShpagesScanned())
		pages("Shared memory pages written", s.GetShpagesWritten())
	}
	if s := st.GetRestore(); s != nil {
		fmt.Fprintln(w, "Displaying restore stats:")
		pages("Pages compared", s.GetPagesCompared())
		pages("Pages skipped COW", s.GetPagesSkippedCow())
		pages("Pages restored", s.GetPagesRestored())
		fmt.Fprintf(w, "Restore time: %d us\n", s.GetRestoreTime())
		fmt.Fprintf(w, "Forking time: %d us\n", s.GetForkingTime())
	}
	return nil
}
