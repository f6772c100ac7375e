package files

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
)

// ownFd describes one of this process's fds the way DumpTable does.
func ownFd(t *testing.T, fd int) Fd {
	t.Helper()
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	info, err := procfs.FdInfo(os.Getpid(), fd)
	if err != nil {
		t.Fatal(err)
	}
	return Fd{Fd: fd, Target: target, Info: info}
}

// dumpOne dumps fd of this process into a fresh image directory and
// returns the set and the directory, reopened for reading.
func dumpOne(t *testing.T, fd int, limit int64) (*Set, uint32, *image.Dir, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	dir, err := image.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(dir)
	s.GhostLimit = limit
	t.Cleanup(s.Close)
	id, _, derr := s.dumpRegFd(os.Getpid(), ownFd(t, fd))
	dir.Close()
	rdir, err := image.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdir.Close() })
	return s, id, rdir, derr
}

// restorer makes a Restorer of what s dumped, its remaps checked.
func restorer(t *testing.T, s *Set, dir *image.Dir) *Restorer {
	t.Helper()
	byID := map[uint32]*fdinfo.FileEntry{}
	for _, e := range s.Entries {
		byID[e.GetId()] = e
	}
	rms, err := CheckRemaps(dir, byID, s.Remaps)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRestorer(s.Entries, "")
	r.Remaps, r.Dir = rms, dir
	t.Cleanup(r.Close)
	return r
}

