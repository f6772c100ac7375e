package mem

import (
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

func TestFindHole(t *testing.T) {
	const mb = 1 << 20
	busy := []Range{{100 * mb, 200 * mb}, {90 * mb, 95 * mb}}
	got, ok := FindHole(busy, mb, 10*mb, 200*mb, mb)
	if !ok || got != 98*mb {
		t.Fatalf("FindHole = %#x, %v; want %#x", got, ok, 98*mb)
	}
	if _, ok := FindHole(busy, mb, 99*mb, 200*mb, mb); ok {
		t.Fatal("found a hole below lo")
	}
}

func TestCovered(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	s := func(v uint32) *uint32 { return &v }
	vmas := []*vma.VmaEntry{
		{Start: u(0x1000), End: u(0x3000), Status: s(AreaRegular | AnonPrivate)},
		{Start: u(0x3000), End: u(0x5000), Status: s(AreaRegular | AnonPrivate)},
		{Start: u(0x6000), End: u(0x7000), Status: s(AreaRegular | FileShared)},
	}
	for _, c := range []struct {
		start, end uint64
		want       bool
	}{
		{0x1000, 0x2000, true}, {0x2000, 0x5000, true}, {0x4000, 0x6000, false}, {0x6000, 0x7000, false}, {0, 0x1000, false},
	} {
		if got := covered(vmas, c.start, c.end); got != c.want {
			t.Errorf("covered(%#x-%#x) = %v, want %v", c.start, c.end, got, c.want)
		}
	}
}

func TestDumpVMAFlags(t *testing.T) {
	anon := func(flags string) procfs.VMA {
		f, unknown := procfs.ParseVmFlagsUnknown(flags)
		return procfs.VMA{Start: 0x10000, End: 0x20000, Perms: procfs.PermRead | procfs.PermWrite, Flags: f, UnknownFlags: unknown}
	}
	noFile := func(procfs.VMA) (uint32, error) { return 0, nil }
	e, err := DumpVMA(anon("rd wr mr mw me ac lo nr sr dc dd wf hg"), noFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint32(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_LOCKED | unix.MAP_NORESERVE); e.GetFlags() != want {
		t.Errorf("flags %#x, want %#x", e.GetFlags(), want)
	}
	want := uint64(1<<unix.MADV_SEQUENTIAL | 1<<unix.MADV_DONTFORK | 1<<unix.MADV_DONTDUMP | 1<<unix.MADV_WIPEONFORK | 1<<unix.MADV_HUGEPAGE)
	if e.GetMadv() != want {
		t.Errorf("madv %#x, want %#x", e.GetMadv(), want)
	}
	if e, err := DumpVMA(anon("rd wr mr mw me dp"), noFile); err != nil || e.GetFlags() != unix.MAP_DROPPABLE|unix.MAP_ANONYMOUS {
		t.Errorf("droppable: flags %#x, %v", e.GetFlags(), err)
	}
	for flags, name := range map[string]string{"rd wr lo lf": "lf", "rd io pf": "pf", "rd wr sl": "sl", "rd wr ss": "ss", "rd wr um": "um", "rd wr zz": "zz"} {
		_, err := DumpVMA(anon(flags), noFile)
		if err == nil || !strings.Contains(err.Error(), "VmFlags "+name) || !strings.Contains(err.Error(), "0x10000-0x20000") {
			t.Errorf("VmFlags %q: %v, want a refusal naming %s and the range", flags, err, name)
		}
	}
	// The kernel's own mappings keep the kernel's flags.
	vvar := procfs.VMA{Start: 0x10000, End: 0x20000, Perms: procfs.PermRead, Path: "[vvar]", Flags: procfs.ParseVmFlags("rd mr pf io de dd")}
	if _, err := DumpVMA(vvar, noFile); err != nil {
		t.Errorf("vvar: %v", err)
	}
}
