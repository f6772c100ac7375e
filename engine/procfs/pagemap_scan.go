package procfs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PmScanArg is struct pm_scan_arg of <linux/fs.h> (6.7+), the argument of
// the PAGEMAP_SCAN ioctl. 96 bytes; a test checks the size.
type PmScanArg struct {
	Size              uint64 // sizeof(PmScanArg)
	Flags             uint64 // PMScan*
	Start             uint64
	End               uint64
	WalkEnd           uint64 // out: where the walk stopped
	Vec               uint64 // address of a []PageRegion
	VecLen            uint64
	MaxPages          uint64 // 0: no limit
	CategoryInverted  uint64
	CategoryMask      uint64
	CategoryAnyofMask uint64
	ReturnMask        uint64
}

// PageRegion is struct page_region: a run of pages sharing the categories
// asked for in ReturnMask. 24 bytes.
type PageRegion struct {
	Start, End uint64
	Categories uint64
}

// PAGEMAP_SCAN page categories.
const (
	PageIsWPAllowed = 1 << 0
	PageIsWritten   = 1 << 1
	PageIsFile      = 1 << 2
	PageIsPresent   = 1 << 3
	PageIsSwapped   = 1 << 4
	PageIsPFNZero   = 1 << 5
	PageIsHuge      = 1 << 6
	PageIsSoftDirty = 1 << 7
	PageIsGuard     = 1 << 8 // 6.15+
)

// PAGEMAP_SCAN flags.
const (
	PMScanWPMatching   = 1 << 0 // write-protect the matching pages
	PMScanCheckWPAsync = 1 << 1 // fail unless the range is uffd async-wp
)

// PagemapScanIoctl is PAGEMAP_SCAN, _IOWR('f', 16, struct pm_scan_arg).
const PagemapScanIoctl = 3<<30 | uint(unsafe.Sizeof(PmScanArg{}))<<16 | 'f'<<8 | 16

// scanBatch is how many regions one ioctl may return.
const scanBatch = 4096

// Scan issues one PAGEMAP_SCAN with arg (Size is filled in) and returns the
// number of regions the kernel wrote. The caller's Vec must stay alive.
func (p *Pagemap) Scan(arg *PmScanArg) (int, error) {
	arg.Size = uint64(unsafe.Sizeof(*arg))
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, p.f.Fd(), uintptr(PagemapScanIoctl), uintptr(unsafe.Pointer(arg)))
	runtime.KeepAlive(p.f)
	if errno != 0 {
		return 0, fmt.Errorf("PAGEMAP_SCAN %s %#x-%#x: %w", path(p.pid, "pagemap"), arg.Start, arg.End, errno)
	}
	return int(n), nil
}

// ScanRegions returns the runs of pages in [start, end) that have every
// category in mask, each labelled with its categories in returnMask;
// adjacent pages with equal labels form one region. One ioctl covers up to
// scanBatch regions, so a whole VMA usually takes one call.
func (p *Pagemap) ScanRegions(start, end, mask, returnMask uint64) ([]PageRegion, error) {
	if err := p.checkRange(start, end); err != nil {
		return nil, err
	}
	vec := make([]PageRegion, scanBatch)
	var out []PageRegion
	for start < end {
		arg := PmScanArg{
			Start:        start,
			End:          end,
			Vec:          uint64(uintptr(unsafe.Pointer(&vec[0]))),
			VecLen:       uint64(len(vec)),
			CategoryMask: mask,
			ReturnMask:   returnMask,
		}
		n, err := p.Scan(&arg)
		runtime.KeepAlive(vec)
		if err != nil {
			return nil, err
		}
		if n < 0 || n > len(vec) {
			return nil, fmt.Errorf("PAGEMAP_SCAN %s: kernel returned %d regions for %d slots", path(p.pid, "pagemap"), n, len(vec))
		}
		out = append(out, vec[:n]...)
		if arg.WalkEnd <= start || arg.WalkEnd > end {
			if n < len(vec) {
				break // a kernel that does not move walk_end when done
			}
			return nil, fmt.Errorf("PAGEMAP_SCAN %s: walk_end %#x outside %#x-%#x", path(p.pid, "pagemap"), arg.WalkEnd, start, end)
		}
		start = arg.WalkEnd
	}
	return out, nil
}

// PagemapScanSupported reports whether the kernel has the PAGEMAP_SCAN
// ioctl (6.7+), by scanning one page of this process. Older kernels have no
// ioctl on pagemap and answer ENOTTY.
func PagemapScanSupported() (bool, error) {
	p, err := OpenPagemap(os.Getpid())
	if err != nil {
		return false, err
	}
	defer p.Close()
	mem, err := unix.Mmap(-1, 0, int(p.pageSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false, fmt.Errorf("mmap probe page: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	_, err = p.ScanRegions(addr, addr+p.pageSize, 0, PageIsPresent)
	if errors.Is(err, unix.ENOTTY) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// ScanRuns returns the runs of pages in [start, end) that are in any of
// the categories of anyof (e.g. PageIsPresent|PageIsSwapped): what Runs
// finds by reading every entry, found by the kernel in one walk (6.7+).
func (p *Pagemap) ScanRuns(start, end, anyof uint64) ([]PageRun, error) {
	if err := p.checkRange(start, end); err != nil {
		return nil, err
	}
	vec := make([]PageRegion, scanBatch)
	var out []PageRun
	for start < end {
		arg := PmScanArg{Start: start, End: end, Vec: uint64(uintptr(unsafe.Pointer(&vec[0]))), VecLen: uint64(len(vec)),
			CategoryAnyofMask: anyof, ReturnMask: anyof}
		n, err := p.Scan(&arg)
		runtime.KeepAlive(vec)
		if err != nil {
			return nil, err
		}
		if n < 0 || n > len(vec) {
			return nil, fmt.Errorf("PAGEMAP_SCAN %s: kernel returned %d regions for %d slots", path(p.pid, "pagemap"), n, len(vec))
		}
		for _, r := range vec[:n] {
			if k := len(out); k > 0 && out[k-1].End == r.Start {
				out[k-1].End = r.End // present and swapped neighbours: one run
			} else {
				out = append(out, PageRun{Start: r.Start, End: r.End})
			}
		}
		if n < len(vec) || arg.WalkEnd >= end {
			break
		}
		if arg.WalkEnd <= start {
			return nil, fmt.Errorf("PAGEMAP_SCAN %s: walk_end %#x did not move past %#x", path(p.pid, "pagemap"), arg.WalkEnd, start)
		}
		start = arg.WalkEnd
	}
	return out, nil
}
