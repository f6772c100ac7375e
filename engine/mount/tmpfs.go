package mount

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gocr/gocr/engine/image"
	"golang.org/x/sys/unix"
)

// tmpfs contents travel as CRIU stores them: a gzip-compressed tar of the
// superblock seen from the widest mount root, member names "./..." as GNU
// tar writes them, so `tar -xzf` and CRIU read gocr's images and gocr reads
// theirs. gocr writes PAX headers: sub-second times and extended
// attributes (SCHILY.xattr.*). Saved: directories, regular files, hard
// links, symlinks, device nodes and FIFOs with modes, owners, times and
// xattrs. Not saved: sockets (nothing can be bound to them after restore;
// GNU tar skips them too) and holes (sparse files come back dense).

// writeTmpfs clones every tmpfs to dump inside the victim's namespace and
// writes its tar.
func writeTmpfs(pid int, dir *image.Dir, list []tmpfsDump) error {
	if len(list) == 0 {
		return nil
	}
	clones := make([]int, len(list))
	for i := range clones {
		clones[i] = -1
	}
	defer func() {
		for _, fd := range clones {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	nsPath := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	nsFd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer unix.Close(nsFd)
	var hidden []int
	err = onThrowawayThread(func() error {
		if err := setns(nsFd, unix.CLONE_NEWNS, nsPath); err != nil {
			return err
		}
		for i, t := range list {
			if t.fd < 0 {
				hidden = append(hidden, i)
				continue
			}
			fd, err := unix.OpenTree(t.fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
			if err != nil {
				// An unbindable mount cannot be cloned: read it in place,
				// without what its submounts hide.
				if err == unix.EINVAL && t.mount.m.Unbindable {
					continue
				}
				return t.mount.err("clone for reading (open_tree)", err)
			}
			clones[i] = cloneForReading(fd)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(hidden) > 0 {
		if err := digOut(pid, list, hidden, clones); err != nil {
			return err
		}
	}
	root, err := os.OpenRoot(dir.Path())
	if err != nil {
		return fmt.Errorf("open image directory: %w", err)
	}
	defer root.Close()
	for i, t := range list {
		src := t.fd
		if clones[i] >= 0 {
			src = clones[i]
		}
		if src < 0 {
			return t.mount.err("dump tmpfs", fmt.Errorf("no way to read it: %w", ErrUnsupported))
		}
		name := TmpfsFile(t.dev)
		if err := writeTar(root, name, src); err != nil {
			return t.mount.err("save tmpfs contents to "+name, err)
		}
	}
	return nil
}

// cloneForReading makes a detached clone private and read-only: reading
// through it can neither write nor propagate anything. Best effort (Linux
// 5.12).
func cloneForReading(fd int) int {
	_ = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{
		Attr_set:    unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOATIME,
		Attr_clr:    unix.MOUNT_ATTR__ATIME,
		Propagation: unix.MS_PRIVATE,
	})
	return fd
}

// writeTar writes name.part in root with the tar of the tree at fd and
// renames it into place.
func writeTar(root *os.Root, name string, fd int) (err error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	f, err := root.OpenFile(name+".part", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(name + ".part")
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	zw := gzip.NewWriter(bw)
	tw := tar.NewWriter(zw)
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return err
	}
	d := &tarDumper{tw: tw, dev: st.Dev, links: map[fileID]string{}}
	if err := d.entry(dfd, ".", ".", &st); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Rename(name+".part", name)
}

type tarDumper struct {
	tw    *tar.Writer
	dev   uint64
	links map[fileID]string
}

func statTime(t unix.Timespec) time.Time { return time.Unix(t.Sec, t.Nsec) }

// entry writes the member for name (relative to parent fd pfd, or pfd
// itself when name is ".") at archive path full, recursing into
// directories.
func (d *tarDumper) entry(pfd int, name, full string, st *unix.Stat_t) error {
	hdr := &tar.Header{
		Name:       full,
		Mode:       int64(st.Mode & 0o7777),
		Uid:        int(st.Uid),
		Gid:        int(st.Gid),
		ModTime:    statTime(st.Mtim),
		AccessTime: statTime(st.Atim),
		ChangeTime: statTime(st.Ctim),
		Format:     tar.FormatPAX,
	}
	xattrs, err := readXattrs(pfd, name)
	if err != nil {
		return fmt.Errorf("%s: xattrs: %w", full, err)
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	id := fileID{st.Dev, st.Ino}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if full != "." {
			hdr.Name += "/"
		} else {
			hdr.Name = "./"
		}
		if err := d.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if st.Dev != d.dev {
			return nil // the root of another mount, in an in-place walk
		}
		return d.dir(pfd, name, full)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			if first, ok := d.links[id]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				hdr.PAXRecords = nil
				return d.tw.WriteHeader(hdr)
			}
			d.links[id] = full
		}
		fd, err := openNoAtime(pfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		f := os.NewFile(uintptr(fd), full)
		defer f.Close()
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, fst.Size
		if err := d.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyN(d.tw, f, fst.Size); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		return nil
	case unix.S_IFLNK:
		target, err := readlinkat(pfd, name)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		return d.tw.WriteHeader(hdr)
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return d.tw.WriteHeader(hdr)
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
		return d.tw.WriteHeader(hdr)
	}
	return nil // a socket: nothing to save
}

func (d *tarDumper) dir(pfd int, name, full string) error {
	fd, err := openNoAtime(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	sort.Strings(names)
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s/%s: %w", full, n, err)
		}
		if err := d.entry(fd, n, full+"/"+n, &st); err != nil {
			return err
		}
	}
	return nil
}

// openNoAtime opens without touching the access time where allowed.
func openNoAtime(dirfd int, name string, flags int) (int, error) {
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	return fd, err
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// fdPath names name under directory fd through /proc/self/fd, for the
// xattr calls that only take paths; "." is the directory itself.
func fdPath(dirfd int, name string) string {
	// "N/." rather than "N": the l* calls must follow the magic link.
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// readXattrs reads every extended attribute of name (not following a
// final symlink).
func readXattrs(dirfd int, name string) (map[string]string, error) {
	p := fdPath(dirfd, name)
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if k == "" {
			continue
		}
		n, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			if err == unix.ENODATA {
				continue
			}
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(p, k, v); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = string(v[:n])
	}
	return out, nil
}

// extractTar unpacks a tmpfs tar into the directory rootFd (opened
// O_RDONLY|O_DIRECTORY). Every name is resolved beneath rootFd without
// following symlinks, so no member, however named, lands outside.
func extractTar(rootFd int, r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	type stamp struct {
		name         string
		atime, mtime time.Time
	}
	var stamps []stamp
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, err := memberName(hdr.Name)
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			target, err := memberName(hdr.Linkname)
			if err != nil || target == "." {
				return fmt.Errorf("%s: bad hard link target %q", hdr.Name, hdr.Linkname)
			}
			if err := withParent(rootFd, name, func(pfd int, base string) error {
				return unix.Linkat(rootFd, target, pfd, base, 0)
			}); err != nil {
				return fmt.Errorf("%s: link to %s: %w", name, target, err)
			}
			continue
		}
		if err := withParent(rootFd, name, func(pfd int, base string) error {
			return extractOne(tr, hdr, pfd, base)
		}); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		stamps = append(stamps, stamp{name, hdr.AccessTime, hdr.ModTime})
	}
	// Times last, children before parents, so creating entries does not
	// move a directory's mtime again.
	for i := len(stamps) - 1; i >= 0; i-- {
		s := stamps[i]
		at := s.atime
		if at.IsZero() {
			at = s.mtime
		}
		ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(s.mtime.UnixNano())}
		if err := withParent(rootFd, s.name, func(pfd int, base string) error {
			return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		}); err != nil {
			return fmt.Errorf("%s: set times: %w", s.name, err)
		}
	}
	return nil
}

// memberName turns "./a/b/" into "a/b" ("." for the root), refusing
// absolute names and "..".
func memberName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("tar member %q: absolute name", n)
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("tar member %q: outside the archive root", n)
	}
	return c, nil
}

// withParent calls fn with an fd on name's parent directory, resolved
// beneath rootFd, and name's last component ("." for the root itself).
func withParent(rootFd int, name string, fn func(pfd int, base string) error) error {
	if name == "." {
		return fn(rootFd, ".")
	}
	dir, base := path.Split(name)
	if dir == "" {
		return fn(rootFd, base)
	}
	pfd, err := unix.Openat2(rootFd, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return fn(pfd, base)
}

// extractOne creates one member (not a hard link) and sets its owner,
// mode and xattrs.
func extractOne(tr *tar.Reader, hdr *tar.Header, pfd int, base string) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if base != "." {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
				return err
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), base)
		_, err = io.CopyN(f, tr, hdr.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, kind|0o600, int(dev)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("tar member type %q not supported", hdr.Typeflag)
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// Not a symlink (just made, or the root): fchmodat cannot follow.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(fdPath(pfd, base), name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				continue // the kernel's tmpfs keeps no such xattrs
			}
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}
