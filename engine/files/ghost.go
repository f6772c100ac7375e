package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	criu_time "github.com/checkpoint-restore/go-criu/v7/crit/images/time"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/ns"
)

// Ghost files: a file deleted while a task still has it open, mapped or as
// its cwd has no name left to reopen it by. Its contents (data extents
// only: holes stay holes), mode, owner and times go to
// ghost-file-ID.img, and remap-fpath.img says which file entry it stands
// in for. On restore the file is made again next to where it was, under a
// temporary name ("NAME.cr.ID.ghost"); each open links it at its old name,
// opens it there and unlinks that name again, so the task's fd and maps
// show "NAME (deleted)" as before. Once every process has what it needs
// the temporary name goes too (RemoveGhosts), and a failed restore removes
// it all the same. A deleted directory (a cwd) is made at its old name
// itself, as CRIU does: a directory cannot be linked.

// DefaultGhostLimit is the most data a ghost file may hold unless the dump
// says otherwise, as criu's --ghost-limit.
const DefaultGhostLimit = 1 << 20

// fileKey names an inode: ghost files and link remaps are one per inode,
// however many fds, maps and processes reach it.
type fileKey struct {
	dev, ino uint64
}

func keyOf(st *unix.Stat_t) fileKey { return fileKey{st.Dev, st.Ino} }

// remapDeleted records what stands in for a deleted file behind file entry
// id: a ghost when no name is left (nlink 0), a link remap when another
// hard link remains.
func (s *Set) remapDeleted(pid int, id uint32, p Path, st *unix.Stat_t) error {
	if st.Nlink == 0 {
		gid, err := s.dumpGhost(pid, p, st)
		if err != nil {
			return err
		}
		s.addRemap(id, gid, remap.RemapType_GHOST)
		return nil
	}
	rid, err := s.dumpLinkRemap(pid, p, st)
	if err != nil {
		return err
	}
	s.addRemap(id, rid, remap.RemapType_LINKED)
	return nil
}

func (s *Set) addRemap(orig, id uint32, typ remap.RemapType) {
	s.Remaps = append(s.Remaps, &remap.RemapFilePathEntry{OrigId: ptr(orig), RemapId: ptr(id), RemapType: typ.Enum()})
}

// dumpGhost saves a file with no name left, once per inode, and returns
// its ghost id.
func (s *Set) dumpGhost(pid int, p Path, st *unix.Stat_t) (uint32, error) {
	if id, ok := s.ghosts[keyOf(st)]; ok {
		return id, nil
	}
	if err := checkGhostPlace(pid, p, st); err != nil {
		return 0, err
	}
	e := &ghost_file.GhostFileEntry{Mode: ptr(st.Mode), Dev: ptr(kernelDev(st.Dev)), Ino: ptr(st.Ino),
		Atim: timeval(st.Atim), Mtim: timeval(st.Mtim)}
	e.Uid, e.Gid = ptr(st.Uid), ptr(st.Gid)
	if s.UserMaps != nil {
		// As the tree sees them, as criu keeps them.
		e.Uid, e.Gid = ptr(ns.Inside(s.UserMaps.UidMap, st.Uid)), ptr(ns.Inside(s.UserMaps.GidMap, st.Gid))
	}
	id := s.nextGhost
	name := image.GhostFileName(id)
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR, unix.S_IFIFO:
		// Mode and owner alone: a FIFO's bytes in flight are its pipe's,
		// saved in fifo-data.img.
		err = s.writeGhostDir(name, e)
	case unix.S_IFREG:
		err = s.writeGhostFile(pid, name, p, e, st.Size)
	default:
		err = fmt.Errorf("mode %#o: only deleted regular files, FIFOs and directories are saved", st.Mode)
	}
	if err != nil {
		return 0, fmt.Errorf("pid %d %s: deleted file %s: %w", pid, p.What, p.Name, err)
	}
	s.nextGhost++
	s.ghosts[keyOf(st)] = id
	return id, nil
}

