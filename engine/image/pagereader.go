package image

import (
	"fmt"
	"io"
	"os"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
)

// PageRun is one pagemap entry: NrPages pages from Vaddr. When Flags holds
// PePresent the contents are at Offset in the pages file; otherwise Offset
// is -1.
type PageRun struct {
	Vaddr   uint64
	NrPages uint64
	Flags   uint32
	Offset  int64
}

// End is the first address past the run.
func (r PageRun) End() uint64 { return r.Vaddr + r.NrPages*PageSize }

// Present reports whether the run's contents are in this image.
func (r PageRun) Present() bool { return r.Flags&PePresent != 0 }

// Len is the run's size in bytes.
func (r PageRun) Len() int64 { return int64(r.NrPages * PageSize) }

// PageReader walks a pagemap and locates each run's contents in the pages
// file, checking as it goes that runs are aligned, sorted, disjoint, inside
// user space and backed by the pages file; at the end, that the pages file
// holds nothing more.
type PageReader struct {
	r         *Reader
	pages     io.ReaderAt
	pagesFile *os.File
	pagesName string
	pagesSize int64
	id        uint32
	limits    Limits

	e    pagemap.PagemapEntry
	run  PageRun
	off  int64 // next offset in the pages file
	end  uint64
	done bool
	err  error
}

// PageReader opens pagemap-<pid>.img and the pages file it names.
func (d *Dir) PageReader(pid uint32) (*PageReader, error) {
	return d.openPageReader(PagemapFile(pid))
}

// ShmemPageReader opens pagemap-shmem-<shmid>.img and its pages file.
func (d *Dir) ShmemPageReader(shmid uint64) (*PageReader, error) {
	return d.openPageReader(ShmemPagemapFile(shmid))
}

func (d *Dir) openPageReader(pagemapName string) (*PageReader, error) {
	r, err := d.Reader(Pagemap, pagemapName)
	if err != nil {
		return nil, err
	}
	id, err := readPagemapHead(r)
	if err != nil {
		r.Close()
		return nil, err
	}
	pf, size, err := d.openRead(PagesFile(id))
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: pages_id %d: %w", pagemapName, id, err)
	}
	pr := newPageReader(r, id, pf, size, d.limits)
	pr.pagesFile = pf
	return pr, nil
}

func readPagemapHead(r *Reader) (uint32, error) {
	var head pagemap.PagemapHead
	if !r.Next(&head) {
		if r.Err() != nil {
			return 0, r.Err()
		}
		return 0, errorf(r.name, 0, "", ErrTruncated, "no pagemap_head")
	}
	return head.GetPagesId(), nil
}

func newPageReader(r *Reader, id uint32, pages io.ReaderAt, size int64, l Limits) *PageReader {
	return &PageReader{r: r, pages: pages, pagesName: PagesFile(id), pagesSize: size, id: id, limits: l}
}

// PagesID is the id in pages-<id>.img.
func (pr *PageReader) PagesID() uint32 { return pr.id }

// Next moves to the next run and reports whether there is one; at the end
// or on the first inconsistency it returns false and Err says which.
func (pr *PageReader) Next() bool {
	if pr.done || pr.err != nil {
		return false
	}
	if !pr.r.Next(&pr.e) {
		pr.done = true
		if pr.err = pr.r.Err(); pr.err != nil {
			return false
		}
		if pr.off != pr.pagesSize {
			pr.err = errorf(pr.pagesName, -1, "", ErrTrailing, "%d bytes, but %s accounts for %d (%d pages)",
				pr.pagesSize, pr.r.name, pr.off, pr.off/PageSize)
		}
		return false
	}
	run, err := pr.check(&pr.e)
	if err != nil {
		pr.err = err
		return false
	}
	pr.run = run
	return true
}

func (pr *PageReader) check(e *pagemap.PagemapEntry) (PageRun, error) {
	name, idx := pr.r.name, pr.r.Index()
	run := PageRun{Vaddr: e.GetVaddr(), NrPages: uint64(e.GetNrPages()), Flags: e.GetFlags(), Offset: -1}
	if e.Flags == nil { // images from before pagemap flags existed
		run.Flags = PePresent
		if e.GetInParent() {
			run.Flags = PeParent
		}
	}
	bad := func(field, format string, args ...any) (PageRun, error) {
		return PageRun{}, errorf(name, idx, field, ErrInvalid, format, args...)
	}
	switch {
	case run.Flags&^(PeParent|PeLazy|PePresent) != 0:
		return bad("flags", "%#x: unknown bits", run.Flags)
	case run.Flags == 0:
		return bad("flags", "0: neither present, parent nor lazy")
	case run.Vaddr%PageSize != 0:
		return bad("vaddr", "%#x: not page-aligned", run.Vaddr)
	case run.NrPages == 0:
		return bad("nr_pages", "0 at %#x", run.Vaddr)
	case run.Vaddr >= pr.limits.UserSpaceEnd || run.NrPages > (pr.limits.UserSpaceEnd-run.Vaddr)/PageSize:
		return bad("vaddr", "%#x + %d pages: outside user address space (ends %#x)", run.Vaddr, run.NrPages, pr.limits.UserSpaceEnd)
	case run.Vaddr < pr.end:
		return bad("vaddr", "%#x: overlaps or precedes the previous entry, which ends at %#x", run.Vaddr, pr.end)
	}
	pr.end = run.End()
	if run.Present() {
		if run.Len() > pr.pagesSize-pr.off {
			return PageRun{}, errorf(name, idx, "nr_pages", ErrTruncated, "%d pages at %#x need bytes %d..%d of %s, which holds %d",
				run.NrPages, run.Vaddr, pr.off, pr.off+run.Len(), pr.pagesName, pr.pagesSize)
		}
		run.Offset = pr.off
		pr.off += run.Len()
	}
	return run, nil
}

// Run is the current run.
func (pr *PageReader) Run() PageRun { return pr.run }

// Data gives the current run's contents; empty when not present.
func (pr *PageReader) Data() *io.SectionReader {
	if !pr.run.Present() {
		return io.NewSectionReader(pr.pages, 0, 0)
	}
	return io.NewSectionReader(pr.pages, pr.run.Offset, pr.run.Len())
}

// PagesFile is the open pages file, for pread or splice at Run().Offset.
func (pr *PageReader) PagesFile() *os.File { return pr.pagesFile }

// Err is the error that stopped Next, or nil after a consistent pagemap.
func (pr *PageReader) Err() error { return pr.err }

// Close closes both files.
func (pr *PageReader) Close() error {
	err := pr.r.Close()
	if pr.pagesFile != nil {
		if e := pr.pagesFile.Close(); err == nil {
			err = e
		}
		pr.pagesFile = nil
	}
	return err
}
