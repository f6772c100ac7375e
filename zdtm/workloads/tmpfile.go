package workloads

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// Tmpfile holds a file made with O_TMPFILE in --dirname, as glibc's
// tmpfile() makes one: it never had a name. It holds 10,000 known bytes
// and is left at offset 1234. After restore the fd reads the same bytes
// from there, the file still has no link, it takes writes, and linkat
// gives it a name (it is the O_TMPFILE file again, not a deleted one).
var Tmpfile = lib.Workload{Name: "tmpfile", Run: func(t *lib.T) {
	dir := t.Opt("dirname", ".")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(fmt.Errorf("open %s O_TMPFILE: %w", dir, err))
	}
	data := make([]byte, 10000)
	seed := splitmix64(0x7e39f11e)
	for i := range data {
		data[i] = byte(seed.next())
	}
	if n, err := unix.Write(fd, data); err != nil || n != len(data) {
		t.Fatal(fmt.Errorf("write: %d, %v", n, err))
	}
	if _, err := unix.Seek(fd, 1234, 0); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink != 0 || st.Size != int64(len(data)) {
		t.Fail("fstat: nlink %d size %d (%v), want no link and %d bytes", st.Nlink, st.Size, err, len(data))
	}
	if pos, _ := unix.Seek(fd, 0, 1); pos != 1234 {
		t.Fail("offset %d, want 1234", pos)
	}
	got := make([]byte, len(data))
	if n, err := unix.Read(fd, got); err != nil || !bytes.Equal(got[:n], data[1234:]) {
		t.Fail("read on from 1234: %d bytes (%v), not the file's", n, err)
	}
	if _, err := unix.Write(fd, []byte("more")); err != nil {
		t.Fail("write: %v", err)
	}
	// Made without O_EXCL, it can be given a name, as programs publish
	// a file they wrote whole.
	name := dir + "/tmpfile.published"
	os.Remove(name)
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		t.Fail("link the O_TMPFILE file at %s: %v", name, err)
	} else if b, err := os.ReadFile(name); err != nil || !bytes.Equal(b[:len(data)], data) {
		t.Fail("%s after linkat: %d bytes, %v", name, len(b), err)
	}
	t.Pass()
}}
