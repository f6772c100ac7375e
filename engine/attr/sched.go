package attr

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Scheduling policies (include/uapi/linux/sched.h).
const (
	schedOther       = 0
	schedFIFO        = 1
	schedRR          = 2
	schedBatch       = 3
	schedIdle        = 5
	schedDeadline    = 6
	schedResetOnFork = 0x40000000
)

// Sched is how a thread is scheduled: its policy (with
// SCHED_RESET_ON_FORK), its real-time priority and its nice value.
type Sched struct {
	Policy uint32
	Prio   uint32
	Nice   int32
}

// DumpSched reads the scheduling of thread tid. SCHED_DEADLINE, whose
// runtime, deadline and period need sched_getattr, is refused.
func DumpSched(tid int) (Sched, error) {
	pol, _, errno := unix.Syscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if errno != 0 {
		return Sched{}, fmt.Errorf("sched_getscheduler tid %d: %w", tid, errno)
	}
	var prio int32
	if _, _, errno := unix.Syscall(unix.SYS_SCHED_GETPARAM, uintptr(tid), uintptr(unsafe.Pointer(&prio)), 0); errno != 0 {
		return Sched{}, fmt.Errorf("sched_getparam tid %d: %w", tid, errno)
	}
	s := Sched{Policy: uint32(pol), Prio: uint32(prio)}
	switch s.Policy &^ schedResetOnFork {
	case schedOther, schedBatch, schedIdle, schedFIFO, schedRR:
	case schedDeadline:
		return Sched{}, fmt.Errorf("tid %d is scheduled SCHED_DEADLINE: not supported yet", tid)
	default:
		return Sched{}, fmt.Errorf("tid %d has scheduling policy %d, which gocr does not know", tid, s.Policy)
	}
	nice, err := threadNice(tid)
	if err != nil {
		return Sched{}, err
	}
	s.Nice = nice
	return s, nil
}

// threadNice reads the nice value of tid: field 19 of its stat.
func threadNice(tid int) (int32, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", tid, tid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat of tid %d: no comm", tid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): nice, field 19, is f[16].
	if len(f) < 17 {
		return 0, fmt.Errorf("stat of tid %d: %d fields", tid, len(f)+2)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil || n < -20 || n > 19 {
		return 0, fmt.Errorf("stat of tid %d: nice %q", tid, f[16])
	}
	return int32(n), nil
}

// CheckSched refuses a scheduling state restore cannot set.
func CheckSched(s Sched) error {
	switch s.Policy &^ schedResetOnFork {
	case schedOther, schedBatch, schedIdle:
		if s.Prio != 0 {
			return fmt.Errorf("sched_prio %d with policy %d: only real-time policies have one", s.Prio, s.Policy)
		}
	case schedFIFO, schedRR:
		if s.Prio < 1 || s.Prio > 99 {
			return fmt.Errorf("sched_prio %d: a real-time priority is 1-99", s.Prio)
		}
	default:
		return fmt.Errorf("sched_policy %d: not supported", s.Policy)
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fmt.Errorf("sched_nice %d: not in -20..19", s.Nice)
	}
	return nil
}

// RestoreSched sets the scheduling of thread tid (as the host sees it)
// from gocr's side: a stub in a user namespace could not raise its own
// priority, gocr with CAP_SYS_NICE can.
func RestoreSched(tid int, s Sched) error {
	if err := CheckSched(s); err != nil {
		return err
	}
	if s.Policy != schedOther || s.Prio != 0 {
		prio := int32(s.Prio)
		if _, _, errno := unix.Syscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(s.Policy), uintptr(unsafe.Pointer(&prio))); errno != 0 {
			return fmt.Errorf("sched_setscheduler tid %d policy %#x prio %d: %w", tid, s.Policy, s.Prio, errno)
		}
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, int(s.Nice)); err != nil {
		return fmt.Errorf("setpriority tid %d nice %d: %w", tid, s.Nice, err)
	}
	return nil
}
