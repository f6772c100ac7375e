package files

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"golang.org/x/sys/unix"
)

// dumpRegFd records a file opened by path: a regular file, a directory or a
// device node, with its flags, offset and mount. A deleted one gets a
// ghost or a link remap (ghost.go, linkremap.go); a FIFO is fifo.go's.
func (s *Set) dumpRegFd(pid int, fd Fd) (uint32, fdinfo.FdTypes, error) {
	p := Path{Proc: fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Fd), What: fmt.Sprintf("fd %d", fd.Fd), MntID: fd.Info.MntID}
	p.Name, p.Deleted = SplitDeleted(fd.Target)
	var st unix.Stat_t
	if err := unix.Stat(p.Proc, &st); err != nil {
		return 0, 0, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFIFO {
		id, err := s.dumpFifo(pid, fd, p, &st)
		return id, fdinfo.FdTypes_FIFO, err
	}
	if isPtmx(&st) || isPtySlave(&st) {
		id, err := s.dumpTty(pid, fd, &st)
		return id, fdinfo.FdTypes_TTY, err
	}
	if err := checkProcName(pid, p); err != nil {
		return 0, 0, err
	}
	// A file made with O_TMPFILE keeps the flag: it never had a name
	// (/proc shows "DIR/#INODE (deleted)"), is saved as a ghost and is
	// made again with O_TMPFILE (see ghost.makeFile).
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	id := s.add(regEntry(p.Name, flags, uint64(fd.Info.Pos), fd.Info.MntID, &st))
	if p.Deleted || st.Nlink == 0 {
		if err := s.remapDeleted(pid, id, p, &st); err != nil {
			return 0, 0, err
		}
	}
	if isDevTty(&st) {
		s.devTty = append(s.devTty, DevTtyFd{Pid: pid, Fd: fd.Fd, ID: id})
	}
	return id, fdinfo.FdTypes_REG, nil
}

// checkProcName refuses a file of procfs whose name leads nowhere now: a
// file of a process that is gone (/proc/PID/mountinfo of a reaped
// child). /proc does not say " (deleted)" of those, and the restore,
// which opens files by name, would find nothing there.
func checkProcName(pid int, p Path) error {
	var fs unix.Statfs_t
	if p.Deleted || unix.Statfs(p.Proc, &fs) != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(fmt.Sprintf("/proc/%d/root%s", pid, p.Name), &st); errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d %s: %s: a file of procfs whose name is gone (of a process that died?): not supported yet", pid, p.What, p.Name)
	}
	return nil
}

// oTmpfileBit is __O_TMPFILE, O_TMPFILE without the O_DIRECTORY it
// carries.
const oTmpfileBit = unix.O_TMPFILE &^ unix.O_DIRECTORY

// Path is a file a task uses by its name: an fd's file, or its cwd, root,
// exe or a mapped file.
type Path struct {
	Name    string // as /proc shows it, without " (deleted)"
	Deleted bool   // /proc said " (deleted)"
	// Proc is a /proc path that reaches the very file, with a name left or
	// not, also when the name does not lead to it from the task's root
	// (after a pivot_root, say): /proc/PID/fd/N, /proc/PID/cwd,
	// /proc/PID/map_files/START-END.
	Proc  string
	What  string // what it is to the task, for errors: "fd 3", "cwd", "VMA 0x1000-0x2000"
	MntID int    // its mount, -1 if unknown: then read from Proc
}

// PathFile records a file the task uses by path but not through an fd:
// its cwd, root, exe and mapped files. One entry per path, mount and
// flags is enough (the same path is another file in another mount
// namespace); a deleted file has one per inode, as two can have had one
// name.
func (s *Set) PathFile(pid int, p Path, flags uint32) (uint32, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p.Proc, 0, unix.STATX_BASIC_STATS|unix.STATX_INO|unix.STATX_MNT_ID, &stx); err != nil {
		return 0, fmt.Errorf("stat %s (%s): %w", p.Name, p.Proc, err)
	}
	if p.MntID < 0 && stx.Mask&unix.STATX_MNT_ID != 0 {
		p.MntID = int(stx.Mnt_id)
	}
	st := unix.Stat_t{Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino, Nlink: uint64(stx.Nlink), Mode: uint32(stx.Mode),
		Uid: stx.Uid, Gid: stx.Gid, Size: int64(stx.Size), Rdev: unix.Mkdev(stx.Rdev_major, stx.Rdev_minor)}
	key := fmt.Sprintf("%o:%d:%s", flags, p.MntID, p.Name)
	if p.Deleted {
		key = fmt.Sprintf("%o:deleted:%d:%d", flags, st.Dev, st.Ino)
	}
	if id, ok := s.byKey[key]; ok {
		return id, nil
	}
	id := s.add(regEntry(p.Name, flags, 0, p.MntID, &st))
	if p.Deleted || st.Nlink == 0 {
		if err := s.remapDeleted(pid, id, p, &st); err != nil {
			return 0, err
		}
	}
	s.byKey[key] = id
	return id, nil
}

// SplitDeleted takes " (deleted)" off a path /proc shows and says whether
// it was there.
func SplitDeleted(target string) (string, bool) {
	const suffix = " (deleted)"
	if len(target) > len(suffix) && strings.HasSuffix(target, suffix) {
		return target[:len(target)-len(suffix)], true
	}
	return target, false
}

