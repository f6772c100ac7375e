package workloads

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
)

const (
	heapSize      = 256 << 20
	heapSeed      = 0x5eed_0f_2561_0001
	heapSentinel  = 0x5e47_1e10_0000_0000 // | MiB index, in the first word of every MiB
	heapWordsPerM = (1 << 20) / 8
)

// Heap256M fills 256 MiB of heap with a fixed-seed pseudo-random stream,
// stamps a sentinel at the start of every MiB and records a checksum. After
// SIGTERM it regenerates the stream and compares every word, the sentinels
// and the checksum, and checks the buffer still lies in one mapping of
// /proc/self/maps with the same start.
var Heap256M = lib.Workload{Name: "heap256m", Run: func(t *lib.T) {
	buf := make([]uint64, heapSize/8)
	seed := splitmix64(heapSeed)
	for i := range buf {
		buf[i] = seed.next()
	}
	for m := 0; m < len(buf); m += heapWordsPerM {
		buf[m] = heapSentinel | uint64(m/heapWordsPerM)
	}
	sum := heapChecksum(buf)
	addr := uintptr(unsafe.Pointer(&buf[0]))
	if err := checkMapped(addr, heapSize, "rw-p"); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap buffer at %#x, checksum %#x", addr, sum)
	t.Ready()
	t.WaitSignal()

	if got := uintptr(unsafe.Pointer(&buf[0])); got != addr {
		t.Fail("buffer moved from %#x to %#x", addr, got)
	}
	if err := checkMapped(addr, heapSize, "rw-p"); err != nil {
		t.Fatal(err)
	}
	for m := 0; m < len(buf); m += heapWordsPerM {
		if want := heapSentinel | uint64(m/heapWordsPerM); buf[m] != want {
			t.Fail("sentinel of MiB %d is %#x, want %#x", m/heapWordsPerM, buf[m], want)
		}
	}
	seed = splitmix64(heapSeed)
	bad := 0
	for i := range buf {
		want := seed.next()
		if i%heapWordsPerM == 0 {
			continue
		}
		if buf[i] != want {
			if bad < 5 {
				t.Logf("word %d (offset %#x): %#x, want %#x", i, i*8, buf[i], want)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fail("%d of %d words of the heap buffer changed", bad, len(buf))
	}
	if got := heapChecksum(buf); got != sum {
		t.Fail("checksum %#x, want %#x", got, sum)
	}
	t.Pass()
}}

// heapChecksum mixes every word with its index, so swapped pages show too.
func heapChecksum(buf []uint64) uint64 {
	var h uint64 = 0xcbf29ce484222325
	for i, w := range buf {
		h = (h ^ w ^ uint64(i)) * 0x100000001b3
	}
	return h
}

// checkMapped checks that [addr, addr+size) is covered by contiguous
// mappings of /proc/self/maps, all with permissions perms.
func checkMapped(addr uintptr, size int, perms string) error {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	next, end := uint64(addr), uint64(addr)+uint64(size)
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || h <= next || l > next {
			continue
		}
		if f[1] != perms {
			return fmt.Errorf("mapping %s holding %#x is %s, want %s", f[0], next, f[1], perms)
		}
		if next = h; next >= end {
			return nil
		}
	}
	return fmt.Errorf("%#x-%#x: nothing mapped at %#x", addr, end, next)
}
