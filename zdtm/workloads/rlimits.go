package workloads

import (
	"fmt"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

// rlimitChange is one limit the workload sets: soft is the wanted soft limit
// (capped by the hard limit), lowerHard also lowers the hard limit.
type rlimitChange struct {
	name      string
	res       int
	soft      uint64
	lowerHard bool
}

var rlimitChanges = []rlimitChange{
	{"NOFILE", unix.RLIMIT_NOFILE, 1021, false},
	{"CORE", unix.RLIMIT_CORE, 3<<20 + 4096, true},
	{"NPROC", unix.RLIMIT_NPROC, 4093, false},
	{"MSGQUEUE", unix.RLIMIT_MSGQUEUE, 409_623, true},
	{"FSIZE", unix.RLIMIT_FSIZE, 1<<40 + 17, false},
	{"MEMLOCK", unix.RLIMIT_MEMLOCK, 3<<20 + 8192, false},
	{"CPU", unix.RLIMIT_CPU, 86_413, false},
	{"SIGPENDING", unix.RLIMIT_SIGPENDING, 1009, false},
	{"LOCKS", unix.RLIMIT_LOCKS, 10_007, true},
	// The Go runtime only uses the main thread's stack for the system
	// stack of its first thread; 7 MiB and a bit leaves it plenty.
	{"STACK", unix.RLIMIT_STACK, 7<<20 + 12288, false},
}

// Rlimits gives several resource limits distinctive soft values and lowers
// three hard limits (lowering needs no privilege; raising them back would
// need CAP_SYS_RESOURCE). After SIGTERM getrlimit must return exactly the
// values set, and the NOFILE soft limit must still bind: F_DUPFD at the
// limit fails, just below it succeeds.
var Rlimits = lib.Workload{Name: "rlimits", Run: func(t *lib.T) {
	want := make([]unix.Rlimit, len(rlimitChanges))
	for i, c := range rlimitChanges {
		var cur unix.Rlimit
		if err := unix.Getrlimit(c.res, &cur); err != nil {
			t.Fatal(fmt.Errorf("getrlimit %s: %w", c.name, err))
		}
		w := cur
		if c.lowerHard {
			switch {
			case cur.Max == unix.RLIM_INFINITY:
				w.Max = c.soft * 4
			case cur.Max > 1:
				w.Max = cur.Max - 1
			}
		}
		w.Cur = min(c.soft, w.Max)
		if err := unix.Setrlimit(c.res, &w); err != nil {
			t.Fatal(fmt.Errorf("setrlimit %s %+v (was %+v): %w", c.name, w, cur, err))
		}
		want[i] = w
		t.Logf("RLIMIT_%s: %d/%d, was %d/%d", c.name, w.Cur, w.Max, cur.Cur, cur.Max)
	}
	t.Ready()
	t.WaitSignal()

	for i, c := range rlimitChanges {
		var got unix.Rlimit
		if err := unix.Getrlimit(c.res, &got); err != nil {
			t.Fatal(fmt.Errorf("getrlimit %s: %w", c.name, err))
		}
		if got != want[i] {
			t.Fail("RLIMIT_%s is %d/%d, want %d/%d", c.name, got.Cur, got.Max, want[i].Cur, want[i].Max)
		}
	}
	nofile := int(want[0].Cur)
	if fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, nofile); err == nil {
		t.Fail("F_DUPFD to fd %d succeeded above the NOFILE soft limit %d (got fd %d)", nofile, nofile, fd)
	}
	fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, nofile-1)
	if err != nil {
		t.Fail("F_DUPFD to fd %d below the NOFILE soft limit %d: %v", nofile-1, nofile, err)
	}
	unix.Close(fd)
	t.Pass()
}}
