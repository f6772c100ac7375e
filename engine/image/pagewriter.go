package image

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"google.golang.org/protobuf/proto"
)

// PageWriter streams one address space's memory into pagemap-<pid>.img and
// pages-<id>.img. Runs must come in ascending address order; adjacent runs
// of the same kind are merged into one pagemap entry, as CRIU does. Page
// data is copied through a small buffer, never held whole, so dumping a
// 1 GiB task costs the same memory as dumping a small one.
type PageWriter struct {
	d         *Dir
	pm        *Writer
	id        uint32
	pagesName string
	pages     *os.File
	pw        *bufio.Writer
	copyBuf   []byte // Add's copy buffer: one read of the task per MiB

	pend    *pagemap.PagemapEntry // the run not yet written, to merge into
	end     uint64                // end of the last run added
	written uint64                // pages in the pages file
	err     error
}

// PageWriter starts the memory images of task pid.
func (d *Dir) PageWriter(pid uint32) (*PageWriter, error) {
	return d.newPageWriter(PagemapFile(pid))
}

// ShmemPageWriter starts the memory images of a shared anonymous mapping.
func (d *Dir) ShmemPageWriter(shmid uint64) (*PageWriter, error) {
	return d.newPageWriter(ShmemPagemapFile(shmid))
}

func (d *Dir) newPageWriter(pagemapName string) (*PageWriter, error) {
	id, err := d.nextPagesID()
	if err != nil {
		return nil, err
	}
	pw := &PageWriter{d: d, id: id, pagesName: PagesFile(id)}
	if pw.pm, err = d.Writer(Pagemap, pagemapName); err != nil {
		return nil, err
	}
	if err := pw.pm.Write(&pagemap.PagemapHead{PagesId: proto.Uint32(id)}); err != nil {
		pw.pm.Abort()
		return nil, err
	}
	if pw.pages, err = d.createPart(pw.pagesName, false); err != nil {
		pw.pm.Abort()
		return nil, err
	}
	pw.pw = bufio.NewWriterSize(timedWriter{pw.pages, &d.pagesWriteNs}, 256<<10)
	return pw, nil
}

// nextPagesID hands out pages-<n>.img ids from 1, skipping any in use.
func (d *Dir) nextPagesID() (uint32, error) {
	for {
		id := d.lastPagesID.Add(1)
		if id == 0 {
			return 0, fmt.Errorf("image directory %s: pages ids exhausted", d.path)
		}
		name := PagesFile(id)
		_, e1 := d.root.Lstat(name)
		_, e2 := d.root.Lstat(name + partSuffix)
		if e1 != nil && e2 != nil {
			return id, nil
		}
	}
}

// PagesID is the id in pages-<id>.img.
func (pw *PageWriter) PagesID() uint32 { return pw.id }

// Pages is the number of pages written to the pages file so far.
func (pw *PageWriter) Pages() uint64 { return pw.written }

// Add records nrPages present pages at vaddr and copies their contents,
// exactly nrPages*PageSize bytes, from data.
func (pw *PageWriter) Add(vaddr, nrPages uint64, data io.Reader) error {
	if err := pw.addRun(vaddr, nrPages, PePresent); err != nil {
		return err
	}
	n := int64(nrPages * PageSize)
	if pw.copyBuf == nil {
		pw.copyBuf = make([]byte, copyBufSize)
	}
	// Copy through our buffer, not io.CopyN's path: that ends in the
	// file's ReadFrom, which copies in 32 KiB steps, a read of the task
	// and a write each.
	got, err := io.CopyBuffer(writerOnly{pw.pw}, io.LimitReader(data, n), pw.copyBuf)
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return pw.fail(errorf(pw.pagesName, -1, "", ErrTruncated, "pages at %#x: want %d bytes, data gave %d (%v)", vaddr, n, got, err))
	}
	pw.written += nrPages
	return nil
}

// AddBytes is Add for contents already in memory; len(data) must be a
// whole number of pages.
func (pw *PageWriter) AddBytes(vaddr uint64, data []byte) error {
	if len(data)%PageSize != 0 || len(data) == 0 {
		return pw.fail(errorf(pw.pm.name, -1, "", ErrInvalid, "pages at %#x: %d bytes is not a whole number of pages", vaddr, len(data)))
	}
	return pw.Add(vaddr, uint64(len(data)/PageSize), bytes.NewReader(data))
}

// AddParent records pages that an incremental dump left in the parent
// image: no data is written.
func (pw *PageWriter) AddParent(vaddr, nrPages uint64) error {
	return pw.addRun(vaddr, nrPages, PeParent)
}

