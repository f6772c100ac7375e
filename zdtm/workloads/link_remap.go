package workloads

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const linkRemapPos = 11

// LinkRemap opens --dirname/lr.data O_RDWR, links it as lr.other, seeks
// and unlinks lr.data: the fd's name is gone but the file is not (nlink
// 1). After SIGTERM the fd must still show "lr.data (deleted)", be the
// very file lr.other is (same inode, nlink 1: no link left over by the
// engine), with its offset and contents, and a write through the fd must
// read back through lr.other. The directory must hold lr.other alone.
var LinkRemap = lib.Workload{Name: "link_remap", Run: func(t *lib.T) {
	dir, err := filepath.Abs(t.Opt("dirname", "link_remap.dir"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name, other := filepath.Join(dir, "lr.data"), filepath.Join(dir, "lr.other")
	data := []byte("unlinked under this name, linked under another\n")
	fd := openWith(t, name, data)
	if _, err := unix.Seek(fd, linkRemapPos, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Link(name, other); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unlink(name); err != nil {
		t.Fatal(err)
	}
	var want unix.Stat_t
	if err := unix.Fstat(fd, &want); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()

	var st, ost unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(other, &ost); err != nil {
		t.Fatal(err)
	}
	if st.Dev != ost.Dev || st.Ino != ost.Ino || st.Ino != want.Ino || st.Nlink != 1 {
		t.Fail("fd: dev %d ino %d nlink %d; %s: dev %d ino %d; want one file, ino %d, nlink 1",
			st.Dev, st.Ino, st.Nlink, other, ost.Dev, ost.Ino, want.Ino)
	}
	if l := fdTarget(fd); l != name+" (deleted)" {
		t.Fail("fd %d shows %q, want %q", fd, l, name+" (deleted)")
	}
	if pos, _ := unix.Seek(fd, 0, 1); pos != linkRemapPos {
		t.Fail("offset %d, want %d", pos, linkRemapPos)
	}
	got := make([]byte, len(data)+1)
	if n, err := unix.Pread(fd, got, 0); err != nil || !bytes.Equal(got[:n], data) {
		t.Fail("contents through the fd: %q (%v)", got[:n], err)
	}
	if _, err := unix.Write(fd, []byte("WRITTEN")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append(append([]byte{}, data[:linkRemapPos]...), "WRITTEN"...), data[linkRemapPos+7:]...); !bytes.Equal(b, want) {
		t.Fail("%s holds %q after a write through the fd, want %q", other, b, want)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "lr.other" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fail("%s holds %v, want [lr.other]", dir, names)
	}
	t.Pass()
}}
