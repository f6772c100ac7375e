package image

import (
	"fmt"
	"strings"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
)

// Bounds for values restore hands to the kernel. The image is input: each
// value is checked before it reaches a system call running as root.
const (
	PidMaxLimit   = 1 << 22 // PID_MAX_LIMIT on 64-bit kernels
	FdLimit       = 1 << 20 // the default fs.nr_open
	PathMax       = 4096    // PATH_MAX, counting the NUL
	TaskCommLen   = 16      // TASK_COMM_LEN, counting the NUL
	MaxAuxvWords  = 128     // generous bound on mm_saved_auxv (the kernel keeps ~50 words)
	NumSigactions = 64 - 2  // CRIU stores signals 1..64 but SIGKILL and SIGSTOP
)

// mmap constants the validator needs (x86_64 values).
const (
	protMask      = 0x1 | 0x2 | 0x4 // PROT_READ|PROT_WRITE|PROT_EXEC
	mapShared     = 0x01
	mapPrivate    = 0x02
	mapDroppable  = 0x08 // MAP_DROPPABLE (6.11): private memory the kernel may free
	mapTypeMask   = 0x0f
	mapAllowed    = mapShared | mapPrivate | mapDroppable | 0x20 /*ANONYMOUS*/ | 0x100 /*GROWSDOWN*/ | 0x2000 /*LOCKED*/ | 0x4000 /*NORESERVE*/ | 0x8000 /*POPULATE*/ | 0x20000 /*STACK*/ | 0x40000 /*HUGETLB*/ | 0x3f<<26 /*huge page size*/
	vmaAreaVsys   = 1 << 2
	vmaFilePriv   = 1 << 6
	vmaFileShared = 1 << 7
	vmaUnsupp     = 1 << 31
)

// ValidateMM checks an mm image's VMAs and address-space fields: VMAs
// page-aligned, non-empty, inside user space (or exactly the legacy
// vsyscall page), sorted and disjoint, with known prot and flag bits and
// exactly one of MAP_SHARED, MAP_PRIVATE and MAP_DROPPABLE.
func ValidateMM(file string, m *mm.MmEntry) error {
	end := DefaultLimits().UserSpaceEnd
	bad := func(field, format string, args ...any) error {
		return errorf(file, 0, field, ErrInvalid, format, args...)
	}
	var prevEnd uint64
	for i, v := range m.GetVmas() {
		f := func(name string) string { return fmt.Sprintf("vmas[%d].%s", i, name) }
		start, stop := v.GetStart(), v.GetEnd()
		vsyscall := v.GetStatus()&vmaAreaVsys != 0
		mapType := v.GetFlags() & mapTypeMask
		switch {
		case start%PageSize != 0:
			return bad(f("start"), "%#x: not page-aligned", start)
		case stop%PageSize != 0:
			return bad(f("end"), "%#x: not page-aligned", stop)
		case start >= stop:
			return bad(f("end"), "%#x: not above start %#x", stop, start)
		case vsyscall && (start != VsyscallStart || stop != VsyscallEnd):
			return bad(f("start"), "%#x-%#x: a vsyscall VMA must be %#x-%#x", start, stop, uint64(VsyscallStart), uint64(VsyscallEnd))
		case !vsyscall && stop > end:
			return bad(f("end"), "%#x: outside user address space (ends %#x)", stop, end)
		case start < prevEnd:
			return bad(f("start"), "%#x: overlaps or precedes the previous VMA, which ends at %#x", start, prevEnd)
		case v.GetProt()&^protMask != 0:
			return bad(f("prot"), "%#x: unknown bits", v.GetProt())
		case v.GetFlags()&^mapAllowed != 0:
			return bad(f("flags"), "%#x: unknown bits %#x", v.GetFlags(), v.GetFlags()&^mapAllowed)
		case mapType != mapShared && mapType != mapPrivate && mapType != mapDroppable:
			return bad(f("flags"), "%#x: needs exactly one of MAP_SHARED, MAP_PRIVATE and MAP_DROPPABLE", v.GetFlags())
		case v.GetStatus()&vmaUnsupp != 0:
			return bad(f("status"), "%#x: VMA marked unsupported at dump", v.GetStatus())
		case v.GetStatus()&(vmaFilePriv|vmaFileShared) != 0 && v.GetPgoff()%PageSize != 0:
			return bad(f("pgoff"), "%#x: file offset not page-aligned", v.GetPgoff())
		}
		prevEnd = stop
	}
	pairs := []struct {
		lo, hi         uint64
		loName, hiName string
	}{
		{m.GetMmStartCode(), m.GetMmEndCode(), "mm_start_code", "mm_end_code"},
		{m.GetMmStartData(), m.GetMmEndData(), "mm_start_data", "mm_end_data"},
		{m.GetMmStartBrk(), m.GetMmBrk(), "mm_start_brk", "mm_brk"},
		{m.GetMmArgStart(), m.GetMmArgEnd(), "mm_arg_start", "mm_arg_end"},
		{m.GetMmEnvStart(), m.GetMmEnvEnd(), "mm_env_start", "mm_env_end"},
	}
	for _, p := range pairs {
		if p.hi > end {
			return bad(p.hiName, "%#x: outside user address space (ends %#x)", p.hi, end)
		}
		if p.lo > p.hi {
			return bad(p.loName, "%#x: above %s %#x", p.lo, p.hiName, p.hi)
		}
	}
	if s := m.GetMmStartStack(); s > end {
		return bad("mm_start_stack", "%#x: outside user address space (ends %#x)", s, end)
	}
	if n := len(m.GetMmSavedAuxv()); n%2 != 0 || n > MaxAuxvWords {
		return bad("mm_saved_auxv", "%d words: want an even number, at most %d", n, MaxAuxvWords)
	}
	return nil
}

