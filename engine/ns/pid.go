package ns

import (
	"fmt"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

// CheckPidNS accepts a task in a pid namespace of its own only when it is
// that namespace's init: the whole namespace is then in the tree, and
// restore makes a fresh one with the task as pid 1 again.
func CheckPidNS(pid int) error {
	st, err := procfs.Status(pid)
	if err != nil {
		return err
	}
	if n := len(st.NSpid); n < 2 || st.NSpid[n-1] != 1 {
		return fmt.Errorf("pid %d is in a pid namespace of its own but is not its init (NSpid %v): dump that namespace's pid 1", pid, st.NSpid)
	}
	return nil
}

// SetLastPid writes ns_last_pid of gocr's pid namespace, so that the next
// pid made there is last+1 if it is free. Raw system calls only: called on
// the tracer thread right before a clone, it must not give the Go runtime
// a reason to start a thread (which would take that pid).
func SetLastPid(last int) error {
	const p = "/proc/sys/kernel/ns_last_pid"
	path, err := unix.BytePtrFromString(p)
	if err != nil {
		return err
	}
	fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFdcwd), uintptr(unsafe.Pointer(path)), unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("open %s: %w", p, e)
	}
	defer unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	b := []byte(strconv.Itoa(last))
	if _, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b))); e != 0 {
		return fmt.Errorf("write %d to %s: %w", last, p, e)
	}
	runtime.KeepAlive(path)
	runtime.KeepAlive(b)
	return nil
}

var atFdcwd = unix.AT_FDCWD // a variable: -100 does not convert to uintptr as a constant
