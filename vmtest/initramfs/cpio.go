// Package initramfs writes the initial RAM filesystem that vmtest boots:
// a "newc" cpio archive (the format the kernel unpacks into its rootfs),
// uncompressed so that the guest spends no time decompressing it.
package initramfs

import (
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Writer appends entries to a newc archive. Parent directories are made
// on demand, so callers only name the files they care about.
type Writer struct {
	w     io.Writer
	ino   uint32
	dirs  map[string]bool
	err   error
	total int64
}

// NewWriter starts an archive on w; Close writes its trailer.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}}
}

// Size is the number of bytes written so far.
func (a *Writer) Size() int64 { return a.total }

// Dir adds a directory (and its parents).
func (a *Writer) Dir(name string, mode os.FileMode) error {
	name = clean(name)
	if a.dirs[name] {
		return a.err
	}
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	a.dirs[name] = true
	return a.entry(name, 0o040000|uint32(mode.Perm()), 0, 0, nil, 0)
}

// File adds a regular file with the given content.
func (a *Writer) File(name string, mode os.FileMode, data []byte) error {
	name = clean(name)
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return a.entry(name, 0o100000|uint32(mode.Perm()), 0, 0, data, int64(len(data)))
}

// CopyFile adds the host file src as name, following symlinks; mode is
// taken from src unless perm is non-zero.
func (a *Writer) CopyFile(name, src string, perm os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if perm == 0 {
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		perm = st.Mode().Perm()
	}
	return a.File(name, perm, data)
}

// Symlink adds name pointing at target.
func (a *Writer) Symlink(name, target string) error {
	name = clean(name)
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return a.entry(name, 0o120000|0o777, 0, 0, []byte(target), int64(len(target)))
}

// CharDev adds a character device node, such as /dev/console (5, 1): the
// kernel opens it for init's stdio before any devtmpfs is mounted.
func (a *Writer) CharDev(name string, mode os.FileMode, major, minor uint32) error {
	name = clean(name)
	if err := a.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return a.entry(name, 0o020000|uint32(mode.Perm()), major, minor, nil, 0)
}

// Close writes the trailer. It does not close the underlying writer.
func (a *Writer) Close() error {
	if a.err != nil {
		return a.err
	}
	a.ino = 0
	return a.entry("TRAILER!!!", 0, 0, 0, nil, 0)
}

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// entry writes one newc header, the name and the data, each padded to
// four bytes.
func (a *Writer) entry(name string, mode, rmajor, rminor uint32, data []byte, size int64) error {
	if a.err != nil {
		return a.err
	}
	ino := a.ino
	if ino != 0 {
		a.ino++
	}
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+8)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad(buf)
	a.write(buf)
	a.write(data)
	if n := len(data) % 4; n != 0 {
		a.write(make([]byte, 4-n))
	}
	return a.err
}

func pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (a *Writer) write(b []byte) {
	if a.err != nil || len(b) == 0 {
		return
	}
	n, err := a.w.Write(b)
	a.total += int64(n)
	if err != nil {
		a.err = fmt.Errorf("initramfs: write: %w", err)
	}
}

// Entry is one file of an archive as List reads it back (for tests and
// for `vmtest -list-initramfs`).
type Entry struct {
	Name         string
	Mode         uint32
	Size         int64
	Major, Minor uint32
	Data         []byte
}

// List reads a newc archive back.
func List(r io.Reader) ([]Entry, error) {
	var out []Entry
	hdr := make([]byte, 110)
	var off int64
	read := func(b []byte) error {
		n, err := io.ReadFull(r, b)
		off += int64(n)
		return err
	}
	skip := func() error {
		if n := off % 4; n != 0 {
			return read(make([]byte, 4-n))
		}
		return nil
	}
	for {
		if err := read(hdr); err != nil {
			return out, fmt.Errorf("cpio header at %d: %w", off, err)
		}
		if string(hdr[:6]) != "070701" {
			return out, fmt.Errorf("cpio header at %d: bad magic %q", off-110, hdr[:6])
		}
		field := func(i int) uint32 {
			var v uint32
			fmt.Sscanf(string(hdr[6+8*i:14+8*i]), "%08x", &v)
			return v
		}
		name := make([]byte, field(11))
		if err := read(name); err != nil {
			return out, err
		}
		if err := skip(); err != nil {
			return out, err
		}
		e := Entry{Name: strings.TrimRight(string(name), "\x00"), Mode: field(1), Size: int64(field(6)),
			Major: field(9), Minor: field(10)}
		if e.Name == "TRAILER!!!" {
			return out, nil
		}
		e.Data = make([]byte, e.Size)
		if err := read(e.Data); err != nil {
			return out, err
		}
		if err := skip(); err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// Names returns the sorted names of entries, for messages.
func Names(es []Entry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name)
	}
	sort.Strings(n)
	return n
}
