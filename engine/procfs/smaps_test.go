package procfs

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMapsWithFlagsChildMatchesMaps(t *testing.T) {
	cmd := startSleeper(t, "")
	pid := cmd.Process.Pid
	plain, err := Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	withFlags, err := MapsWithFlags(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != len(withFlags) {
		t.Fatalf("maps has %d VMAs, smaps %d", len(plain), len(withFlags))
	}
	for i := range plain {
		w := withFlags[i]
		p := plain[i]
		p.Flags = w.Flags
		if p != w {
			t.Errorf("VMA %d: maps %+v, smaps %+v", i, plain[i], w)
		}
		if w.Flags == 0 {
			t.Errorf("VMA %d (%s) has no VmFlags", i, w.Path)
		}
		if (w.Perms&PermRead != 0) != w.Flags.Has(VmRead) || (w.Perms&PermWrite != 0) != w.Flags.Has(VmWrite) {
			t.Errorf("VMA %d perms %v disagree with flags %v", i, w.Perms, w.Flags)
		}
		if w.Kind() == MapStack && !w.Flags.Has(VmGrowsDown) {
			t.Errorf("stack VMA lacks gd: %v", w.Flags)
		}
	}
}

func TestMapsWithFlagsSelfAdvice(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 4*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Madvise(mem, unix.MADV_DONTDUMP); err != nil {
		t.Fatal(err)
	}
	if err := unix.Madvise(mem, unix.MADV_DONTFORK); err != nil {
		t.Fatal(err)
	}
	vmas, err := MapsWithFlags(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	v, ok := findVMA(vmas, uint64(uintptr(unsafe.Pointer(&mem[0]))))
	if !ok {
		t.Fatal("mapping not found in smaps")
	}
	for _, want := range []VmFlags{VmDontDump, VmDontCopy, VmShared, VmMayShare, VmRead, VmWrite} {
		if !v.Flags.Has(want) {
			t.Errorf("flags %q lack %q", v.Flags, want)
		}
	}
	if v.Flags.Has(VmGrowsDown) {
		t.Errorf("flags %q have gd", v.Flags)
	}
}

func TestParseVmFlags(t *testing.T) {
	f := ParseVmFlags(" rd wr mr mw me gd ac dd sd zz ")
	if f.String() != "rd wr mr mw me gd ac dd sd" {
		t.Errorf("round trip: %q", f.String())
	}
	if !f.Has(VmGrowsDown|VmDontDump) || f.Has(VmShared) {
		t.Errorf("Has wrong on %q", f)
	}
	f, unknown := ParseVmFlagsUnknown("rd wr zz lo lf dp qq")
	if f.String() != "rd wr lo lf dp" || unknown != "zz qq" {
		t.Errorf("ParseVmFlagsUnknown: %q, unknown %q", f.String(), unknown)
	}
	vmas, err := ParseSmaps([]byte("10-20 rw-p 00000000 00:00 0\nVmFlags: rd wr ac xx\n"))
	if err != nil || len(vmas) != 1 || vmas[0].UnknownFlags != "xx" || vmas[0].Flags.String() != "rd wr ac" {
		t.Errorf("ParseSmaps unknown flags: %+v, %v", vmas, err)
	}
}

func TestParseSmapsRejects(t *testing.T) {
	if _, err := ParseSmaps([]byte("VmFlags: rd\n")); err == nil {
		t.Error("VmFlags before a mapping accepted")
	}
	if _, err := ParseSmaps([]byte("10-20 rw-p 0 00:00 0\nnonsense line\n")); err == nil {
		t.Error("garbage line accepted")
	}
}

func FuzzParseSmaps(f *testing.F) {
	seed(f, "/proc/self/smaps")
	f.Add([]byte("10-20 rw-p 00000000 00:00 0 [stack]\nRss: 4 kB\nVmFlags: rd wr gd\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vmas, err := ParseSmaps(b)
		if err != nil {
			return
		}
		for _, v := range vmas {
			if back := ParseVmFlags(v.Flags.String()); back != v.Flags {
				t.Errorf("flags %q do not parse back: %q", v.Flags, back)
			}
		}
	})
}
