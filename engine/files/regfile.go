package files

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	"golang.org/x/sys/unix"
)

// dumpRegFd records a file opened by path: a regular file, a directory or a
// device node, with its flags, offset and mount.
func (s *Set) dumpRegFd(pid int, fd Fd) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Fd), &st); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	if st.Nlink == 0 || isDeleted(fd.Target) {
		return 0, fmt.Errorf("file was deleted while open (ghost files are not supported yet)")
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	return s.add(regEntry(fd.Target, flags, uint64(fd.Info.Pos), fd.Info.MntID, &st)), nil
}

// PathFile records a file the task uses by path but not through an fd:
// its cwd, root, exe and mapped files. One entry per path is enough. The
// path is the task's; it is looked up through /proc/PID/root.
func (s *Set) PathFile(pid int, path string, flags uint32) (uint32, error) {
	key := fmt.Sprintf("%o:%s", flags, path)
	if id, ok := s.byKey[key]; ok {
		return id, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root%s", pid, path), &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	id := s.add(regEntry(path, flags, 0, -1, &st))
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

// openReg reopens a file by path, looked up under the task's root, with the
// flags it had (minus those that would create or truncate it) and at its
// offset.
func (r *Restorer) openReg(e *regfile.RegFileEntry) (int, error) {
	flags := int(e.GetFlags()) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
	path := r.Root + e.GetName()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
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
