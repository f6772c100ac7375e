package workloads

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

// sigpendingRT is the real-time signal queued three times with a payload.
const sigpendingRT = syscall.Signal(40)

// rtSiginfo is siginfo_t for a signal queued with rt_sigqueueinfo (the
// _rt member of the union, 64-bit layout).
type rtSiginfo struct {
	Signo, Errno, Code int32
	_                  int32
	Pid                int32
	Uid                uint32
	Value              uint64
	_                  [96]byte
}

// Sigpending sets up signal state the kernel keeps per process and per
// thread:
//   - a Go handler for SIGUSR1 (SigCgt) and an ignored SIGHUP (SigIgn);
//   - on one locked thread, SIGUSR2 and signal 40 blocked (SigBlk), SIGUSR2
//     pending in that thread's private queue (tgkill) and three instances of
//     signal 40 queued to it with rt_tgsigqueueinfo, each with its own
//     si_value (SigPnd).
//
// After SIGTERM it compares the status fields with the values recorded
// before Ready, dequeues signal 40 with rt_sigtimedwait checking the
// payloads and their order, then unblocks SIGUSR2 and expects Go's handler
// to deliver it.
//
// A process-wide (shared) pending signal is left out: it stays pending only
// while every thread blocks it, and the Go runtime starts new threads with
// the signal mask it had at startup, so any new thread would take it.
var Sigpending = lib.Workload{Name: "sigpending", Run: func(t *lib.T) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	signal.Ignore(syscall.SIGHUP)

	pid := unix.Getpid()
	uid := uint32(unix.Getuid())
	payloads := []uint64{0x5161_0000_0000_0001, 0x5161_0000_0000_0002, 0x5161_0000_dead_beef}
	bits := uint64(1)<<(syscall.SIGUSR2-1) | uint64(1)<<(sigpendingRT-1)

	type request struct {
		do   func() error
		done chan error
	}
	reqs := make(chan request)
	tidc := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread holds the state
		var set unix.Sigset_t
		set.Val[0] = bits
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
			t.Fatal(fmt.Errorf("block signals: %w", err))
		}
		tidc <- unix.Gettid()
		for r := range reqs {
			r.done <- r.do()
		}
	}()
	tid := <-tidc
	onThread := func(f func() error) error {
		done := make(chan error)
		reqs <- request{f, done}
		return <-done
	}
	err := onThread(func() error {
		if err := unix.Tgkill(pid, tid, syscall.SIGUSR2); err != nil {
			return fmt.Errorf("tgkill SIGUSR2: %w", err)
		}
		for _, v := range payloads {
			info := rtSiginfo{Signo: int32(sigpendingRT), Code: -1 /* SI_QUEUE */, Pid: int32(pid), Uid: uid, Value: v}
			if _, _, e := unix.Syscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(pid), uintptr(tid), uintptr(sigpendingRT), uintptr(unsafe.Pointer(&info)), 0, 0); e != 0 {
				return fmt.Errorf("rt_tgsigqueueinfo: %w", e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	taskStatus := fmt.Sprintf("/proc/self/task/%d/status", tid)
	fields := []struct{ path, key string }{
		{"/proc/self/status", "SigCgt"},
		{"/proc/self/status", "SigIgn"},
		{"/proc/self/status", "ShdPnd"},
		{taskStatus, "SigPnd"},
		{taskStatus, "SigBlk"},
	}
	read := func() []uint64 {
		vals := make([]uint64, len(fields))
		for i, f := range fields {
			s, err := statusField(f.path, f.key)
			if err != nil {
				t.Fatal(err)
			}
			if vals[i], err = strconv.ParseUint(s, 16, 64); err != nil {
				t.Fatal(fmt.Errorf("%s %s: %w", f.path, f.key, err))
			}
		}
		return vals
	}
	before := read()
	cgt, ign, shd, pnd, blk := before[0], before[1], before[2], before[3], before[4]
	switch {
	case cgt&(1<<(syscall.SIGUSR1-1)) == 0:
		t.Fail("SIGUSR1 not caught: SigCgt %016x", cgt)
	case ign&(1<<(syscall.SIGHUP-1)) == 0:
		t.Fail("SIGHUP not ignored: SigIgn %016x", ign)
	case pnd&bits != bits:
		t.Fail("thread %d: SigPnd %016x lacks %016x", tid, pnd, bits)
	case blk&bits != bits:
		t.Fail("thread %d: SigBlk %016x lacks %016x", tid, blk, bits)
	case shd&bits != 0:
		t.Fail("ShdPnd %016x has %016x: the signals went to the process", shd, bits)
	}
	t.Ready()
	t.WaitSignal()

	after := read()
	for i, f := range fields {
		if after[i] != before[i] {
			t.Fail("%s %s: %016x, was %016x", f.path, f.key, after[i], before[i])
		}
	}
	err = onThread(func() error {
		var set unix.Sigset_t
		set.Val[0] = uint64(1) << (sigpendingRT - 1)
		var zero unix.Timespec
		for i, v := range payloads {
			var info rtSiginfo
			r, _, e := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&zero)), 8, 0, 0)
			if e != 0 {
				return fmt.Errorf("rt_sigtimedwait for instance %d of signal %d: %w", i, sigpendingRT, e)
			}
			if r != uintptr(sigpendingRT) || info.Signo != int32(sigpendingRT) || info.Code != -1 || info.Pid != int32(pid) || info.Uid != uid || info.Value != v {
				return fmt.Errorf("instance %d of signal %d: got signal %d code %d pid %d uid %d value %#x, want code -1 pid %d uid %d value %#x",
					i, sigpendingRT, r, info.Code, info.Pid, info.Uid, info.Value, pid, uid, v)
			}
		}
		var info rtSiginfo
		if _, _, e := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(&set)), uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&zero)), 8, 0, 0); e != unix.EAGAIN {
			return fmt.Errorf("a fourth instance of signal %d was pending (value %#x, err %v)", sigpendingRT, info.Value, e)
		}
		set.Val[0] = uint64(1) << (syscall.SIGUSR2 - 1)
		return unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-usr2:
	case <-time.After(5 * time.Second):
		t.Fail("pending SIGUSR2 not delivered after unblocking it")
	}
	if s, err := statusField(taskStatus, "SigPnd"); err != nil || s != "0000000000000000" {
		t.Fail("thread %d: SigPnd %s after delivery (%v)", tid, s, err)
	}
	unix.Kill(pid, syscall.SIGHUP) // ignored: must not kill us
	unix.Kill(pid, syscall.SIGUSR1)
	select {
	case <-usr1:
	case <-time.After(5 * time.Second):
		t.Fail("SIGUSR1 not delivered to its handler")
	}
	t.Pass()
}}
