package mem

import (
	"fmt"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/kernel"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote/remotetest"
)

const (
	r   = unix.PROT_READ
	rw  = unix.PROT_READ | unix.PROT_WRITE
	rwx = unix.PROT_READ | unix.PROT_WRITE | unix.PROT_EXEC
	rx  = unix.PROT_READ | unix.PROT_EXEC
	no  = unix.PROT_NONE
)

// area is one VMA of a test layout.
type area struct {
	pages     uint64
	prot      uint32
	madv      uint64
	growsDown bool
}

func repeat(n int, as ...area) []area {
	var out []area
	for range n {
		out = append(out, as...)
	}
	return out
}

// entries lays the areas out one after another from addr, as a dump would
// describe them.
func entries(addr uint64, as []area) []*vma.VmaEntry {
	var out []*vma.VmaEntry
	for _, a := range as {
		flags := uint32(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS)
		if a.growsDown {
			flags |= unix.MAP_GROWSDOWN
		}
		e := &vma.VmaEntry{
			Start: ptr(addr), End: ptr(addr + a.pages*pageSize), Pgoff: ptr(uint64(0)), Shmid: ptr(uint64(0)),
			Prot: ptr(a.prot), Flags: ptr(flags), Status: ptr(uint32(AreaRegular | AnonPrivate)), Fd: ptr(int64(-1)),
		}
		if a.madv != 0 {
			e.Madv = ptr(a.madv)
		}
		out = append(out, e)
		addr += a.pages * pageSize
	}
	return out
}

var layouts = []struct {
	name  string
	areas []area
	// most injected calls, with and without copies of VMA layouts
	copies, single int
}{
	{"alternating pages", repeat(1000, area{1, r, 0, false}, area{1, rw, 0, false}), 16, 1001},
	{"thread stacks", append(repeat(40, area{1, no, 0, false}, area{8, rw, 0, false}), area{3, rw, 0, false}), 10, 41},
	{"writable only", repeat(100, area{1, rw, 0, false}, area{1, rwx, 0, false}), 10, 101},
	{"mixed", append([]area{
		{2, rw, 0, false}, {1, r, 0, false}, {3, rwx, 0, false}, {5, no, 0, false},
		{1, rw, 1 << unix.MADV_DONTFORK, false}, {1, r, 0, false}, {2, rw, 0, true}, {4, rw, 0, false},
		{1, r, 1 << unix.MADV_DONTDUMP, false}, {1, r, 0, false},
	}, repeat(20, area{1, rx, 0, false}, area{2, rw, 1 << unix.MADV_HUGEPAGE, false}, area{1, no, 0, false},
		area{1, r, 1<<unix.MADV_WIPEONFORK | 1<<unix.MADV_MERGEABLE, false}, area{1, rw, 1 << unix.MADV_NOHUGEPAGE, false})...), 30, 170},
}

// TestMapVMAs maps layouts into a real process, with the layout copies of
// mremap and without, and checks /proc against what a mapping per VMA
// gives: the same merged maps, growsdown and madvise flags where the VMAs
// had them, and each writable VMA charged to the commit limit ("ac") and
// no read-only one — as many injected calls as the layout needs, not one
// per VMA.
func TestMapVMAs(t *testing.T) {
	hasCopies, detail := kernel.MremapMultiVMA()
	for _, l := range layouts {
		for _, copies := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/copies=%v", l.name, copies), func(t *testing.T) {
				if copies && !hasCopies {
					t.Skip(detail)
				}
				task, tr := remotetest.Task(t, 4096)
				var size uint64
				for _, a := range l.areas {
					size += a.pages * pageSize
				}
				vmas := entries(hole(t, task.Pid, size), l.areas)
				before := tr.Injected()
				if err := mapVMAs(task, vmas, Fds{}, copies); err != nil {
					t.Fatal(err)
				}
				calls := int(tr.Injected() - before)
				want := l.single
				if copies {
					want = l.copies
				}
				t.Logf("%d VMAs in %d injected calls", len(vmas), calls)
				if calls > want {
					t.Errorf("%d VMAs took %d injected calls, want at most %d", len(vmas), calls, want)
				}
				checkMapped(t, task.Pid, vmas)
			})
		}
	}
}

// hole finds size bytes free in pid's address space, far from its
// mappings.
func hole(t *testing.T, pid int, size uint64) uint64 {
	t.Helper()
	maps, err := procfs.Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	var busy []Range
	for _, m := range maps {
		busy = append(busy, Range{m.Start, m.End})
	}
	addr, ok := FindHole(busy, size, 1<<32, 1<<46, 1<<20)
	if !ok {
		t.Fatal("no hole")
	}
	return addr
}

