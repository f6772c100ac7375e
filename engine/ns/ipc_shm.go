package ns

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"unsafe"

	ipc_shm "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-shm"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
)

// SysV shared memory segments: ipcns-shm-ID.img holds an ipc_shm_entry per
// segment followed by its size bytes, padded to 4, CRIU's layout that crit
// decodes (CRIU ≥ 3.14 writes in_pagemaps and pagemap-shmem-<id>.img
// instead, which crit cannot tell apart from the raw layout once there are
// two segments; restore reads both). The processes' attachments are VMAs
// of their own (engine/mem/sysv.go), attached again by id once the
// segments exist.

const (
	shmDest     = abi.ShmDest
	shmCopyStep = 64 << 10 // restore copies in steps of this, skipping zeros
)

// shmSegment is one segment of the image; its contents stay in the image
// until restore copies them.
type shmSegment struct{ e *ipc_shm.IpcShmEntry }

// dumpShm writes ipcns-shm-ID.img with every segment of the calling
// thread's ipc namespace; tree are the pids of the dumped tree, whose
// attachments give a way to read a segment that changes nothing of it.
func dumpShm(dir *image.Dir, nsID uint32, ids IDMap, tree []int) error {
	list, err := sysvIDs("shm")
	if err != nil {
		return err
	}
	var attached map[uint64]string
	if len(list) > 0 {
		if attached, err = attachedSegments(tree); err != nil {
			return err
		}
	}
	w, err := dir.Writer(image.IpcnsShm, image.IpcnsShmFile(nsID))
	if err != nil {
		return err
	}
	for _, id := range list {
		if err := dumpSegment(w, id, ids, attached[uint64(id)]); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// attachedSegments finds, in the maps of the tree's processes, a
// /proc/PID/map_files link of an attachment of each segment, by id (the
// inode of the segment's file).
func attachedSegments(tree []int) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, pid := range tree {
		maps, err := procfs.Maps(pid)
		if err != nil {
			return nil, err
		}
		for _, v := range maps {
			if v.Kind() == procfs.MapFile && v.Deleted && v.Major == 0 && strings.HasPrefix(v.Path, "/SYSV") && out[v.Inode] == "" {
				out[v.Inode] = fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, v.Start, v.End)
			}
		}
	}
	return out, nil
}

// dumpSegment writes one segment and its contents, read through link (a
// map_files link of an attachment in the tree) if there is one.
func dumpSegment(w *image.Writer, id int, ids IDMap, link string) error {
	var ds abi.ShmidDS
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
		return fmt.Errorf("SysV shm segment %d: IPC_STAT: %w", id, err)
	}
	e := &ipc_shm.IpcShmEntry{Desc: ipcDesc(id, &ds.Perm, ids), Size: ptr(ds.Segsz)}
	f, err := openSegment(id, ds.Segsz, link)
	if err != nil {
		return fmt.Errorf("%s: %w", descName("shm segment", e.Desc), err)
	}
	defer f.Close()
	if err := w.WritePayload(e, f); err != nil {
		return fmt.Errorf("%s: %w", descName("shm segment", e.Desc), err)
	}
	return nil
}

// openSegment gives a file of the segment's own to read it through:
// reading the file, unlike a mapping, leaves untouched pages unallocated.
// The file comes from link, an attachment of the tree's, which changes
// nothing; a segment nobody has attached is attached read-only by gocr
// just for an open of its own /proc/self/map_files entry (which leaves
// gocr's pid and the time as the segment's last attach and detach).
// Huge page segments are refused: restore would not know to make one.
func openSegment(id int, size uint64, link string) (*os.File, error) {
	var f *os.File
	var err error
	if link != "" {
		f, err = os.Open(link)
	} else {
		f, err = openOwnAttachment(id, size)
	}
	if err != nil {
		return nil, err
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		f.Close()
		return nil, err
	}
	if sfs.Type == unix.HUGETLBFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("a huge page segment (SHM_HUGETLB): not supported yet")
	}
	return f, nil
}

// openOwnAttachment opens the segment's file through an attachment of
// gocr's own, gone again before it returns.
func openOwnAttachment(id int, size uint64) (*os.File, error) {
	mem, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("attach read-only: %w", err)
	}
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	f, err := os.Open(fmt.Sprintf("/proc/self/map_files/%x-%x", addr, addr+pageAlign(size)))
	if derr := unix.SysvShmDetach(mem); derr != nil && err == nil {
		f.Close()
		return nil, fmt.Errorf("detach: %w", derr)
	}
	return f, err
}

func pageAlign(n uint64) uint64 { return (n + 4095) &^ 4095 }

