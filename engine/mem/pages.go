package mem

import (
	"errors"
	"fmt"
	"io"
	"sort"
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

// DumpPages saves the pages of a stopped task that restore cannot get back
// otherwise: present or swapped pages of private anonymous memory, and of
// private file mappings only those copied on write (a page still backed by
// the file reads the same from it after restore). Pages stream from the
// task to the image, never buffered whole.
func DumpPages(pid int, vmas []*vma.VmaEntry, pw *image.PageWriter) (PageStats, error) {
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
			if err := pw.Add(r.Start, n, &remoteReader{pid: pid, addr: r.Start, end: r.End}); err != nil {
				return st, fmt.Errorf("pages %#x-%#x: %w", r.Start, r.End, err)
			}
			st.Written += n
		}
	}
	return st, nil
}

// remoteReader reads a range of another process's memory in the chunks
// its caller asks for.
type remoteReader struct {
	pid       int
	addr, end uint64
}

func (r *remoteReader) Read(p []byte) (int, error) {
	if r.addr >= r.end {
		return 0, io.EOF
	}
	if rest := r.end - r.addr; uint64(len(p)) > rest {
		p = p[:rest]
	}
	if err := ptrace.ReadMem(r.pid, r.addr, p); err != nil {
		return 0, fmt.Errorf("read pid %d memory at %#x: %w", r.pid, r.addr, err)
	}
	r.addr += uint64(len(p))
	return len(p), nil
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
// VMAs must be mapped already. It returns the pages written.
func RestorePages(pid int, pr *image.PageReader) (uint64, error) {
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
			if err := w.write(addr, data[r.Offset+done:r.Offset+done+n]); err != nil {
				return pages, fmt.Errorf("pages %#x-%#x: %w", addr, addr+uint64(n), err)
			}
			done += n
			if end := r.Offset + done; end-dropped >= restoreChunk {
				drop(end &^ (image.PageSize - 1))
			}
		}
		pages += r.NrPages
	}
	return pages, pr.Err()
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
// offset in the object (as CRIU does), from the pages this task has
// mapped. It returns the pages written.
func DumpShmem(pid int, vmas []*vma.VmaEntry, dir *image.Dir) (uint64, error) {
	type run struct{ off, addr, end uint64 }
	byID := map[uint64][]run{}
	var ids []uint64
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return 0, err
	}
	defer pm.Close()
	for _, v := range vmas {
		if v.GetStatus()&AnonShared == 0 {
			continue
		}
		id := v.GetShmid()
		if _, ok := byID[id]; !ok {
			ids = append(ids, id)
			byID[id] = nil
		}
		runs, err := pm.Runs(v.GetStart(), v.GetEnd(), func(e procfs.PagemapEntry) bool { return e.Present() || e.Swapped() })
		if err != nil {
			return 0, fmt.Errorf("pagemap of VMA %#x-%#x: %w", v.GetStart(), v.GetEnd(), err)
		}
		for _, r := range runs {
			byID[id] = append(byID[id], run{off: v.GetPgoff() + r.Start - v.GetStart(), addr: r.Start, end: r.End})
		}
	}
	var written uint64
	for _, id := range ids {
		runs := byID[id]
		sort.Slice(runs, func(i, j int) bool { return runs[i].off < runs[j].off })
		pw, err := dir.ShmemPageWriter(id)
		if err != nil {
			return written, err
		}
		var next uint64 // runs of two VMAs of one object may overlap
		for _, r := range runs {
			if r.off < next {
				skip := min(next-r.off, r.end-r.addr)
				r.off, r.addr = r.off+skip, r.addr+skip
			}
			if r.addr >= r.end {
				continue
			}
			n := (r.end - r.addr) / image.PageSize
			if err := pw.Add(r.off, n, &remoteReader{pid: pid, addr: r.addr, end: r.end}); err != nil {
				pw.Abort()
				return written, fmt.Errorf("shared memory %d pages at %#x: %w", id, r.off, err)
			}
			written += n
			next = r.off + n*image.PageSize
		}
		if err := pw.Close(); err != nil {
			return written, err
		}
	}
	return written, nil
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
