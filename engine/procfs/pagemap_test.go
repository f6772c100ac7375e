package procfs

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestPagemapABI(t *testing.T) {
	if s := unsafe.Sizeof(PmScanArg{}); s != 96 {
		t.Errorf("sizeof(pm_scan_arg) = %d, kernel says 96", s)
	}
	if s := unsafe.Sizeof(PageRegion{}); s != 24 {
		t.Errorf("sizeof(page_region) = %d, kernel says 24", s)
	}
	if PagemapScanIoctl != 0xc0606610 {
		t.Errorf("PAGEMAP_SCAN = %#x, want 0xc0606610", PagemapScanIoctl)
	}
}

// anonRegion maps n private anonymous pages and writes to the given ones.
func anonRegion(t *testing.T, n int, touch ...int) (mem []byte, start uint64) {
	t.Helper()
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, n*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	for _, i := range touch {
		mem[i*ps] = 1
	}
	return mem, uint64(uintptr(unsafe.Pointer(&mem[0])))
}

func TestPagemapTouchedPagesPresent(t *testing.T) {
	ps := uint64(os.Getpagesize())
	_, start := anonRegion(t, 16, 0, 1, 5, 15)
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	entries, err := pm.Entries(start, start+16*ps)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		touched := i == 0 || i == 1 || i == 5 || i == 15
		if e.Present() != touched {
			t.Errorf("page %d present=%v, touched=%v (%#x)", i, e.Present(), touched, uint64(e))
		}
		if touched && (!e.Exclusive() || e.FileOrSharedAnon() || e.Swapped()) {
			t.Errorf("touched page %d: %#x", i, uint64(e))
		}
		if touched && e.PFN() == 0 { // root with CAP_SYS_ADMIN sees PFNs
			t.Errorf("page %d has no PFN", i)
		}
	}
	runs, err := pm.Runs(start, start+16*ps, PagemapEntry.Present)
	if err != nil {
		t.Fatal(err)
	}
	want := []PageRun{{start, start + 2*ps}, {start + 5*ps, start + 6*ps}, {start + 15*ps, start + 16*ps}}
	if len(runs) != len(want) {
		t.Fatalf("runs %x, want %x", runs, want)
	}
	for i := range want {
		if runs[i] != want[i] {
			t.Errorf("run %d = %x, want %x", i, runs[i], want[i])
		}
	}
	if err := pm.Read(start+1, make([]PagemapEntry, 1)); err == nil {
		t.Error("unaligned read accepted")
	}
}

func TestPagemapFileMapping(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 2*os.Getpagesize()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	mem, err := unix.Mmap(int(f.Fd()), 0, 2*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if mem[0] != 0 { // read: maps the page-cache page
		t.Fatal("file not zero")
	}
	mem[ps] = 7 // write: a private copy
	start := uint64(uintptr(unsafe.Pointer(&mem[0])))
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	e, err := pm.Entries(start, start+2*uint64(ps))
	if err != nil {
		t.Fatal(err)
	}
	if !e[0].Present() || !e[0].FileOrSharedAnon() {
		t.Errorf("read page %#x: want present, file-backed", uint64(e[0]))
	}
	if !e[1].Present() || e[1].FileOrSharedAnon() {
		t.Errorf("written page %#x: want present, anonymous (COWed)", uint64(e[1]))
	}
}

func TestPagemapScan(t *testing.T) {
	ok, err := PagemapScanSupported()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skip("kernel lacks PAGEMAP_SCAN (added in 6.7)")
	}
	ps := uint64(os.Getpagesize())
	_, start := anonRegion(t, 64, 2, 3, 4, 40)
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	regions, err := pm.ScanRegions(start, start+64*ps, PageIsPresent, PageIsPresent)
	if err != nil {
		t.Fatal(err)
	}
	want := []PageRegion{{start + 2*ps, start + 5*ps, PageIsPresent}, {start + 40*ps, start + 41*ps, PageIsPresent}}
	if len(regions) != len(want) || regions[0] != want[0] || regions[1] != want[1] {
		t.Errorf("regions %x, want %x", regions, want)
	}
	// The same answer as reading pagemap.
	runs, err := pm.Runs(start, start+64*ps, PagemapEntry.Present)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != len(regions) || runs[0].Start != regions[0].Start || runs[1].End != regions[1].End {
		t.Errorf("scan %x disagrees with pagemap %x", regions, runs)
	}
}

// Many regions: more than one ioctl batch, so walk_end continuation runs.
func TestPagemapScanManyRegions(t *testing.T) {
	if ok, _ := PagemapScanSupported(); !ok {
		t.Skip("kernel lacks PAGEMAP_SCAN (added in 6.7)")
	}
	n := 2*scanBatch + 10
	touch := make([]int, 0, n)
	for i := 0; i < n; i++ {
		touch = append(touch, 2*i)
	}
	ps := uint64(os.Getpagesize())
	_, start := anonRegion(t, 2*n, touch...)
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	regions, err := pm.ScanRegions(start, start+uint64(2*n)*ps, PageIsPresent, PageIsPresent)
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != n {
		t.Fatalf("%d regions, want %d", len(regions), n)
	}
	for i, r := range regions {
		if r.Start != start+uint64(2*i)*ps || r.End != r.Start+ps {
			t.Fatalf("region %d = %x", i, r)
		}
	}
}

func TestPagemapChildStack(t *testing.T) {
	cmd := startSleeper(t, "")
	pid := cmd.Process.Pid
	vmas, err := Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	for _, v := range vmas {
		if v.Kind() != MapStack {
			continue
		}
		runs, err := pm.Runs(v.Start, v.End, PagemapEntry.Present)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 || runs[len(runs)-1].End != v.End {
			t.Errorf("stack %x-%x present runs %x: top page should be present", v.Start, v.End, runs)
		}
		return
	}
	t.Fatal("child has no stack")
}
