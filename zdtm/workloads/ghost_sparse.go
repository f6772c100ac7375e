package workloads

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	ghostSparseSize = 8<<20 + 123 // apparent size: far above the 1 MiB ghost limit
	ghostSparsePos  = 3<<20 + 5   // the fd's offset, inside a hole
)

// ghostSparseRuns are where the file holds data: the first block, three
// blocks past 1 MiB, one block past 5 MiB and the file's last bytes;
// the rest are holes.
var ghostSparseRuns = []dataRun{{0, 4096}, {1 << 20, 1<<20 + 3*4096}, {5<<20 + 8192, 5<<20 + 3*4096}, {ghostSparseSize - 100, ghostSparseSize}}

// GhostSparse opens --filename O_RDWR, writes a few runs of data into an
// 8 MiB file so that most of it is holes, seeks into a hole and unlinks
// it: a ghost far above the 1 MiB ghost limit by its apparent size, far
// below by its data. After SIGTERM the fd must show the file deleted
// (nlink 0, "NAME (deleted)"), with the same size, offset, contents and
// SEEK_DATA/SEEK_HOLE layout, and still few blocks on disk; no ghost may
// be left next to its old name.
var GhostSparse = lib.Workload{Name: "ghost_sparse", Run: func(t *lib.T) {
	name, err := filepath.Abs(t.Opt("filename", "ghost_sparse.data"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, ghostSparseSize)
	seed := splitmix64(0x5ba75e)
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o604)
	if err != nil {
		t.Fatal(fmt.Errorf("open %s: %w", name, err))
	}
	if err := unix.Ftruncate(fd, ghostSparseSize); err != nil {
		t.Fatal(err)
	}
	for _, r := range ghostSparseRuns {
		for i := r.off; i < r.end; i++ {
			want[i] = byte(seed.next()) | 1 // never zero: a hole reads as zeros
		}
		if _, err := unix.Pwrite(fd, want[r.off:r.end], r.off); err != nil {
			t.Fatal(fmt.Errorf("write %d bytes at %d: %w", r.end-r.off, r.off, err))
		}
	}
	layout, err := dataLayout(fd, ghostSparseSize) // moves the offset: first
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Seek(fd, ghostSparsePos, 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Fail("%s takes %d bytes on disk: this filesystem keeps no holes", name, st.Blocks*512)
	}
	if err := unix.Unlink(name); err != nil {
		t.Fatal(err)
	}
	t.Logf("layout %v, %d blocks", layout, st.Blocks)
	t.Ready()
	t.WaitSignal()

	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		t.Fatal(err)
	}
	if got.Nlink != 0 || got.Size != ghostSparseSize || got.Mode != st.Mode || got.Uid != st.Uid || got.Gid != st.Gid {
		t.Fail("fstat: nlink %d size %d mode %#o owner %d:%d, want 0 %d %#o %d:%d", got.Nlink, got.Size, got.Mode,
			got.Uid, got.Gid, ghostSparseSize, st.Mode, st.Uid, st.Gid)
	}
	if got.Blocks*512 > 1<<20 {
		t.Fail("the file takes %d bytes on disk now (%d before): its holes were filled", got.Blocks*512, st.Blocks*512)
	}
	if l := fdTarget(fd); l != name+" (deleted)" {
		t.Fail("fd %d shows %q, want %q", fd, l, name+" (deleted)")
	}
	if pos, err := unix.Seek(fd, 0, 1); err != nil || pos != ghostSparsePos {
		t.Fail("offset %d (%v), want %d", pos, err, ghostSparsePos)
	}
	after, err := dataLayout(fd, ghostSparseSize)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(after, layout) {
		t.Fail("SEEK_DATA/SEEK_HOLE layout %v, want %v", after, layout)
	}
	content := make([]byte, ghostSparseSize+1)
	n, err := unix.Pread(fd, content, 0)
	if err != nil || n != ghostSparseSize || !bytes.Equal(content[:n], want) {
		i := 0
		for i < min(n, len(want)) && content[i] == want[i] {
			i++
		}
		t.Fail("contents differ: read %d bytes (%v), first difference at %d", n, err, i)
	}
	if left, err := restoreLeftovers(filepath.Dir(name)); err != nil || len(left) > 0 {
		t.Fail("left next to the ghost: %v (%v)", left, err)
	}
	t.Pass()
}}