func fstat(t *testing.T, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func layoutOf(t *testing.T, fd int, size int64) []extent {
	t.Helper()
	x, err := dataExtents(fd, size)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestGhostFile dumps a sparse file deleted while open and makes it again:
// same size, holes, contents, mode and times, opened under its old name
// (shown deleted) at its offset, and its ghost gone after RemoveGhosts.
func TestGhostFile(t *testing.T) {
	work := t.TempDir()
	name := filepath.Join(work, "sparse")
	const size = 3<<20 + 17
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	want := make([]byte, size)
	for _, r := range [][2]int{{0, 5000}, {2 << 20, 2<<20 + 100}, {size - 3, size}} {
		for i := r[0]; i < r[1]; i++ {
			want[i] = byte(i%251) | 1
		}
		if _, err := unix.Pwrite(fd, want[r[0]:r[1]], int64(r[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Fchmod(fd, 0o640); err != nil {
		t.Fatal(err)
	}
	times := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 123_456_000}, {Sec: 1_100_000_000, Nsec: 654_321_000}}
	if err := unix.UtimesNano(name, times); err != nil {
		t.Fatal(err)
	}
	layout := layoutOf(t, fd, size) // moves the offset: first
	if _, err := unix.Seek(fd, 12345, 0); err != nil {
		t.Fatal(err)
	}
	before := fstat(t, fd)
	if err := unix.Unlink(name); err != nil {
		t.Fatal(err)
	}

	if _, _, _, err := dumpOne(t, fd, 4096); err == nil || !strings.Contains(err.Error(), "ghost file limit of 4096") {
		t.Fatalf("dump above the ghost limit: %v, want it refused", err)
	}
	s, id, dir, err := dumpOne(t, fd, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Remaps) != 1 || s.Remaps[0].GetRemapType() != remap.RemapType_GHOST || s.Remaps[0].GetOrigId() != id {
		t.Fatalf("remaps %v, want one ghost for file %d", s.Remaps, id)
	}
	r := restorer(t, s, dir)
	nfd, err := r.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := unix.Seek(nfd, 0, 1); pos != 12345 {
		t.Errorf("offset %d, want 12345", pos)
	}
	after := fstat(t, nfd)
	if after.Ino == before.Ino || after.Size != size || after.Mode != before.Mode || after.Mtim != times[1] || after.Atim != times[0] {
		t.Errorf("made again: ino %d size %d mode %#o times %v %v; want a new inode, %d %#o %v", after.Ino, after.Size,
			after.Mode, after.Atim, after.Mtim, size, before.Mode, times)
	}
	if after.Blocks > before.Blocks+8 {
		t.Errorf("made again with %d blocks, had %d: holes filled", after.Blocks, before.Blocks)
	}
	if got := layoutOf(t, nfd, size); !slices.Equal(got, layout) {
		t.Errorf("layout %v, want %v", got, layout)
	}
	got := make([]byte, size)
	if n, err := unix.Pread(nfd, got, 0); err != nil || n != size || !bytes.Equal(got, want) {
		t.Errorf("contents differ (%d bytes, %v)", n, err)
	}
	if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", nfd)); l != name+" (deleted)" {
		t.Errorf("opened as %q, want %q", l, name+" (deleted)")
	}
	if err := r.RemoveGhosts(); err != nil {
		t.Fatal(err)
	}
	if st := fstat(t, nfd); st.Nlink != 0 {
		t.Errorf("nlink %d after RemoveGhosts, want 0", st.Nlink)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("left in %s: %v", work, ents)
	}
}

// TestGhostRemovedOnFailure: Close removes a ghost made for a restore
// that then failed.
func TestGhostRemovedOnFailure(t *testing.T) {
	work := t.TempDir()
	name := filepath.Join(work, "small")
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Write(fd, []byte("ghost"))
	unix.Unlink(name)
	s, id, dir, err := dumpOne(t, fd, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := restorer(t, s, dir)
	if _, err := r.Open(id); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "small.cr.1") {
		t.Fatalf("want the ghost small.cr.1.ghost in %s, have %v", work, ents)
	}
	r.Close()
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("left after Close: %v", ents)
	}
}

// TestGhostDir dumps a removed directory (an open fd on it, as a cwd would
// be) and makes it again at its old name for the restore, with its mode.
func TestGhostDir(t *testing.T) {
	work := t.TempDir()
	name := filepath.Join(work, "gone")
	if err := os.Mkdir(name, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(name, 0o751)
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Rmdir(name); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img")
	dir, err := image.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(dir)
	id, err := s.PathFile(os.Getpid(), Path{Name: name, Deleted: true, Proc: fmt.Sprintf("/proc/self/fd/%d", fd), What: "cwd", MntID: -1},
		unix.O_RDONLY|unix.O_DIRECTORY)
	dir.Close()
	if err != nil {
		t.Fatal(err)
	}
	rdir, err := image.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer rdir.Close()
	r := restorer(t, s, rdir)
	got, err := r.DirName(id)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(got, &st); got != name || err != nil || st.Mode != unix.S_IFDIR|0o751 {
		t.Errorf("ghost directory %s: mode %#o (%v), want %s, %#o", got, st.Mode, err, name, unix.S_IFDIR|0o751)
	}
	if err := r.RemoveGhosts(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("%s after RemoveGhosts: %v", name, err)
	}
}

// TestLinkRemap dumps a file unlinked under the name it was opened by but
// linked under another: the dump links it again (link_remap.ID), the
// restore opens it through that link under its old name and removes the
// link; a failed dump removes it at once.
func TestLinkRemap(t *testing.T) {
	work := t.TempDir()
	name, other := filepath.Join(work, "a"), filepath.Join(work, "b")
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Write(fd, []byte("linked"))
	if err := unix.Link(name, other); err != nil {
		t.Fatal(err)
	}
	unix.Unlink(name)
	s, id, dir, err := dumpOne(t, fd, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Remaps) != 1 || s.Remaps[0].GetRemapType() != remap.RemapType_LINKED {
		t.Fatalf("remaps %v, want one link remap", s.Remaps)
	}
	ents, _ := os.ReadDir(work)
	if len(ents) != 2 || !strings.HasPrefix(ents[1].Name(), "link_remap.") {
		t.Fatalf("%s holds %v, want b and link_remap.N", work, ents)
	}
	r := restorer(t, s, dir)
	nfd, err := r.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	var ost unix.Stat_t
	unix.Stat(other, &ost)
	if st := fstat(t, nfd); st.Ino != ost.Ino {
		t.Errorf("opened inode %d, want %d (%s)", st.Ino, ost.Ino, other)
	}
	if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", nfd)); l != name+" (deleted)" {
		t.Errorf("opened as %q, want %q", l, name+" (deleted)")
	}
	if err := r.RemoveLinkRemaps(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 1 || ents[0].Name() != "b" {
		t.Errorf("%s holds %v after the restore, want b", work, ents)
	}

	// A dump that fails (or lets the tree run on) takes its link back.
	s, _, _, err = dumpOne(t, fd, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DropLinkRemaps(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 1 {
		t.Errorf("%s holds %v after DropLinkRemaps, want b", work, ents)
	}
}

// TestCheckGhostRefuses: chunks out of place and kinds gocr cannot make
// are refused before anything is created.
func TestCheckGhostRefuses(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	yes := true
	for _, c := range []struct {
		name   string
		entry  *ghost_file.GhostFileEntry
		chunks [][2]uint64 // off, len
		want   string
	}{
		{"socket", &ghost_file.GhostFileEntry{Uid: u32(0), Gid: u32(0), Mode: u32(unix.S_IFSOCK | 0o600)}, nil, "mode"},
		{"no size", &ghost_file.GhostFileEntry{Uid: u32(0), Gid: u32(0), Mode: u32(unix.S_IFREG | 0o600), Chunks: &yes}, nil, "size"},
		{"past end", &ghost_file.GhostFileEntry{Uid: u32(0), Gid: u32(0), Mode: u32(unix.S_IFREG | 0o600), Chunks: &yes, Size: u64(10)},
			[][2]uint64{{8, 4}}, "runs past"},
		{"overlap", &ghost_file.GhostFileEntry{Uid: u32(0), Gid: u32(0), Mode: u32(unix.S_IFREG | 0o600), Chunks: &yes, Size: u64(100)},
			[][2]uint64{{0, 10}, {5, 10}}, "overlaps"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "img")
			d, err := image.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			w, err := d.Writer(image.GhostFile, image.GhostFileName(1))
			if err != nil {
				t.Fatal(err)
			}
			if c.entry.GetChunks() {
				err = w.Write(c.entry)
			} else {
				err = w.WritePayload(c.entry, bytes.NewReader(nil))
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range c.chunks {
				data := bytes.NewReader(make([]byte, ch[1]))
				if err := w.WritePayload(&ghost_file.GhostChunkEntry{Off: u64(ch[0]), Len: u64(ch[1])}, data); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			d.Close()
			rd, err := image.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if err := CheckGhost(rd, 1); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CheckGhost: %v, want an error about %q", err, c.want)
			}
		})
	}
}

// FuzzGhostImage feeds arbitrary bytes as a ghost file image: CheckGhost
// must refuse or pass it without panicking, and a ghost it passes must be
// made no larger than its entry says, inside its directory only, and
// removed again by Close.
func FuzzGhostImage(f *testing.F) {
	for _, seed := range ghostSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		imgs := t.TempDir()
		if err := os.WriteFile(filepath.Join(imgs, image.GhostFileName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := image.Open(imgs)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if CheckGhost(d, 1) != nil {
			return
		}
		work := t.TempDir()
		r := NewRestorer(nil, "")
		r.Dir = d
		if g, err := r.ghost(1, filepath.Join(work, "f"), -1); err == nil && !g.isDir && g.entry.GetChunks() {
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(work, g.base), &st); err != nil || uint64(st.Size) != g.entry.GetSize() {
				t.Errorf("ghost made with %d bytes (%v), its entry says %d", st.Size, err, g.entry.GetSize())
			}
		}
		r.Close()
		if ents, _ := os.ReadDir(work); len(ents) != 0 {
			t.Errorf("left behind: %v", ents)
		}
	})
}

// ghostSeeds are ghost images gocr writes: a sparse file's and a
// directory's.
func ghostSeeds(f *testing.F) [][]byte {
	work := f.TempDir()
	var out [][]byte
	name := filepath.Join(work, "seed")
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		f.Fatal(err)
	}
	defer unix.Close(fd)
	unix.Pwrite(fd, []byte("data"), 0)
	unix.Pwrite(fd, []byte("more data"), 1<<16)
	unix.Unlink(name)
	dir := filepath.Join(work, "dir")
	os.Mkdir(dir, 0o700)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		f.Fatal(err)
	}
	defer unix.Close(dfd)
	unix.Rmdir(dir)
	for _, p := range []Path{
		{Name: name, Deleted: true, Proc: fmt.Sprintf("/proc/self/fd/%d", fd), What: "seed", MntID: -1},
		{Name: dir, Deleted: true, Proc: fmt.Sprintf("/proc/self/fd/%d", dfd), What: "seed", MntID: -1},
	} {
		imgs := filepath.Join(f.TempDir(), "img")
		d, err := image.Create(imgs)
		if err != nil {
			f.Fatal(err)
		}
		s := NewSet(d)
		if _, err := s.PathFile(os.Getpid(), p, unix.O_RDONLY); err != nil {
			f.Fatal(err)
		}
		d.Close()
		b, err := os.ReadFile(filepath.Join(imgs, image.GhostFileName(1)))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestCheckRemapsRefuses: remap entries that name no regular file, name
// one twice or have a type gocr cannot restore are refused; an entry of an
// image older than remap_type gets its type from the remap id.
func TestCheckRemapsRefuses(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	reg := regEntryForTest
	files := map[uint32]*fdinfo.FileEntry{1: reg(1, "/a"), 2: reg(2, "/b"), 3: reg(3, "/link_remap.3"),
		4: {Type: fdinfo.FdTypes_PIPE.Enum(), Id: u32(4)}}
	rm := func(orig, id uint32, typ *remap.RemapType) *remap.RemapFilePathEntry {
		return &remap.RemapFilePathEntry{OrigId: u32(orig), RemapId: u32(id), RemapType: typ}
	}
	linked, procRemap := remap.RemapType_LINKED.Enum(), remap.RemapType_PROCFS.Enum()
	for _, c := range []struct {
		name   string
		remaps []*remap.RemapFilePathEntry
		want   string
	}{
		{"unknown orig", []*remap.RemapFilePathEntry{rm(9, 3, linked)}, "orig_id"},
		{"orig a pipe", []*remap.RemapFilePathEntry{rm(4, 3, linked)}, "orig_id"},
		{"twice", []*remap.RemapFilePathEntry{rm(1, 3, linked), rm(1, 3, linked)}, "twice"},
		{"link to a pipe", []*remap.RemapFilePathEntry{rm(1, 4, linked)}, "remap_id"},
		{"procfs", []*remap.RemapFilePathEntry{rm(1, 3, procRemap)}, "not supported"},
		{"old ghost, no image", []*remap.RemapFilePathEntry{rm(1, 0x80000001, nil)}, image.GhostFileName(1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := image.Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := CheckRemaps(d, files, c.remaps); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CheckRemaps: %v, want an error about %q", err, c.want)
			}
		})
	}
	d, err := image.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := CheckRemaps(d, files, []*remap.RemapFilePathEntry{rm(2, 3, nil)})
	if err != nil || got[2].GetRemapType() != remap.RemapType_LINKED {
		t.Errorf("old link remap: %v, %v", got, err)
	}
}

func regEntryForTest(id uint32, name string) *fdinfo.FileEntry {
	var st unix.Stat_t
	st.Mode = unix.S_IFREG | 0o644
	e := regEntry(name, 0, 0, -1, &st)
	e.Id, e.Reg.Id = &id, &id
	return e
}
