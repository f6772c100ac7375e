package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fh"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
)

// An inotify instance is its watches: for each, the watch descriptor the
// task knows it by, the events it asks for and the watched inode, which
// fdinfo names by device, inode number and a file handle. Events queued
// but not read at dump time are not kept (CRIU does not keep them either:
// the kernel offers no way to read them without consuming them, nor to
// queue them again).

// maxHandleSize is MAX_HANDLE_SZ: the largest file handle the kernel
// makes. CRIU's fh_entry always carries that many bytes, as 16 words.
const maxHandleSize = 128

// watchMaskBits are the bits of a watch's mask inotify_add_watch takes
// back: the events, and IN_ONESHOT and IN_EXCL_UNLINK, which fdinfo shows
// among them (older kernels print internal bits there too).
const watchMaskBits = unix.IN_ALL_EVENTS | unix.IN_ONESHOT | unix.IN_EXCL_UNLINK

// dumpInotify records an inotify instance and its watches, in order of
// their watch descriptors. Each watched inode must be found again by its
// handle on a mount of the task; its path as the task sees it goes along,
// for a restore on a filesystem where the handle no longer works (a tmpfs
// made afresh).
func (s *Set) dumpInotify(pid int, fd Fd) (uint32, error) {
	ws := slices.Clone(fd.Info.Inotify)
	slices.SortFunc(ws, func(a, b procfs.InotifyWatch) int { return a.WD - b.WD })
	var mounts []procfs.Mount
	if len(ws) > 0 {
		var err error
		if mounts, err = procfs.MountInfo(pid); err != nil {
			return 0, err
		}
	}
	e := &fsnotify.InotifyFileEntry{Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Fown: noOwner()}
	for _, w := range ws {
		we, err := dumpWatch(pid, mounts, w)
		if err != nil {
			return 0, fmt.Errorf("inotify watch %d (inode %d on device %d:%d): %w", w.WD, w.Ino, w.Sdev>>20, w.Sdev&(1<<20-1), err)
		}
		e.Wd = append(e.Wd, we)
	}
	typ := fdinfo.FdTypes_INOTIFY
	return s.add(&fdinfo.FileEntry{Type: &typ, Ify: e}), nil
}

func dumpWatch(pid int, mounts []procfs.Mount, w procfs.InotifyWatch) (*fsnotify.InotifyWdEntry, error) {
	if w.FhandleBytes == 0 || len(w.Fhandle) == 0 {
		return nil, fmt.Errorf("the kernel gave no file handle for it (the filesystem cannot export handles)")
	}
	if len(w.Fhandle) > maxHandleSize || int(w.FhandleBytes) != len(w.Fhandle) {
		return nil, fmt.Errorf("file handle of %d bytes (fhandle-bytes %d), at most %d expected", len(w.Fhandle), w.FhandleBytes, maxHandleSize)
	}
	path, err := locateWatch(pid, mounts, w)
	if err != nil {
		return nil, err
	}
	h := &fh.FhEntry{Bytes: ptr(w.FhandleBytes), Type: ptr(uint32(w.FhandleType)), Handle: handleWords(w.Fhandle)}
	if path != "" {
		h.Path = &path
	}
	return &fsnotify.InotifyWdEntry{
		IIno: ptr(w.Ino), Mask: ptr(w.Mask), IgnoredMask: ptr(w.IgnoredMask), SDev: ptr(w.Sdev),
		Wd: ptr(uint32(w.WD)), FHandle: h,
	}, nil
}

