package workloads

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

// Errnos of SeccompTsync's filters.
const (
	tsyncErrnoPgid = 1001
	tsyncErrnoSid  = 1002
	tsyncErrnoPrio = 1003
)

// seccompErrnoFilter installs a filter returning errno for nr on every
// thread of the process (SECCOMP_FILTER_FLAG_TSYNC, with extra flags): a
// Go program has threads of its own. With TSYNC the kernel answers 0, or
// the tid of a thread whose filters are not an ancestor of the caller's.
func seccompErrnoFilter(nr, errno uint32, flags uintptr) error {
	insns := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: nr},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | errno},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, unix.SECCOMP_FILTER_FLAG_TSYNC|flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(insns)
	if e != 0 {
		return fmt.Errorf("seccomp filter for syscall %d: %w", nr, e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp filter for syscall %d: thread %d could not be synchronised", nr, r)
	}
	return nil
}

// seccompFiltered says whether syscall nr (arguments 0) fails with errno.
func seccompFiltered(nr uintptr, errno syscall.Errno) bool {
	_, _, e := unix.RawSyscall(nr, 0, 0, 0)
	return e == errno
}

// SeccompTsync puts a multi-threaded Go program under two seccomp filters
// with SECCOMP_FILTER_FLAG_TSYNC (the newer one with
// SECCOMP_FILTER_FLAG_LOG), no_new_privs set, so every thread shares the
// same chain. Goroutines locked to their threads check the filters, block
// in read through the dump, and check them again. After restore every
// thread of /proc/self/task
// must be in filter mode with 2 filters; a third filter installed with
// TSYNC must be taken (the kernel refuses it unless the threads share
// their chain) and then act on every thread.
var SeccompTsync = lib.Workload{Name: "seccomp_tsync", Run: func(t *lib.T) {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := seccompErrnoFilter(unix.SYS_GETPGID, tsyncErrnoPgid, 0); err != nil {
		t.Fatal(err)
	}
	if err := seccompErrnoFilter(unix.SYS_GETSID, tsyncErrnoSid, unix.SECCOMP_FILTER_FLAG_LOG); err != nil {
		t.Fatal(err)
	}
	// Threads blocked in read: the dump finds them in a system call, and
	// the Go runtime has no reason to make more threads meanwhile.
	const n = 3
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	errs := make(chan string, n)
	for range n {
		go func() {
			runtime.LockOSThread()
			tid := unix.Gettid()
			if !seccompFiltered(unix.SYS_GETPGID, tsyncErrnoPgid) {
				errs <- fmt.Sprintf("thread %d: getpgid escaped its filter before the dump", tid)
				return
			}
			var b [1]byte
			for {
				_, err := unix.Read(fds[0], b[:])
				if err != unix.EINTR {
					break
				}
			}
			if !seccompFiltered(unix.SYS_GETPGID, tsyncErrnoPgid) || !seccompFiltered(unix.SYS_GETSID, tsyncErrnoSid) {
				errs <- fmt.Sprintf("thread %d: a call escaped its filter after restore", tid)
				return
			}
			errs <- ""
		}()
	}
	t.Ready()
	t.WaitSignal()
	if _, err := unix.Write(fds[1], make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	for range n {
		if msg := <-errs; msg != "" {
			t.Fail("%s", msg)
		}
	}
	if err := checkTaskFilters(2); err != nil {
		t.Fail("after restore: %v", err)
	}
	if err := seccompErrnoFilter(unix.SYS_GETPRIORITY, tsyncErrnoPrio, 0); err != nil {
		t.Fail("after restore, the threads do not share their filters: %v", err)
	}
	if err := checkTaskFilters(3); err != nil {
		t.Fail("after a TSYNC filter: %v", err)
	}
	if !seccompFiltered(unix.SYS_GETPRIORITY, tsyncErrnoPrio) || !seccompFiltered(unix.SYS_GETPGID, tsyncErrnoPgid) {
		t.Fail("the filters do not act after restore")
	}
	t.Pass()
}}

// checkTaskFilters checks that every thread is in filter mode with want
// filters and no_new_privs.
func checkTaskFilters(want int) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // gone
		}
		fields := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		nf, err := strconv.Atoi(fields["Seccomp_filters"])
		if fields["Seccomp"] != "2" || (err == nil && nf != want) || fields["NoNewPrivs"] != "1" {
			return fmt.Errorf("thread %s: Seccomp %s, Seccomp_filters %s, NoNewPrivs %s; want 2, %d, 1",
				e.Name(), fields["Seccomp"], fields["Seccomp_filters"], fields["NoNewPrivs"], want)
		}
	}
	return nil
}