// readShm reads and checks ipcns-shm-ID.img; the contents are checked for
// length only.
func readShm(dir *image.Dir, nsID uint32) ([]*shmSegment, error) {
	name := image.IpcnsShmFile(nsID)
	if !dir.Exists(name) {
		return nil, nil
	}
	rd, err := dir.Reader(image.IpcnsShm, name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []*shmSegment
	for {
		e := &ipc_shm.IpcShmEntry{}
		if !rd.Next(e) {
			break
		}
		if e.GetDesc() == nil {
			return nil, fmt.Errorf("%s: entry %d: no desc", name, rd.Index())
		}
		out = append(out, &shmSegment{e: e})
	}
	return out, rd.Err()
}

// restoreShm makes every segment of ipcns-shm-ID.img in the calling
// thread's (fresh) ipc namespace, with its id, creator, contents, owner
// and mode, and locks those that were locked. It returns the ids of those
// that were removed while attached.
func restoreShm(dir *image.Dir, nsID uint32, ids IDMap) (removed []int, err error) {
	name := image.IpcnsShmFile(nsID)
	if !dir.Exists(name) {
		return nil, nil
	}
	rd, err := dir.Reader(image.IpcnsShm, name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for {
		e := &ipc_shm.IpcShmEntry{}
		if !rd.Next(e) {
			break
		}
		if err := restoreSegment(dir, e, rd.Payload(), ids); err != nil {
			return nil, err
		}
		if e.GetDesc().GetMode()&shmDest != 0 {
			removed = append(removed, int(e.GetDesc().GetId()))
		}
	}
	return removed, rd.Err()
}

// restoreSegment makes one segment and fills it from data (or from its
// pagemap-shmem image when the entry says in_pagemaps).
func restoreSegment(dir *image.Dir, e *ipc_shm.IpcShmEntry, data io.ReaderAt, ids IDMap) error {
	d, size := e.GetDesc(), e.GetSize()
	what := descName("shm segment", d)
	flags := int(d.GetMode()&abi.IpcModeBits) | unix.IPC_CREAT | unix.IPC_EXCL
	if err := makeIPC("shm segment", "kernel/shm_next_id", d, ids, func() (int, error) {
		return unix.SysvShmGet(int(d.GetKey()), int(size), flags)
	}); err != nil {
		return err
	}
	if err := fillSegment(dir, e, data); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var ds abi.ShmidDS
	if _, err := unix.SysvShmCtl(int(d.GetId()), unix.IPC_STAT, &ds); err != nil {
		return fmt.Errorf("%s: IPC_STAT: %w", what, err)
	}
	if err := setPerm("shm segment", &ds.Perm, d, ids); err != nil {
		return err
	}
	if _, err := unix.SysvShmCtl(int(d.GetId()), unix.IPC_SET, &ds); err != nil {
		return fmt.Errorf("%s: IPC_SET uid %d gid %d mode %#o: %w", what, ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode, err)
	}
	if d.GetMode()&abi.ShmLocked != 0 {
		if _, err := unix.SysvShmCtl(int(d.GetId()), abi.ShmLock, nil); err != nil {
			return fmt.Errorf("%s: SHM_LOCK: %w", what, err)
		}
	}
	return nil
}

// fillSegment copies the contents into the fresh segment through an
// attachment of gocr's own. Runs of zeros are skipped: the segment starts
// zeroed, and writing them would allocate pages it never had.
func fillSegment(dir *image.Dir, e *ipc_shm.IpcShmEntry, data io.ReaderAt) error {
	id, size := int(e.GetDesc().GetId()), e.GetSize()
	if size == 0 {
		return nil
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if uint64(len(mem)) < size {
		err = fmt.Errorf("attached %d bytes, want %d", len(mem), size)
	} else if e.GetInPagemaps() {
		err = fillFromPagemap(dir, uint64(id), mem[:size])
	} else {
		err = copyNonZero(mem, data, 0, int64(size))
	}
	if derr := unix.SysvShmDetach(mem); derr != nil && err == nil {
		err = fmt.Errorf("detach: %w", derr)
	}
	return err
}

// fillFromPagemap copies the runs of pagemap-shmem-<id>.img (CRIU's
// in_pagemaps layout, runs addressed by offset in the segment).
func fillFromPagemap(dir *image.Dir, id uint64, mem []byte) error {
	if !dir.Exists(image.ShmemPagemapFile(id)) {
		return nil
	}
	pr, err := dir.ShmemPageReader(id)
	if err != nil {
		return err
	}
	defer pr.Close()
	for pr.Next() {
		r := pr.Run()
		if !r.Present() || r.Vaddr > uint64(len(mem)) {
			return fmt.Errorf("%s: run %#x-%#x: not present, or beyond the segment's %d bytes", image.ShmemPagemapFile(id), r.Vaddr, r.End(), len(mem))
		}
		n := min(r.Len(), int64(uint64(len(mem))-r.Vaddr))
		if err := copyNonZero(mem[r.Vaddr:], pr.PagesFile(), r.Offset, n); err != nil {
			return err
		}
	}
	return pr.Err()
}

// copyNonZero copies n bytes of src at off into dst, step by step,
// leaving the steps that are all zeros alone.
func copyNonZero(dst []byte, src io.ReaderAt, off, n int64) error {
	buf := make([]byte, min(n, shmCopyStep))
	zero := make([]byte, len(buf))
	for done := int64(0); done < n; {
		k := min(int64(len(buf)), n-done)
		if _, err := src.ReadAt(buf[:k], off+done); err != nil {
			return fmt.Errorf("read contents at %d: %w", off+done, err)
		}
		if !bytes.Equal(buf[:k], zero[:k]) {
			copy(dst[done:done+k], buf[:k])
		}
		done += k
	}
	return nil
}
