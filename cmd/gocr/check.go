package main

import (
	"context"
	"fmt"
	"io"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/kernel"
)

// check prints the table of kernel features the engine uses, or with
// --feature NAME exits 0 only when gocr can use the feature here: one of
// gocr's names (the kernel has it), or one of CRIU 4.2's (the kernel has
// it and gocr does what CRIU means by it), as criu's zdtm.py asks.
func check(_ context.Context, p parsed, stdout, stderr io.Writer) int {
	f := kernel.Probe()
	if name := p.get("feature"); name != "" {
		ft, ok := f.Criu(name)
		if !ok {
			ft, ok = f.Lookup(name)
		}
		switch {
		case !ok:
			fmt.Fprintf(stderr, "gocr check: unknown feature %q (gocr check --all lists gocr's; CRIU's names are known too)\n", name)
			return 1
		case !ft.Found:
			fmt.Fprintf(stdout, "%s is missing: %s\n", ft.Name, ft.Detail)
			return 1
		}
		fmt.Fprintf(stdout, "%s is supported\n", ft.Name)
		return 0
	}
	fmt.Fprintf(stdout, "kernel %s\n", f.Release)
	if err := kernel.WriteTable(stdout, f, p.has("all")); err != nil {
		fmt.Fprintf(stderr, "gocr check: %v\n", err)
		return 1
	}
	for _, ft := range f.Missing() {
		if !ft.Optional {
			fmt.Fprintf(stdout, "gocr cannot work on this kernel: %s is missing\n", ft.Name)
			return 1
		}
	}
	fmt.Fprintln(stdout, "Looks good.")
	return 0
}

// show prints an image directory readably.
func show(p parsed, stdout, stderr io.Writer) int {
	dir := p.get("images-dir")
	if len(p.args) > 0 {
		dir = p.args[0]
	}
	if dir == "" {
		fmt.Fprintln(stderr, "usage: gocr show DIR")
		return 2
	}
	if err := image.Show(dir, stdout); err != nil {
		fmt.Fprintf(stderr, "gocr show: %v\n", err)
		return 1
	}
	return 0
}
