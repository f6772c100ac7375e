package kernel

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

type result struct {
	found  bool
	detail string
}

// ptraceResults are the answers of the ptrace requests, all asked of one
// throwaway child.
type ptraceResults struct {
	peeksiginfo, getsigmask, rseq              result
	suspendSeccomp, seccompFilter, seccompMeta result
}

func (e *probeEnv) ptraceProbes() *ptraceResults {
	if e.ptrace == nil {
		e.ptrace = runPtraceProbes()
	}
	return e.ptrace
}

func probePeeksiginfo(e *probeEnv) (bool, string) {
	r := e.ptraceProbes().peeksiginfo
	return r.found, r.detail
}

func probeGetsigmask(e *probeEnv) (bool, string) {
	r := e.ptraceProbes().getsigmask
	return r.found, r.detail
}

func probeRseqConfig(e *probeEnv) (bool, string) {
	r := e.ptraceProbes().rseq
	return r.found, r.detail
}

func probeSuspendSeccomp(e *probeEnv) (bool, string) {
	r := e.ptraceProbes().suspendSeccomp
	return r.found, r.detail
}

func probeSeccompGetFilter(e *probeEnv) (bool, string) {
	r := e.ptraceProbes().seccompFilter
	return r.found, r.detail
}

func probeSeccompMetadata(e *probeEnv) (bool, string) {
	r := e.ptraceProbes().seccompMeta
	return r.found, r.detail
}

// runPtraceProbes starts this very binary with PTRACE_TRACEME, so it stops
// with SIGTRAP right after execve, before running a single instruction of
// its own: no external program is needed (an initramfs has none) and the
// child cannot do anything. The requests are then tried on it, and it is
// killed and reaped. ptrace is per OS thread: everything runs locked.
func runPtraceProbes() *ptraceResults {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	fail := func(err error) *ptraceResults {
		r := result{detail: "no traced child: " + err.Error()}
		return &ptraceResults{r, r, r, r, r, r}
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"gocr-probe-child"}
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	}()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("wait4 %d: %w", pid, err))
		}
		break
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fail(fmt.Errorf("child %d did not stop at exec (status %#x)", pid, uint32(ws)))
	}

	var r ptraceResults

	var siginfo [128]byte
	args := ptracePeeksiginfoArgs{Nr: 1}
	n, err := ptrace(unix.PTRACE_PEEKSIGINFO, pid, uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&siginfo[0])))
	r.peeksiginfo = requestResult("PTRACE_PEEKSIGINFO", n, err, func(n uintptr) string {
		return fmt.Sprintf("PTRACE_PEEKSIGINFO: %d pending signals", n)
	})

	var mask uint64
	n, err = ptrace(unix.PTRACE_GETSIGMASK, pid, 8, uintptr(unsafe.Pointer(&mask)))
	r.getsigmask = requestResult("PTRACE_GETSIGMASK", n, err, func(uintptr) string {
		return fmt.Sprintf("PTRACE_GETSIGMASK: mask %#x", mask)
	})

	var conf ptraceRseqConfiguration
	n, err = ptrace(unix.PTRACE_GET_RSEQ_CONFIGURATION, pid, unsafe.Sizeof(conf), uintptr(unsafe.Pointer(&conf)))
	r.rseq = requestResult("PTRACE_GET_RSEQ_CONFIGURATION", n, err, func(n uintptr) string {
		return fmt.Sprintf("PTRACE_GET_RSEQ_CONFIGURATION: %d-byte configuration", n)
	})
	if err == nil && n != unsafe.Sizeof(conf) {
		r.rseq = result{detail: fmt.Sprintf("PTRACE_GET_RSEQ_CONFIGURATION returned %d, want %d", n, unsafe.Sizeof(conf))}
	}

	// The child has no filter: a kernel that has the request answers
	// EINVAL (not in filter mode), one without it EIO; EACCES means gocr
	// lacks CAP_SYS_ADMIN or runs under seccomp itself.
	_, err = ptrace(unix.PTRACE_SECCOMP_GET_FILTER, pid, 0, 0)
	r.seccompFilter = seccompRequestResult("PTRACE_SECCOMP_GET_FILTER", err)
	var meta [16]byte // struct seccomp_metadata, filter_off 0
	_, err = ptrace(unix.PTRACE_SECCOMP_GET_METADATA, pid, uintptr(len(meta)), uintptr(unsafe.Pointer(&meta[0])))
	r.seccompMeta = seccompRequestResult("PTRACE_SECCOMP_GET_METADATA", err)
	// Last: it changes the child's options (it is killed next anyway).
	if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_SUSPEND_SECCOMP); err != nil {
		why := err.Error()
		if errors.Is(err, unix.EINVAL) {
			why = "EINVAL (unknown option: no CONFIG_CHECKPOINT_RESTORE)"
		} else if errors.Is(err, unix.EPERM) {
			why = "EPERM (needs CAP_SYS_ADMIN, and gocr not under seccomp)"
		}
		r.suspendSeccomp = result{detail: "PTRACE_SETOPTIONS PTRACE_O_SUSPEND_SECCOMP: " + why}
	} else {
		r.suspendSeccomp = result{found: true, detail: "PTRACE_O_SUSPEND_SECCOMP set on a traced child"}
	}
	return &r
}

// requestResult turns a ptrace answer into a result: EIO is the kernel's
// "no such request".
func requestResult(req string, n uintptr, err error, ok func(uintptr) string) result {
	switch {
	case err == nil:
		return result{found: true, detail: ok(n)}
	case errors.Is(err, unix.EIO):
		return result{detail: req + ": EIO (unknown request)"}
	default:
		return result{detail: fmt.Sprintf("%s: %v", req, err)}
	}
}

// seccompRequestResult judges a seccomp ptrace request made of a task in
// no filter mode.
func seccompRequestResult(req string, err error) result {
	switch {
	case errors.Is(err, unix.EINVAL):
		return result{found: true, detail: req + ": EINVAL for a task without filters, as expected"}
	case err == nil:
		return result{found: true, detail: req + ": answered"}
	case errors.Is(err, unix.EIO):
		return result{detail: req + ": EIO (unknown request: no CONFIG_SECCOMP_FILTER or CONFIG_CHECKPOINT_RESTORE)"}
	case errors.Is(err, unix.EACCES):
		return result{detail: req + ": EACCES (needs CAP_SYS_ADMIN, and gocr not under seccomp)"}
	default:
		return result{detail: fmt.Sprintf("%s: %v", req, err)}
	}
}

func ptrace(req int, pid int, addr, data uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}
