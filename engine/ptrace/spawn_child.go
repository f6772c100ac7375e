package ptrace

import (
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// stubArgs is everything the forked child needs, built before the fork so
// that the child never allocates, grows its stack or calls into the Go
// runtime: after a fork only the forking thread exists in the child, and
// the runtime's locks may be held by threads that are not there.
type stubArgs struct {
	clone *abi.CloneArgs
	path  *byte
	argv  **byte
	envv  **byte
	root  bool // become uid and gid 0 of the stub's user namespace before execve
}

// Exit codes of a stub that failed before execve returned to us.
const (
	stubExitTraceme = 126 // PTRACE_TRACEME failed
	stubExitExec    = 127 // execve failed (the tracer sees the errno at the exit stop first)
	stubExitIDs     = 125 // setresgid/setresuid to 0 failed (StubSpec.Root)
)

// forkStub is clone3 as a fork (no CLONE_VM) followed, in the child, by raw
// syscalls only: PTRACE_TRACEME, stop itself with SIGSTOP so the tracer
// can set options, then execve. It follows syscall.forkAndExecInChild:
// nosplit and norace, no writes to Go memory in the child. The caller
// blocks all signals on this thread around it, so the child starts with
// everything blocked and no Go signal handler can run in it; the mask
// survives execve and is the restorer's to set (SetSigmask) before the
// stub is let go.
//
//go:nosplit
//go:norace
//go:nocheckptr
func forkStub(a *stubArgs) (uintptr, unix.Errno) {
	pid, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(a.clone)), abi.CloneArgsSize, 0)
	if e != 0 || pid != 0 {
		return pid, e
	}
	// The child.
	if _, _, e = unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0, 0, 0, 0); e != 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, stubExitTraceme, 0, 0)
	}
	self, _, _ := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	unix.RawSyscall(unix.SYS_KILL, self, uintptr(unix.SIGSTOP), 0)
	// The tracer has run StubSpec.BeforeExec (written the id maps of a
	// new user namespace) by now.
	if a.root {
		if _, _, e = unix.RawSyscall(unix.SYS_SETRESGID, 0, 0, 0); e != 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, stubExitIDs, 0, 0)
		}
		if _, _, e = unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0); e != 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, stubExitIDs, 0, 0)
		}
	}
	unix.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(a.path)), uintptr(unsafe.Pointer(a.argv)), uintptr(unsafe.Pointer(a.envv)))
	for {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, stubExitExec, 0, 0)
	}
}
