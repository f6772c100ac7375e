package image

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/proto"
)

// Writer appends entries to one image file. The file appears under its
// name only when Close succeeds.
type Writer struct {
	d       *Dir
	name    string
	info    info
	f       *os.File
	bw      *bufio.Writer
	entries int
	buf     []byte
	toEOF   bool // a payload running to the end of the file was written
	err     error
}

// Writer starts image file name of kind k, writing its header.
func (d *Dir) Writer(k Kind, name string) (*Writer, error) {
	return d.writer(k, name, false)
}

// Replacer is Writer for an image the dump writes again: the new one
// takes the old one's place when it is closed.
func (d *Dir) Replacer(k Kind, name string) (*Writer, error) {
	return d.writer(k, name, true)
}

func (d *Dir) writer(k Kind, name string, replace bool) (*Writer, error) {
	i, ok := kindInfo(k)
	if !ok {
		return nil, fmt.Errorf("%s: unknown image kind %d", name, int(k))
	}
	head, err := headerWords(k, d.magics)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f, err := d.createPart(name, replace)
	if err != nil {
		return nil, err
	}
	w := &Writer{d: d, name: name, info: i, f: f, bw: bufio.NewWriterSize(f, 64<<10)}
	for _, h := range head {
		w.u32(h)
	}
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	return w, nil
}

// Name is the file's name in the directory.
func (w *Writer) Name() string { return w.name }

// Write appends one entry. A message that CRIU follows with raw data
// (pipe data, socket queue, ...) must go through WritePayload instead.
func (w *Writer) Write(m proto.Message) error {
	if m == nil {
		return w.writeEntry(nil)
	}
	if p := payloadOf(m); p.toEOF || p.n > 0 {
		return w.fail(errorf(w.name, w.entries, "", ErrInvalid, "%s carries %d bytes of raw data: use WritePayload", m.ProtoReflect().Descriptor().FullName(), p.n))
	}
	return w.writeEntry(m)
}

// WritePayload appends one entry followed by its raw data, read from data:
// exactly as many bytes as the message declares (e.g. PipeDataEntry.bytes),
// zero-padded the way CRIU aligns SysV IPC data; for a ghost file stored in
// one piece, everything data yields, after which the file is complete.
func (w *Writer) WritePayload(m proto.Message, data io.Reader) error {
	p := payloadOf(m)
	if err := w.writeEntry(m); err != nil {
		return err
	}
	idx := w.entries - 1
	if p.toEOF {
		if _, err := io.Copy(w.bw, data); err != nil {
			return w.fail(errorf(w.name, idx, "", nil, "payload: %v", err))
		}
		w.toEOF = true
		return nil
	}
	if p.n > math.MaxInt64 || p.padded-p.n > 7 {
		return w.fail(errorf(w.name, idx, "", ErrTooLarge, "payload of %d bytes", p.n))
	}
	n, err := io.CopyN(w.bw, data, int64(p.n))
	if err != nil {
		return w.fail(errorf(w.name, idx, "", ErrTruncated, "payload: entry declares %d bytes, data gave %d (%v)", p.n, n, err))
	}
	var zero [8]byte
	if _, err := w.bw.Write(zero[:p.padded-p.n]); err != nil {
		return w.fail(fileErr(w.name, err))
	}
	return nil
}

func (w *Writer) writeEntry(m proto.Message) error {
	if w.err != nil {
		return w.err
	}
	if m == nil {
		return w.fail(errorf(w.name, w.entries, "", ErrInvalid, "nil message"))
	}
	if w.toEOF {
		return w.fail(errorf(w.name, w.entries, "", ErrInvalid, "nothing may follow a payload that runs to the end of the file"))
	}
	if !w.info.accepts(m) {
		return w.fail(errorf(w.name, w.entries, "", ErrWrongType, "%s in a %s image", m.ProtoReflect().Descriptor().FullName(), w.info.name))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(w.buf[:0], m)
	if err != nil {
		return w.fail(errorf(w.name, w.entries, "", ErrInvalid, "encode %s: %v", m.ProtoReflect().Descriptor().FullName(), err))
	}
	w.buf = b
	if uint64(len(b)) > uint64(w.d.limits.MaxEntry) {
		return w.fail(errorf(w.name, w.entries, "", ErrTooLarge, "%d bytes, limit %d", len(b), w.d.limits.MaxEntry))
	}
	w.u32(uint32(len(b)))
	if _, err := w.bw.Write(b); err != nil && w.err == nil {
		w.err = fileErr(w.name, err)
	}
	if w.err != nil {
		return w.fail(w.err)
	}
	w.entries++
	return nil
}

func (w *Writer) u32(v uint32) {
	if w.err != nil {
		return
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if _, err := w.bw.Write(b[:]); err != nil {
		w.err = fileErr(w.name, err)
	}
}

// fail makes err sticky: a file with a missing or half-written entry must
// never be committed.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// Close flushes the file and puts it in place; after any earlier error it
// removes the partial file and returns that error.
func (w *Writer) Close() error {
	if w.f == nil {
		return w.err
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fileErr(w.name, err)
		}
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fileErr(w.name, err)
	}
	w.f = nil
	if w.err != nil {
		w.d.discard(w.name)
		return w.err
	}
	if err := w.d.commit(w.name); err != nil {
		w.d.discard(w.name)
		w.err = err
	}
	return w.err
}

// Abort drops the file being written; it is safe after Close.
func (w *Writer) Abort() {
	if w.f == nil {
		return
	}
	w.f.Close()
	w.f = nil
	w.d.discard(w.name)
	if w.err == nil {
		w.err = fileErr(w.name, fmt.Errorf("aborted"))
	}
}

// WriteOne writes an image holding the single entry m, as CRIU does for
// inventory, core, mm, fs, ids and creds.
func (d *Dir) WriteOne(k Kind, name string, m proto.Message) error {
	w, err := d.Writer(k, name)
	if err != nil {
		return err
	}
	if err := w.Write(m); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// WriteAll writes an image of entries (files.img, tty-info.img, ...), the
// counterpart of ReadAll: a failed write leaves no file behind.
func WriteAll[M proto.Message](d *Dir, k Kind, name string, entries []M) error {
	w, err := d.Writer(k, name)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := w.Write(e); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}
