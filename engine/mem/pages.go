package mem

import (
	"fmt"
	"io"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
)

// PageStats counts what DumpPages looked at and saved.
type PageStats struct {
	Scanned uint64 // pages of VMAs with contents
	Written uint64 // pages saved
}

// DumpPages saves the pages of a stopped task that restore cannot get back
// otherwise: present or swapped pages of private anonymous memory, and of
// private file mappings only those copied on write (a page still backed by
// the file reads the same from it after restore). Pages stream from the
// task to the image, never buffered whole.
func DumpPages(pid int, vmas []*vma.VmaEntry, pw *image.PageWriter) (PageStats, error) {
	var st PageStats
	pm, err := procfs.OpenPagemap(pid)
	if err != nil {
		return st, err
	}
	defer pm.Close()
	for _, v := range vmas {
		if !HasContents(v) {
			continue
		}
		start, end := v.GetStart(), v.GetEnd()
		st.Scanned += (end - start) / image.PageSize
		keep := func(e procfs.PagemapEntry) bool { return e.Present() || e.Swapped() }
		if v.GetStatus()&FilePrivate != 0 {
			// A present page that is still the file's page is not ours.
			keep = func(e procfs.PagemapEntry) bool { return (e.Present() && !e.FileOrSharedAnon()) || e.Swapped() }
		}
		runs, err := pm.Runs(start, end, keep)
		if err != nil {
			return st, fmt.Errorf("pagemap of VMA %#x-%#x: %w", start, end, err)
		}
		for _, r := range runs {
			n := (r.End - r.Start) / image.PageSize
			if err := pw.Add(r.Start, n, &remoteReader{pid: pid, addr: r.Start, end: r.End}); err != nil {
				return st, fmt.Errorf("pages %#x-%#x: %w", r.Start, r.End, err)
			}
			st.Written += n
		}
	}
	return st, nil
}

// remoteReader reads a range of another process's memory in the chunks
// its caller asks for.
type remoteReader struct {
	pid       int
	addr, end uint64
}

func (r *remoteReader) Read(p []byte) (int, error) {
	if r.addr >= r.end {
		return 0, io.EOF
	}
	if rest := r.end - r.addr; uint64(len(p)) > rest {
		p = p[:rest]
	}
	if err := ptrace.ReadMem(r.pid, r.addr, p); err != nil {
		return 0, fmt.Errorf("read pid %d memory at %#x: %w", r.pid, r.addr, err)
	}
	r.addr += uint64(len(p))
	return len(p), nil
}
