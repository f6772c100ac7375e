package mem

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/kernel"
	"github.com/gocr/gocr/engine/remote"
)

// Fds are the task's fds of what the image's VMAs map: files by file id
// (vma_entry.shmid of a file mapping), shared anonymous memory by its
// shmem id.
type Fds struct {
	Files map[uint32]int
	Shmem map[uint64]int
}

// of is the fd a VMA is mapped from, -1 for private anonymous memory.
func (f Fds) of(v *vma.VmaEntry) int {
	switch {
	case v.GetStatus()&(FilePrivate|FileShared) != 0:
		return f.Files[uint32(v.GetShmid())]
	case v.GetStatus()&AnonShared != 0:
		return f.Shmem[v.GetShmid()]
	}
	return -1
}

// MapVMAs maps the image's VMAs at their addresses, all but the vdso and
// vvar (moved into place, not mapped) and [vsyscall] (the kernel's).
//
// Every injected call costs a round trip through ptrace, so a run of
// adjacent private anonymous VMAs (an allocator's arenas, thread stacks
// between their guard pages, the bench's 10,000 alternating pages) is
// mapped in one call and then split by protection (mapRun): the calls grow
// with the VMAs whose protection differs from the run's, not with all of
// them, and where the kernel can copy a range of several VMAs in one
// mremap (kernel.MremapMultiVMA) a layout that repeats is copied, not
// redone, and they grow with the logarithm of the repeats. Every other VMA
// — file-backed, shared, growing down, anything the image marks otherwise
// — is mapped alone by MapVMA, exactly as before.
func MapVMAs(t *remote.Task, vmas []*vma.VmaEntry, fds Fds) error {
	copies, _ := kernel.MremapMultiVMA()
	return mapVMAs(t, vmas, fds, copies)
}

func mapVMAs(t *remote.Task, vmas []*vma.VmaEntry, fds Fds, copies bool) error {
	for i := 0; i < len(vmas); {
		v := vmas[i]
		if IsVDSO(v) || v.GetStatus()&AreaVsyscall != 0 {
			i++
			continue
		}
		if n := anonRun(vmas[i:]); n > 1 {
			if err := mapRun(t, vmas[i:i+n], copies); err != nil {
				return err
			}
			i += n
			continue
		}
		if err := MapVMA(t, v, fds.of(v)); err != nil {
			return err
		}
		i++
	}
	return nil
}

// plainAnon says whether a VMA is private anonymous memory and nothing
// more (no stack growing down, no flag the image adds), so that one
// mapping split by mprotect gives the same VMA a mapping of its own would.
func plainAnon(e *vma.VmaEntry) bool {
	return e.GetStatus()&^AreaHeap == AreaRegular|AnonPrivate && e.GetFlags() == unix.MAP_PRIVATE|unix.MAP_ANONYMOUS
}

// anonRun is how many VMAs from the first are plain anonymous memory, each
// starting where the one before ends.
func anonRun(vmas []*vma.VmaEntry) int {
	if !plainAnon(vmas[0]) {
		return 0
	}
	n := 1
	for n < len(vmas) && plainAnon(vmas[n]) && vmas[n].GetStart() == vmas[n-1].GetEnd() {
		n++
	}
	return n
}

// stretch is part of a run that ends up one VMA: adjacent VMAs of the same
// protection and advice, which the kernel merges anyway.
type stretch struct {
	start, end uint64
	prot       uint32
	madv       uint64
}

func (s stretch) size() uint64 { return s.end - s.start }

// sameShape says whether a copy of b can stand for a: same size,
// protection and advice (the advice is in the VMA's flags, which a copy
// keeps).
func sameShape(a, b stretch) bool {
	return a.size() == b.size() && a.prot == b.prot && a.madv == b.madv
}

// stretches merges the VMAs of a run the kernel would merge once mapped.
func stretches(run []*vma.VmaEntry) []stretch {
	var out []stretch
	for _, v := range run {
		s := stretch{v.GetStart(), v.GetEnd(), v.GetProt(), v.GetMadv()}
		if n := len(out); n > 0 && out[n-1].prot == s.prot && out[n-1].madv == s.madv {
			out[n-1].end = s.end
			continue
		}
		out = append(out, s)
	}
	return out
}

// baseProt is the protection a run is first mapped with: the commonest
// among its read-only or inaccessible stretches, so that each writable
// stretch is charged to the commit limit by its own mprotect, as a mapping
// of its own would be — mapped writable, a PROT_NONE reservation of
// gigabytes would be charged whole, or refused. A run of writable stretches
// only takes its commonest protection.
func baseProt(ss []stretch) uint32 {
	count := map[uint32]int{}
	writable := true
	for _, s := range ss {
		if s.prot&unix.PROT_WRITE == 0 {
			writable = false
		}
	}
	best, bestN := uint32(0), 0
	for _, s := range ss {
		if !writable && s.prot&unix.PROT_WRITE != 0 {
			continue
		}
		count[s.prot]++
		if n := count[s.prot]; n > bestN || (n == bestN && s.prot < best) {
			best, bestN = s.prot, n
		}
	}
	return best
}

// step is one part of building a run once it is mapped with its base
// protection: stretch i set up by itself (n == 0), or stretches i..i+n-1
// copied from from..from+n-1, which are done already.
type step struct{ i, from, n int }

// maxCandidates bounds how many earlier stretches of one shape planRun
// tries as the start of a copy: the first ones, which leave the longest
// layout done before the current stretch.
const maxCandidates = 16