func regEntry(path string, flags uint32, pos uint64, mntID int, st *unix.Stat_t) *fdinfo.FileEntry {
	r := &regfile.RegFileEntry{
		Flags: &flags, Pos: &pos, Fown: noOwner(), Name: &path,
		MntId: ptr(int32(mntID)), Mode: ptr(st.Mode),
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		r.Size = ptr(uint64(st.Size))
	}
	typ := fdinfo.FdTypes_REG
	return &fdinfo.FileEntry{Type: &typ, Reg: r}
}

// openReg reopens a file by path — on its mount when the restore made
// that mount, in gocr's own namespace when the mount is of none of the
// tree's, under the root task's root when the image has no mount id — with
// the flags it had (minus those that would create or truncate it) and at
// its offset; a file deleted at dump time through its ghost or link remap.
func (r *Restorer) openReg(e *regfile.RegFileEntry) (int, error) {
	if rm := r.Remaps[e.GetId()]; rm != nil {
		return r.openRemapped(e, rm)
	}
	fd, err := r.openRegFlags(e, int(e.GetFlags()))
	if err != nil {
		return -1, err
	}
	if pos := e.GetPos(); pos != 0 {
		if _, err := unix.Seek(fd, int64(pos), unix.SEEK_SET); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("seek %s to %d: %w", e.GetName(), pos, err)
		}
	}
	return fd, nil
}

// openRegFlags opens the file of e with flags (minus those that would
// create or truncate it).
func (r *Restorer) openRegFlags(e *regfile.RegFileEntry, flags int) (int, error) {
	flags &^= unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY
	if flags&oTmpfileBit != 0 {
		flags &^= unix.O_TMPFILE // the file is made already (see openTmpfile)
	}
	var fd int
	var err error
	if id := uint32(e.GetMntId()); e.GetMntId() >= 0 && r.Mounts.Has(id) {
		// On the mount it was opened on, in whichever namespace.
		fd, err = r.Mounts.Open(id, e.GetName(), flags|unix.O_NOCTTY, 0)
	} else {
		fd, err = unix.Open(r.pathOf(e.GetMntId(), e.GetName()), flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s (flags %#o): %w", e.GetName(), flags, err)
	}
	return fd, nil
}

// openPath opens the file of e at path p (gocr's view of it) with the
// flags and at the offset e has.
func (r *Restorer) openPath(p string, e *regfile.RegFileEntry) (int, error) {
	flags := int(e.GetFlags()) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s (flags %#o): %w", e.GetName(), flags, err)
	}
	if pos := e.GetPos(); pos != 0 {
		if _, err := unix.Seek(fd, int64(pos), unix.SEEK_SET); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("seek %s to %d: %w", e.GetName(), pos, err)
		}
	}
	return fd, nil
}

// pathOf is gocr's path to name, a path as a task saw it on the mount
// with image id mntID: through that mount when the restore made it (its
// directory, opened on the mount, kept for the restore's time), in
// gocr's own namespace when the mount is of none of the tree's (the one
// the tree was started from), under the root task's root when the image
// has no mount id.
func (r *Restorer) pathOf(mntID int32, name string) string {
	switch {
	case mntID >= 0 && r.Mounts.Has(uint32(mntID)):
		name = path.Clean(name)
		// A directory that is there (the mount's root among them) is
		// reached itself; anything else through its directory.
		if fd, ok := r.dirOn(uint32(mntID), name); ok {
			return fmt.Sprintf("/proc/self/fd/%d", fd)
		}
		dir, base := path.Split(name)
		if fd, ok := r.dirOn(uint32(mntID), dir); ok {
			return fmt.Sprintf("/proc/self/fd/%d/%s", fd, base)
		}
		return r.Root + name // not on the mount: as the root task sees it
	case mntID >= 0 && r.Mounts != nil:
		return name
	}
	return r.Root + name
}

// dirOn opens the directory dir on the mount with image id mntID, once.
func (r *Restorer) dirOn(mntID uint32, dir string) (int, bool) {
	key := fmt.Sprintf("%d:%s", mntID, path.Clean(dir))
	if fd, ok := r.dirs[key]; ok {
		return fd, true
	}
	fd, err := r.Mounts.Open(mntID, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, false
	}
	r.dirs[key] = fd
	return fd, true
}

// DirName is the path a task changes into for the directory with file id
// id (its cwd): the name it had, where a deleted one is made again as a
// ghost directory for the time of the restore.
func (r *Restorer) DirName(id uint32) (string, error) {
	e, ok := r.entries[id]
	if !ok || e.Reg == nil {
		return "", fmt.Errorf("file id %d: not a regular file or directory in files.img", id)
	}
	rm := r.Remaps[id]
	if rm == nil {
		return e.Reg.GetName(), nil
	}
	if rm.GetRemapType() != remap.RemapType_GHOST {
		return "", fmt.Errorf("directory %s: remap of type %s: only deleted directories (ghosts) are restored", e.Reg.GetName(), rm.GetRemapType())
	}
	g, err := r.ghost(rm.GetRemapId(), e.Reg.GetName(), e.Reg.GetMntId())
	if err != nil {
		return "", err
	}
	if !g.isDir {
		return "", fmt.Errorf("directory %s: its ghost %d is not a directory", e.Reg.GetName(), rm.GetRemapId())
	}
	return g.name, nil
}
