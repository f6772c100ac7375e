package files

import (
	"fmt"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"golang.org/x/sys/unix"
)

// dumpRegFd records a file opened by path: a regular file, a directory or a
// device node, with its flags, offset and mount. A deleted one gets a
// ghost or a link remap (ghost.go, linkremap.go).
func (s *Set) dumpRegFd(pid int, fd Fd) (uint32, error) {
	p := Path{Proc: fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Fd), What: fmt.Sprintf("fd %d", fd.Fd), MntID: fd.Info.MntID}
	p.Name, p.Deleted = SplitDeleted(fd.Target)
	var st unix.Stat_t
	if err := unix.Stat(p.Proc, &st); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	id := s.add(regEntry(p.Name, flags, uint64(fd.Info.Pos), fd.Info.MntID, &st))
	if p.Deleted || st.Nlink == 0 {
		if err := s.remapDeleted(pid, id, p, &st); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// Path is a file a task uses by its name: an fd's file, or its cwd, root,
// exe or a mapped file.
type Path struct {
	Name    string // as /proc shows it, without " (deleted)"
	Deleted bool   // /proc said " (deleted)"
	// Proc is a /proc path that reaches the very file, with a name left or
	// not: /proc/PID/fd/N, /proc/PID/cwd, /proc/PID/map_files/START-END.
	Proc  string
	What  string // what it is to the task, for errors: "fd 3", "cwd", "VMA 0x1000-0x2000"
	MntID int    // its mount, -1 if unknown
}

// PathFile records a file the task uses by path but not through an fd:
// its cwd, root, exe and mapped files. One entry per path and flags is
// enough; a deleted file has one per inode, as two can have had one name.
// A path with a name is looked up through /proc/PID/root.
func (s *Set) PathFile(pid int, p Path, flags uint32) (uint32, error) {
	var st unix.Stat_t
	key := fmt.Sprintf("%o:%s", flags, p.Name)
	if p.Deleted {
		if err := unix.Stat(p.Proc, &st); err != nil {
			return 0, fmt.Errorf("stat %s: %w", p.Proc, err)
		}
		key = fmt.Sprintf("%o:deleted:%d:%d", flags, st.Dev, st.Ino)
	}
	if id, ok := s.byKey[key]; ok {
		return id, nil
	}
	if !p.Deleted {
		if err := unix.Stat(fmt.Sprintf("/proc/%d/root%s", pid, p.Name), &st); err != nil {
			return 0, fmt.Errorf("stat %s: %w", p.Name, err)
		}
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

// openReg reopens a file by path, looked up under the task's root, with the
// flags it had (minus those that would create or truncate it) and at its
// offset; a file deleted at dump time through its ghost or link remap.
func (r *Restorer) openReg(e *regfile.RegFileEntry) (int, error) {
	if rm := r.Remaps[e.GetId()]; rm != nil {
		return r.openRemapped(e, rm)
	}
	return r.openPath(r.Root+e.GetName(), e)
}

// openPath opens the file of e at path p (gocr's view of it).
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
	g, err := r.ghost(rm.GetRemapId(), e.Reg.GetName())
	if err != nil {
		return "", err
	}
	if !g.isDir {
		return "", fmt.Errorf("directory %s: its ghost %d is not a directory", e.Reg.GetName(), rm.GetRemapId())
	}
	return g.name, nil
}
