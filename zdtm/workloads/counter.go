package workloads

import (
	"time"

	"github.com/gocr/gocr/zdtm/lib"
)

// Counter counts in a loop with short sleeps: the simplest proof that a
// restored process carries on where it stopped.
var Counter = lib.Workload{Name: "counter", Run: func(t *lib.T) {
	var a, b uint64 // b trails a by one at every check: torn state shows
	step := func() {
		a++
		time.Sleep(time.Millisecond)
		b++
	}
	for range 10 {
		step()
	}
	t.Ready()
	atReady := a
	// At least one step after ready: SIGTERM may already be here.
	for done := false; !done; {
		done = t.Stopped()
		step()
		if a != b {
			t.Fail("counter torn: a=%d b=%d", a, b)
		}
	}
	if a <= atReady {
		t.Fail("counter did not advance after ready: %d <= %d", a, atReady)
	}
	t.Pass()
}}