// ValidatePath checks a path restore will open: absolute, no NUL, shorter
// than PATH_MAX, and no ".." component (the kernel never reports one, so
// one in an image is tampering, and it could climb out of a restore root).
func ValidatePath(file, field, p string) error {
	bad := func(format string, args ...any) error { return errorf(file, -1, field, ErrInvalid, format, args...) }
	switch {
	case p == "":
		return bad("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return bad("%q: contains NUL", p)
	case len(p) >= PathMax:
		return bad("%d bytes: longer than PATH_MAX", len(p))
	case p[0] != '/':
		return bad("%q: not absolute", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return bad("%q: contains a .. component", p)
		}
	}
	return nil
}

// ValidateFd checks a file descriptor number: 0 ≤ fd < FdLimit.
func ValidateFd(file, field string, fd int64) error {
	if fd < 0 || fd >= FdLimit {
		return errorf(file, -1, field, ErrInvalid, "fd %d: outside 0..%d", fd, FdLimit-1)
	}
	return nil
}

// ValidatePid checks a pid or tid: 1 ≤ pid ≤ PidMaxLimit.
func ValidatePid(file, field string, pid uint32) error {
	if pid < 1 || pid > PidMaxLimit {
		return errorf(file, -1, field, ErrInvalid, "%d: outside 1..%d", pid, PidMaxLimit)
	}
	return nil
}

// ValidatePstree checks the process tree: valid, unique pids and tids; the
// first entry is the root (ppid 0) and every other parent is in the tree,
// listed before its children; each task lists itself among its threads.
func ValidatePstree(file string, tree []*pstree.PstreeEntry) error {
	if len(tree) == 0 {
		return errorf(file, -1, "", ErrInvalid, "empty process tree")
	}
	seen := make(map[uint32]bool)
	procs := make(map[uint32]bool)
	for i, e := range tree {
		bad := func(field, format string, args ...any) error {
			return errorf(file, i, field, ErrInvalid, format, args...)
		}
		if p := e.GetPid(); p < 1 || p > PidMaxLimit {
			return bad("pid", "%d: outside 1..%d", e.GetPid(), PidMaxLimit)
		}
		// pgid and sid are 0 when the leader lives outside the dumped pid
		// namespace.
		if e.GetPgid() > PidMaxLimit {
			return bad("pgid", "%d: above %d", e.GetPgid(), PidMaxLimit)
		}
		if e.GetSid() > PidMaxLimit {
			return bad("sid", "%d: above %d", e.GetSid(), PidMaxLimit)
		}
		switch ppid := e.GetPpid(); {
		case i == 0 && ppid != 0:
			return bad("ppid", "%d: the root task comes first and has ppid 0", ppid)
		case i > 0 && !procs[ppid]:
			return bad("ppid", "%d: not a task listed before pid %d", ppid, e.GetPid())
		}
		self := false
		for j, t := range e.GetThreads() {
			field := fmt.Sprintf("threads[%d]", j)
			if t < 1 || t > PidMaxLimit {
				return bad(field, "%d: outside 1..%d", t, PidMaxLimit)
			}
			if seen[t] {
				return bad(field, "%d: listed twice in the tree", t)
			}
			seen[t] = true
			self = self || t == e.GetPid()
		}
		if !self {
			return bad("threads", "%v: does not hold the task's own pid %d", e.GetThreads(), e.GetPid())
		}
		procs[e.GetPid()] = true
	}
	return nil
}

// ValidateCore checks the parts of a core image restore feeds the kernel
// directly: x86_64 with registers, a comm that fits, the sigaction count
// CRIU writes, and FPU state areas of the sizes the kernel uses.
func ValidateCore(file string, c *criu_core.CoreEntry) error {
	bad := func(field, format string, args ...any) error {
		return errorf(file, 0, field, ErrInvalid, format, args...)
	}
	if c.GetMtype() != criu_core.CoreEntry_X86_64 {
		return bad("mtype", "%s: gocr restores X86_64 only", c.GetMtype())
	}
	ti := c.GetThreadInfo()
	if ti == nil {
		return bad("thread_info", "missing: no registers")
	}
	fp := ti.GetFpregs()
	for _, a := range []struct {
		name string
		n    int
		want int
	}{
		{"thread_info.fpregs.st_space", len(fp.GetStSpace()), 32},
		{"thread_info.fpregs.xmm_space", len(fp.GetXmmSpace()), 64},
	} {
		if a.n != a.want {
			return bad(a.name, "%d words, want %d", a.n, a.want)
		}
	}
	if x := fp.GetXsave(); x != nil && len(x.GetYmmhSpace()) != 0 && len(x.GetYmmhSpace()) != 64 {
		return bad("thread_info.fpregs.xsave.ymmh_space", "%d words, want 64", len(x.GetYmmhSpace()))
	}
	if tc := c.GetTc(); tc != nil {
		if n := len(tc.GetComm()); n >= TaskCommLen {
			return bad("tc.comm", "%d bytes, at most %d", n, TaskCommLen-1)
		}
		if n := len(tc.GetSigactions()); n != 0 && n != NumSigactions {
			return bad("tc.sigactions", "%d entries, want %d (signals 1..64 but SIGKILL and SIGSTOP)", n, NumSigactions)
		}
	}
	if tc := c.GetThreadCore(); tc != nil && len(tc.GetComm()) >= TaskCommLen {
		return bad("thread_core.comm", "%d bytes, at most %d", len(tc.GetComm()), TaskCommLen-1)
	}
	return nil
}

// SigactionSignal gives the signal number of tc.sigactions[i]: CRIU skips
// SIGKILL (9) and SIGSTOP (19), which cannot have handlers.
func SigactionSignal(i int) int {
	sig := i + 1
	if sig >= 9 {
		sig++
	}
	if sig >= 19 {
		sig++
	}
	return sig
}

// SigactionIndex is the inverse of SigactionSignal; ok is false for SIGKILL,
// SIGSTOP and numbers outside 1..64.
func SigactionIndex(sig int) (i int, ok bool) {
	switch {
	case sig < 1 || sig > 64 || sig == 9 || sig == 19:
		return 0, false
	case sig > 19:
		return sig - 3, true
	case sig > 9:
		return sig - 2, true
	}
	return sig - 1, true
}
