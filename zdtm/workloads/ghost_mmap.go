package workloads

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const ghostMmapPages = 4

// GhostMmap maps deleted files:
//   - --filename, four pages, kept open O_RDWR and mapped twice: MAP_SHARED
//     (pages 0 and 1 written through it) and MAP_PRIVATE (pages 0 and 1
//     written, copied on write; page 2 only read, page 3 never touched);
//   - --filename.ro, two pages, mapped MAP_PRIVATE read-only and then
//     closed: only the mapping keeps it.
//
// Both names are unlinked. After SIGTERM every mapping and the fd must
// show what they showed, /proc/self/maps must name the files "NAME
// (deleted)", and the fd and both mappings must be one file again: a
// write through the shared mapping is read through the fd, a write
// through the fd shows in the shared mapping and in the private mapping's
// untouched page but not in its dirty ones.
var GhostMmap = lib.Workload{Name: "ghost_mmap", Run: func(t *lib.T) {
	page := os.Getpagesize()
	size := ghostMmapPages * page
	name, err := filepath.Abs(t.Opt("filename", "ghost_mmap.data"))
	if err != nil {
		t.Fatal(err)
	}
	roName := name + ".ro"
	fill := func(file, pg int) []byte { return bytes.Repeat([]byte{byte(0x10*file + pg + 1)}, page) }
	sharedW := func(pg int) []byte { return bytes.Repeat([]byte{byte(0xa0 + pg)}, page) }
	privW := func(pg int) []byte { return bytes.Repeat([]byte{byte(0xc0 + pg)}, page) }
	var data, roData []byte
	for pg := range ghostMmapPages {
		data = append(data, fill(0, pg)...)
	}
	for pg := range 2 {
		roData = append(roData, fill(1, pg)...)
	}
	fd := openWith(t, name, data)
	rofd := openWith(t, roName, roData)
	shared, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(fmt.Errorf("mmap shared: %w", err))
	}
	priv, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(fmt.Errorf("mmap private: %w", err))
	}
	ro, err := unix.Mmap(rofd, 0, 2*page, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(fmt.Errorf("mmap %s: %w", roName, err))
	}
	unix.Close(rofd)
	for pg := range 2 {
		copy(priv[pg*page:], privW(pg))
		copy(shared[pg*page:], sharedW(pg))
	}
	for _, n := range []string{name, roName} {
		if err := unix.Unlink(n); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
	// Page 2 of the private mapping is read (the file's page, still shared
	// with it); page 3 never touched.
	t.Logf("shared at %#x, private at %#x (page 2 holds %#x), read-only at %#x", addr(shared), addr(priv), priv[2*page], addr(ro))
	t.Ready()
	t.WaitSignal()

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 0 || st.Size != int64(size) {
		t.Fail("fstat: nlink %d size %d, want 0 and %d", st.Nlink, st.Size, size)
	}
	if l := fdTarget(fd); l != name+" (deleted)" {
		t.Fail("fd %d shows %q, want %q", fd, l, name+" (deleted)")
	}
	for _, m := range []struct {
		b    []byte
		name string
		ino  uint64 // 0: any
	}{{shared, name, st.Ino}, {priv, name, st.Ino}, {ro, roName, 0}} {
		ino, mname, err := mapsInode(addr(m.b))
		if err != nil {
			t.Fatal(err)
		}
		if mname != m.name+" (deleted)" || (m.ino != 0 && ino != m.ino) {
			t.Fail("mapping at %#x: %q inode %d, want %q inode %d (the fd's)", addr(m.b), mname, ino, m.name+" (deleted)", m.ino)
		}
	}
	file := make([]byte, size)
	if n, err := unix.Pread(fd, file, 0); err != nil || n != size {
		t.Fatal(fmt.Errorf("pread: %d, %v", n, err))
	}
	for pg := range ghostMmapPages {
		at := func(b []byte) []byte { return b[pg*page : (pg+1)*page] }
		wantShared, wantPriv := fill(0, pg), fill(0, pg)
		if pg < 2 {
			wantShared, wantPriv = sharedW(pg), privW(pg)
		}
		for _, c := range []struct {
			what      string
			got, want []byte
		}{{"shared mapping", at(shared), wantShared}, {"the file", at(file), wantShared}, {"private mapping", at(priv), wantPriv}} {
			if !bytes.Equal(c.got, c.want) {
				t.Fail("%s, page %d: %#x..., want %#x...", c.what, pg, c.got[0], c.want[0])
			}
		}
	}
	if !bytes.Equal(ro, roData) {
		t.Fail("read-only mapping of %s changed", roName)
	}
	// Still one file: changes travel where they should.
	copy(shared[3*page:], "via shared mapping")
	if n, err := unix.Pread(fd, file[:18], int64(3*page)); err != nil || string(file[:n]) != "via shared mapping" {
		t.Fail("write through the shared mapping not seen through the fd: %q (%v)", file[:n], err)
	}
	if _, err := unix.Pwrite(fd, []byte("via the fd"), int64(2*page)); err != nil {
		t.Fatal(err)
	}
	if got := string(shared[2*page : 2*page+10]); got != "via the fd" {
		t.Fail("write through the fd not seen in the shared mapping: %q", got)
	}
	if got := string(priv[2*page : 2*page+10]); got != "via the fd" {
		t.Fail("write through the fd not seen in the private mapping's clean page 2: %q", got)
	}
	if _, err := unix.Pwrite(fd, []byte("via the fd"), 0); err != nil {
		t.Fatal(err)
	}
	if got := string(priv[0:10]); got == "via the fd" {
		t.Fail("dirty private page 0 changed by a write to the file")
	}
	if left, err := restoreLeftovers(filepath.Dir(name)); err != nil || len(left) > 0 {
		t.Fail("left next to the ghosts: %v (%v)", left, err)
	}
	t.Pass()
}}