// checkGhostPlace makes sure the ghost can be made again where it was: its
// directory must still exist and be on the file's own filesystem. A memfd
// or SysV shared memory segment is deleted too, but lives on an internal
// mount no path reaches.
func checkGhostPlace(pid int, p Path, st *unix.Stat_t) error {
	if p.Name == "/" || !path.IsAbs(p.Name) {
		return fmt.Errorf("pid %d %s: deleted %q: not a path gocr can make again", pid, p.What, p.Name)
	}
	dir := path.Dir(p.Name)
	var dst unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root%s", pid, dir), &dst); err != nil {
		return fmt.Errorf("pid %d %s: deleted file %s: its directory: %w", pid, p.What, p.Name, err)
	}
	if dst.Mode&unix.S_IFMT != unix.S_IFDIR || dst.Dev != st.Dev {
		return fmt.Errorf("pid %d %s: deleted file %s is not on the filesystem of %s (a memfd or SysV shared memory?): not supported yet",
			pid, p.What, p.Name, dir)
	}
	// The restore makes the ghost on the file's own mount.
	var fs unix.Statfs_t
	if err := unix.Statfs(p.Proc, &fs); err == nil && fs.Flags&unix.ST_RDONLY != 0 {
		return fmt.Errorf("pid %d %s: deleted file %s is on a read-only mount, where the restore cannot make it again: not supported yet", pid, p.What, p.Name)
	}
	return nil
}

// kernelDev encodes a device number the way criu's images keep one (the
// kernel's major<<20 | minor), not as stat(2) gives it.
func kernelDev(dev uint64) uint32 { return unix.Major(dev)<<20 | unix.Minor(dev) }

func timeval(t unix.Timespec) *criu_time.Timeval {
	return &criu_time.Timeval{TvSec: ptr(uint64(t.Sec)), TvUsec: ptr(uint64(t.Nsec / 1000))}
}

