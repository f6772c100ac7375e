package mem

import (
	"errors"
	"fmt"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
)

// SysV shared memory attachments. A segment is a file of the kernel's
// internal shmem mount named "SYSV<key, 8 hex digits>", deleted, whose
// inode number is the segment's id; shmat maps it whole from offset 0.
// The image marks such a VMA as CRIU does (status REGULAR | ANON_SHARED |
// SYSVIPC, shmid the segment's id) and keeps no pages for it: the segment
// is saved with its ipc namespace (engine/ns/ipc_shm.go) or, in a
// namespace the tree does not own, outlives the dump. fdflags says
// whether the attachment may ever be written (O_RDWR) or was made
// SHM_RDONLY (O_RDONLY): prot alone cannot tell a read-only attachment
// from a writable one mprotect'ed read-only.

// IsSysVShm says whether a VMA maps a SysV shared memory segment.
func IsSysVShm(v procfs.VMA) bool {
	return v.Kind() == procfs.MapFile && v.Deleted && v.Major == 0 && v.Perms&procfs.PermShared != 0 &&
		strings.HasPrefix(v.Path, "/SYSV") && len(v.Path) == len("/SYSV")+8
}

// IsSysV says whether an image VMA is a SysV shm attachment.
func IsSysV(e *vma.VmaEntry) bool { return e.GetStatus()&AreaSysVIPC != 0 }

// dumpSysVVMA describes an attachment.
func dumpSysVVMA(v procfs.VMA, e *vma.VmaEntry) (*vma.VmaEntry, error) {
	if v.Flags.Has(procfs.VmHugeTLB) {
		return nil, fmt.Errorf("VMA %#x-%#x attaches huge page SysV segment %d: not supported yet", v.Start, v.End, v.Inode)
	}
	flags, status := uint32(unix.MAP_SHARED|unix.MAP_ANONYMOUS), uint32(AreaRegular|AnonShared|AreaSysVIPC)
	fdflags := uint32(unix.O_RDONLY)
	if v.Flags.Has(procfs.VmMayWrite) {
		fdflags = unix.O_RDWR
	}
	e.Flags, e.Status, e.Fdflags = &flags, &status, &fdflags
	e.Shmid, e.Pgoff = ptr(v.Inode), ptr(v.Offset)
	if err := setVmFlags(v, e); err != nil {
		return nil, err
	}
	return e, nil
}

// sysvAttachment is one shmat of a segment: the VMAs of the image that
// came from it (mprotect and munmap split an attachment into pieces).
type sysvAttachment struct {
	shmid, base uint64
	pieces      []*vma.VmaEntry
}

// sysvAttachments groups the SysV VMAs of an image by attachment: same
// segment, same address of offset 0.
func sysvAttachments(vmas []*vma.VmaEntry) []*sysvAttachment {
	var out []*sysvAttachment
	index := map[[2]uint64]*sysvAttachment{}
	for _, e := range vmas {
		if !IsSysV(e) {
			continue
		}
		key := [2]uint64{e.GetShmid(), e.GetStart() - e.GetPgoff()}
		a := index[key]
		if a == nil {
			a = &sysvAttachment{shmid: key[0], base: key[1]}
			index[key] = a
			out = append(out, a)
		}
		a.pieces = append(a.pieces, e)
	}
	return out
}

// shmatFlags are the flags that attach the segment as the dump found it:
// read-only if it could never be written (fdflags; an image without them,
// CRIU's, if no piece is writable), executable if a piece is.
func (a *sysvAttachment) shmatFlags() (flags uint64, prot uint32) {
	writable, exec := false, false
	for _, e := range a.pieces {
		if e.Fdflags != nil {
			writable = writable || e.GetFdflags()&unix.O_ACCMODE != unix.O_RDONLY
		} else {
			writable = writable || e.GetProt()&unix.PROT_WRITE != 0
		}
		exec = exec || e.GetProt()&unix.PROT_EXEC != 0
	}
	prot = unix.PROT_READ
	if !writable {
		flags |= unix.SHM_RDONLY
	} else {
		prot |= unix.PROT_WRITE
	}
	if exec {
		flags |= abi.ShmExec
		prot |= unix.PROT_EXEC
	}
	return flags, prot
}

// AttachSysV attaches, from inside the task, every SysV segment the image
// VMAs of the task attach, each at its address: the segments must exist
// already (in the task's ipc namespace, by id). What the task had
// unmapped of an attachment is unmapped again, and each piece gets its
// protection and madvise bits. Call it before the other VMAs are mapped:
// shmat refuses a range that is not free.
func AttachSysV(t *remote.Task, pid int, vmas []*vma.VmaEntry) error {
	for _, a := range sysvAttachments(vmas) {
		if err := a.attach(t, pid); err != nil {
			return fmt.Errorf("SysV shm segment %d at %#x: %w", a.shmid, a.base, err)
		}
	}
	return nil
}

func (a *sysvAttachment) attach(t *remote.Task, pid int) error {
	flags, prot := a.shmatFlags()
	got, err := t.Syscall(unix.SYS_SHMAT, a.shmid, a.base, flags)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM) {
		return fmt.Errorf("shmat: %w: no such segment, or no room for it (a segment of an ipc namespace the dump did not own must outlive the dump)", err)
	}
	if err != nil {
		return fmt.Errorf("shmat (flags %#x): %w", flags, err)
	}
	if got != a.base {
		return fmt.Errorf("shmat attached it at %#x", got)
	}
	end, err := mappingEnd(pid, a.base)
	if err != nil {
		return err
	}
	if err := a.trim(t, end); err != nil {
		return err
	}
	for _, e := range a.pieces {
		if e.GetProt() != prot {
			if _, err := t.Syscall(unix.SYS_MPROTECT, e.GetStart(), e.GetEnd()-e.GetStart(), uint64(e.GetProt())); err != nil {
				return fmt.Errorf("mprotect %#x-%#x to %#x: %w", e.GetStart(), e.GetEnd(), e.GetProt(), err)
			}
		}
		if err := advise(t, e.GetStart(), e.GetEnd(), e.GetMadv()); err != nil {
			return err
		}
		if err := lock(t, e); err != nil {
			return err
		}
	}
	return nil
}

// trim unmaps what lies between the attachment's pieces, up to end.
func (a *sysvAttachment) trim(t *remote.Task, end uint64) error {
	at := a.base
	gap := func(from, to uint64) error {
		if from >= to {
			return nil
		}
		if _, err := t.Syscall(unix.SYS_MUNMAP, from, to-from); err != nil {
			return fmt.Errorf("unmap %#x-%#x: %w", from, to, err)
		}
		return nil
	}
	for _, e := range a.pieces { // in address order, as the image lists VMAs
		if e.GetEnd() > end {
			return fmt.Errorf("VMA %#x-%#x reaches past the attachment's end %#x: the segment is smaller than at dump", e.GetStart(), e.GetEnd(), end)
		}
		if err := gap(at, e.GetStart()); err != nil {
			return err
		}
		at = e.GetEnd()
	}
	return gap(at, end)
}

// mappingEnd gives the end of the task's mapping that starts at addr.
func mappingEnd(pid int, addr uint64) (uint64, error) {
	maps, err := procfs.Maps(pid)
	if err != nil {
		return 0, err
	}
	for _, m := range maps {
		if m.Start == addr {
			return m.End, nil
		}
	}
	return 0, fmt.Errorf("no mapping starts at %#x after shmat", addr)
}
