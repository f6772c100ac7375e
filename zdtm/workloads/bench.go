package workloads

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// Bench lists the workloads `make bench` measures. They are not part of the
// suite: they check little and exist to be big.
func Bench() []lib.Workload {
	return []lib.Workload{BigMem, ManyVMAs, BenchTree, BenchMounts}
}

// BigMem touches --size bytes (default 1G) of anonymous memory with a
// pattern it checks after SIGTERM.
var BigMem = lib.Workload{Name: "bench_bigmem", Run: func(t *lib.T) {
	size, err := parseSize(t.Opt("size", "1G"))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = byte(i >> 12)
		mem[i+4095] = byte(i >> 20)
	}
	t.Logf("region %p %d", &mem[0], len(mem))
	t.Ready()
	t.WaitSignal()
	for i := 0; i < len(mem); i += 4096 {
		if mem[i] != byte(i>>12) || mem[i+4095] != byte(i>>20) {
			t.Fail("page at offset %#x lost its contents", i)
		}
	}
	t.Pass()
}}

// ManyVMAs makes --vmas separate mappings (alternating protections so the
// kernel cannot merge them) and opens --fds descriptors.
var ManyVMAs = lib.Workload{Name: "bench_manyvmas", Run: func(t *lib.T) {
	nv, err := strconv.Atoi(t.Opt("vmas", "10000"))
	if err != nil {
		t.Fatal(err)
	}
	nf, err := strconv.Atoi(t.Opt("fds", "1000"))
	if err != nil {
		t.Fatal(err)
	}
	region, err := unix.Mmap(-1, 0, nv*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < nv; i += 2 {
		region[i*4096] = byte(i)
		if err := unix.Mprotect(region[i*4096:(i+1)*4096], unix.PROT_READ); err != nil {
			t.Fatal(err)
		}
	}
	var files []*os.File
	for range nf {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	t.Ready()
	t.WaitSignal()
	for i := 0; i < nv; i += 2 {
		if region[i*4096] != byte(i) {
			t.Fail("VMA %d lost its contents", i)
		}
	}
	for _, f := range files {
		if _, err := f.Stat(); err != nil {
			t.Fail("fd %d: %v", f.Fd(), err)
		}
	}
	t.Pass()
}}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want e.g. 1G or 256M", s)
	}
	return n * mult, nil
}
