package workloads

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// statusField returns the value of "Key:" in a /proc status file, such as
// /proc/self/status or /proc/self/task/TID/status.
func statusField(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s: no %s field", path, key)
}

// taskSyscall returns the number of the system call thread tid of this
// process is blocked in, or -1 when it is running.
func taskSyscall(tid int) (int, error) {
	path := fmt.Sprintf("/proc/self/task/%d/syscall", tid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("%s: empty", path)
	}
	if f[0] == "running" {
		return -1, nil
	}
	return strconv.Atoi(f[0])
}

// waitInSyscall waits until thread tid sits in one of the system calls nrs,
// which shows the blocking call really is the state being checked. A
// process that switched to ZDTM_UID is not dumpable and may not read its
// tasks' syscall files; then it settles for the thread sleeping.
func waitInSyscall(tid int, timeout time.Duration, nrs ...int) error {
	deadline := time.Now().Add(timeout)
	for {
		nr, err := taskSyscall(tid)
		if os.IsPermission(err) {
			return waitSleeping(tid, deadline)
		}
		if err != nil {
			return err
		}
		for _, want := range nrs {
			if nr == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d is in syscall %d, want one of %v", tid, nr, nrs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSleeping waits until thread tid is in state S (interruptible sleep).
func waitSleeping(tid int, deadline time.Time) error {
	path := fmt.Sprintf("/proc/self/task/%d/status", tid)
	for {
		st, err := statusField(path, "State")
		if err != nil {
			return err
		}
		if strings.HasPrefix(st, "S") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d is in state %q, want S (sleeping in the call)", tid, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// splitmix64 is a fast, fixed-seed pseudo-random generator: the same seed
// always yields the same stream, so data can be checked by regenerating it.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// blockedResult is what a raw blocking system call returned.
type blockedResult struct {
	r1  uintptr
	err syscall.Errno
}

// startBlocked runs call on a new locked OS thread and returns the thread's
// tid and a channel that receives what call returned. The thread ends with
// the goroutine.
func startBlocked(call func() blockedResult) (int, <-chan blockedResult) {
	tidc := make(chan int, 1)
	done := make(chan blockedResult, 1)
	go func() {
		runtime.LockOSThread()
		tidc <- unix.Gettid()
		done <- call()
	}()
	return <-tidc, done
}
