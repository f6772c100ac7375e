package ptrace

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestDoRunsOnOneThread(t *testing.T) {
	tr := newTracer(t)
	var tids [3]int
	for i := range tids {
		tr.Do(func() error { tids[i] = unixGettid(); return nil })
	}
	if tids[0] != tr.tid || tids[1] != tr.tid || tids[2] != tr.tid {
		t.Fatalf("Do ran on threads %v, tracer is %d", tids, tr.tid)
	}
	// Nested Do runs inline instead of deadlocking.
	err := tr.Do(func() error { return tr.Do(func() error { return nil }) })
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if err := tr.Do(func() error { return nil }); err != ErrClosed {
		t.Fatalf("Do after Close: %v", err)
	}
}

func BenchmarkDo(b *testing.B) {
	tr := NewTracer()
	defer tr.Close()
	for i := 0; i < b.N; i++ {
		tr.Do(func() error { return nil })
	}
}

func unixGettid() int { return unix.Gettid() }
