package mem

import (
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
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
