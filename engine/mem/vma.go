package mem

import (
	"fmt"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
)

// VMA status bits of CRIU's vma_entry.status (criu/include/image.h); they
// are part of the image format.
const (
	AreaRegular  = 1 << 0 // contents matter: map it and fill it
	AreaStack    = 1 << 1
	AreaVsyscall = 1 << 2
	AreaVDSO     = 1 << 3
	AreaHeap     = 1 << 5
	FilePrivate  = 1 << 6
	FileShared   = 1 << 7
	AnonShared   = 1 << 8
	AnonPrivate  = 1 << 9
	AreaSysVIPC  = 1 << 10
	AreaSocket   = 1 << 11
	AreaVVAR     = 1 << 12 // [vvar] and, on kernels ≥ 6.13, [vvar_vclock]
	AreaAIORing  = 1 << 13
	AreaMemfd    = 1 << 14
)

// madvise advice kept in vma_entry.madv as a bitmap of 1<<MADV_*, read back
// from the VmFlags letters of smaps.
var madvFlags = []struct {
	flag   procfs.VmFlags
	advice uint
}{
	{procfs.VmDontCopy, unix.MADV_DONTFORK},
	{procfs.VmDontDump, unix.MADV_DONTDUMP},
	{procfs.VmHugePage, unix.MADV_HUGEPAGE},
	{procfs.VmNoHugePage, unix.MADV_NOHUGEPAGE},
	{procfs.VmMergeable, unix.MADV_MERGEABLE},
	{procfs.VmWipeOnFork, unix.MADV_WIPEONFORK},
	{procfs.VmSeqRead, unix.MADV_SEQUENTIAL},
	{procfs.VmRandRead, unix.MADV_RANDOM},
}

// mapFlags are the VmFlags CRIU's vma_entry keeps among the MAP_* flags
// (criu/proc_parse.c): mmap takes them back, but for MAP_LOCKED, which
// restore sets by an mlock once the VMA is mapped (MapVMA).
var mapFlags = []struct {
	flag procfs.VmFlags
	mmap uint32
}{
	{procfs.VmLocked, unix.MAP_LOCKED},
	{procfs.VmNoReserve, unix.MAP_NORESERVE},
}

// refusedFlags are the VmFlags of an ordinary mapping (not the vdso, vvar
// or vsyscall page, which the kernel makes) that restore cannot give
// back: the dump refuses the VMA, naming the flag, rather than bring it
// back without it.
var refusedFlags = []struct {
	flag procfs.VmFlags
	name string
	what string
}{
	{procfs.VmPFNMap, "pf", "raw page frames of a driver (VM_PFNMAP)"},
	{procfs.VmIO, "io", "device memory (VM_IO)"},
	{procfs.VmDontExpand, "de", "a driver's mapping that cannot grow (VM_DONTEXPAND)"},
	{procfs.VmMixedMap, "mm", "a driver's mixed mapping (VM_MIXEDMAP)"},
	{procfs.VmArch1, "ar", "an architecture-specific mapping (VM_ARCH_1)"},
	{procfs.VmSync, "sf", "synchronous page faults (MAP_SYNC on DAX)"},
	{procfs.VmHugeTLB, "ht", "huge pages (hugetlbfs, MAP_HUGETLB)"},
	{procfs.VmUffdMissing, "um", "a userfaultfd registration (missing pages)"},
	{procfs.VmUffdWP, "uw", "a userfaultfd registration (write-protect)"},
	{procfs.VmUffdMinor, "ui", "a userfaultfd registration (minor faults)"},
	{procfs.VmShadowStack, "ss", "a shadow stack"},
	{procfs.VmSealed, "sl", "sealed memory (mseal)"},
	{procfs.VmBTI, "bt", "branch target identification (arm64)"},
	{procfs.VmMTE, "mt", "memory tagging (arm64)"},
	{procfs.VmLockOnFault, "lf", "memory locked on fault (mlock2 MLOCK_ONFAULT), which CRIU's vma_entry cannot tell from mlock"},
}

