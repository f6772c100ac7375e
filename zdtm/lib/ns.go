package lib

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/netif"
)

// NsHostname is the hostname the ns flavors set in their uts namespace.
const NsHostname = "zdtm-ns"

// enterRoot runs in the daemon when it is pid 1 of fresh pid, mount, uts,
// ipc and net namespaces (the ns and uns flavors). It builds the workload's
// own root filesystem, as CRIU's zdtm does: a tmpfs holding /proc, a small
// /dev (with a devpts instance of its own), /tmp, the workload binary and the test's directory, each at the path
// it has on the host so that every path given on the command line still
// works, then pivots into it.
func enterRoot(t *T, hostDirs []string) error {
	workdir, err := filepath.Abs(filepath.Dir(t.outPath))
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	root := filepath.Join(workdir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("zdtm-root", root, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", root, err)
	}
	for _, d := range []string{"proc", "dev", "tmp", ".oldroot"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("populate new root: %w", err)
		}
	}
	if err := unix.Mount("zdtm-tmp", filepath.Join(root, "tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if err := bind(workdir, filepath.Join(root, workdir), false); err != nil {
		return err
	}
	if err := bind(exe, filepath.Join(root, exe), true); err != nil {
		return err
	}
	for _, d := range hostDirs {
		if _, err := os.Lstat(d); err != nil {
			continue // not on this system (a test VM's small root)
		}
		dst := filepath.Join(root, d)
		if target, err := os.Readlink(d); err == nil {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return fmt.Errorf("symlink %s: %w", d, err)
			}
			continue
		}
		if err := bindTree(d, dst); err != nil {
			return err
		}
	}
	if err := unix.Mount("zdtm-dev", filepath.Join(root, "dev"), "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, dev := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := bind("/dev/"+dev, filepath.Join(root, "dev", dev), false); err != nil {
			return err
		}
	}
	if err := mountPts(filepath.Join(root, "dev")); err != nil {
		return err
	}
	// proc first: in a user namespace the kernel lets a new proc be
	// mounted only while a fully visible one is still in the namespace.
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := unix.PivotRoot(root, filepath.Join(root, ".oldroot")); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	if err := unix.Unmount("/.oldroot", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := os.Remove("/.oldroot"); err != nil {
		return fmt.Errorf("remove old root mount point: %w", err)
	}
	if err := unix.Sethostname([]byte(NsHostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := netif.Up("lo"); err != nil {
		return err
	}
	if err := unix.Chdir(workdir); err != nil {
		return fmt.Errorf("chdir %s: %w", workdir, err)
	}
	return nil
}

// mountPts gives the small /dev its own pseudo-terminals, as a
// container's has: a fresh devpts instance on dev/pts, reached through
// dev/ptmx, a symlink to its ptmx node.
func mountPts(dev string) error {
	pts := filepath.Join(dev, "pts")
	if err := os.MkdirAll(pts, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mount devpts on %s: %w", pts, err)
	}
	if err := os.Symlink("pts/ptmx", filepath.Join(dev, "ptmx")); err != nil {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	return nil
}

// bind bind-mounts src onto a new file or directory dst of the same kind.
func bind(src, dst string, readOnly bool) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st.IsDir() {
		err = os.MkdirAll(dst, 0o755)
	} else {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			var f *os.File
			if f, err = os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	if readOnly {
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", dst, err)
		}
	}
	return nil
}

// bindTree binds the directory src on dst read-only (not recursively:
// what is mounted under src on the host stays out).
func bindTree(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dst, err)
	}
	return nil
}
