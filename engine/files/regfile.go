package files

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	"golang.org/x/sys/unix"
)

// dumpRegFd records a file opened by path: a regular file, a directory or a
// device node, with its flags, offset and mount.
func (s *Set) dumpRegFd(pid int, fd Fd) (uint32, fdinfo.FdTypes, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Fd), &st); err != nil {
		return 0, 0, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFIFO {
		id, err := s.dumpFifo(pid, fd, &st)
		return id, fdinfo.FdTypes_FIFO, err
	}
	if isPtmx(&st) || isPtySlave(&st) {
		id, err := s.dumpTty(pid, fd, &st)
		return id, fdinfo.FdTypes_TTY, err
	}
	if st.Nlink == 0 || isDeleted(fd.Target) {
		return 0, 0, fmt.Errorf("file was deleted while open (ghost files are not supported yet)")
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	return s.add(regEntry(fd.Target, flags, uint64(fd.Info.Pos), fd.Info.MntID, &st)), fdinfo.FdTypes_REG, nil
}

// PathFile records a file the task uses by path but not through an fd:
// its cwd, root, exe and mapped files. One entry per path and mount is
// enough (the same path is another file in another mount namespace). The
// path is the task's; the file is found through link, a magic link of
// /proc/PID (cwd, exe, map_files/...), which reaches it also when the
// path does not from the task's root (after a pivot_root, say).
func (s *Set) PathFile(path, link string, flags uint32) (uint32, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, link, 0, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &stx); err != nil {
		return 0, fmt.Errorf("stat %s (%s): %w", path, link, err)
	}
	mntID := -1
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		mntID = int(stx.Mnt_id)
	}
	key := fmt.Sprintf("%o:%d:%s", flags, mntID, path)
	if id, ok := s.byKey[key]; ok {
		return id, nil
	}
	st := unix.Stat_t{Mode: uint32(stx.Mode), Size: int64(stx.Size)}
	id := s.add(regEntry(path, flags, 0, mntID, &st))
	s.byKey[key] = id
	return id, nil
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

func isDeleted(target string) bool {
	const suffix = " (deleted)"
	return len(target) > len(suffix) && target[len(target)-len(suffix):] == suffix
}

// openReg reopens a file by path — on its mount when the restore made
// that mount, in gocr's own namespace when the mount is of none of the
// tree's, under the root task's root when the image has no mount id — with
// the flags it had (minus those that would create or
// truncate it) and at its offset.
func (r *Restorer) openReg(e *regfile.RegFileEntry) (int, error) {
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
	var fd int
	var err error
	switch id := uint32(e.GetMntId()); {
	case e.GetMntId() >= 0 && r.Mounts.Has(id):
		// On the mount it was opened on, in whichever namespace.
		fd, err = r.Mounts.Open(id, e.GetName(), flags|unix.O_NOCTTY, 0)
	case e.GetMntId() >= 0 && r.Mounts != nil:
		// A mount of none of the tree's namespaces: gocr's own, the one
		// the tree was started from (an fd inherited from before the
		// tree made its namespaces).
		fd, err = unix.Open(e.GetName(), flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	default:
		fd, err = unix.Open(r.Root+e.GetName(), flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s (flags %#o): %w", e.GetName(), flags, err)
	}
	return fd, nil
}
