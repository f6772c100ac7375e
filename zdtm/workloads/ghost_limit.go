package workloads

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

// ghostLimitSize is just above the default ghost limit (1 MiB), all data.
const ghostLimitSize = 1<<20 + 1

// GhostLimit holds two deleted files open: first (the lower fd) one that
// keeps another hard link, which a dump must give a name again (a link
// remap), then one with no name left whose 1 MiB + 1 byte of data are
// above the default ghost limit. It is flagged crfail: the dump must be
// refused, and leave both files as they were — no link remap left behind,
// the first file with its one link, the second with none — and the
// workload running. After SIGTERM it checks both files and their offsets.
var GhostLimit = lib.Workload{Name: "ghost_limit", Run: func(t *lib.T) {
	name, err := filepath.Abs(t.Opt("filename", "ghost_limit.data"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(name)
	linked, other := name+".linked", name+".other"
	small := []byte("a file unlinked under one name, still linked under another\n")
	lfd := openWith(t, linked, small)
	if err := unix.Link(linked, other); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), ghostLimitSize/16+1)[:ghostLimitSize]
	gfd := openWith(t, name, big)
	for _, n := range []string{linked, name} {
		if err := unix.Unlink(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Ready()
	t.WaitSignal()

	for _, f := range []struct {
		fd    int
		name  string
		data  []byte
		nlink uint64
	}{{lfd, linked, small, 1}, {gfd, name, big, 0}} {
		var st unix.Stat_t
		if err := unix.Fstat(f.fd, &st); err != nil {
			t.Fatal(err)
		}
		if st.Nlink != f.nlink || st.Size != int64(len(f.data)) {
			t.Fail("%s: nlink %d size %d, want %d and %d", f.name, st.Nlink, st.Size, f.nlink, len(f.data))
		}
		if l := fdTarget(f.fd); l != f.name+" (deleted)" {
			t.Fail("fd %d shows %q, want %q", f.fd, l, f.name+" (deleted)")
		}
		if pos, _ := unix.Seek(f.fd, 0, 1); pos != int64(len(f.data)) {
			t.Fail("%s: offset %d, want %d", f.name, pos, len(f.data))
		}
		got := make([]byte, len(f.data)+1)
		if n, err := unix.Pread(f.fd, got, 0); err != nil || !bytes.Equal(got[:n], f.data) {
			t.Fail("%s: contents changed (%d bytes read, %v)", f.name, n, err)
		}
	}
	if left, err := restoreLeftovers(dir); err != nil || len(left) > 0 {
		t.Fail("the refused dump left %v (%v)", left, err)
	}
	t.Pass()
}}

// openWith creates name holding data and returns an O_RDWR fd on it, left
// at its end.
func openWith(t *lib.T, name string, data []byte) int {
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(fmt.Errorf("open %s: %w", name, err))
	}
	if n, err := unix.Write(fd, data); err != nil || n != len(data) {
		t.Fatal(fmt.Errorf("write %s: %d bytes, %v", name, n, err))
	}
	return fd
}
