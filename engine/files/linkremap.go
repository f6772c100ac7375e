package files

import (
	"errors"
	"fmt"
	"path"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
)

// Link remaps: a file whose name the task opened it by was unlinked while
// another hard link remains (nlink > 0) keeps its contents on disk, but no
// name the dump could record reaches it for sure. The dump gives it one:
// a new hard link "link_remap.ID" in the directory of the old name (as
// criu does), recorded as a file entry of its own, with a LINKED entry in
// remap-fpath.img. The restore opens the file through it (linked at the
// old name for the time of the open, like a ghost) and removes it once the
// tree is whole. The dump changes the filesystem here: if it fails, or the
// tree runs on, the link is removed again at once.

// linkRemap is a link the dump made.
type linkRemap struct {
	dirfd int    // its directory (O_PATH)
	base  string // its name there
	name  string // as the task sees it
}

// dumpLinkRemap gives a deleted file that still has another hard link a
// name again, once per inode, and returns the file id of that name.
func (s *Set) dumpLinkRemap(pid int, p Path, st *unix.Stat_t) (uint32, error) {
	if id, ok := s.linked[keyOf(st)]; ok {
		return id, nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("pid %d %s: %s (mode %#o) was unlinked yet has %d links: only regular files are remapped",
			pid, p.What, p.Name, st.Mode, st.Nlink)
	}
	if !path.IsAbs(p.Name) || p.Name == "/" {
		return 0, fmt.Errorf("pid %d %s: deleted %q: not a path gocr can link again", pid, p.What, p.Name)
	}
	if s.ContentsSaved != nil && s.ContentsSaved(st.Dev) {
		return 0, fmt.Errorf("pid %d %s: %s was unlinked yet has %d links, on a tmpfs whose contents were saved already: not supported yet",
			pid, p.What, p.Name, st.Nlink)
	}
	dir := path.Dir(p.Name)
	dirfd, err := unix.Open(fmt.Sprintf("/proc/%d/root%s", pid, dir), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("pid %d %s: deleted file %s: its directory: %w", pid, p.What, p.Name, err)
	}
	id := s.nextID // the id the link's own entry gets
	base, err := linkFree(dirfd, p.Proc, fmt.Sprintf("link_remap.%d", id))
	if err != nil {
		unix.Close(dirfd)
		return 0, fmt.Errorf("pid %d %s: deleted file %s: link it again in %s: %w", pid, p.What, p.Name, dir, err)
	}
	lr := linkRemap{dirfd: dirfd, base: base, name: path.Join(dir, base)}
	s.linkRemaps = append(s.linkRemaps, lr)
	var lst unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil || keyOf(&lst) != keyOf(st) {
		return 0, fmt.Errorf("pid %d %s: link %s made for %s is not that file (%v)", pid, p.What, lr.name, p.Name, err)
	}
	if got := s.add(regEntry(lr.name, 0, 0, p.MntID, st)); got != id {
		return 0, fmt.Errorf("link remap %s: got file id %d, want %d", lr.name, got, id)
	}
	s.linked[keyOf(st)] = id
	return id, nil
}

// linkFree links the file src reaches (a /proc magic link) into dirfd
// under name, or a numbered variant of it if taken, and returns the name.
func linkFree(dirfd int, src, name string) (string, error) {
	const tries = 8
	for i := 0; ; i++ {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s.%d", name, i)
		}
		err := unix.Linkat(unix.AT_FDCWD, src, dirfd, n, unix.AT_SYMLINK_FOLLOW)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, unix.EEXIST) || i == tries-1 {
			return "", fmt.Errorf("linkat %s: %w", n, err)
		}
	}
}

// DropLinkRemaps removes every link the dump made: the dump failed, or
// the tree runs on and must find its filesystem as it was.
func (s *Set) DropLinkRemaps() error {
	var errs []error
	for _, l := range s.linkRemaps {
		if err := unix.Unlinkat(l.dirfd, l.base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove link remap %s: %w", l.name, err))
		}
	}
	s.Close()
	return errors.Join(errs...)
}

// Close lets go of what the set holds: the memfds' files and the
// directories of link remaps. The link remaps stay: the images need them
// until they are restored.
func (s *Set) Close() {
	for _, l := range s.linkRemaps {
		unix.Close(l.dirfd)
	}
	s.linkRemaps = nil
	s.closeMemfds()
	s.closeRepaired()
	s.closePtyCopies()
}