// checkMapped compares the task's VMAs over the range of vmas with them.
func checkMapped(t *testing.T, pid int, vmas []*vma.VmaEntry) {
	t.Helper()
	start, end := vmas[0].GetStart(), vmas[len(vmas)-1].GetEnd()
	got, err := procfs.MapsWithFlags(pid)
	if err != nil {
		t.Fatal(err)
	}
	var have []procfs.VMA
	for _, m := range got {
		if m.End > start && m.Start < end {
			have = append(have, m)
		}
	}
	var wantMaps, haveMaps []string
	for _, v := range vmas {
		wantMaps = mergePerms(wantMaps, v.GetStart(), v.GetEnd(), permString(v.GetProt()))
	}
	for _, m := range have {
		haveMaps = mergePerms(haveMaps, m.Start, m.End, m.Perms.String()[:3])
	}
	if strings.Join(haveMaps, "\n") != strings.Join(wantMaps, "\n") {
		t.Fatalf("maps\n%s\nwant\n%s", strings.Join(haveMaps, "\n"), strings.Join(wantMaps, "\n"))
	}
	for _, v := range vmas {
		var m procfs.VMA
		for _, h := range have {
			if h.Start <= v.GetStart() && v.GetEnd() <= h.End {
				m = h
			}
		}
		if m.End == 0 {
			t.Errorf("VMA %#x-%#x is split in the task", v.GetStart(), v.GetEnd())
			continue
		}
		check := func(name string, has, want bool) {
			if has != want {
				t.Errorf("VMA %#x-%#x (prot %#x): %s %v, want %v", v.GetStart(), v.GetEnd(), v.GetProt(), name, has, want)
			}
		}
		check("growsdown", m.Flags.Has(procfs.VmGrowsDown), v.GetFlags()&unix.MAP_GROWSDOWN != 0)
		check("accounted", m.Flags.Has(procfs.VmAccount), v.GetProt()&unix.PROT_WRITE != 0)
		for _, mf := range madvFlags {
			check(fmt.Sprintf("madvise %d", mf.advice), m.Flags.Has(mf.flag), v.GetMadv()&(1<<mf.advice) != 0)
		}
	}
}

func permString(prot uint32) string {
	b := []byte("---")
	for i, p := range []uint32{unix.PROT_READ, unix.PROT_WRITE, unix.PROT_EXEC} {
		if prot&p != 0 {
			b[i] = "rwx"[i]
		}
	}
	return string(b)
}

// mergePerms appends start-end perms, merged with the last line when it
// continues it with the same perms, as zdtm compares maps.
func mergePerms(lines []string, start, end uint64, perms string) []string {
	if n := len(lines); n > 0 {
		var s, e uint64
		var p string
		fmt.Sscanf(lines[n-1], "%x-%x %s", &s, &e, &p)
		if e == start && p == perms {
			lines[n-1] = fmt.Sprintf("%x-%x %s", s, end, perms)
			return lines
		}
	}
	return append(lines, fmt.Sprintf("%x-%x %s", start, end, perms))
}

// TestPlanRun checks the plan of a run on its own: every stretch set up
// once, left to right; a copy only from stretches done before, of the same
// shapes; a layout repeated 1024 times in a dozen calls.
func TestPlanRun(t *testing.T) {
	for _, l := range layouts {
		ss := stretches(entries(1<<32, l.areas))
		base := baseProt(ss)
		steps := planRun(ss, base, true)
		next := 0
		for _, st := range steps {
			if st.i != next {
				t.Fatalf("%s: step %+v, want one at stretch %d", l.name, st, next)
			}
			if st.n == 0 {
				next++
				continue
			}
			if st.from+st.n > st.i {
				t.Fatalf("%s: step %+v copies stretches not done yet", l.name, st)
			}
			for k := range st.n {
				if !sameShape(ss[st.from+k], ss[st.i+k]) {
					t.Fatalf("%s: step %+v copies stretch %d onto %d of another shape", l.name, st, st.from+k, st.i+k)
				}
			}
			next += st.n
		}
		if next != len(ss) {
			t.Fatalf("%s: steps end at stretch %d of %d", l.name, next, len(ss))
		}
	}
	ss := stretches(entries(1<<32, repeat(1024, area{1, no, 0, false}, area{2, rw, 0, false})))
	calls := 0
	for _, st := range planRun(ss, baseProt(ss), true) {
		if st.n > 0 {
			calls++
		} else {
			calls += setupCalls(ss[st.i:st.i+1], baseProt(ss))
		}
	}
	if calls > 12 {
		t.Errorf("1024 repeats planned in %d calls", calls)
	}
	if b := baseProt(ss); b != no {
		t.Errorf("base protection %#x, want PROT_NONE (never a writable one while there is another)", b)
	}
}
