package mem

import (
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
)

// A SysV attachment in /proc/PID/maps is described as CRIU does, and
// whether it may be written comes from VmFlags, not prot.
func TestDumpSysVVMA(t *testing.T) {
	vmas, err := procfs.ParseMaps([]byte("7f00aa000000-7f00aa002000 r--s 00001000 00:01 32769                      /SYSV0000abcd (deleted)\n" +
		"7f00aa010000-7f00aa011000 rw-s 00000000 00:01 7                          /dev/zero (deleted)\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !IsSysVShm(vmas[0]) || IsSysVShm(vmas[1]) || IsSharedAnon(vmas[0]) {
		t.Fatalf("IsSysVShm: %v %v", IsSysVShm(vmas[0]), IsSysVShm(vmas[1]))
	}
	for _, c := range []struct {
		flags   procfs.VmFlags
		fdflags uint32
	}{{procfs.VmRead | procfs.VmShared | procfs.VmMayRead | procfs.VmMayWrite, unix.O_RDWR}, {procfs.VmRead | procfs.VmShared | procfs.VmMayRead, unix.O_RDONLY}} {
		v := vmas[0]
		v.Flags = c.flags
		e, err := DumpVMA(v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !IsSysV(e) || e.GetStatus() != AreaRegular|AnonShared|AreaSysVIPC || e.GetShmid() != 32769 || e.GetPgoff() != 0x1000 ||
			e.GetFlags() != unix.MAP_SHARED|unix.MAP_ANONYMOUS || e.GetFdflags() != c.fdflags || HasContents(e) {
			t.Errorf("flags %#x: %v", c.flags, e)
		}
	}
	v := vmas[0]
	v.Flags = procfs.VmHugeTLB
	if _, err := DumpVMA(v, nil); err == nil {
		t.Error("a huge page attachment was accepted")
	}
}

// Pieces of one attachment go together; shmat's flags come from fdflags,
// or from prot in an image without them (CRIU's).
func TestSysVAttachments(t *testing.T) {
	piece := func(start, end, pgoff, shmid uint64, prot uint32, fdflags *uint32) *vma.VmaEntry {
		return &vma.VmaEntry{Start: ptr(start), End: ptr(end), Pgoff: ptr(pgoff), Shmid: ptr(shmid), Prot: ptr(prot),
			Flags: ptr(uint32(unix.MAP_SHARED | unix.MAP_ANONYMOUS)), Status: ptr(uint32(AreaRegular | AnonShared | AreaSysVIPC)), Fdflags: fdflags}
	}
	rw, ro := ptr(uint32(unix.O_RDWR)), ptr(uint32(unix.O_RDONLY))
	vmas := []*vma.VmaEntry{
		piece(0x10000, 0x11000, 0, 5, unix.PROT_READ, rw),                      // attachment A, page 0 made read-only
		piece(0x12000, 0x14000, 0x2000, 5, unix.PROT_READ|unix.PROT_WRITE, rw), // A, page 1 unmapped
		piece(0x20000, 0x22000, 0, 5, unix.PROT_READ, ro),                      // B: SHM_RDONLY
		piece(0x30000, 0x31000, 0, 6, unix.PROT_READ|unix.PROT_EXEC, nil),      // C: CRIU's, no fdflags
	}
	as := sysvAttachments(vmas)
	if len(as) != 3 || as[0].base != 0x10000 || len(as[0].pieces) != 2 || as[1].base != 0x20000 || as[2].shmid != 6 {
		t.Fatalf("attachments: %+v", as)
	}
	for i, want := range []struct {
		flags uint64
		prot  uint32
	}{
		{0, unix.PROT_READ | unix.PROT_WRITE},
		{unix.SHM_RDONLY, unix.PROT_READ},
		{unix.SHM_RDONLY | abi.ShmExec, unix.PROT_READ | unix.PROT_EXEC},
	} {
		flags, prot := as[i].shmatFlags()
		if flags != want.flags || prot != want.prot {
			t.Errorf("attachment %d: flags %#x prot %#x, want %#x %#x", i, flags, prot, want.flags, want.prot)
		}
	}
}