// openRemapped opens a file whose name was gone at dump time through what
// stands in for it: its ghost, or the link the dump made.
func (r *Restorer) openRemapped(e *regfile.RegFileEntry, rm *remap.RemapFilePathEntry) (int, error) {
	switch rm.GetRemapType() {
	case remap.RemapType_GHOST:
		g, err := r.ghost(rm.GetRemapId(), e.GetName(), e.GetMntId())
		if err != nil {
			return -1, err
		}
		if g.isDir {
			return r.openPath(r.pathOf(e.GetMntId(), g.name), e)
		}
		if g.tmpfd >= 0 {
			if int(e.GetFlags())&oTmpfileBit != 0 {
				return g.openTmpfile(e)
			}
			// Another open file, or a map, of a file without a name.
			return r.openPath(fmt.Sprintf("/proc/self/fd/%d", g.tmpfd), e)
		}
		return r.openLinked(r.pathOf(e.GetMntId(), g.name), e)
	case remap.RemapType_LINKED:
		t, ok := r.entries[rm.GetRemapId()]
		if !ok || t.Reg == nil {
			return -1, fmt.Errorf("link remap: file id %d is not a regular file", rm.GetRemapId())
		}
		return r.openLinked(r.pathOf(t.Reg.GetMntId(), t.Reg.GetName()), e)
	}
	return -1, fmt.Errorf("remap of type %s is not supported", rm.GetRemapType())
}

// openLinked opens the file at src by the name the task had it under: a
// link made at that name for the time of the open, so that /proc shows the
// fd and the maps as "NAME (deleted)" again. Should another file have
// taken the name since, "NAME.cr_link" stands in for it (as criu does).
func (r *Restorer) openLinked(src string, e *regfile.RegFileEntry) (int, error) {
	dst := r.pathOf(e.GetMntId(), e.GetName())
	err := unix.Link(src, dst)
	if errors.Is(err, unix.EEXIST) {
		dst += ".cr_link"
		err = unix.Link(src, dst)
	}
	if err != nil {
		return -1, fmt.Errorf("link %s at %s: %w", src, dst, err)
	}
	fd, err := r.openPath(dst, e)
	if uerr := unix.Unlink(dst); uerr != nil && err == nil {
		unix.Close(fd)
		return -1, fmt.Errorf("unlink %s again: %w", dst, uerr)
	}
	return fd, err
}

// RemoveLinkRemaps removes the links a dump made for deleted files with a
// name left: the restored tree has the files open again. Only after a
// restore that succeeded: until then the images need them.
func (r *Restorer) RemoveLinkRemaps() error {
	var errs []error
	for _, rm := range r.Remaps {
		if rm.GetRemapType() != remap.RemapType_LINKED {
			continue
		}
		t := r.entries[rm.GetRemapId()]
		if t == nil || t.Reg == nil {
			continue
		}
		if err := unix.Unlink(r.pathOf(t.Reg.GetMntId(), t.Reg.GetName())); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove link remap %s: %w", t.Reg.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// remapGhostBit marks a ghost in remap_id of images older than remap_type.
const remapGhostBit = 0x80000000

// CheckRemaps checks remap-fpath.img against the file entries and returns
// it by orig_id: each names a regular file entry once, a link remap
// another regular file entry, a ghost a sound ghost-file-ID.img (see
// CheckGhost). Entries of images older than remap_type get one, as criu
// gives them. Nothing is created.
func CheckRemaps(dir *image.Dir, files map[uint32]*fdinfo.FileEntry, remaps []*remap.RemapFilePathEntry) (map[uint32]*remap.RemapFilePathEntry, error) {
	out := map[uint32]*remap.RemapFilePathEntry{}
	name := image.RemapFpathFile
	for i, rm := range remaps {
		if rm.RemapType == nil {
			typ := remap.RemapType_LINKED
			if rm.GetRemapId()&remapGhostBit != 0 {
				typ, rm.RemapId = remap.RemapType_GHOST, ptr(rm.GetRemapId()&^remapGhostBit)
			}
			rm.RemapType = typ.Enum()
		}
		orig := files[rm.GetOrigId()]
		if orig == nil || orig.Reg == nil {
			return nil, fmt.Errorf("%s: [%d].orig_id: file id %d is not a regular file in %s", name, i, rm.GetOrigId(), image.FilesFile)
		}
		if out[rm.GetOrigId()] != nil {
			return nil, fmt.Errorf("%s: [%d].orig_id: file id %d is remapped twice", name, i, rm.GetOrigId())
		}
		switch rm.GetRemapType() {
		case remap.RemapType_GHOST:
			if n := orig.Reg.GetName(); n == "/" || !path.IsAbs(n) {
				return nil, fmt.Errorf("%s: [%d]: file id %d (%q) cannot be made again as a ghost", name, i, rm.GetOrigId(), n)
			}
			if err := CheckGhost(dir, rm.GetRemapId()); err != nil {
				return nil, err
			}
		case remap.RemapType_LINKED:
			if t := files[rm.GetRemapId()]; t == nil || t.Reg == nil {
				return nil, fmt.Errorf("%s: [%d].remap_id: file id %d is not a regular file in %s", name, i, rm.GetRemapId(), image.FilesFile)
			}
		default:
			return nil, fmt.Errorf("%s: [%d].remap_type: %s is not supported yet", name, i, rm.GetRemapType())
		}
		out[rm.GetOrigId()] = rm
	}
	return out, nil
}
