package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	mnt "github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
)

// RootKey is the external key of the root mount of a tree dumped with
// criu's --root DIR: the tree lives in a mount namespace of its own whose
// "/" shows DIR, a directory of the host (a container's rootfs, zdtm's ns
// flavor). Restore binds the --root it is given there, so the tree can
// come back on another copy of its root.
const RootKey = "gocr-root"

// CheckRoot verifies that dir is the root of pid and that pid has a mount
// namespace of its own, as --root needs.
func CheckRoot(pid int, dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("--root %s: want an absolute path", dir)
	}
	var want, got syscall.Stat_t
	if err := syscall.Stat(dir, &want); err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	if want.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("--root %s: not a directory", dir)
	}
	own, err := IsOwnNamespace(pid)
	if err != nil {
		return fmt.Errorf("--root %s: %w", dir, err)
	}
	if own {
		return fmt.Errorf("--root %s: pid %d is in gocr's own mount namespace; --root is for a tree with a mount namespace of its own (dump a chrooted tree without it)", dir, pid)
	}
	proot := fmt.Sprintf("/proc/%d/root", pid)
	if err := syscall.Stat(proot, &got); err != nil {
		return fmt.Errorf("--root %s: root of pid %d: %w", dir, pid, err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return fmt.Errorf("--root %s is not the root of pid %d (its root is device %d:%d inode %d, --root's %d:%d inode %d)", dir, pid,
			major(got.Dev), minor(got.Dev), got.Ino, major(want.Dev), minor(want.Dev), want.Ino)
	}
	return nil
}

func major(dev uint64) uint64 { return (dev >> 8) & 0xfff }
func minor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xfff00) }

// CheckRestoreRoot verifies, before anything is made, that --root at
// restore (dir, "" when not given) matches the images: given exactly when
// the root mount of the tree's namespace (entries) was dumped with --root.
func CheckRestoreRoot(entries []*mnt.MntEntry, dir string) error {
	dumped := false
	for _, e := range entries {
		if e.GetExtMount() && e.GetExtKey() == RootKey {
			dumped = true
		}
	}
	switch {
	case dumped && dir == "":
		return fmt.Errorf("the tree was dumped with --root: restore needs --root DIR (a copy of its root)")
	case !dumped && dir != "":
		return fmt.Errorf("--root %s: the tree was dumped without --root (its root mount is restored as it was)", dir)
	case dir == "":
		return nil
	}
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("--root: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("--root %s: not a directory", dir)
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("--root %s: want an absolute path", dir)
	}
	return nil
}
