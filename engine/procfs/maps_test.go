package procfs

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func findVMA(vmas []VMA, addr uint64) (VMA, bool) {
	for _, v := range vmas {
		if v.Start <= addr && addr < v.End {
			return v, true
		}
	}
	return VMA{}, false
}

func TestMapsSelfAnonAndDeletedFileWithOddName(t *testing.T) {
	anon, err := unix.Mmap(-1, 0, 3*4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(anon)

	name := filepath.Join(t.TempDir(), "a file\nwith newline and spaces ")
	if err := os.WriteFile(name, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	fileMem, err := unix.Mmap(int(f.Fd()), 4096, 4096, unix.PROT_READ, unix.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(fileMem)
	var st unix.Stat_t
	if err := unix.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}

	vmas, err := Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	a, ok := findVMA(vmas, uint64(uintptr(unsafe.Pointer(&anon[0]))))
	if !ok {
		t.Fatal("anonymous mapping not in maps")
	}
	if a.Perms != PermRead|PermExec || a.Kind() != MapAnon || a.Inode != 0 || a.Path != "" {
		t.Errorf("anon VMA = %+v, kind %v", a, a.Kind())
	}
	if a.Len() < 3*4096 {
		t.Errorf("anon VMA length %d < 3 pages", a.Len())
	}
	fv, ok := findVMA(vmas, uint64(uintptr(unsafe.Pointer(&fileMem[0]))))
	if !ok {
		t.Fatal("file mapping not in maps")
	}
	if fv.Path != name || !fv.Deleted {
		t.Errorf("file VMA path %q deleted=%v, want %q deleted", fv.Path, fv.Deleted, name)
	}
	if fv.Offset != 4096 || fv.Inode != st.Ino || fv.Perms != PermRead|PermShared || fv.Kind() != MapFile {
		t.Errorf("file VMA = %+v", fv)
	}
	if fv.Major != unix.Major(st.Dev) || fv.Minor != unix.Minor(st.Dev) {
		t.Errorf("file VMA dev %d:%d, stat says %d:%d", fv.Major, fv.Minor, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
}

func TestMapsChildSpecialMappings(t *testing.T) {
	cmd := startSleeper(t, "")
	vmas, err := Maps(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[MappingKind]int{}
	for _, v := range vmas {
		kinds[v.Kind()]++
	}
	for _, k := range []MappingKind{MapStack, MapVDSO, MapVVAR, MapFile} {
		if kinds[k] == 0 {
			t.Errorf("child has no %v mapping; kinds %v", k, kinds)
		}
	}
	exe, err := Exe(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vmas {
		if v.Path == exe && v.Perms&PermExec != 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no executable mapping of %s", exe)
	}
}

func TestParseMapsSamples(t *testing.T) {
	in := "7f8f9731c000-7f8f97320000 r--p 00000000 00:00 0                          [vvar]\n" +
		"7f8f97320000-7f8f97322000 r--p 00000000 00:00 0                          [vvar_vclock]\n" +
		"559e6bd8b000-559e6bd8d000 r-xs 0000a000 fe:01 247278                     /usr/bin/my prog (deleted)\n" +
		"10000-11000 rw-p 00000000 00:05 3                          /memfd:x\\012y (deleted)\n" +
		"20000-21000 rw-p 00000000 00:00 0                          [anon:go heap]\n" +
		"30000-31000 ---p 00000000 00:00 0 \n" +
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n" +
		"40000-41000 rw-p 00000000 00:00 0                          [stack:1234]\n" +
		"50000-51000 rw-p 00000000 00:00 0                          [uprobes]\n" +
		"60000-61000 rw-p 00000000 00:00 0                          [heap]"
	vmas, err := ParseMaps([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind    MappingKind
		path    string
		deleted bool
		perms   string
	}{
		{MapVVAR, "[vvar]", false, "r--p"},
		{MapVVARVclock, "[vvar_vclock]", false, "r--p"},
		{MapFile, "/usr/bin/my prog", true, "r-xs"},
		{MapFile, "/memfd:x\ny", true, "rw-p"},
		{MapAnon, "[anon:go heap]", false, "rw-p"},
		{MapAnon, "", false, "---p"},
		{MapVsyscall, "[vsyscall]", false, "--xp"},
		{MapStack, "[stack:1234]", false, "rw-p"},
		{MapSpecial, "[uprobes]", false, "rw-p"},
		{MapHeap, "[heap]", false, "rw-p"},
	}
	if len(vmas) != len(want) {
		t.Fatalf("got %d VMAs, want %d", len(vmas), len(want))
	}
	for i, w := range want {
		v := vmas[i]
		if v.Kind() != w.kind || v.Path != w.path || v.Deleted != w.deleted || v.Perms.String() != w.perms {
			t.Errorf("line %d: got kind %v path %q deleted %v perms %v, want %+v", i+1, v.Kind(), v.Path, v.Deleted, v.Perms, w)
		}
	}
	if v := vmas[2]; v.Offset != 0xa000 || v.Major != 0xfe || v.Minor != 1 || v.Inode != 247278 || v.Start != 0x559e6bd8b000 {
		t.Errorf("file line fields: %+v", v)
	}
	if vmas[6].End != 0xffffffffff601000 {
		t.Errorf("vsyscall end %#x", vmas[6].End)
	}
	if p := vmas[2].Perms.Prot(); p != unix.PROT_READ|unix.PROT_EXEC {
		t.Errorf("Prot() = %d", p)
	}

	for _, bad := range []string{
		"zz-10 rw-p 0 00:00 0", "10-5 rw-p 0 00:00 0", "10-20 rwzp 0 00:00 0",
		"10-20 rw-p 0 0000 0", "10-20 rw-p 0 00:00 x", "10-20", "10-20 rw-p 0 00:00",
		"10000000000000000-1 rw-p 0 00:00 0",
	} {
		if _, err := ParseMaps([]byte(bad)); err == nil {
			t.Errorf("ParseMaps(%q) accepted garbage", bad)
		}
	}
}

func FuzzParseMaps(f *testing.F) {
	seed(f, "/proc/self/maps")
	f.Add([]byte("7f8f9731c000-7f8f97320000 r--p 00000000 00:00 0    /a b\\012 (deleted)\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vmas, err := ParseMaps(b)
		if err != nil {
			return
		}
		for _, v := range vmas {
			if v.End < v.Start {
				t.Fatalf("VMA ends before it starts: %+v", v)
			}
			_ = v.Kind().String() + v.Perms.String()
		}
	})
}
