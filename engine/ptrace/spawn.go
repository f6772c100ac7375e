package ptrace

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

// StubSpec says what SpawnStub starts.
type StubSpec struct {
	// Tids is the clone3 set_tid array: the pid wanted in each pid
	// namespace, innermost first. The stub is born in the tracer thread's
	// pid namespace for children (setns there first for a nested one), so
	// with one entry per level the last is the pid in the tracer's
	// namespace, which SpawnStub returns. Empty lets the kernel choose,
	// for a helper whose pid does not matter.
	Tids []int
	// Flags are extra clone flags, e.g. CLONE_NEWPID|CLONE_NEWNS to start
	// the stub as pid 1 of fresh namespaces (Tids is then [1, pid outside]).
	Flags uint64
	// Path, Argv and Env are passed to execve.
	Path string
	Argv []string
	Env  []string
	// Options are the PTRACE_O_* options to trace the stub with;
	// PTRACE_O_TRACESYSGOOD and PTRACE_O_TRACEEXEC are always added.
	Options int
	// BeforeExec, if set, runs while the child is stopped before its
	// execve, with the child's pid in the tracer's namespace: the place to
	// write the uid and gid maps of a user namespace the child was born
	// in (CLONE_NEWUSER in Flags). An error kills the child.
	BeforeExec func(pid int) error
	// Root makes the child set its uids and gids to 0 of its user
	// namespace after BeforeExec and before execve, so that it is that
	// namespace's root, with every capability in it, across execve (the
	// tracer's ids are typically not mapped in a new user namespace). The
	// maps must map 0.
	Root bool
	// RetryFor is how long to retry while the pid is taken (EEXIST): a pid
	// stays taken while a zombie of the old tree still uses it as a process
	// group or session id. Zero means 2 s.
	RetryFor time.Duration
	// NetNS, if not empty, is the file of a network namespace the stub is
	// born in instead of the tracer thread's (criu's --join-ns net): the
	// tracer thread joins it for the clone and goes back to its own.
	NetNS string
}

// SpawnStub starts a restore stub with exactly the requested pid (clone3
// with set_tid; without Tids, a helper with any pid), traced from birth
// (PTRACE_TRACEME), and run to the syscall-exit stop of its execve —
// stopping earlier would let execve's return value overwrite rax later.
// It returns the pid, stopped there and traced by this tracer, with every
// signal blocked (see forkStub).
//
// The stub is a child of the tracer thread; KillAndReap disposes of it. If
// the tracer is closed first, the stub is detached and runs on with every
// signal blocked unless it was given PTRACE_O_EXITKILL. While the pid is
// taken the tracer thread sleeps between retries and serves no other call.
func (t *Tracer) SpawnStub(s StubSpec) (int, error) {
	var pid int
	err := t.Do(func() error {
		var err error
		pid, err = t.spawnStub(s)
		return err
	})
	return pid, err
}

func (t *Tracer) spawnStub(s StubSpec) (int, error) {
	path, err := unix.BytePtrFromString(s.Path)
	if err != nil {
		return 0, fmt.Errorf("spawn stub %s: %w", s.Path, err)
	}
	argv, err := syscall.SlicePtrFromStrings(s.Argv)
	if err != nil {
		return 0, fmt.Errorf("spawn stub %s argv: %w", s.Path, err)
	}
	envv, err := syscall.SlicePtrFromStrings(s.Env)
	if err != nil {
		return 0, fmt.Errorf("spawn stub %s env: %w", s.Path, err)
	}
	tids := make([]int32, len(s.Tids))
	for i, v := range s.Tids {
		tids[i] = int32(v)
	}
	clone := &abi.CloneArgs{Flags: s.Flags, ExitSignal: uint64(unix.SIGCHLD)}
	if len(tids) > 0 {
		clone.SetTid = uint64(uintptr(unsafe.Pointer(&tids[0])))
		clone.SetTidSize = uint64(len(tids))
	}
	args := &stubArgs{clone: clone, path: path, argv: &argv[0], envv: &envv[0], root: s.Root}

	retry := s.RetryFor
	if retry == 0 {
		retry = 2 * time.Second
	}
	if s.NetNS != "" {
		back, err := joinNetNS(s.NetNS)
		if err != nil {
			return 0, err
		}
		defer back()
	}
	deadline := time.Now().Add(retry)
	backoff := time.Millisecond
	var pid int
	for {
		p, errno := fork(args)
		if errno == 0 {
			pid = int(p)
			break
		}
		if errno == unix.EEXIST && time.Now().Before(deadline) {
			time.Sleep(backoff)
			backoff = min(2*backoff, 100*time.Millisecond)
			continue
		}
		if errno == unix.EEXIST {
			return 0, fmt.Errorf("clone3 set_tid %v: %s (gave up after %v): %w", s.Tids, pidHolder(s.Tids[len(s.Tids)-1]), retry, errno)
		}
		if len(s.Tids) == 0 {
			return 0, fmt.Errorf("clone3: %w", errno)
		}
		return 0, fmt.Errorf("clone3 set_tid %v: %w", s.Tids, errno)
	}
	runtime.KeepAlive(tids)
	runtime.KeepAlive(args)
	runtime.KeepAlive(argv)
	runtime.KeepAlive(envv)
	runtime.KeepAlive(path)

	if err := t.runToExec(pid, s); err != nil {
		t.killAndReap(pid) //nolint:errcheck // already failing; leave nothing behind
		return 0, err
	}
	return pid, nil
}

