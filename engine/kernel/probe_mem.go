package kernel

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
)

// probeCheckpointRestore asks prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE) for the
// size of struct prctl_mm_map: it exists only with CONFIG_CHECKPOINT_RESTORE
// and changes nothing.
func probeCheckpointRestore(*probeEnv) (bool, string) {
	var size uint32
	_, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP_SIZE, uintptr(unsafe.Pointer(&size)), 0, 0, 0)
	if errno != 0 {
		return false, fmt.Sprintf("PR_SET_MM_MAP_SIZE: %v", errno)
	}
	if size != prctlMMMapSize {
		return false, fmt.Sprintf("PR_SET_MM_MAP_SIZE says %d bytes, gocr's struct has %d", size, prctlMMMapSize)
	}
	return true, fmt.Sprintf("prctl_mm_map is %d bytes", size)
}

// probeProcessVMReadv copies a few bytes of this process to itself.
func probeProcessVMReadv(*probeEnv) (bool, string) {
	src := []byte("gocr")
	dst := make([]byte, len(src))
	local := []unix.Iovec{{Base: &dst[0]}}
	local[0].SetLen(len(dst))
	remote := []unix.RemoteIovec{{Base: uintptr(unsafe.Pointer(&src[0])), Len: len(src)}}
	n, err := unix.ProcessVMReadv(os.Getpid(), local, remote, 0)
	if err != nil {
		return false, fmt.Sprintf("process_vm_readv: %v", err)
	}
	if n != len(src) || string(dst) != string(src) {
		return false, fmt.Sprintf("process_vm_readv copied %d bytes %q", n, dst)
	}
	return true, "copied 4 bytes from self"
}

// probePagemapScan runs PAGEMAP_SCAN over one page of this process.
func probePagemapScan(*probeEnv) (bool, string) {
	ok, err := procfs.PagemapScanSupported()
	switch {
	case err != nil:
		return false, err.Error()
	case !ok:
		return false, "PAGEMAP_SCAN: ENOTTY (no ioctl on pagemap)"
	}
	return true, "PAGEMAP_SCAN found the touched page"
}

// probeSoftDirty touches a fresh page and reads its pagemap entry: with
// CONFIG_MEM_SOFT_DIRTY a new mapping is soft-dirty (bit 55), without it the
// bit is never set. Unlike writing clear_refs this changes nothing.
func probeSoftDirty(*probeEnv) (bool, string) {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false, fmt.Sprintf("mmap: %v", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	pm, err := procfs.OpenPagemap(os.Getpid())
	if err != nil {
		return false, err.Error()
	}
	defer pm.Close()
	var e [1]procfs.PagemapEntry
	if err := pm.Read(uint64(uintptr(unsafe.Pointer(&mem[0]))), e[:]); err != nil {
		return false, err.Error()
	}
	if !e[0].Present() {
		return false, fmt.Sprintf("touched page not present (entry %#x)", uint64(e[0]))
	}
	if !e[0].SoftDirty() {
		return false, "a freshly written page is not soft-dirty (no CONFIG_MEM_SOFT_DIRTY)"
	}
	return true, "a freshly written page is soft-dirty"
}

// probeVvarVclock looks for the [vvar_vclock] mapping of 6.13+, which the
// restore must move together with [vvar] and [vdso].
func probeVvarVclock(*probeEnv) (bool, string) {
	vmas, err := procfs.Maps(os.Getpid())
	if err != nil {
		return false, err.Error()
	}
	for _, v := range vmas {
		if v.Kind() == procfs.MapVVARVclock {
			return true, fmt.Sprintf("[vvar_vclock] at %#x, %d pages", v.Start, v.Len()/uint64(os.Getpagesize()))
		}
	}
	return false, "no [vvar_vclock] in /proc/self/maps"
}

// uffdResult is the userfaultfd handshake, shared by three features.
type uffdResult struct {
	err      string
	features uint64
}

func (e *probeEnv) userfaultfd() *uffdResult {
	if e.uffd == nil {
		e.uffd = runUffdProbe()
	}
	return e.uffd
}

// runUffdProbe opens a userfaultfd and does the UFFDIO_API handshake
// asking for no feature, which makes the kernel answer with all it has.
func runUffdProbe() *uffdResult {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if errno != 0 {
		return &uffdResult{err: fmt.Sprintf("userfaultfd: %v", errno)}
	}
	defer unix.Close(int(fd))
	api := uffdioAPI{API: uffdAPI}
	_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uffdioAPIIoctl, uintptr(unsafe.Pointer(&api)))
	if errno != 0 {
		return &uffdResult{err: fmt.Sprintf("UFFDIO_API: %v", errno)}
	}
	return &uffdResult{features: api.Features}
}