// writeGhostDir writes a deleted directory's or FIFO's image: mode and
// owner alone.
func (s *Set) writeGhostDir(name string, e *ghost_file.GhostFileEntry) error {
	w, err := s.dir.Writer(image.GhostFile, name)
	if err != nil {
		return err
	}
	if err := w.WritePayload(e, bytes.NewReader(nil)); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// writeGhostFile writes a deleted regular file's image: the entry, then
// one chunk per data extent, so a sparse file costs only its data. The
// file is read through p.Proc, which reaches it with no name left; the
// data it holds must not exceed the ghost limit.
func (s *Set) writeGhostFile(pid int, name string, p Path, e *ghost_file.GhostFileEntry, size int64) error {
	fd, err := openNoAtime(p.Proc)
	if err != nil {
		return fmt.Errorf("open %s: %w", p.Proc, err)
	}
	defer unix.Close(fd)
	extents, err := dataExtents(fd, size)
	if err != nil {
		return err
	}
	var data int64
	for _, x := range extents {
		data += x.len
	}
	if data > s.ghostLimit() {
		return fmt.Errorf("%d bytes of data (file size %d), above the ghost file limit of %d bytes: raise it with --ghost-limit",
			data, size, s.ghostLimit())
	}
	e.Chunks, e.Size = ptr(true), ptr(uint64(size))
	w, err := s.dir.Writer(image.GhostFile, name)
	if err != nil {
		return err
	}
	if err := w.Write(e); err != nil {
		w.Abort()
		return err
	}
	f := fdReaderAt(fd)
	for _, x := range extents {
		c := &ghost_file.GhostChunkEntry{Off: ptr(uint64(x.off)), Len: ptr(uint64(x.len))}
		if err := w.WritePayload(c, io.NewSectionReader(f, x.off, x.len)); err != nil {
			w.Abort()
			return fmt.Errorf("%d bytes at %d: %w", x.len, x.off, err)
		}
	}
	return w.Close()
}

// ghostLimit is the most data a ghost file may hold: DefaultGhostLimit
// unless set; a negative limit allows empty files only.
func (s *Set) ghostLimit() int64 {
	switch {
	case s.GhostLimit == 0:
		return DefaultGhostLimit
	case s.GhostLimit < 0:
		return 0
	}
	return s.GhostLimit
}

// openNoAtime opens a file for reading without touching its access time
// (it was saved already); O_NOATIME needs the file's owner or CAP_FOWNER,
// so it is dropped when refused.
func openNoAtime(p string) (int, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// extent is a run of bytes of a file that holds data.
type extent struct{ off, len int64 }

// dataExtents lists where a file of size bytes holds data: holes found
// with SEEK_DATA/SEEK_HOLE are left out. On a filesystem that cannot tell,
// the kernel reports the whole file as data.
func dataExtents(fd int, size int64) ([]extent, error) {
	var out []extent
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole up to the end
		}
		if err != nil {
			return nil, fmt.Errorf("seek data from %d: %w", off, err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole from %d: %w", data, err)
		}
		hole = min(hole, size)
		out = append(out, extent{data, hole - data})
		off = hole
	}
	return out, nil
}

// fdReaderAt reads a file by fd with pread.
type fdReaderAt int

func (f fdReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := unix.Pread(int(f), b, off)
	switch {
	case err != nil:
		return max(n, 0), err
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// ghost is a ghost file or directory made for the restore.
type ghost struct {
	entry  *ghost_file.GhostFileEntry
	name   string // where it is now, as the task's root sees it
	dirfd  int    // its directory (O_PATH): removal works even once the task is gone
	base   string // its name in dirfd
	isDir  bool
	isFifo bool
	gone   bool
	// tmpfd, when not -1, is the open file the ghost was made with
	// O_TMPFILE through: it has no name (a link would cost it its
	// linkability), the fd the task made it with gets this open file, and
	// other opens and maps go through /proc/self/fd/tmpfd.
	tmpfd   int
	tmpUsed bool
}

// ghost returns the ghost with that id, making it on first use next to
// orig, the name it stands in for.
func (r *Restorer) ghost(id uint32, orig string, mntID int32) (*ghost, error) {
	if g, ok := r.ghosts[id]; ok {
		return g, nil
	}
	rd, err := r.Dir.Reader(image.GhostFile, image.GhostFileName(id))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	e := &ghost_file.GhostFileEntry{}
	if !rd.Next(e) {
		if rd.Err() != nil {
			return nil, rd.Err()
		}
		return nil, fmt.Errorf("%s: no entry", image.GhostFileName(id))
	}
	dirfd, err := unix.Open(r.pathOf(mntID, path.Dir(orig)), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ghost %d: directory of %s: %w", id, orig, err)
	}
	g := &ghost{entry: e, dirfd: dirfd, isDir: e.GetMode()&unix.S_IFMT == unix.S_IFDIR,
		isFifo: e.GetMode()&unix.S_IFMT == unix.S_IFIFO, tmpfd: -1}
	switch {
	case g.isDir:
		err = g.makeDir(id, orig)
	case g.isFifo:
		err = g.makeFifo(id, orig)
	default:
		err = g.makeFile(id, orig, rd, r.tmpfileFlags(id))
	}
	if g.base != "" || g.tmpfd >= 0 {
		r.made = append(r.made, g) // from now on removed whatever happens
	} else {
		unix.Close(dirfd)
		if g.tmpfd >= 0 {
			unix.Close(g.tmpfd)
		}
	}
	if err == nil {
		err = r.setGhostMeta(g)
	}
	if err != nil {
		return nil, fmt.Errorf("ghost %d for %s: %w", id, orig, err)
	}
	r.ghosts[id] = g
	return g, nil
}

// makeDir makes a ghost directory at its old name, or beside it when that
// name is taken again.
func (g *ghost) makeDir(id uint32, orig string) error {
	return g.makeNode(id, orig, "mkdir", func(base string) error { return unix.Mkdirat(g.dirfd, base, 0o700) })
}

// makeFifo makes a ghost FIFO the same way.
func (g *ghost) makeFifo(id uint32, orig string) error {
	return g.makeNode(id, orig, "mkfifo", func(base string) error { return unix.Mknodat(g.dirfd, base, unix.S_IFIFO|0o600, 0) })
}

// makeNode makes a ghost with mk at the first of its names that is free.
func (g *ghost) makeNode(id uint32, orig, what string, mk func(base string) error) error {
	for i, name := range ghostNames(id, orig) {
		err := mk(path.Base(name))
		if err == nil {
			g.name, g.base = name, path.Base(name)
			return nil
		}
		if !errors.Is(err, unix.EEXIST) || i == maxGhostNames-1 {
			return fmt.Errorf("%s %s: %w", what, name, err)
		}
	}
	return nil
}

// makeFile makes a ghost regular file under a temporary name and fills it
// from its image: the chunks at their offsets (holes stay holes), or the
// whole file as one payload in images without chunks.
//
// A ghost of a file the task made with O_TMPFILE (tmpFlags, its open
// flags, not 0) is made that way too, in its directory, and never linked:
// the fd given that open file has it as the task had it (its flags, and
// linkable with linkat unless O_EXCL).
func (g *ghost) makeFile(id uint32, orig string, rd *image.Reader, tmpFlags int) error {
	var fd int
	var err error
	if tmpFlags != 0 {
		acc := tmpFlags & unix.O_ACCMODE
		fl := unix.O_TMPFILE | acc | unix.O_CLOEXEC | tmpFlags&unix.O_EXCL
		fd, err = unix.Openat(g.dirfd, ".", fl, 0o600)
		if err != nil {
			return fmt.Errorf("open a file with O_TMPFILE in the directory of %s: %w", orig, err)
		}
		g.tmpfd, g.name = fd, orig
	}
	for i, name := range ghostNames(id, orig)[1:] {
		if g.tmpfd >= 0 {
			break
		}
		fd, err = unix.Openat(g.dirfd, path.Base(name), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err == nil {
			g.name, g.base = name, path.Base(name)
			break
		}
		if !errors.Is(err, unix.EEXIST) || i == maxGhostNames-2 {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	if g.tmpfd < 0 {
		defer unix.Close(fd)
	}
	e := g.entry
	if !e.GetChunks() {
		_, err := io.Copy(io.NewOffsetWriter(fdWriterAt(fd), 0), rd.Payload())
		return err
	}
	if err := unix.Ftruncate(fd, int64(e.GetSize())); err != nil {
		return fmt.Errorf("size %d: %w", e.GetSize(), err)
	}
	for {
		c := &ghost_file.GhostChunkEntry{}
		if !rd.Next(c) {
			return rd.Err()
		}
		if _, err := io.Copy(io.NewOffsetWriter(fdWriterAt(fd), int64(c.GetOff())), rd.Payload()); err != nil {
			return fmt.Errorf("%d bytes at %d: %w", c.GetLen(), c.GetOff(), err)
		}
	}
}

// tmpfileFlags returns the open flags of the file entry that made ghost
// id with O_TMPFILE, or 0 when none did.
func (r *Restorer) tmpfileFlags(id uint32) int {
	for fid, rm := range r.Remaps {
		if rm.GetRemapType() != remap.RemapType_GHOST || rm.GetRemapId() != id {
			continue
		}
		if e := r.entries[fid].GetReg(); e != nil && int(e.GetFlags())&oTmpfileBit != 0 {
			return int(e.GetFlags())
		}
	}
	return 0
}

// openTmpfile gives e, a file the task made with O_TMPFILE, the open
// file the ghost was made through, at e's offset and with its status flags.
func (g *ghost) openTmpfile(e *regfile.RegFileEntry) (int, error) {
	if g.tmpfd < 0 || g.tmpUsed {
		return -1, fmt.Errorf("%s: a second open file made with O_TMPFILE for one ghost", e.GetName())
	}
	fd, err := unix.FcntlInt(uintptr(g.tmpfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	g.tmpUsed = true
	fl := int(e.GetFlags()) & (unix.O_APPEND | unix.O_NONBLOCK | unix.O_NOATIME | unix.O_ASYNC | unix.O_DIRECT)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: set flags %#o: %w", e.GetName(), fl, err)
	}
	if _, err := unix.Seek(fd, int64(e.GetPos()), unix.SEEK_SET); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: seek to %d: %w", e.GetName(), e.GetPos(), err)
	}
	return fd, nil
}

// maxGhostNames bounds the names tried for one ghost.
const maxGhostNames = 8

// ghostNames are the names a ghost may take, in order: its old name (a
// directory only), then "NAME.cr.ID.ghost" as criu names them, then
// numbered ones should an earlier restore have left that behind.
func ghostNames(id uint32, orig string) []string {
	out := []string{orig, fmt.Sprintf("%s.cr.%x.ghost", orig, id)}
	for i := 1; len(out) < maxGhostNames; i++ {
		out = append(out, fmt.Sprintf("%s.cr.%x.%d.ghost", orig, id, i))
	}
	return out
}

// setGhostMeta gives the ghost its owner, mode and times, in that order:
// chown clears set-id bits, and any change but the times' moves ctime.
func (r *Restorer) setGhostMeta(g *ghost) error {
	e := g.entry
	uid, gid, err := r.hostIDs(e)
	if err != nil {
		return err
	}
	if g.tmpfd >= 0 {
		return g.setTmpfileMeta(uid, gid)
	}
	if err := unix.Fchownat(g.dirfd, g.base, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", g.name, uid, gid, err)
	}
	if err := unix.Fchmodat(g.dirfd, g.base, e.GetMode()&0o7777, 0); err != nil {
		return fmt.Errorf("chmod %s %#o: %w", g.name, e.GetMode()&0o7777, err)
	}
	if e.Atim == nil || e.Mtim == nil {
		return nil
	}
	ts := []unix.Timespec{tspec(e.Atim), tspec(e.Mtim)}
	if err := unix.UtimesNanoAt(g.dirfd, g.base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", g.name, err)
	}
	return nil
}

// setTmpfileMeta is setGhostMeta for a ghost without a name.
func (g *ghost) setTmpfileMeta(uid, gid uint32) error {
	e := g.entry
	if err := unix.Fchown(g.tmpfd, int(uid), int(gid)); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", g.name, uid, gid, err)
	}
	if err := unix.Fchmod(g.tmpfd, e.GetMode()&0o7777); err != nil {
		return fmt.Errorf("chmod %s %#o: %w", g.name, e.GetMode()&0o7777, err)
	}
	if e.Atim == nil || e.Mtim == nil {
		return nil
	}
	ts := []unix.Timespec{tspec(e.Atim), tspec(e.Mtim)}
	if err := unix.UtimesNanoAt(g.tmpfd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set times of %s: %w", g.name, err)
	}
	return nil
}

func tspec(t *criu_time.Timeval) unix.Timespec {
	return unix.Timespec{Sec: int64(t.GetTvSec()), Nsec: int64(t.GetTvUsec()) * 1000}
}

// hostIDs gives a ghost's owner as gocr sees it: the image has it as the
// tree saw it, inside its own user namespace if it had one.
func (r *Restorer) hostIDs(e *ghost_file.GhostFileEntry) (uint32, uint32, error) {
	uid, gid := e.GetUid(), e.GetGid()
	if r.UserMaps == nil {
		return uid, gid, nil
	}
	hu, ok := ns.Outside(r.UserMaps.UidMap, uid)
	if !ok {
		return 0, 0, fmt.Errorf("owner uid %d is not mapped in the tree's user namespace", uid)
	}
	hg, ok := ns.Outside(r.UserMaps.GidMap, gid)
	if !ok {
		return 0, 0, fmt.Errorf("owner gid %d is not mapped in the tree's user namespace", gid)
	}
	return hu, hg, nil
}

// remove unlinks the ghost's name (rmdir for a directory).
func (g *ghost) remove() error {
	if g.gone {
		return nil
	}
	g.gone = true
	defer unix.Close(g.dirfd)
	if g.tmpfd >= 0 {
		unix.Close(g.tmpfd)
		return nil // it had no name
	}
	flags := 0
	if g.isDir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(g.dirfd, g.base, flags); err != nil {
		return fmt.Errorf("remove ghost %s: %w", g.name, err)
	}
	return nil
}

// RemoveGhosts removes every ghost file and directory made so far: once
// every process has opened, mapped or entered them, their names must go,
// as they were gone at dump time. Close does it too, for a failed restore.
func (r *Restorer) RemoveGhosts() error {
	var errs []error
	for _, g := range r.made {
		errs = append(errs, g.remove())
	}
	return errors.Join(errs...)
}

// fdWriterAt writes a file by fd with pwrite.
type fdWriterAt int

func (f fdWriterAt) WriteAt(b []byte, off int64) (int, error) {
	n, err := unix.Pwrite(int(f), b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return max(n, 0), err
}

// CheckGhost reads ghost-file-ID.img through and refuses what a restore
// could not make or would write out of place: a kind other than a regular
// file or directory, chunks without a size or past it, out of order or
// overlapping. Nothing is created.
func CheckGhost(dir *image.Dir, id uint32) error {
	name := image.GhostFileName(id)
	rd, err := dir.Reader(image.GhostFile, name)
	if err != nil {
		return err
	}
	defer rd.Close()
	e := &ghost_file.GhostFileEntry{}
	if !rd.Next(e) {
		if rd.Err() != nil {
			return rd.Err()
		}
		return fmt.Errorf("%s: no entry", name)
	}
	switch e.GetMode() & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR, unix.S_IFIFO:
		if e.GetChunks() {
			return fmt.Errorf("%s: [0].chunks: a directory or FIFO has no contents", name)
		}
		if _, n := rd.PayloadOffset(); n != 0 {
			return fmt.Errorf("%s: a directory or FIFO has no contents, the image has %d bytes", name, n)
		}
		return nil
	default:
		return fmt.Errorf("%s: [0].mode: %#o: only regular files, FIFOs and directories are restored as ghosts", name, e.GetMode())
	}
	if !e.GetChunks() {
		return nil
	}
	if e.Size == nil {
		return fmt.Errorf("%s: [0].size: missing, and the file has chunks", name)
	}
	var end uint64
	for {
		c := &ghost_file.GhostChunkEntry{}
		if !rd.Next(c) {
			return rd.Err()
		}
		off, n := c.GetOff(), c.GetLen()
		if off < end || n > e.GetSize() || off > e.GetSize()-n {
			return fmt.Errorf("%s: [%d]: chunk of %d bytes at %d: overlaps the one before or runs past the file's %d bytes",
				name, rd.Index(), n, off, e.GetSize())
		}
		end = off + n
	}
}