// setVmFlags carries the VmFlags of an ordinary mapping into the image:
// those mmap takes into flags, the madvise advice into madv; a flag
// restore cannot give back, or one this gocr does not know (a newer
// kernel's), refuses the VMA by name. MAP_DROPPABLE (6.11) replaces
// MAP_PRIVATE, as CRIU records it.
func setVmFlags(v procfs.VMA, e *vma.VmaEntry) error {
	for _, r := range refusedFlags {
		if v.Flags.Has(r.flag) {
			return fmt.Errorf("VMA %#x-%#x (%s): VmFlags %s, %s: not supported", v.Start, v.End, vmaName(v), r.name, r.what)
		}
	}
	if v.UnknownFlags != "" {
		return fmt.Errorf("VMA %#x-%#x (%s): VmFlags %s: not known to this gocr, not supported", v.Start, v.End, vmaName(v), v.UnknownFlags)
	}
	flags := e.GetFlags()
	for _, m := range mapFlags {
		// Shared memory is the kernel's to account (shmem, SysV).
		if v.Flags.Has(m.flag) && (m.mmap != unix.MAP_NORESERVE || flags&unix.MAP_SHARED == 0) {
			flags |= m.mmap
		}
	}
	if v.Flags.Has(procfs.VmDroppable) {
		flags = flags&^unix.MAP_PRIVATE | unix.MAP_DROPPABLE
	}
	e.Flags = &flags
	setMadv(v, e)
	return nil
}

func vmaName(v procfs.VMA) string {
	if v.Path == "" {
		return "anonymous"
	}
	return v.Path
}

// FileIDs gives the image file id of the file behind a file mapping.
type FileIDs func(v procfs.VMA) (uint32, error)

// DumpVMA describes one VMA for the image. fileID is called for file
// mappings only. Errors name the VMA.
func DumpVMA(v procfs.VMA, fileID FileIDs) (*vma.VmaEntry, error) {
	e := &vma.VmaEntry{
		Start: ptr(v.Start), End: ptr(v.End), Pgoff: ptr(uint64(0)), Shmid: ptr(uint64(0)),
		Prot: ptr(uint32(v.Perms.Prot())), Fd: ptr(int64(-1)),
	}
	var flags, status uint32
	if v.Perms&procfs.PermShared != 0 {
		flags = unix.MAP_SHARED
	} else {
		flags = unix.MAP_PRIVATE
	}
	if v.Flags.Has(procfs.VmGrowsDown) {
		flags |= unix.MAP_GROWSDOWN
	}
	switch v.Kind() {
	case procfs.MapVDSO:
		status = AreaRegular | AreaVDSO | AnonPrivate
		flags |= unix.MAP_ANONYMOUS
	case procfs.MapVVAR, procfs.MapVVARVclock:
		status = AreaRegular | AreaVVAR | AnonPrivate
		flags |= unix.MAP_ANONYMOUS
	case procfs.MapVsyscall:
		status = AreaVsyscall
	case procfs.MapHeap, procfs.MapStack, procfs.MapAnon, procfs.MapFile:
		if IsSysVShm(v) {
			return dumpSysVVMA(v, e)
		}
		if IsSharedAnon(v) {
			// Shared anonymous memory is a shmem file the kernel made
			// ("/dev/zero (deleted)"): its inode is its id, and its pages
			// go to pagemap-shmem-<inode>.img (DumpShmem).
			status = AreaRegular | AnonShared
			flags |= unix.MAP_ANONYMOUS
			e.Shmid, e.Pgoff = ptr(v.Inode), ptr(v.Offset)
			break
		}
		if v.Kind() == procfs.MapFile {
			return dumpFileVMA(v, e, fileID)
		}
		if v.Perms&procfs.PermShared != 0 {
			return nil, fmt.Errorf("VMA %#x-%#x: shared anonymous memory without a shmem inode is not supported", v.Start, v.End)
		}
		status = AreaRegular | AnonPrivate
		flags |= unix.MAP_ANONYMOUS
		switch v.Kind() {
		case procfs.MapHeap:
			status |= AreaHeap
		case procfs.MapStack:
			status |= AreaStack
		}
	default:
		return nil, fmt.Errorf("VMA %#x-%#x (%s): special mapping gocr cannot restore", v.Start, v.End, v.Path)
	}
	e.Flags, e.Status = &flags, &status
	if status&(AreaVDSO|AreaVVAR|AreaVsyscall) != 0 {
		return e, nil // the kernel's, with the kernel's flags
	}
	if err := setVmFlags(v, e); err != nil {
		return nil, err
	}
	return e, nil
}

// dumpFileVMA describes a mapping of a file by its file id; fileID deals
// with a deleted file too. A memfd is a file like another here, marked as
// one: restore maps the memfd it remade, and its contents are the
// memfd's, not the VMA's.
func dumpFileVMA(v procfs.VMA, e *vma.VmaEntry, fileID FileIDs) (*vma.VmaEntry, error) {
	memfd := IsMemfd(v)
	id, err := fileID(v)
	if err != nil {
		return nil, fmt.Errorf("VMA %#x-%#x (%s): %w", v.Start, v.End, v.Path, err)
	}
	e.Shmid = ptr(uint64(id))
	e.Pgoff = ptr(v.Offset)
	flags, status := uint32(unix.MAP_PRIVATE), uint32(AreaRegular|FilePrivate)
	if v.Perms&procfs.PermShared != 0 {
		flags, status = unix.MAP_SHARED, AreaRegular|FileShared
	}
	if v.Flags.Has(procfs.VmGrowsDown) {
		flags |= unix.MAP_GROWSDOWN
	}
	if memfd {
		status |= AreaMemfd
	}
	e.Flags, e.Status = &flags, &status
	if err := setVmFlags(v, e); err != nil {
		return nil, err
	}
	return e, nil
}

