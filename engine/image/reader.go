package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/proto"
)

// Reader walks the entries of one image file:
//
//	for r.Next(msg) { use msg; maybe r.Payload() }
//	if err := r.Err(); err != nil { ... }
//
// All reads are positioned (pread), so Payload sections stay valid while
// the walk goes on, and restore can splice payloads straight from the file.
type Reader struct {
	name   string
	src    io.ReaderAt
	f      *os.File // nil when reading from memory
	size   int64
	info   info
	limits Limits

	off     int64 // where the next entry's length word is
	entry   int   // index of the next entry
	payOff  int64 // current entry's payload: offset, length
	payLen  int64
	buf     []byte
	started bool
	done    bool
	err     error
}

// Reader opens image file name, which must be of kind k, and checks its
// header.
func (d *Dir) Reader(k Kind, name string) (*Reader, error) {
	f, size, err := d.openRead(name)
	if err != nil {
		return nil, err
	}
	r, err := newReader(name, f, size, k, d)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// newReader reads from any ReaderAt of known size; fuzz tests use memory.
func newReader(name string, src io.ReaderAt, size int64, k Kind, d *Dir) (*Reader, error) {
	i, ok := kindInfo(k)
	if !ok {
		return nil, fmt.Errorf("%s: unknown image kind %d", name, int(k))
	}
	head, err := headerWords(k, d.magics)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r := &Reader{name: name, src: src, size: size, info: i, limits: d.limits}
	for n, want := range head {
		got, err := r.u32(int64(4 * n))
		if err != nil {
			return nil, errorf(name, -1, "", ErrTruncated, "header: %d bytes, want %d", size, 4*len(head))
		}
		if got != want {
			return nil, errorf(name, -1, "", ErrBadMagic, "header word %d is %#x (%s), want %#x (%s)",
				n, got, d.magicName(got), want, d.magicName(want))
		}
	}
	r.off = int64(4 * len(head))
	return r, nil
}

func (d *Dir) magicName(v uint32) string {
	if s, ok := d.magics.ByValue[uint64(v)]; ok {
		return s
	}
	return "unknown"
}

func (r *Reader) u32(off int64) (uint32, error) {
	var b [4]byte
	if _, err := r.src.ReadAt(b[:], off); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// Name is the file's name in the directory.
func (r *Reader) Name() string { return r.name }

// Next decodes the next entry into m and reports whether there was one.
// At the end of the file, or on the first error, it returns false; Err
// tells which.
func (r *Reader) Next(m proto.Message) bool {
	if r.done || r.err != nil {
		return false
	}
	if r.started {
		r.entry++
	}
	r.started = true
	r.payOff, r.payLen = 0, 0
	left := r.size - r.off
	if left == 0 {
		r.done = true
		return false
	}
	if !r.info.accepts(m) {
		return r.fail("", ErrWrongType, "%s asked for in a %s image", m.ProtoReflect().Descriptor().FullName(), r.info.name)
	}
	if left < 4 {
		return r.fail("", ErrTrailing, "%d bytes left at offset %d, too few for an entry length", left, r.off)
	}
	n, err := r.u32(r.off)
	if err != nil {
		return r.fail("", nil, "read length at offset %d: %v", r.off, err)
	}
	if n > r.limits.MaxEntry {
		return r.fail("", ErrTooLarge, "declares %d bytes, limit %d", n, r.limits.MaxEntry)
	}
	if int64(n) > left-4 {
		return r.fail("", ErrTruncated, "declares %d bytes at offset %d, only %d left", n, r.off, left-4)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := r.src.ReadAt(b, r.off+4); err != nil {
		return r.fail("", nil, "read %d bytes at offset %d: %v", n, r.off+4, err)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return r.fail("", ErrInvalid, "decode %s: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
	r.off += 4 + int64(n)
	p := payloadOf(m)
	left = r.size - r.off
	switch {
	case p.toEOF:
		r.payOff, r.payLen = r.off, left
		r.off = r.size
	case p.padded > uint64(left):
		return r.fail("", ErrTruncated, "payload declares %d bytes at offset %d, only %d left", p.n, r.off, left)
	default:
		r.payOff, r.payLen = r.off, int64(p.n)
		r.off += int64(p.padded)
	}
	return true
}

func (r *Reader) fail(field string, kind error, format string, args ...any) bool {
	r.err = errorf(r.name, r.entry, field, kind, format, args...)
	return false
}

// Err is the error that stopped Next, or nil at a clean end of file.
func (r *Reader) Err() error { return r.err }

// Index is the index, from 0, of the entry Next decoded last.
func (r *Reader) Index() int { return r.entry }

// Payload gives the raw data after the current entry (empty if it has
// none). The section stays valid until Close.
func (r *Reader) Payload() *io.SectionReader {
	return io.NewSectionReader(r.src, r.payOff, r.payLen)
}

// PayloadOffset gives where the current entry's raw data lies in File, for
// pread or splice.
func (r *Reader) PayloadOffset() (off, n int64) { return r.payOff, r.payLen }

// File is the open image file (nil for in-memory readers).
func (r *Reader) File() *os.File { return r.f }

// Close closes the file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// ReadAll reads every entry of an image whose entries are all of type T
// (pstree.img, files.img, fdinfo-N.img, ...). At most Limits.MaxEntries are
// kept.
func ReadAll[T any, P interface {
	*T
	proto.Message
}](d *Dir, k Kind, name string) ([]P, error) {
	r, err := d.Reader(k, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []P
	for {
		m := P(new(T))
		if !r.Next(m) {
			break
		}
		if len(out) >= d.limits.MaxEntries {
			return nil, errorf(name, r.Index(), "", ErrTooLarge, "more than %d entries", d.limits.MaxEntries)
		}
		out = append(out, m)
	}
	return out, r.Err()
}

// ReadOne reads an image that holds exactly one entry (inventory, core,
// mm, fs, ids, creds, stats): anything after it is an error, not ignored.
func ReadOne[T any, P interface {
	*T
	proto.Message
}](d *Dir, k Kind, name string) (P, error) {
	r, err := d.Reader(k, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	m := P(new(T))
	if !r.Next(m) {
		if r.Err() != nil {
			return nil, r.Err()
		}
		return nil, errorf(name, 0, "", ErrTruncated, "no entry; the image holds exactly one")
	}
	if extra := P(new(T)); r.Next(extra) {
		return nil, errorf(name, 1, "", ErrTrailing, "unexpected second entry; the image holds exactly one")
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	return m, nil
}
