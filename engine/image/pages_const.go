package image

// Page geometry and the end of user space on x86_64, the only architecture
// gocr dumps.
const (
	PageSize = 4096

	// TaskSize4Level is the first address past user space with 4-level
	// page tables: (1<<47) - PageSize.
	TaskSize4Level = 0x0000_7fff_ffff_f000
	// TaskSize5Level is the same with 5-level page tables (la57):
	// (1<<56) - PageSize.
	TaskSize5Level = 0x00ff_ffff_ffff_f000

	// VsyscallStart and VsyscallEnd bound the legacy [vsyscall] page, the
	// one VMA CRIU records above user space.
	VsyscallStart = 0xffff_ffff_ff60_0000
	VsyscallEnd   = 0xffff_ffff_ff60_1000
)

// Pagemap entry flags, as CRIU's pagemap.h defines them.
const (
	PeParent  = 1 << 0 // the pages are in the parent (pre-dump) image
	PeLazy    = 1 << 1 // the pages are served lazily (userfaultfd)
	PePresent = 1 << 2 // the pages are in this image's pages file
)
