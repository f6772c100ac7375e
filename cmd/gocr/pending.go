package main

import (
	"context"
	"fmt"
	"io"
)

func check(ctx context.Context, p parsed, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gocr check: not wired yet")
	return 1
}

func show(p parsed, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gocr show: not wired yet")
	return 1
}
