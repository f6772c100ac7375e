package mem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
)

// PageStats counts what DumpPages looked at and saved.
type PageStats struct {
	Scanned uint64 // pages of VMAs with contents
	Written uint64 // pages saved
}

// Overlay is memory of the task saved earlier, at Addr: DumpPages writes
// Data to the image in place of what it reads there now. It is how a
// dump keeps bytes the kernel rewrites while the pages are being copied
// (a thread's rseq area, on each return to user mode).
type Overlay struct {
	Addr uint64
	Data []byte
}

func (o Overlay) end() uint64 { return o.Addr + uint64(len(o.Data)) }

// Overlays are the overlays of a running DumpPages. They may be set after
// it started, but before anything changes the memory they cover: each
// read of the task's memory applies those set by the time it returns, so
// a read that misses them read before they were set.
type Overlays struct {
	list atomic.Pointer[[]Overlay]
}

// Set replaces the overlays.
func (o *Overlays) Set(list []Overlay) { o.list.Store(&list) }

func (o *Overlays) get() []Overlay {
	if o == nil {
		return nil
	}
	if l := o.list.Load(); l != nil {
		return *l
	}
	return nil
}

// DumpPages saves the pages of a stopped task that restore cannot get back
// otherwise: present or swapped pages of private anonymous memory, and of
// private file mappings only those copied on write (a page still backed by
// the file reads the same from it after restore). Pages stream from the
// task to the image, never buffered whole; the bytes of overlays (which
// may be nil) replace what is read where they fall in a saved page (an
// overlay on a page not saved is ignored). It stops with ctx's error once
// ctx is done.
func DumpPages(ctx context.Context, pid int, vmas []*vma.VmaEntry, overlays *Overlays, pw *image.PageWriter) (PageStats, error) {
	var st PageStats
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return st, err
	}
	defer pm.Close()
	useScan := true
	for _, v := range vmas {
		if !HasContents(v) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		start, end := v.GetStart(), v.GetEnd()
		st.Scanned += (end - start) / image.PageSize
		keep := func(e procfs.PagemapEntry) bool { return e.Present() || e.Swapped() }
		if v.GetStatus()&FilePrivate != 0 {
			// A present page that is still the file's page is not ours.
			keep = func(e procfs.PagemapEntry) bool { return (e.Present() && !e.FileOrSharedAnon()) || e.Swapped() }
		}
		var runs []procfs.PageRun
		if v.GetStatus()&FilePrivate == 0 && useScan {
			// Anonymous memory: the kernel finds the runs in one walk.
			runs, err = pm.ScanRuns(start, end, procfs.PageIsPresent|procfs.PageIsSwapped)
			if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
				useScan, runs = false, nil // before 6.7: read the entries
			} else if err != nil {
				return st, fmt.Errorf("pagemap of VMA %#x-%#x: %w", start, end, err)
			}
		}
		if !useScan || v.GetStatus()&FilePrivate != 0 {
			runs, err = pm.Runs(start, end, keep)
		}
		if err != nil {
			return st, fmt.Errorf("pagemap of VMA %#x-%#x: %w", start, end, err)
		}
		for _, r := range runs {
			n := (r.End - r.Start) / image.PageSize
			rd := &remoteReader{ctx: ctx, pid: pid, addr: r.Start, end: r.End, overlays: overlays}
			if err := pw.Add(r.Start, n, rd); err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return st, cerr
				}
				return st, fmt.Errorf("pages %#x-%#x: %w", r.Start, r.End, err)
			}
			st.Written += n
		}
	}
	return st, nil
}

// remoteReader reads a range of another process's memory in the chunks
// its caller asks for, with the overlays applied.
type remoteReader struct {
	ctx       context.Context
	pid       int
	addr, end uint64
	overlays  *Overlays
}

