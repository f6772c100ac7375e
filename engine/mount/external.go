package mount

import (
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
)

// HostKeyPrefix starts the ext_key of a mount DumpNS found in gocr's own
// mount namespace; the rest of the key is the host path to bind.
const HostKeyPrefix = "gocr-host:"

// fileID identifies a directory or file: the device and inode a mount's
// root shows.
type fileID struct {
	dev, ino uint64
}

// under reports whether p is root or lies below it (both clean, absolute).
func under(p, root string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// rel is p relative to root ("." for root itself); p must be under root.
func rel(p, root string) string {
	if p == root {
		return "."
	}
	if root == "/" {
		return p[1:]
	}
	return p[len(root)+1:]
}

// openPath opens p (absolute, in the tree rooted at dirfd) with O_PATH,
// refusing symlinks on the way: mountinfo paths never contain any, so one
// found there was planted.
func openPath(dirfd int, p string) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	return unix.Openat2(dirfd, rel(path.Clean(p), "/"), how)
}

// mountOf returns the id of the mount an open fd of ours lies on.
func mountOf(fd int) (int, error) {
	fi, err := procfs.FdInfo(os.Getpid(), fd)
	if err != nil {
		return 0, err
	}
	if fi.MntID < 0 {
		return 0, fmt.Errorf("kernel prints no mnt_id in fdinfo")
	}
	return fi.MntID, nil
}

func statID(fd int) (fileID, bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileID{}, false, err
	}
	return fileID{st.Dev, st.Ino}, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// hostSource finds where in gocr's own namespace (table host) the root of
// mount m, which shows file id, can be bind-mounted from. It returns ""
// when no host path shows that very file: none of its superblock's host
// mounts covers m's root, or the path is overmounted on the host, or it
// leads to another file (renamed since, or a different superblock reusing
// the device number).
func hostSource(m procfs.Mount, id fileID, known bool, host []procfs.Mount) string {
	best, bestLen := "", -1
	slash, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(slash)
	for _, h := range host {
		if h.Major != m.Major || h.Minor != m.Minor || !under(m.Root, h.Root) {
			continue
		}
		if len(h.Root) <= bestLen {
			continue
		}
		cand := path.Join(h.MountPoint, rel(m.Root, h.Root))
		fd, err := openPath(slash, cand)
		if err != nil {
			continue
		}
		mid, err := mountOf(fd)
		hid, _, err2 := statID(fd)
		unix.Close(fd)
		if err != nil || err2 != nil || mid != h.ID {
			continue
		}
		if known && hid != id {
			continue
		}
		best, bestLen = cand, len(h.Root)
	}
	return best
}

// IsOwnNamespace reports whether pid lives in gocr's own mount namespace,
// the host's in the h flavor. Such a namespace is not rebuilt on restore.
func IsOwnNamespace(pid int) (bool, error) {
	a, err := procfs.NamespaceInode(pid, "mnt")
	if err != nil {
		return false, err
	}
	b, err := procfs.NamespaceInode(os.Getpid(), "mnt")
	if err != nil {
		return false, err
	}
	return a == b, nil
}
