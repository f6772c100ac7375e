package kernel

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// probeOpenTree opens / as a mount object (no clone: nothing is created).
func probeOpenTree(*probeEnv) (bool, string) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return false, fmt.Sprintf("open_tree: %v", err)
	}
	unix.Close(fd)
	return true, "open_tree works"
}

// probeCloneDetached clones (open_tree) a detached mount: a clone of / is
// cloned again. Restore keeps each filesystem it makes as such a clone and
// clones it into every other mount namespace of the tree that mounts it.
// Kernels that refuse (5.10, 6.1 and 6.12 do, 6.18 does not) make restore give each
// namespace a filesystem of its own, so one tmpfs seen in two namespaces
// comes back as two, and a peer group spanning them cannot be rebuilt.
// Nothing is mounted: both clones stay detached and go with their fds.
func probeCloneDetached(*probeEnv) (bool, string) {
	first, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return false, fmt.Sprintf("open_tree(OPEN_TREE_CLONE) of /: %v", err)
	}
	defer unix.Close(first)
	second, err := unix.OpenTree(first, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return false, fmt.Sprintf("open_tree(OPEN_TREE_CLONE) of a detached mount: %v", err)
	}
	unix.Close(second)
	return true, "open_tree clones a detached mount"
}

// probeMountSetattr calls mount_setattr on an invalid fd: ENOSYS before
// 5.12, EBADF where it exists. Without it the propagation of a detached
// mount (a peer group's helper) cannot be changed: the mount(2) fallback
// goes through a path, and a detached mount has none.
func probeMountSetattr(*probeEnv) (bool, string) {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Propagation: unix.MS_PRIVATE})
	switch err {
	case unix.EBADF:
		return true, "mount_setattr on a bad fd: EBADF"
	case nil:
		return false, "mount_setattr on a bad fd succeeded?"
	}
	return false, fmt.Sprintf("mount_setattr: %v", err)
}

// probeMoveMountSetGroup calls move_mount with MOVE_MOUNT_SET_GROUP and
// invalid fds. The kernel checks the flags first: one that does not know
// the flag says EINVAL, one that does goes on to the fds and says EBADF.
// No mount is touched either way.
func probeMoveMountSetGroup(*probeEnv) (bool, string) {
	flags := unix.MOVE_MOUNT_SET_GROUP | unix.MOVE_MOUNT_F_EMPTY_PATH | unix.MOVE_MOUNT_T_EMPTY_PATH
	err := unix.MoveMount(-1, "", -1, "", flags)
	switch err {
	case unix.EBADF:
		return true, "move_mount(MOVE_MOUNT_SET_GROUP) on bad fds: EBADF"
	case nil:
		return false, "move_mount on bad fds succeeded?"
	}
	return false, fmt.Sprintf("move_mount(MOVE_MOUNT_SET_GROUP): %v", err)
}

// probeTCPRepair switches a fresh, unconnected socket into repair mode.
func probeTCPRepair(*probeEnv) (bool, string) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, 1); err != nil {
		if err == syscall.EPERM {
			return false, "TCP_REPAIR: EPERM (needs CAP_NET_ADMIN)"
		}
		return false, fmt.Sprintf("TCP_REPAIR: %v", err)
	}
	return true, "TCP_REPAIR accepted"
}