func probeUserfaultfd(e *probeEnv) (bool, string) {
	r := e.userfaultfd()
	if r.err != "" {
		return false, r.err
	}
	return true, fmt.Sprintf("UFFDIO_API features %#x", r.features)
}

func uffdFeature(e *probeEnv, bit uint64, name string) (bool, string) {
	r := e.userfaultfd()
	if r.err != "" {
		return false, r.err
	}
	if r.features&bit == 0 {
		return false, fmt.Sprintf("UFFDIO_API features %#x lack %s", r.features, name)
	}
	return true, fmt.Sprintf("UFFDIO_API offers %s", name)
}

func probeUffdWP(e *probeEnv) (bool, string) {
	return uffdFeature(e, uffdFeaturePagefaultFlagWP, "UFFD_FEATURE_PAGEFAULT_FLAG_WP")
}

func probeUffdWPAsync(e *probeEnv) (bool, string) {
	return uffdFeature(e, uffdFeatureWPAsync, "UFFD_FEATURE_WP_ASYNC")
}

// probeMemfd creates and closes a memfd.
func probeMemfd(*probeEnv) (bool, string) {
	fd, err := unix.MemfdCreate("gocr-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return false, fmt.Sprintf("memfd_create: %v", err)
	}
	unix.Close(fd)
	return true, "memfd_create works"
}

// MremapMultiVMA says whether one mremap moves a range that spans several
// VMAs (6.17; one VMA at a time before) and, with MREMAP_DONTUNMAP, leaves
// the source range mapped: a copy of a layout of VMAs in one call, which
// restore uses to rebuild a layout that repeats (engine/mem MapVMAs). It is
// tried once per process, on memory of its own.
var MremapMultiVMA = sync.OnceValues(tryMremapMultiVMA)

func probeMremapMultiVMA(*probeEnv) (bool, string) { return MremapMultiVMA() }

// tryMremapMultiVMA maps four pages read-only, makes the second writable
// (two VMAs) and copies the first two pages onto the last two.
func tryMremapMultiVMA() (bool, string) {
	ps := uintptr(os.Getpagesize())
	mem, err := unix.Mmap(-1, 0, 4*int(ps), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return false, fmt.Sprintf("mmap: %v", err)
	}
	defer unix.Munmap(mem)
	a := uintptr(unsafe.Pointer(&mem[0]))
	if err := unix.Mprotect(mem[ps:2*ps], unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return false, fmt.Sprintf("mprotect: %v", err)
	}
	got, _, errno := unix.Syscall6(unix.SYS_MREMAP, a, 2*ps, 2*ps,
		unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED|unix.MREMAP_DONTUNMAP, a+2*ps, 0)
	if errno != 0 {
		return false, fmt.Sprintf("mremap of two VMAs with MREMAP_DONTUNMAP: %v", errno)
	}
	if got != a+2*ps {
		return false, fmt.Sprintf("mremap of two VMAs went to %#x, not %#x", got, a+2*ps)
	}
	return true, "mremap copied two VMAs in one call"
}