// joinNetNS moves the calling thread into the network namespace of file
// path and returns how to move it back. A thread that cannot go back is
// not fit to serve the tracer any more: that panics.
func joinNetNS(path string) (func(), error) {
	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("own network namespace: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(own)
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		unix.Close(own)
		return nil, fmt.Errorf("join network namespace %s: %w", path, err)
	}
	return func() {
		err := unix.Setns(own, unix.CLONE_NEWNET)
		unix.Close(own)
		if err != nil {
			panic(fmt.Sprintf("tracer thread: back to its own network namespace: %v", err))
		}
	}, nil
}

// fork runs forkStub with every signal blocked on this thread, so the child
// inherits a fully blocked mask, and with syscall.ForkLock held so no fd
// is mid-creation without O_CLOEXEC in another goroutine.
func fork(a *stubArgs) (uintptr, unix.Errno) {
	all, old := ^uint64(0), uint64(0)
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), abi.SigsetSize, 0, 0)
	pid, errno := forkStub(a)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, abi.SigsetSize, 0, 0)
	return pid, errno
}

// runToExec takes the fresh child from its self-inflicted SIGSTOP to the
// syscall-exit stop of its execve.
func (t *Tracer) runToExec(pid int, s StubSpec) error {
	ws, err := wait4(pid)
	if err != nil {
		return err
	}
	if ws.Exited() && ws.ExitStatus() == stubExitTraceme {
		return fmt.Errorf("stub pid %d: PTRACE_TRACEME failed: %w", pid, ErrExited)
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGSTOP {
		return fmt.Errorf("stub pid %d: want its SIGSTOP, got status %#x", pid, uint32(ws))
	}
	opts := s.Options | unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACEEXEC
	if err := unix.PtraceSetOptions(pid, opts); err != nil {
		return fmt.Errorf("ptrace SETOPTIONS stub pid %d: %w", pid, err)
	}
	st := &task{tgid: pid, options: opts, stopped: true}
	t.tasks[pid] = st
	if s.BeforeExec != nil {
		if err := s.BeforeExec(pid); err != nil {
			return fmt.Errorf("stub pid %d before execve: %w", pid, err)
		}
	}
	// Syscall stops until execve's exit: the child may make other calls
	// (StubSpec.Root) before it.
	entered := false
	for {
		// Signal 0 throws the SIGSTOP (and anything else but SIGKILL) away:
		// the stub has everything blocked and nothing of its own yet.
		if _, err := ptrace(unix.PTRACE_SYSCALL, pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace SYSCALL stub pid %d: %w", pid, err)
		}
		st.stopped = false
		ws, err := wait4(pid)
		if err != nil {
			return err
		}
		if ws.Exited() || ws.Signaled() {
			delete(t.tasks, pid)
			if s.Root && ws.Exited() && ws.ExitStatus() == stubExitIDs {
				return fmt.Errorf("stub pid %d: could not become uid/gid 0 of its user namespace: %w", pid, exitedErr(pid, ws))
			}
			return fmt.Errorf("stub %s: %w", s.Path, exitedErr(pid, ws))
		}
		st.stopped = true
		if int(ws.StopSignal()) != abi.SyscallTrap {
			continue // PTRACE_EVENT_EXEC, or a signal we discard
		}
		var regs abi.PtraceRegs
		if err := getRegs(pid, &regs); err != nil {
			return err
		}
		if regs.OrigRax != unix.SYS_EXECVE {
			continue // setresgid/setresuid, entry or exit
		}
		if !entered {
			entered = true
			continue
		}
		if e := -int64(regs.Rax); e > 0 && e < 4096 {
			return fmt.Errorf("stub pid %d: execve %s: %w", pid, s.Path, unix.Errno(e))
		}
		return nil
	}
}