// planRun orders the building of a run: left to right, each stretch is
// either set up alone (an mprotect when its protection is not base, a
// madvise per advice) or, with copies, starts the longest layout equal to
// one already done before it, copied in one mremap when that saves calls.
// A layout repeated k times thus takes about log2(k) copies after its
// first instance.
func planRun(ss []stretch, base uint32, copies bool) []step {
	type shape struct {
		size uint64
		prot uint32
		madv uint64
	}
	at := map[shape][]int{}
	if copies {
		for j, s := range ss {
			if k := (shape{s.size(), s.prot, s.madv}); len(at[k]) < maxCandidates {
				at[k] = append(at[k], j)
			}
		}
	}
	var steps []step
	for i := 0; i < len(ss); {
		from, n := -1, 0
		for _, j := range at[shape{ss[i].size(), ss[i].prot, ss[i].madv}] {
			if j >= i {
				break
			}
			l := 0
			for i+l < len(ss) && j+l < i && sameShape(ss[j+l], ss[i+l]) {
				l++
			}
			if l > n {
				from, n = j, l
			}
		}
		if n > 1 && setupCalls(ss[i:i+n], base) > 1 {
			steps = append(steps, step{i: i, from: from, n: n})
			i += n
			continue
		}
		steps = append(steps, step{i: i})
		i++
	}
	return steps
}

// setupCalls is how many calls setting up these stretches one by one
// takes.
func setupCalls(ss []stretch, base uint32) int {
	n := 0
	for _, s := range ss {
		if s.prot != base {
			n++
		}
		for _, m := range madvFlags {
			if s.madv&(1<<m.advice) != 0 {
				n++
			}
		}
	}
	return n
}

// mapRun maps a run of adjacent plain anonymous VMAs: one mmap of the
// whole run with its base protection, then the steps of planRun. A copy the
// kernel refuses after all is set up stretch by stretch instead.
func mapRun(t *remote.Task, run []*vma.VmaEntry, copies bool) error {
	ss := stretches(run)
	base := baseProt(ss)
	start, end := ss[0].start, ss[len(ss)-1].end
	if err := mapAnon(t, start, end, base); err != nil {
		return fmt.Errorf("map %d VMAs %#x-%#x: %w", len(run), start, end, err)
	}
	for _, st := range planRun(ss, base, copies) {
		if st.n == 0 {
			if err := setUp(t, ss[st.i], base); err != nil {
				return err
			}
			continue
		}
		if err := copyStretches(t, ss[st.from:st.from+st.n], ss[st.i].start); err != nil {
			if rerr := redo(t, ss[st.i:st.i+st.n], base); rerr != nil {
				return fmt.Errorf("%w (after %v)", rerr, err)
			}
		}
	}
	return nil
}

// redo sets up stretches one by one where a copy failed, over whatever the
// failed mremap left there.
func redo(t *remote.Task, ss []stretch, base uint32) error {
	start, end := ss[0].start, ss[len(ss)-1].end
	if err := mapAnon(t, start, end, base); err != nil {
		return fmt.Errorf("map VMAs %#x-%#x: %w", start, end, err)
	}
	for _, s := range ss {
		if err := setUp(t, s, base); err != nil {
			return err
		}
	}
	return nil
}

// mapAnon maps private anonymous memory over [start, end).
func mapAnon(t *remote.Task, start, end uint64, prot uint32) error {
	got, err := t.Syscall(unix.SYS_MMAP, start, end-start, uint64(prot),
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED, ^uint64(0), 0)
	if err != nil {
		return fmt.Errorf("mmap prot %#x: %w", prot, err)
	}
	if got != start {
		return fmt.Errorf("mapped at %#x", got)
	}
	return nil
}

// setUp gives one stretch of a run mapped with base its protection and
// advice.
func setUp(t *remote.Task, s stretch, base uint32) error {
	if s.prot != base {
		if _, err := t.Syscall(unix.SYS_MPROTECT, s.start, s.size(), uint64(s.prot)); err != nil {
			return fmt.Errorf("VMA %#x-%#x: mprotect %#x: %w", s.start, s.end, s.prot, err)
		}
	}
	return advise(t, s.start, s.end, s.madv)
}

// copyStretches copies the layout of src (VMAs with their protection and
// flags; there are no pages yet) to dst with one mremap: MREMAP_DONTUNMAP
// leaves the source mapped.
func copyStretches(t *remote.Task, src []stretch, dst uint64) error {
	start, end := src[0].start, src[len(src)-1].end
	got, err := t.Syscall(unix.SYS_MREMAP, start, end-start, end-start,
		unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED|unix.MREMAP_DONTUNMAP, dst)
	if err != nil {
		return fmt.Errorf("copy VMAs %#x-%#x to %#x: %w", start, end, dst, err)
	}
	if got != dst {
		return fmt.Errorf("copy VMAs %#x-%#x to %#x: went to %#x", start, end, dst, got)
	}
	return nil
}

// advise sets again the madvise advice a VMA had, from the bitmap of
// vma_entry.madv.
func advise(t *remote.Task, start, end, madv uint64) error {
	for _, m := range madvFlags {
		if madv&(1<<m.advice) == 0 {
			continue
		}
		if _, err := t.Syscall(unix.SYS_MADVISE, start, end-start, uint64(m.advice)); err != nil {
			return fmt.Errorf("VMA %#x-%#x: madvise %d: %w", start, end, m.advice, err)
		}
	}
	return nil
}
