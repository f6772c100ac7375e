package mount

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"golang.org/x/sys/unix"
)

// Set is what the mount namespaces of one restore share. A filesystem
// mounted in several namespaces (a tmpfs made before a process unshared
// its namespace, say) is one filesystem after restore too: the first
// RestoreNS that needs a superblock makes it, the others mount clones of
// it. And every mount made is kept by its image mount id, so each file
// can be reopened on the very mount it was opened on, in whichever
// namespace that is (see Open). Peer groups are planned over all its
// namespaces, as the kernel has them (see Plan).
type Set struct {
	sbs    map[uint32]int      // image dev → detached clone of the superblock's root
	mounts map[uint32]*mountFd // image mount id → the restored mount
	want   map[uint32][]string // image mount id → paths files will be opened at
	found  map[string]int      // fileKey → O_PATH fd found as its mount was attached

	nss     map[uint32][]*mnt.MntEntry // namespace id → its mounts, for the plan
	nsOrder []uint32                   // the namespaces in the order added
	peers   *peerTable                 // the peer groups of all of them
	helpers map[uint32]int             // peer group id → its helper, set up
}

type mountFd struct {
	fd         int    // the mount, attached in its namespace
	mountPoint string // as the image has it
}

// NewSet starts an empty set.
func NewSet() *Set {
	return &Set{sbs: map[uint32]int{}, mounts: map[uint32]*mountFd{}, want: map[uint32][]string{}, found: map[string]int{},
		nss: map[uint32][]*mnt.MntEntry{}, helpers: map[uint32]int{}}
}

// Want says a file will be opened at path p on the mount with image id
// mntID. RestoreNS looks each one up the moment it attaches that mount,
// before any mount goes on top of it: a file a later mount covers (it was
// overmounted after being opened) is still reached on its own mount.
func (s *Set) Want(mntID uint32, p string) {
	s.want[mntID] = append(s.want[mntID], path.Clean(p))
}

func fileKey(mntID uint32, p string) string { return fmt.Sprintf("%d:%s", mntID, p) }

// lookUpWanted finds, on the mount just attached (fd) and before anything
// is mounted on it, the paths wanted there. A path not found (a file the
// restore creates later, say) is simply left to Open.
func (s *Set) lookUpWanted(mntID uint32, mountPoint string, fd int) {
	if s == nil {
		return
	}
	for _, p := range s.want[mntID] {
		if !path.IsAbs(p) || !under(p, mountPoint) || p == mountPoint {
			continue
		}
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS}
		if f, err := unix.Openat2(fd, rel(p, mountPoint), how); err == nil {
			if old, ok := s.found[fileKey(mntID, p)]; ok {
				unix.Close(old)
			}
			s.found[fileKey(mntID, p)] = f
		}
	}
}

// Close closes every fd the set holds. The mounts stay where they are.
func (s *Set) Close() {
	if s == nil {
		return
	}
	for dev, fd := range s.sbs {
		unix.Close(fd)
		delete(s.sbs, dev)
	}
	for id, m := range s.mounts {
		unix.Close(m.fd)
		delete(s.mounts, id)
	}
	for k, fd := range s.found {
		unix.Close(fd)
		delete(s.found, k)
	}
	for id, fd := range s.helpers {
		unix.Close(fd)
		delete(s.helpers, id)
	}
}

// Has reports whether the mount with that image id was restored.
func (s *Set) Has(mntID uint32) bool {
	if s == nil {
		return false
	}
	_, ok := s.mounts[mntID]
	return ok
}

// Open opens p — a path as the task that opened it saw it, on the mount
// with image id mntID — relative to that mount's root, with flags (O_PATH
// for a directory lookup works too): the file Want found as the mount was
// attached, or else a walk that stays on that mount (RESOLVE_NO_XDEV). A
// path that another mount covers now in the namespace, and Want did not
// name, is opened on a private clone of the mount instead, which reaches
// the hidden file (but shows the clone's mount id).
func (s *Set) Open(mntID uint32, p string, flags int, mode uint32) (int, error) {
	m, ok := s.mounts[mntID]
	if !ok {
		return -1, fmt.Errorf("mount %d: not restored", mntID)
	}
	if flags&unix.O_PATH != 0 {
		// open(2) ignores the other flags with O_PATH, openat2 refuses
		// them (EINVAL).
		flags &= unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	p = path.Clean(p)
	if !path.IsAbs(p) || !under(p, m.mountPoint) {
		return -1, fmt.Errorf("mount %d at %s: %s is not under it", mntID, m.mountPoint, p)
	}
	if f, ok := s.found[fileKey(mntID, p)]; ok {
		// Found as the mount was attached: reopen that very file.
		fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", f), flags|unix.O_CLOEXEC, mode)
		if err != nil {
			return -1, fmt.Errorf("open %s on mount %d at %s: %w", p, mntID, m.mountPoint, err)
		}
		return fd, nil
	}
	r := rel(p, m.mountPoint)
	if r == "." {
		// The mount's root itself, which may be a file (a bind mount of a
		// single file): reopen the mount through its magic link.
		fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", m.fd), flags|unix.O_CLOEXEC, mode)
		if err != nil {
			return -1, fmt.Errorf("open %s, the root of mount %d: %w", p, mntID, err)
		}
		return fd, nil
	}
	how := &unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Mode: uint64(mode), Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(m.fd, orDot(r), how)
	if !errors.Is(err, unix.EXDEV) {
		if err != nil {
			return -1, fmt.Errorf("open %s on mount %d at %s: %w", p, mntID, m.mountPoint, err)
		}
		return fd, nil
	}
	clone, err := unix.OpenTree(m.fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, fmt.Errorf("clone mount %d at %s to reach the overmounted %s: %w", mntID, m.mountPoint, p, err)
	}
	defer unix.Close(clone)
	fd, err = unix.Openat2(clone, orDot(r), how)
	if err != nil {
		return -1, fmt.Errorf("open the overmounted %s on a clone of mount %d at %s: %w", p, mntID, m.mountPoint, err)
	}
	return fd, nil
}

func orDot(r string) string {
	r = strings.TrimPrefix(r, "/")
	if r == "" {
		return "."
	}
	return r
}

// superblock returns a detached clone of the root of the superblock dev
// made by an earlier RestoreNS, or -1.
func (s *Set) superblock(dev uint32) (int, error) {
	if s == nil {
		return -1, nil
	}
	src, ok := s.sbs[dev]
	if !ok {
		return -1, nil
	}
	fd, err := unix.OpenTree(src, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, fmt.Errorf("clone superblock %d made for another namespace: %w", dev, err)
	}
	return fd, nil
}

// keepSuperblock records the superblock of the detached mount fd.
func (s *Set) keepSuperblock(dev uint32, fd int) error {
	if s == nil {
		return nil
	}
	if _, ok := s.sbs[dev]; ok {
		return nil
	}
	c, err := unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("keep superblock %d for other namespaces: %w", dev, err)
	}
	s.sbs[dev] = c
	return nil
}

// keepMount records a restored mount.
func (s *Set) keepMount(id uint32, mountPoint string, fd int) error {
	if s == nil {
		return nil
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("keep mount %d at %s: %w", id, mountPoint, err)
	}
	if old, ok := s.mounts[id]; ok {
		unix.Close(old.fd)
	}
	s.mounts[id] = &mountFd{fd: d, mountPoint: mountPoint}
	return nil
}