// addRun checks a run and merges it into the pending entry or flushes that
// entry and starts a new one.
func (pw *PageWriter) addRun(vaddr, nrPages uint64, flags uint32) error {
	if pw.err != nil {
		return pw.err
	}
	name := pw.pm.name
	switch {
	case vaddr%PageSize != 0:
		return pw.fail(errorf(name, -1, "vaddr", ErrInvalid, "%#x: not page-aligned", vaddr))
	case nrPages == 0:
		return pw.fail(errorf(name, -1, "nr_pages", ErrInvalid, "run at %#x: no pages", vaddr))
	case nrPages > (pw.d.limits.UserSpaceEnd-vaddr)/PageSize || vaddr >= pw.d.limits.UserSpaceEnd:
		return pw.fail(errorf(name, -1, "vaddr", ErrInvalid, "%#x + %d pages: outside user address space (ends %#x)", vaddr, nrPages, pw.d.limits.UserSpaceEnd))
	case vaddr < pw.end:
		return pw.fail(errorf(name, -1, "vaddr", ErrInvalid, "%#x: runs must be added in ascending order without overlap, last ended at %#x", vaddr, pw.end))
	}
	if p := pw.pend; p != nil && p.GetFlags() == flags && vaddr == pw.end && uint64(p.GetNrPages())+nrPages <= math.MaxUint32 {
		p.NrPages = proto.Uint32(p.GetNrPages() + uint32(nrPages))
		pw.end = vaddr + nrPages*PageSize
		return nil
	}
	if err := pw.flush(); err != nil {
		return err
	}
	for nrPages > math.MaxUint32 { // nr_pages is 32 bits: split giant runs
		if err := pw.emit(vaddr, math.MaxUint32, flags); err != nil {
			return err
		}
		vaddr += math.MaxUint32 * PageSize
		nrPages -= math.MaxUint32
	}
	pw.pend = newPagemapEntry(vaddr, nrPages, flags)
	pw.end = vaddr + nrPages*PageSize
	return nil
}

func newPagemapEntry(vaddr, nrPages uint64, flags uint32) *pagemap.PagemapEntry {
	e := &pagemap.PagemapEntry{Vaddr: proto.Uint64(vaddr), NrPages: proto.Uint32(uint32(nrPages)), Flags: proto.Uint32(flags)}
	if flags&PeParent != 0 {
		e.InParent = proto.Bool(true) // what CRIU before flags understood
	}
	return e
}

func (pw *PageWriter) emit(vaddr, nrPages uint64, flags uint32) error {
	return pw.fail(pw.pm.Write(newPagemapEntry(vaddr, nrPages, flags)))
}

func (pw *PageWriter) flush() error {
	if pw.pend == nil {
		return nil
	}
	err := pw.pm.Write(pw.pend)
	pw.pend = nil
	return pw.fail(err)
}

func (pw *PageWriter) fail(err error) error {
	if err != nil && pw.err == nil {
		pw.err = err
	}
	return err
}

// Close writes the last entry and puts both files in place; after an
// error it removes them and returns the first error.
func (pw *PageWriter) Close() error {
	if pw.pages == nil {
		return pw.err
	}
	pw.flush()
	if pw.err == nil {
		if err := pw.pw.Flush(); err != nil {
			pw.err = fileErr(pw.pagesName, err)
		}
	}
	if err := pw.pages.Close(); err != nil && pw.err == nil {
		pw.err = fileErr(pw.pagesName, err)
	}
	pw.pages = nil
	if pw.err != nil {
		pw.pm.Abort()
		pw.d.discard(pw.pagesName)
		return pw.err
	}
	if err := pw.d.commit(pw.pagesName); err != nil {
		pw.err = err
		pw.pm.Abort()
		pw.d.discard(pw.pagesName)
		return err
	}
	if err := pw.pm.Close(); err != nil {
		pw.err = err
		_ = pw.d.root.Remove(pw.pagesName)
		return err
	}
	pw.d.pagesWritten.Add(pw.written)
	return nil
}

// Abort drops both files; it is safe after Close.
func (pw *PageWriter) Abort() {
	if pw.pages == nil {
		return
	}
	pw.pages.Close()
	pw.pages = nil
	pw.pm.Abort()
	pw.d.discard(pw.pagesName)
	if pw.err == nil {
		pw.err = fmt.Errorf("%s: aborted", pw.pagesName)
	}
}

// PagesWritten is the number of pages written by this Dir's PageWriters
// that closed successfully: the value stats-dump's pages_written must hold.
func (d *Dir) PagesWritten() uint64 { return d.pagesWritten.Load() }

// copyBufSize is how much of a task's memory one read brings in: large
// enough that system calls cost little, small enough to stay in the CPU's
// cache and keep gocr's RSS flat.
const copyBufSize = 256 << 10

// PagesWriteTime is the time the Dir's PageWriters spent writing page
// data to the pages files (stats-dump's memwrite_time), summed over
// writers running side by side.
func (d *Dir) PagesWriteTime() time.Duration { return time.Duration(d.pagesWriteNs.Load()) }

// timedWriter adds the time each write takes to a counter. The writes it
// sees are bufio's, 256 KiB each, so the clock is read rarely.
type timedWriter struct {
	w  io.Writer
	ns *atomic.Int64
}

func (t timedWriter) Write(b []byte) (int, error) {
	t0 := time.Now()
	n, err := t.w.Write(b)
	t.ns.Add(int64(time.Since(t0)))
	return n, err
}

// writerOnly hides a writer's ReadFrom, so io.CopyBuffer uses its buffer.
type writerOnly struct{ io.Writer }