// IsMemfd says whether a VMA maps a memfd: "/memfd:NAME (deleted)" on the
// kernel's internal shmem mount (device 0:N). The dump checks the device
// exactly when it opens the file.
func IsMemfd(v procfs.VMA) bool {
	return v.Kind() == procfs.MapFile && v.Deleted && strings.HasPrefix(v.Path, "/memfd:") && v.Major == 0
}

func setMadv(v procfs.VMA, e *vma.VmaEntry) {
	var madv uint64
	for _, m := range madvFlags {
		if v.Flags.Has(m.flag) {
			madv |= 1 << m.advice
		}
	}
	if madv != 0 {
		e.Madv = &madv
	}
}

// IsSharedAnon says whether a VMA is shared anonymous memory: a MAP_SHARED
// mapping of the kernel's "/dev/zero" shmem file, or one named by
// PR_SET_VMA_ANON_NAME ([anon_shmem:NAME]).
func IsSharedAnon(v procfs.VMA) bool {
	if v.Perms&procfs.PermShared == 0 {
		return false
	}
	return (v.Kind() == procfs.MapFile && v.Deleted && v.Path == "/dev/zero" && v.Major == 0) ||
		(v.Kind() == procfs.MapAnon && strings.HasPrefix(v.Path, "[anon_shmem:"))
}

// HasContents says whether the dump saves pages of this VMA: private memory
// (anonymous, or file pages copied on write). Shared file mappings keep
// their data in the file; the vdso and vvar come from the kernel.
func HasContents(e *vma.VmaEntry) bool {
	s := e.GetStatus()
	return s&AreaRegular != 0 && s&(AreaVDSO|AreaVVAR|FileShared) == 0 && s&(AnonPrivate|FilePrivate) != 0
}

func ptr[T any](v T) *T { return &v }

// Range is the address range [Start, End).
type Range struct{ Start, End uint64 }

func (r Range) overlaps(o Range) bool { return r.Start < o.End && o.Start < r.End }

// IsVDSO says whether the VMA is the kernel's [vdso] or [vvar] (or
// [vvar_vclock]): restore moves the task's own there instead of mapping it.
func IsVDSO(e *vma.VmaEntry) bool { return e.GetStatus()&(AreaVDSO|AreaVVAR) != 0 }

// FindHole returns the highest address below hi and at least lo where size
// bytes fit without coming within guard bytes of any busy range.
func FindHole(busy []Range, size, lo, hi, guard uint64) (uint64, bool) {
	cand := (hi - size) &^ (pageSize - 1)
	for cand >= lo {
		r := Range{cand - guard, cand + size + guard}
		moved := false
		for _, b := range busy {
			if r.overlaps(b) {
				if b.Start < size+guard {
					return 0, false
				}
				cand = (b.Start - size - guard) &^ (pageSize - 1)
				moved = true
				break
			}
		}
		if !moved {
			return cand, true
		}
	}
	return 0, false
}

const pageSize = 4096

// MapVMA maps one VMA of the image at its address, with MAP_FIXED: fd is
// the task's fd of the mapped file, or -1 for anonymous memory. The
// madvise bits the VMA had are set again.
func MapVMA(t *remote.Task, e *vma.VmaEntry, fd int) error {
	start, length := e.GetStart(), e.GetEnd()-e.GetStart()
	flags := uint64(e.GetFlags()) | unix.MAP_FIXED
	off := e.GetPgoff()
	if fd < 0 {
		flags |= unix.MAP_ANONYMOUS
		off = 0
	} else {
		flags &^= unix.MAP_ANONYMOUS // shared anonymous memory comes as its shmem file
	}
	flags &^= unix.MAP_LOCKED // locked below, where a failure is named
	got, err := t.Syscall(unix.SYS_MMAP, start, length, uint64(e.GetProt()), flags, uint64(int64(fd)), off)
	if err != nil {
		return fmt.Errorf("map VMA %#x-%#x (prot %#x flags %#x): %w", start, e.GetEnd(), e.GetProt(), flags, err)
	}
	if got != start {
		return fmt.Errorf("map VMA %#x-%#x: mapped at %#x", start, e.GetEnd(), got)
	}
	if err := advise(t, start, e.GetEnd(), e.GetMadv()); err != nil {
		return err
	}
	return lock(t, e)
}