func (r *remoteReader) Read(p []byte) (int, error) {
	if r.addr >= r.end {
		return 0, io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if rest := r.end - r.addr; uint64(len(p)) > rest {
		p = p[:rest]
	}
	if err := ptrace.ReadMem(r.pid, r.addr, p); err != nil {
		return 0, fmt.Errorf("read pid %d memory at %#x: %w", r.pid, r.addr, err)
	}
	// The overlays as they are now, after the read (see Overlays).
	applyOverlays(p, r.addr, r.overlays.get())
	r.addr += uint64(len(p))
	return len(p), nil
}

// applyOverlays copies into p, which holds the memory at addr, the bytes
// of every overlay that falls in it.
func applyOverlays(p []byte, addr uint64, overlays []Overlay) {
	end := addr + uint64(len(p))
	for _, o := range overlays {
		lo, hi := max(o.Addr, addr), min(o.end(), end)
		if lo < hi {
			copy(p[lo-addr:hi-addr], o.Data[lo-o.Addr:hi-o.Addr])
		}
	}
}

// CheckPages walks a pagemap before anything is restored: every run must be
// in this image (no parent or lazy pages yet) and inside VMAs whose
// contents the dump keeps. It returns the number of pages.
func CheckPages(pr *image.PageReader, vmas []*vma.VmaEntry) (uint64, error) {
	var pages uint64
	for pr.Next() {
		r := pr.Run()
		if !r.Present() {
			return 0, fmt.Errorf("pages %#x-%#x: flags %#x: pages in a parent image or served lazily are not supported yet", r.Vaddr, r.End(), r.Flags)
		}
		if !covered(vmas, r.Vaddr, r.End()) {
			return 0, fmt.Errorf("pages %#x-%#x: not inside a private VMA of the image", r.Vaddr, r.End())
		}
		pages += r.NrPages
	}
	return pages, pr.Err()
}

// covered says whether [start, end) lies in VMAs with contents.
func covered(vmas []*vma.VmaEntry, start, end uint64) bool {
	for _, v := range vmas {
		if start >= end {
			return true
		}
		if v.GetEnd() <= start || !HasContents(v) {
			continue
		}
		if v.GetStart() > start {
			return false
		}
		start = v.GetEnd()
	}
	return start >= end
}

// restoreChunk is how much of the pages file is written into the task per
// call, and how much of gocr's mapping of it is dropped at a time.
const restoreChunk = 8 << 20

// RestorePages fills the task's memory from the pages file, in big chunks:
// process_vm_writev where the memory is writable, /proc/PID/mem (which
// writes through read-only and PROT_NONE protections) where it is not. The
// VMAs must be mapped already. Pages that fall in a range of skip are
// left as mapped (zero). It returns the pages written.
func RestorePages(pid int, pr *image.PageReader, skip []Range) (uint64, error) {
	f := pr.PagesFile()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	// The pages file is mapped, so process_vm_writev copies straight from
	// the page cache into the task, with no copy into gocr's memory.
	var data []byte
	if fi.Size() > 0 {
		if data, err = unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return 0, fmt.Errorf("map %s: %w", f.Name(), err)
		}
		defer unix.Munmap(data)
	}
	w := newMemWriter(pid)
	defer w.close()
	// Drop what was written from gocr's mapping (the page cache keeps
	// it) every restoreChunk: mapped file pages count in gocr's RSS, which
	// must not grow with the size of the task.
	var dropped int64
	drop := func(upTo int64) {
		if upTo > dropped {
			unix.Madvise(data[dropped:upTo], unix.MADV_DONTNEED)
			dropped = upTo
		}
	}
	defer func() { drop(int64(len(data))) }()
	var pages uint64
	for pr.Next() {
		r := pr.Run()
		if !r.Present() {
			return pages, fmt.Errorf("pages %#x-%#x: not in this image", r.Vaddr, r.End())
		}
		for done := int64(0); done < r.Len(); {
			n := min(restoreChunk, r.Len()-done)
			addr := r.Vaddr + uint64(done)
			if s, ok := firstSkip(skip, addr, addr+uint64(n)); ok {
				if s.Start <= addr {
					// In a skipped range: go on after it.
					done += int64(min(s.End, r.End()) - addr)
					continue
				}
				n = int64(s.Start - addr) // write up to it
			}
			if err := w.write(addr, data[r.Offset+done:r.Offset+done+n]); err != nil {
				return pages, fmt.Errorf("pages %#x-%#x: %w", addr, addr+uint64(n), err)
			}
			pages += uint64(n) / image.PageSize
			done += n
			if end := r.Offset + done; end-dropped >= restoreChunk {
				drop(end &^ (image.PageSize - 1))
			}
		}
	}
	return pages, pr.Err()
}

