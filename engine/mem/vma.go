package mem

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
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
	case procfs.MapHeap, procfs.MapStack, procfs.MapAnon:
		if v.Perms&procfs.PermShared != 0 {
			return nil, fmt.Errorf("VMA %#x-%#x: shared anonymous memory is not supported yet", v.Start, v.End)
		}
		status = AreaRegular | AnonPrivate
		flags |= unix.MAP_ANONYMOUS
		switch v.Kind() {
		case procfs.MapHeap:
			status |= AreaHeap
		case procfs.MapStack:
			status |= AreaStack
		}
	case procfs.MapFile:
		if v.Deleted {
			return nil, fmt.Errorf("VMA %#x-%#x maps deleted file %s: not supported yet", v.Start, v.End, v.Path)
		}
		id, err := fileID(v)
		if err != nil {
			return nil, fmt.Errorf("VMA %#x-%#x (%s): %w", v.Start, v.End, v.Path, err)
		}
		e.Shmid = ptr(uint64(id))
		e.Pgoff = ptr(v.Offset)
		if v.Perms&procfs.PermShared != 0 {
			status = AreaRegular | FileShared
		} else {
			status = AreaRegular | FilePrivate
		}
	default:
		return nil, fmt.Errorf("VMA %#x-%#x (%s): special mapping gocr cannot restore", v.Start, v.End, v.Path)
	}
	var madv uint64
	for _, m := range madvFlags {
		if v.Flags.Has(m.flag) {
			madv |= 1 << m.advice
		}
	}
	if madv != 0 {
		e.Madv = &madv
	}
	e.Flags, e.Status = &flags, &status
	return e, nil
}

// HasContents says whether the dump saves pages of this VMA: private memory
// (anonymous, or file pages copied on write). Shared file mappings keep
// their data in the file; the vdso and vvar come from the kernel.
func HasContents(e *vma.VmaEntry) bool {
	s := e.GetStatus()
	return s&AreaRegular != 0 && s&(AreaVDSO|AreaVVAR|FileShared) == 0 && s&(AnonPrivate|FilePrivate) != 0
}

func ptr[T any](v T) *T { return &v }