// lock mlocks a VMA the image has locked (MAP_LOCKED in its flags). The
// stub still has gocr's credentials, CAP_IPC_LOCK with them; without it
// RLIMIT_MEMLOCK bounds what may be locked.
func lock(t *remote.Task, e *vma.VmaEntry) error {
	if e.GetFlags()&unix.MAP_LOCKED == 0 {
		return nil
	}
	if _, err := t.Syscall(unix.SYS_MLOCK, e.GetStart(), e.GetEnd()-e.GetStart()); err != nil {
		return fmt.Errorf("VMA %#x-%#x: mlock: %w", e.GetStart(), e.GetEnd(), err)
	}
	return nil
}

// UnmapExcept removes every mapping of the task (as /proc/PID/maps lists
// them) that does not overlap one of keep.
func UnmapExcept(t *remote.Task, maps []procfs.VMA, keep []Range) error {
	var runs []Range
	for _, m := range maps {
		if m.Kind() == procfs.MapVsyscall {
			continue
		}
		r := Range{m.Start, m.End}
		kept := false
		for _, k := range keep {
			kept = kept || r.overlaps(k)
		}
		if kept {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].End == r.Start {
			runs[n-1].End = r.End
			continue
		}
		runs = append(runs, r)
	}
	for _, r := range runs {
		if _, err := t.Syscall(unix.SYS_MUNMAP, r.Start, r.End-r.Start); err != nil {
			return fmt.Errorf("unmap %#x-%#x of the stub: %w", r.Start, r.End, err)
		}
	}
	return nil
}

// VDSOMaps returns the task's [vvar], [vvar_vclock] and [vdso] mappings,
// by address.
func VDSOMaps(maps []procfs.VMA) []Range {
	var out []Range
	for _, m := range maps {
		switch m.Kind() {
		case procfs.MapVDSO, procfs.MapVVAR, procfs.MapVVARVclock:
			out = append(out, Range{m.Start, m.End})
		}
	}
	return out
}

// MoveVDSO moves the task's vdso mappings (have, from VDSOMaps) to where
// the image had its own, all by the same delta: the vdso finds its data
// pages at a fixed offset from itself, so moving one alone breaks the
// first clock_gettime. The kernel must be the one that made the image (the
// same sizes and order), or the image's vdso code would not match; a
// mismatch is refused. When source and destination overlap, the mappings
// go through a hole first (tmp, from FindHole). Call it from inside the
// task: the kernel only lets a task move its own vdso.
func MoveVDSO(t *remote.Task, have []Range, image []*vma.VmaEntry, tmp uint64) error {
	var want []Range
	for _, e := range image {
		if IsVDSO(e) {
			want = append(want, Range{e.GetStart(), e.GetEnd()})
		}
	}
	if len(want) == 0 {
		for _, r := range have {
			if _, err := t.Syscall(unix.SYS_MUNMAP, r.Start, r.End-r.Start); err != nil {
				return fmt.Errorf("unmap vdso %#x-%#x: %w", r.Start, r.End, err)
			}
		}
		return nil
	}
	if len(want) != len(have) {
		return fmt.Errorf("the image has %d vdso/vvar mappings, this kernel %d: images from another kernel are not supported", len(want), len(have))
	}
	delta := want[0].Start - have[0].Start
	for i := range want {
		if want[i].End-want[i].Start != have[i].End-have[i].Start || want[i].Start-have[i].Start != delta {
			return fmt.Errorf("vdso/vvar mapping %d: image %#x-%#x, this kernel's %#x-%#x have other sizes: images from another kernel are not supported",
				i, want[i].Start, want[i].End, have[i].Start, have[i].End)
		}
	}
	if delta == 0 {
		return nil
	}
	move := func(from []Range, to uint64) ([]Range, error) {
		out := make([]Range, len(from))
		for i, r := range from {
			dst := to + (r.Start - from[0].Start)
			if _, err := t.Syscall(unix.SYS_MREMAP, r.Start, r.End-r.Start, r.End-r.Start,
				unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, dst); err != nil {
				return nil, fmt.Errorf("move vdso mapping %#x-%#x to %#x: %w", r.Start, r.End, dst, err)
			}
			out[i] = Range{dst, dst + r.End - r.Start}
		}
		return out, nil
	}
	span := func(rs []Range) Range { return Range{rs[0].Start, rs[len(rs)-1].End} }
	cur := have
	if span(have).overlaps(span(want)) {
		var err error
		if cur, err = move(cur, tmp); err != nil {
			return err
		}
	}
	_, err := move(cur, want[0].Start)
	return err
}
