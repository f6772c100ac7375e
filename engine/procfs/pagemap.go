package procfs

import (
	"fmt"
	"io"
	"os"
	"unsafe"
)

// PagemapEntry is one 64-bit word of /proc/PID/pagemap, describing one
// virtual page (Documentation/admin-guide/mm/pagemap.rst).
type PagemapEntry uint64

// Pagemap entry bits.
const (
	PMPFNMask    PagemapEntry = 1<<55 - 1 // PFN, or swap type/offset; 0 without CAP_SYS_ADMIN
	PMSoftDirty  PagemapEntry = 1 << 55
	PMExclusive  PagemapEntry = 1 << 56 // mapped by this process only (4.2+)
	PMUffdWP     PagemapEntry = 1 << 57 // write-protected by userfaultfd (5.17+)
	PMGuard      PagemapEntry = 1 << 58 // MADV_GUARD_INSTALL region (6.15+)
	PMFileShared PagemapEntry = 1 << 61 // file page or shared anonymous
	PMSwapped    PagemapEntry = 1 << 62
	PMPresent    PagemapEntry = 1 << 63
)

// Present reports a page in RAM.
func (e PagemapEntry) Present() bool { return e&PMPresent != 0 }

// Swapped reports a page in swap.
func (e PagemapEntry) Swapped() bool { return e&PMSwapped != 0 }

// FileOrSharedAnon reports a page of the page cache or of shmem. A present
// page of a private file mapping without it has been copied on write, so it
// is the process's own data and must be dumped.
func (e PagemapEntry) FileOrSharedAnon() bool { return e&PMFileShared != 0 }

// Exclusive reports a page mapped only by this process.
func (e PagemapEntry) Exclusive() bool { return e&PMExclusive != 0 }

// SoftDirty reports a page written since soft-dirty bits were last cleared.
func (e PagemapEntry) SoftDirty() bool { return e&PMSoftDirty != 0 }

// UffdWP reports a page write-protected through userfaultfd.
func (e PagemapEntry) UffdWP() bool { return e&PMUffdWP != 0 }

// PFN is the page frame number (0 when the reader lacks CAP_SYS_ADMIN).
func (e PagemapEntry) PFN() uint64 { return uint64(e & PMPFNMask) }

// pagemapBatch is how many entries one pread fetches: 512 KiB, 2 GiB of
// address space per system call.
const pagemapBatch = 64 << 10

// Pagemap is an open /proc/PID/pagemap. Keep it open for the whole dump of
// a task: opening it is the expensive permission check.
type Pagemap struct {
	f        *os.File
	pid      int
	pageSize uint64
}

// OpenPagemap opens /proc/PID/pagemap for reading.
func OpenPagemap(pid int) (*Pagemap, error) {
	f, err := os.Open(path(pid, "pagemap"))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path(pid, "pagemap"), err)
	}
	return &Pagemap{f: f, pid: pid, pageSize: uint64(os.Getpagesize())}, nil
}

// Close closes the file.
func (p *Pagemap) Close() error { return p.f.Close() }

// PageSize is the page size the entries describe.
func (p *Pagemap) PageSize() uint64 { return p.pageSize }

// Read fills dst with the entries of the len(dst) pages from start (page
// aligned) with one pread.
func (p *Pagemap) Read(start uint64, dst []PagemapEntry) error {
	if start%p.pageSize != 0 {
		return fmt.Errorf("read %s at %#x: address not page aligned", path(p.pid, "pagemap"), start)
	}
	if len(dst) == 0 {
		return nil
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(dst)*8)
	off := int64(start / p.pageSize * 8)
	for len(buf) > 0 {
		n, err := p.f.ReadAt(buf, off)
		buf, off = buf[n:], off+int64(n)
		if err == io.EOF && len(buf) > 0 {
			return fmt.Errorf("read %s at %#x: short read", path(p.pid, "pagemap"), start)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s at %#x: %w", path(p.pid, "pagemap"), start, err)
		}
	}
	return nil
}

// Entries returns the entries of every page in [start, end), read in
// batches. For huge sparse ranges prefer Runs, which keeps memory flat.
func (p *Pagemap) Entries(start, end uint64) ([]PagemapEntry, error) {
	if err := p.checkRange(start, end); err != nil {
		return nil, err
	}
	out := make([]PagemapEntry, (end-start)/p.pageSize)
	for i := 0; i < len(out); i += pagemapBatch {
		j := min(i+pagemapBatch, len(out))
		if err := p.Read(start+uint64(i)*p.pageSize, out[i:j]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PageRun is a range [Start, End) of contiguous pages.
type PageRun struct {
	Start, End uint64
}

// Runs returns the maximal runs of pages in [start, end) whose entry
// satisfies keep, e.g. PagemapEntry.Present for the pages to dump.
func (p *Pagemap) Runs(start, end uint64, keep func(PagemapEntry) bool) ([]PageRun, error) {
	if err := p.checkRange(start, end); err != nil {
		return nil, err
	}
	var runs []PageRun
	buf := make([]PagemapEntry, min(pagemapBatch, (end-start)/p.pageSize))
	for addr := start; addr < end; {
		n := min(uint64(len(buf)), (end-addr)/p.pageSize)
		if err := p.Read(addr, buf[:n]); err != nil {
			return nil, err
		}
		for i, e := range buf[:n] {
			if !keep(e) {
				continue
			}
			a := addr + uint64(i)*p.pageSize
			if k := len(runs); k > 0 && runs[k-1].End == a {
				runs[k-1].End += p.pageSize
			} else {
				runs = append(runs, PageRun{Start: a, End: a + p.pageSize})
			}
		}
		addr += n * p.pageSize
	}
	return runs, nil
}

func (p *Pagemap) checkRange(start, end uint64) error {
	if start%p.pageSize != 0 || end%p.pageSize != 0 || end < start {
		return fmt.Errorf("%s: bad range %#x-%#x", path(p.pid, "pagemap"), start, end)
	}
	return nil
}