// handleWords packs a file handle as fh_entry keeps it: MAX_HANDLE_SZ
// bytes, zero-padded, as little-endian 64-bit words.
func handleWords(b []byte) []uint64 {
	var buf [maxHandleSize]byte
	copy(buf[:], b)
	out := make([]uint64, maxHandleSize/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	return out
}

// handleBytes is handleWords backwards.
func handleBytes(h *fh.FhEntry) ([]byte, error) {
	n := int(h.GetBytes())
	if n == 0 || n > maxHandleSize || n > 8*len(h.GetHandle()) {
		return nil, fmt.Errorf("file handle of %d bytes in %d words", n, len(h.GetHandle()))
	}
	buf := make([]byte, 8*len(h.GetHandle()))
	for i, w := range h.GetHandle() {
		binary.LittleEndian.PutUint64(buf[8*i:], w)
	}
	return buf[:n], nil
}

// locateWatch checks that the watched inode opens by its handle on a mount
// of the task's mount namespace, and returns its path as the task sees it,
// "" when no path reaches it (it was deleted, or lies outside every mount
// of its filesystem).
func locateWatch(pid int, mounts []procfs.Mount, w procfs.InotifyWatch) (string, error) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	var errs []error
	opened := false
	for _, m := range mounts {
		if kernelDev(unix.Mkdev(m.Major, m.Minor)) != w.Sdev {
			continue
		}
		path, err := pathByHandle(root, m, w.FhandleType, w.Fhandle, w.Ino)
		if err != nil {
			errs = append(errs, fmt.Errorf("through mount %s: %w", m.MountPoint, err))
			continue
		}
		opened = true
		if path != "" {
			return path, nil
		}
	}
	if opened {
		return "", nil
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("no mount of its device in the task's mount namespace")
	}
	return "", fmt.Errorf("cannot open it by its file handle: %w", errors.Join(errs...))
}

// pathByHandle opens an inode by its handle through mount m (its mount
// point looked up under root) and names it as seen from root: the mount
// point, then where the inode lies below the mount's own top. Both ends
// come from /proc/self/fd links, which name a file by the mounts it was
// reached through.
func pathByHandle(root string, m procfs.Mount, typ int32, handle []byte, ino uint64) (string, error) {
	mfd, err := openMountRoot(root + m.MountPoint)
	if err != nil {
		return "", err
	}
	defer unix.Close(mfd)
	fd, err := openHandle(mfd, typ, handle, ino)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	top, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", mfd))
	if err != nil {
		return "", err
	}
	in, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(in, " (deleted)") {
		return "", nil
	}
	rel, ok := strings.CutPrefix(in, top)
	if top == "/" {
		rel, ok = in, strings.HasPrefix(in, "/")
	}
	if !ok || (rel != "" && rel[0] != '/') {
		return "", nil // outside the mount's subtree
	}
	return filepath.Join(m.MountPoint, rel), nil
}

// openMountRoot opens the directory on top of a mount, for
// open_by_handle_at to find the filesystem by: it refuses O_PATH fds, so
// this is a real open (an IN_OPEN event, should someone watch the mount's
// top directory for it; CRIU opens it the same way). Only directories are
// opened: a mount of a single file may be a device or a fifo, whose open
// does things.
func openMountRoot(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open mount point: %w", err)
	}
	return fd, nil
}

