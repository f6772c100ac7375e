package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/checkpoint-restore/go-criu/v7/magic"
)

// Limits bound what a reader accepts, so a corrupt or hostile image fails
// with a named error instead of exhausting memory.
type Limits struct {
	// MaxEntry is the largest protobuf entry accepted, in bytes. CRIU's
	// biggest entries (mm with thousands of VMAs, cgroup) stay far below.
	MaxEntry uint32
	// MaxEntries bounds how many entries ReadAll keeps in memory. Streaming
	// with Reader.Next or PageReader.Next is not bounded: it holds one entry.
	MaxEntries int
	// UserSpaceEnd is the first address past user space accepted in VMAs and
	// pagemaps.
	UserSpaceEnd uint64
}

// DefaultLimits accepts any image CRIU or gocr writes for a machine with
// 5-level page tables.
func DefaultLimits() Limits {
	return Limits{MaxEntry: 64 << 20, MaxEntries: 1 << 20, UserSpaceEnd: TaskSize5Level}
}

// Dir is an open image directory. Its methods may be used from several
// goroutines; SetLimits must happen before any reader is made.
type Dir struct {
	path   string
	fd     *os.File // the directory; image files are opened relative to it
	root   *os.Root // the same directory, for writing
	magics magic.MagicMap
	limits Limits

	lastPagesID  atomic.Uint32 // the last pages-<n>.img id handed out
	pagesWritten atomic.Uint64 // pages written by closed PageWriters
	pagesWriteNs atomic.Int64  // time spent in write(2) of pages files, all PageWriters
}

// Create prepares dir to receive a new set of images. A missing directory
// is made 0700; an existing one must pass the same safety checks as Open
// and hold no image file yet (see the package documentation).
func Create(dir string) (*Dir, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create image directory: %w", err)
		}
		// Mkdir is subject to the umask; say exactly what we mean.
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create image directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("create image directory: %w", err)
	default:
		if err := checkDir(dir, fi); err != nil {
			return nil, err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("create image directory: %w", err)
		}
		for _, e := range ents {
			if isImageName(e.Name()) {
				return nil, fmt.Errorf("image directory %s already holds %s: use an empty directory or remove the old images", dir, e.Name())
			}
		}
	}
	return openRoot(dir)
}

// Open opens an existing image directory for reading (and for the few
// files restore adds, such as stats-restore).
func Open(dir string) (*Dir, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open image directory: %w", err)
	}
	if err := checkDir(dir, fi); err != nil {
		return nil, err
	}
	return openRoot(dir)
}

func openRoot(dir string) (*Dir, error) {
	fd, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open image directory: %w", err)
	}
	// Check what was opened, not the path: it may have been replaced.
	fi, err := fd.Stat()
	if err == nil {
		err = checkDir(dir, fi)
	}
	if err != nil {
		fd.Close()
		return nil, err
	}
	root, err := os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", fd.Fd()))
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open image directory %s: %w", dir, err)
	}
	return &Dir{path: dir, fd: fd, root: root, magics: loadMagics(), limits: DefaultLimits()}, nil
}

// checkDir refuses what is not a directory, and a directory someone else
// owns. A directory others may write to is accepted (zdtm.py makes its
// images directories 0777): what matters is that no file in it can be
// swapped for one of theirs, which openRead checks on each file it opens.
func checkDir(dir string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("image directory %s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
			return fmt.Errorf("image directory %s: owned by uid %d, neither us (uid %d) nor root", dir, st.Uid, uid)
		}
	}
	return nil
}

// checkFile refuses an opened image file that is not a regular file (a
// FIFO or device planted under an image name could block or feed endless
// data), that is owned by neither the caller nor root, or that group or
// others may write to: someone else could have written it, or could still
// change it while it is read.
func checkFile(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
			return fmt.Errorf("owned by uid %d, neither us (uid %d) nor root", st.Uid, uid)
		}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("mode %#o is writable by group or others", perm)
	}
	return nil
}

// Path is the directory as given to Create or Open.
func (d *Dir) Path() string { return d.path }

// SetLimits replaces the reader limits (DefaultLimits otherwise).
func (d *Dir) SetLimits(l Limits) { d.limits = l }

// Limits returns the limits readers of d apply.
func (d *Dir) Limits() Limits { return d.limits }

// Close releases the directory. Open readers stay usable; writers must be
// closed first, since they put their file in place through the directory.
func (d *Dir) Close() error { return errors.Join(d.root.Close(), d.fd.Close()) }

// Exists reports whether the directory holds a complete file of that name.
func (d *Dir) Exists(name string) bool {
	if checkName(name) != nil {
		return false
	}
	_, err := d.root.Lstat(name)
	return err == nil
}

// openRead opens a complete image file, once, relative to the directory's
// fd (os.Root: openat, no link or ".." out of it) and with O_NOFOLLOW, and
// checks what it opened (checkFile): the file read is the file checked.
func (d *Dir) openRead(name string) (*os.File, int64, error) {
	if err := checkName(name); err != nil {
		return nil, 0, err
	}
	// openat on the directory's fd: name is one plain component
	// (checkName), and O_NOFOLLOW refuses a link in its place, also one
	// to another file of the directory (os.Root would follow that).
	n, err := unix.Openat(int(d.fd.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		err = errors.New("a symbolic link, not a regular file")
	}
	if err != nil {
		return nil, 0, fileErr(name, err)
	}
	f := os.NewFile(uintptr(n), name)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fileErr(name, err)
	}
	if err := checkFile(fi); err != nil {
		f.Close()
		return nil, 0, fileErr(name, err)
	}
	return f, fi.Size(), nil
}

// OpenRaw opens an image file that is not made of entries (a tmpfs tar)
// with the checks of every image file (openRead).
func (d *Dir) OpenRaw(name string) (*os.File, error) {
	f, _, err := d.openRead(name)
	return f, err
}

// createPart opens name.part for writing; commit renames it into place.
// Unless replace is set, an existing complete file is an error: within one
// dump, writing a name twice is a bug that would lose data.
func (d *Dir) createPart(name string, replace bool) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if !replace {
		if _, err := d.root.Lstat(name); err == nil {
			return nil, fileErr(name, fs.ErrExist)
		}
	}
	f, err := d.root.OpenFile(name+partSuffix, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fileErr(name, err)
	}
	return f, nil
}

func (d *Dir) commit(name string) error {
	if err := d.root.Rename(name+partSuffix, name); err != nil {
		return fileErr(name, err)
	}
	return nil
}

func (d *Dir) discard(name string) { _ = d.root.Remove(name + partSuffix) }
