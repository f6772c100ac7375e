package workloads

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const fileMmapPages = 4

// FileMmap maps two files of four pages each:
//   - --filename MAP_PRIVATE: pages 0 and 1 are written after mapping
//     (dirty, copied on write), page 2 is only read and page 3 never touched;
//   - --filename.shared MAP_SHARED: pages 0 and 1 are written, 2 and 3 not.
//
// After SIGTERM the private mapping must show its own changes while the file
// keeps the original data, and its clean pages must still be the file's
// pages: a write to the file shows through them. The shared mapping and its
// file must both show the writes, and a new write through the mapping must
// reach the file. /proc/self/maps must still name both files.
// The shared mapping's last page is made read-only before the dump (zdtm's
// maps_file_prot): after restore mprotect makes it writable again, which
// needs the file opened for writing behind it.
var FileMmap = lib.Workload{Name: "file_mmap", Run: func(t *lib.T) {
	page := os.Getpagesize()
	size := fileMmapPages * page
	privName := t.Opt("filename", "file_mmap.data")
	sharedName := privName + ".shared"
	orig := func(file, pg int) []byte { return bytes.Repeat([]byte{byte(0x10*file + pg + 1)}, page) }
	dirty := func(file, pg int) []byte { return bytes.Repeat([]byte{byte(0x80 + 0x10*file + pg)}, page) }

	open := func(name string, file int) int {
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(fmt.Errorf("open %s: %w", name, err))
		}
		for pg := range fileMmapPages {
			if _, err := unix.Pwrite(fd, orig(file, pg), int64(pg*page)); err != nil {
				t.Fatal(err)
			}
		}
		return fd
	}
	pfd, sfd := open(privName, 0), open(sharedName, 1)
	priv, err := unix.Mmap(pfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(fmt.Errorf("mmap %s private: %w", privName, err))
	}
	shared, err := unix.Mmap(sfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(fmt.Errorf("mmap %s shared: %w", sharedName, err))
	}
	// The mappings keep the files; the fds are not part of the state.
	unix.Close(pfd)
	unix.Close(sfd)
	for pg := range 2 {
		copy(priv[pg*page:], dirty(0, pg))
		copy(shared[pg*page:], dirty(1, pg))
	}
	if !bytes.Equal(priv[2*page:3*page], orig(0, 2)) {
		t.Fail("clean private page 2 does not show the file")
	}
	if err := unix.Mprotect(shared[3*page:], unix.PROT_READ); err != nil {
		t.Fatal(fmt.Errorf("mprotect the last shared page read-only: %w", err))
	}
	privAddr, sharedAddr := uintptr(unsafe.Pointer(&priv[0])), uintptr(unsafe.Pointer(&shared[0]))
	t.Logf("private mapping at %#x, shared at %#x", privAddr, sharedAddr)
	t.Ready()
	t.WaitSignal()

	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		addr, end uintptr
		perms     string
		name      string
	}{
		{privAddr, privAddr + uintptr(size), "rw-p", privName},
		{sharedAddr, sharedAddr + uintptr(3*page), "rw-s", sharedName},
		{sharedAddr + uintptr(3*page), sharedAddr + uintptr(size), "r--s", sharedName},
	} {
		found := false
		prefix := fmt.Sprintf("%x-%x %s ", m.addr, m.end, m.perms)
		for line := range strings.SplitSeq(string(maps), "\n") {
			if strings.HasPrefix(line, prefix) && strings.HasSuffix(line, m.name) {
				found = true
			}
		}
		if !found {
			t.Fail("no mapping %s...%s in /proc/self/maps:\n%s", prefix, m.name, maps)
		}
	}
	fileData := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size {
			t.Fail("%s is %d bytes, want %d", name, len(b), size)
		}
		return b
	}
	pdata, sdata := fileData(privName), fileData(sharedName)
	for pg := range fileMmapPages {
		at := func(b []byte) []byte { return b[pg*page : (pg+1)*page] }
		wantPriv, wantShared := orig(0, pg), orig(1, pg)
		if pg < 2 {
			wantPriv, wantShared = dirty(0, pg), dirty(1, pg)
		}
		for _, c := range []struct {
			what      string
			got, want []byte
		}{
			{"private mapping", at(priv), wantPriv},
			{privName + " (must not see the private changes)", at(pdata), orig(0, pg)},
			{"shared mapping", at(shared), wantShared},
			{sharedName, at(sdata), wantShared},
		} {
			for i := range c.got {
				if c.got[i] != c.want[i] {
					t.Fail("%s, page %d, byte %d: %#x, want %#x", c.what, pg, i, c.got[i], c.want[i])
				}
			}
		}
	}
	// Still really file mappings: changes travel both ways where they should.
	f, err := os.OpenFile(privName, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("file"), int64(3*page)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := string(priv[3*page : 3*page+4]); got != "file" {
		t.Fail("untouched private page 3 does not follow its file: %q after writing \"file\"", got)
	}
	if got := string(priv[0:4]); got == "file" {
		t.Fail("dirty private page 0 changed by a write to page 3 of the file")
	}
	if err := unix.Mprotect(shared[3*page:], unix.PROT_READ|unix.PROT_WRITE); err != nil {
		t.Fail("mprotect the read-only shared page writable after restore: %v", err)
	}
	copy(shared[3*page:], "mmap")
	if err := unix.Msync(shared, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	sdata = fileData(sharedName)
	if got := string(sdata[3*page : 3*page+4]); got != "mmap" {
		t.Fail("write through the shared mapping did not reach %s: %q", sharedName, got)
	}
	t.Pass()
}}