// firstSkip returns the lowest range of skip that overlaps [start, end).
func firstSkip(skip []Range, start, end uint64) (Range, bool) {
	var best Range
	found := false
	for _, s := range skip {
		if s.overlaps(Range{start, end}) && (!found || s.Start < best.Start) {
			best, found = s, true
		}
	}
	return best, found
}

// Droppable returns the ranges of MAP_DROPPABLE VMAs. Their pages are in
// the image (the dump reads /proc/PID/maps, which cannot tell them from
// private memory, before smaps), but a restore leaves them zeroed, as
// CRIU does: the kernel may free such pages at any moment, so their owner
// copes with zeroes, and a restore that drops them is one the kernel
// itself could have made.
func Droppable(vmas []*vma.VmaEntry) []Range {
	var out []Range
	for _, v := range vmas {
		if v.GetFlags()&unix.MAP_DROPPABLE != 0 {
			out = append(out, Range{v.GetStart(), v.GetEnd()})
		}
	}
	return out
}

// TaskVMAs are the VMAs of one process of a tree.
type TaskVMAs struct {
	Pid  int
	Vmas []*vma.VmaEntry
}

// memWriter writes into a task's memory as ptrace.WriteMem does, but keeps
// /proc/PID/mem open once a write needed it: an image of thousands of small
// read-only runs would otherwise open it thousands of times, which cost
// more than the rest of the restore of those pages.
type memWriter struct {
	pid int
	mem int // /proc/PID/mem, or -1 while unopened
}

func newMemWriter(pid int) *memWriter { return &memWriter{pid: pid, mem: -1} }

func (w *memWriter) write(addr uint64, b []byte) error {
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	n, err := unix.ProcessVMWritev(w.pid, local, remote, 0)
	if err == nil && n == len(b) {
		return nil
	}
	if n > 0 {
		addr, b = addr+uint64(n), b[n:]
	}
	if w.mem < 0 {
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/mem", w.pid), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("write memory of pid %d at %#x: %w", w.pid, addr, err)
		}
		w.mem = fd
	}
	for len(b) > 0 {
		// The offset is the address, taken as unsigned by the kernel.
		n, _, errno := unix.Syscall6(unix.SYS_PWRITE64, uintptr(w.mem), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(addr), 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return fmt.Errorf("write memory of pid %d at %#x: %w", w.pid, addr, errno)
		case n == 0:
			return fmt.Errorf("write memory of pid %d at %#x: %w", w.pid, addr, unix.EIO)
		}
		addr, b = addr+uint64(n), b[n:]
	}
	return nil
}

func (w *memWriter) close() {
	if w.mem >= 0 {
		unix.Close(w.mem)
		w.mem = -1
	}
}

