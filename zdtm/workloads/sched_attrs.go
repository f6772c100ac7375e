package workloads

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// schedWant is how one thread of SchedAttrs is scheduled.
type schedWant struct {
	name   string
	policy int // with SCHED_RESET_ON_FORK
	prio   int
	nice   int
}

func (w schedWant) String() string {
	return fmt.Sprintf("%s: policy %#x prio %d nice %d", w.name, w.policy, w.prio, w.nice)
}

func threadSched() (schedWant, error) {
	pol, _, errno := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, 0, 0, 0)
	if errno != 0 {
		return schedWant{}, errno
	}
	var prio int32
	if _, _, errno := unix.RawSyscall(unix.SYS_SCHED_GETPARAM, 0, uintptr(unsafe.Pointer(&prio)), 0); errno != 0 {
		return schedWant{}, errno
	}
	// The raw getpriority returns 20-nice.
	raw, _, errno := unix.RawSyscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, 0, 0)
	if errno != 0 {
		return schedWant{}, errno
	}
	return schedWant{policy: int(pol), prio: int(prio), nice: 20 - int(raw)}, nil
}

func setThreadSched(w schedWant) error {
	prio := int32(w.prio)
	if _, _, errno := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, uintptr(w.policy), uintptr(unsafe.Pointer(&prio))); errno != 0 {
		return fmt.Errorf("sched_setscheduler %#x %d: %w", w.policy, w.prio, errno)
	}
	if w.policy&^0x40000000 == 0 || w.policy&^0x40000000 == 3 || w.policy&^0x40000000 == 5 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, w.nice); err != nil {
			return fmt.Errorf("setpriority %d: %w", w.nice, err)
		}
	}
	return nil
}

// SchedAttrs keeps what the kernel schedules by, per thread, and the
// process's oom_score_adj: threads locked to their OS threads with
// SCHED_BATCH and nice 7, SCHED_IDLE with SCHED_RESET_ON_FORK, SCHED_FIFO
// priority 12 and SCHED_RR priority 3 (real-time ones where the workload
// may set them: not inside a user namespace, whose root lacks the host's
// CAP_SYS_NICE; then SCHED_BATCH nice 3 and 4 stand in), and
// oom_score_adj 400. After restore every thread checks its own.
var SchedAttrs = lib.Workload{Name: "sched_attrs", Run: func(t *lib.T) {
	wants := []schedWant{
		{name: "batch", policy: 3, nice: 7},
		{name: "idle", policy: 5 | 0x40000000, nice: 0},
		{name: "fifo", policy: 1, prio: 12},
		{name: "rr", policy: 2, prio: 3},
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("400"), 0); err != nil {
		t.Fatal(fmt.Errorf("oom_score_adj: %w", err))
	}
	type result struct {
		i   int
		err error
	}
	check := make(chan int)
	results := make(chan result)
	ready := make(chan result)
	for i := range wants {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread keeps its scheduling
			err := setThreadSched(wants[i])
			if errors.Is(err, unix.EPERM) && wants[i].prio != 0 {
				t.Logf("%s: %v: no real-time scheduling here, SCHED_BATCH instead", wants[i].name, err)
				wants[i] = schedWant{name: wants[i].name + " (batch)", policy: 3, nice: 2 + i}
				err = setThreadSched(wants[i])
			}
			ready <- result{i, err}
			for range check {
				got, err := threadSched()
				if err == nil && (got.policy != wants[i].policy || got.prio != wants[i].prio || got.nice != wants[i].nice) {
					got.name = wants[i].name
					err = fmt.Errorf("got %v, want %v", got, wants[i])
				}
				results <- result{i, err}
			}
		}()
	}
	for range wants {
		if r := <-ready; r.err != nil {
			t.Fatal(fmt.Errorf("%s: %w", wants[r.i].name, r.err))
		}
	}
	verify := func(when string) {
		for range wants {
			check <- 0
		}
		for range wants {
			if r := <-results; r.err != nil {
				t.Fail("%s: thread %s", when, r.err)
			}
		}
		b, _ := os.ReadFile("/proc/self/oom_score_adj")
		if v, _ := strconv.Atoi(strings.TrimSpace(string(b))); v != 400 {
			t.Fail("%s: oom_score_adj %q, want 400", when, b)
		}
	}
	verify("before the dump")
	t.Ready()
	t.WaitSignal()
	verify("after restore")
	t.Pass()
}}