// openHandle opens the inode behind a file handle with O_PATH (which
// generates no inotify event) and checks it is inode ino: a handle names an
// inode only on the filesystem that made it.
func openHandle(mountFd int, typ int32, handle []byte, ino uint64) (int, error) {
	fd, err := unix.OpenByHandleAt(mountFd, unix.NewFileHandle(typ, handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_by_handle_at: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Ino != ino {
		unix.Close(fd)
		return -1, fmt.Errorf("the handle opened inode %d", st.Ino)
	}
	return fd, nil
}

// openInotify makes an inotify instance with the saved watches. The
// watches are gocr's to add (a watch belongs to the instance, not to a
// task), on the inodes found again, and each must get its old watch
// descriptor: the task knows its watches by them.
func (r *Restorer) openInotify(e *fsnotify.InotifyFileEntry) (int, error) {
	flags := unix.IN_CLOEXEC
	if e.GetFlags()&unix.O_NONBLOCK != 0 {
		flags |= unix.IN_NONBLOCK
	}
	fd, err := unix.InotifyInit1(flags)
	if err != nil {
		return -1, fmt.Errorf("inotify_init1: %w", err)
	}
	ws := slices.Clone(e.GetWd())
	slices.SortFunc(ws, func(a, b *fsnotify.InotifyWdEntry) int { return int(a.GetWd()) - int(b.GetWd()) })
	burned := false
	for _, w := range ws {
		b, err := r.addWatch(fd, w)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("inotify watch %d (inode %d): %w", w.GetWd(), w.GetIIno(), err)
		}
		burned = burned || b
	}
	if burned {
		drainInotify(fd)
	}
	return fd, nil
}

// addWatch watches the saved inode under the saved watch descriptor. It
// reports whether watches were added and removed to get there.
func (r *Restorer) addWatch(ifd int, w *fsnotify.InotifyWdEntry) (bool, error) {
	target, err := r.openWatched(w)
	if err != nil {
		return false, err
	}
	defer unix.Close(target)
	// The fd's /proc link reaches the inode whatever mount namespace it
	// is in; a watch is on the inode, not on a path.
	return addWatchAs(ifd, fmt.Sprintf("/proc/self/fd/%d", target), w.GetMask()&watchMaskBits, int(w.GetWd()))
}

// openWatched opens the watched inode with O_PATH: by its handle on a
// mount of its device in the restored tree's mount namespace, or else by
// the path it had.
func (r *Restorer) openWatched(w *fsnotify.InotifyWdEntry) (int, error) {
	var errs []error
	handle, err := handleBytes(w.GetFHandle())
	if err != nil {
		errs = append(errs, err)
	} else if fd, err := r.openByHandle(w, handle); err == nil {
		return fd, nil
	} else {
		errs = append(errs, err)
	}
	if p := w.GetFHandle().GetPath(); p != "" {
		fd, err := unix.Open(r.Root+p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err == nil {
			return fd, nil
		}
		errs = append(errs, fmt.Errorf("open %s: %w", p, err))
	}
	return -1, fmt.Errorf("cannot find the watched inode: %w", errors.Join(errs...))
}

func (r *Restorer) openByHandle(w *fsnotify.InotifyWdEntry, handle []byte) (int, error) {
	mounts, err := procfs.MountInfo(r.mountsPid())
	if err != nil {
		return -1, err
	}
	var errs []error
	for _, m := range mounts {
		if kernelDev(unix.Mkdev(m.Major, m.Minor)) != w.GetSDev() {
			continue
		}
		mfd, err := openMountRoot(r.Root + m.MountPoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("through mount %s: %w", m.MountPoint, err))
			continue
		}
		fd, err := openHandle(mfd, int32(w.GetFHandle().GetType()), handle, w.GetIIno())
		unix.Close(mfd)
		if err == nil {
			return fd, nil
		}
		errs = append(errs, fmt.Errorf("through mount %s: %w", m.MountPoint, err))
	}
	if len(errs) == 0 {
		return -1, fmt.Errorf("no mount of device %d:%d", w.GetSDev()>>20, w.GetSDev()&(1<<20-1))
	}
	return -1, errors.Join(errs...)
}

// addWatchAs adds a watch that must get watch descriptor want. The kernel
// hands them out in increasing order; INOTIFY_IOC_SETNEXTWD (4.16,
// CONFIG_CHECKPOINT_RESTORE) says where to go on. Without it, lower
// numbers are used up by adding and removing the watch until want comes
// (each removal queues an IN_IGNORED event; the caller drains them).
func addWatchAs(ifd int, path string, mask uint32, want int) (burned bool, err error) {
	setNext := true
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(ifd), abi.INOTIFY_IOC_SETNEXTWD, uintptr(want)); errno != 0 {
		if errno != unix.ENOTTY && errno != unix.EINVAL {
			return false, fmt.Errorf("INOTIFY_IOC_SETNEXTWD %d: %w", want, errno)
		}
		setNext = false
	}
	for {
		wd, err := unix.InotifyAddWatch(ifd, path, mask)
		if err != nil {
			return burned, fmt.Errorf("inotify_add_watch (mask %#x): %w", mask, err)
		}
		if wd == want {
			return burned, nil
		}
		if wd > want || setNext {
			return burned, fmt.Errorf("inotify_add_watch gave watch descriptor %d, want %d", wd, want)
		}
		if _, err := unix.InotifyRmWatch(ifd, uint32(wd)); err != nil {
			return burned, fmt.Errorf("remove stand-in watch %d: %w", wd, err)
		}
		burned = true
	}
}

// drainInotify reads away the IN_IGNORED events that removing stand-in
// watches queued; nothing else can be queued yet on a fresh instance.
func drainInotify(fd int) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return
	}
	unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
	buf := make([]byte, 64<<10)
	for {
		if n, err := unix.Read(fd, buf); err != nil || n <= 0 {
			break
		}
	}
	unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl)
}