// DumpShmem saves the pages of shared anonymous memory: one
// pagemap-shmem-<shmid>.img per shmem object, its runs addressed by
// offset in the object (as CRIU does). The object is read itself, through
// /proc/PID/map_files of any VMA that maps it, with SEEK_DATA/SEEK_HOLE
// finding its pages: page tables would miss a page no process of the
// tree has touched since it was written (as after a restore, which fills
// the object through a mapping it then removes). It returns the pages of
// the objects (what it scanned, as CRIU's shpages_scanned counts them)
// and the pages written.
func DumpShmem(tasks []TaskVMAs, dir *image.Dir) (PageStats, error) {
	type object struct {
		size       uint64
		pid        int // a process that maps it, at [start, end)
		start, end uint64
	}
	objs := map[uint64]*object{}
	var ids []uint64
	for _, task := range tasks {
		for _, v := range task.Vmas {
			if v.GetStatus()&AnonShared == 0 || IsSysV(v) {
				continue // a SysV segment is saved with its namespace
			}
			id := v.GetShmid()
			o := objs[id]
			if o == nil {
				o = &object{pid: task.Pid, start: v.GetStart(), end: v.GetEnd()}
				objs[id] = o
				ids = append(ids, id)
			}
			o.size = max(o.size, v.GetPgoff()+v.GetEnd()-v.GetStart())
		}
	}
	var st PageStats
	for _, id := range ids {
		st.Scanned += (objs[id].size + image.PageSize - 1) / image.PageSize
		n, err := dumpShmemObject(dir, id, objs[id].size, fmt.Sprintf("/proc/%d/map_files/%x-%x", objs[id].pid, objs[id].start, objs[id].end))
		st.Written += n
		if err != nil {
			return st, fmt.Errorf("shared memory %d (mapped by pid %d at %#x): %w", id, objs[id].pid, objs[id].start, err)
		}
	}
	return st, nil
}

// dumpShmemObject writes the data runs of the first size bytes of the
// shmem object behind path.
func dumpShmemObject(dir *image.Dir, id, size uint64, path string) (uint64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	pw, err := dir.ShmemPageWriter(id)
	if err != nil {
		return 0, err
	}
	var written uint64
	for off := int64(0); off < int64(size); {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= int64(size)) {
			break // nothing more below size
		}
		if err != nil {
			pw.Abort()
			return written, fmt.Errorf("seek data from %#x: %w", off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			pw.Abort()
			return written, fmt.Errorf("seek hole from %#x: %w", data, err)
		}
		start := data &^ (image.PageSize - 1)
		end := min((hole+image.PageSize-1)&^(image.PageSize-1), int64(size))
		pages := uint64(end-start) / image.PageSize
		if err := pw.Add(uint64(start), pages, io.NewSectionReader(f, start, end-start)); err != nil {
			pw.Abort()
			return written, err
		}
		written += pages
		off = end
	}
	return written, pw.Close()
}

// RestoreShmem fills a shmem object, mapped in the task at addr, from its
// pagemap-shmem image. It returns the pages written.
func RestoreShmem(pid int, dir *image.Dir, shmid, addr, size uint64) (uint64, error) {
	if !dir.Exists(image.ShmemPagemapFile(shmid)) {
		return 0, nil // nothing was ever written to it
	}
	pr, err := dir.ShmemPageReader(shmid)
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	buf := make([]byte, restoreChunk)
	var pages uint64
	f := pr.PagesFile()
	for pr.Next() {
		r := pr.Run()
		if !r.Present() || r.End() > size {
			return pages, fmt.Errorf("%s: run %#x-%#x: not present, or beyond the object's %d bytes", image.ShmemPagemapFile(shmid), r.Vaddr, r.End(), size)
		}
		for done := int64(0); done < r.Len(); {
			n := min(int64(len(buf)), r.Len()-done)
			if _, err := f.ReadAt(buf[:n], r.Offset+done); err != nil {
				return pages, fmt.Errorf("read %s at %d: %w", f.Name(), r.Offset+done, err)
			}
			if err := ptrace.WriteMem(pid, addr+r.Vaddr+uint64(done), buf[:n]); err != nil {
				return pages, fmt.Errorf("shared memory %d at offset %#x: %w", shmid, r.Vaddr+uint64(done), err)
			}
			done += n
		}
		pages += r.NrPages
	}
	return pages, pr.Err()
}

// DumpShmemFile saves the contents of a shmem file (a memfd) the way
// shared anonymous memory is saved: pagemap-shmem-<shmid>.img, its runs
// addressed by offset in the file. Only the ranges the file holds data in
// (SEEK_DATA/SEEK_HOLE, swapped pages included) are saved, so a sparse
// file stays small. fd must be an open file of gocr's own: seeking moves
// its offset. It returns the pages written.
func DumpShmemFile(dir *image.Dir, shmid uint64, fd int, size uint64) (uint64, error) {
	end := (size + image.PageSize - 1) &^ (image.PageSize - 1)
	pw, err := dir.ShmemPageWriter(shmid)
	if err != nil {
		return 0, err
	}
	var written uint64
	for off := uint64(0); off < end; {
		data, err := unix.Seek(fd, int64(off), unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data from off to the end
		}
		if err != nil {
			pw.Abort()
			return written, fmt.Errorf("shmem file %d: SEEK_DATA from %d: %w", shmid, off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			pw.Abort()
			return written, fmt.Errorf("shmem file %d: SEEK_HOLE from %d: %w", shmid, data, err)
		}
		start := uint64(data) &^ (image.PageSize - 1)
		stop := min((uint64(hole)+image.PageSize-1)&^(image.PageSize-1), end)
		if start >= stop {
			break
		}
		n := (stop - start) / image.PageSize
		if err := pw.Add(start, n, &fileReader{fd: fd, off: int64(start), end: int64(stop)}); err != nil {
			pw.Abort()
			return written, fmt.Errorf("shmem file %d pages at %#x: %w", shmid, start, err)
		}
		written += n
		off = stop
	}
	return written, pw.Close()
}

// fileReader reads [off, end) of a file, zeros past its end of file (the
// tail of its last page).
type fileReader struct {
	fd       int
	off, end int64
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if rest := r.end - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := unix.Pread(r.fd, p, r.off)
	if err != nil {
		return 0, fmt.Errorf("read at %d: %w", r.off, err)
	}
	if n == 0 {
		// Past the end of file: the rest of the page is zeros.
		clear(p)
		n = len(p)
	}
	r.off += int64(n)
	return n, nil
}

// FillShmemFile writes the saved contents of a shmem file (a memfd) into
// fd, which already has the file's size: nothing is written past it. It
// returns the pages restored.
func FillShmemFile(dir *image.Dir, shmid uint64, fd int, size uint64) (uint64, error) {
	if dir == nil || !dir.Exists(image.ShmemPagemapFile(shmid)) {
		return 0, nil // nothing was ever written to it
	}
	pr, err := dir.ShmemPageReader(shmid)
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	buf := make([]byte, restoreChunk)
	f := pr.PagesFile()
	var pages uint64
	for pr.Next() {
		r := pr.Run()
		if !r.Present() || r.End() > (size+image.PageSize-1)&^(image.PageSize-1) {
			return pages, fmt.Errorf("%s: run %#x-%#x: not present, or beyond the file's %d bytes", image.ShmemPagemapFile(shmid), r.Vaddr, r.End(), size)
		}
		for done := int64(0); done < r.Len(); {
			n := min(int64(len(buf)), r.Len()-done)
			at := int64(r.Vaddr) + done
			if rest := int64(size) - at; n > rest {
				n = rest // the tail of the last page lies past the end of file
			}
			if n <= 0 {
				break
			}
			if _, err := f.ReadAt(buf[:n], r.Offset+done); err != nil {
				return pages, fmt.Errorf("read %s at %d: %w", f.Name(), r.Offset+done, err)
			}
			if err := pwriteAll(fd, buf[:n], at); err != nil {
				return pages, fmt.Errorf("shmem file %d at %#x: %w", shmid, at, err)
			}
			done += n
		}
		pages += r.NrPages
	}
	return pages, pr.Err()
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
