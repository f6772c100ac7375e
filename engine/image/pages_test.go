package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestPageReaderSample(t *testing.T) {
	d := writeSample(t, filepath.Join(t.TempDir(), "img"))
	defer d.Close()
	pr, err := d.PageReader(samplePid)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	want := []PageRun{
		{Vaddr: 0x400000, NrPages: 1, Flags: PePresent, Offset: 0},
		{Vaddr: sampleHeap, NrPages: 3, Flags: PePresent, Offset: PageSize},
		{Vaddr: 0x7ffd_0000_1000, NrPages: 2, Flags: PePresent, Offset: 4 * PageSize},
	}
	var got []PageRun
	for pr.Next() {
		got = append(got, pr.Run())
		if pr.Run().Vaddr == sampleHeap {
			b := make([]byte, PageSize)
			pr.PagesFile().ReadAt(b, pr.Run().Offset+PageSize)
			if !bytes.Equal(b, pageContent(1)) {
				t.Error("second heap page has the wrong contents")
			}
			all, _ := io.ReadAll(pr.Data())
			if len(all) != 3*PageSize {
				t.Errorf("heap data %d bytes", len(all))
			}
		}
	}
	if err := pr.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("runs %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("run %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func readPages(d *Dir, pid uint32) error {
	pr, err := d.PageReader(pid)
	if err != nil {
		return err
	}
	defer pr.Close()
	for pr.Next() {
	}
	return pr.Err()
}

func TestPageReaderSizeMismatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	d := writeSample(t, dir)
	defer d.Close()
	pages := filepath.Join(dir, PagesFile(1))
	f, _ := os.OpenFile(pages, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, PageSize))
	f.Close()
	if err := readPages(d, samplePid); !errors.Is(err, ErrTrailing) {
		t.Errorf("extra page: %v", err)
	}
	os.Truncate(pages, 3*PageSize)
	if err := readPages(d, samplePid); !errors.Is(err, ErrTruncated) {
		t.Errorf("missing pages: %v", err)
	}
}

func TestPageWriterChecks(t *testing.T) {
	d, err := Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	page := pageContent(0)
	cases := []struct {
		name string
		add  func(pw *PageWriter) error
	}{
		{"unaligned", func(pw *PageWriter) error { return pw.AddBytes(0x1001, page) }},
		{"not whole pages", func(pw *PageWriter) error { return pw.AddBytes(0x1000, page[:100]) }},
		{"zero pages", func(pw *PageWriter) error { return pw.Add(0x1000, 0, nil) }},
		{"beyond user space", func(pw *PageWriter) error { return pw.AddBytes(TaskSize5Level, page) }},
		{"wraps", func(pw *PageWriter) error { return pw.AddParent(0x1000, 1<<60) }},
		{"overlap", func(pw *PageWriter) error {
			pw.AddBytes(0x3000, page)
			return pw.AddBytes(0x2000, append(page, page...))
		}},
		{"short data", func(pw *PageWriter) error { return pw.Add(0x1000, 2, bytes.NewReader(page)) }},
	}
	for i, c := range cases {
		pw, err := d.PageWriter(uint32(1000 + i))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.add(pw); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
		if err := pw.Close(); err == nil {
			t.Errorf("%s: Close after an error succeeded", c.name)
		}
		if d.Exists(PagemapFile(uint32(1000+i))) || d.Exists(PagesFile(pw.PagesID())) {
			t.Errorf("%s: files left behind", c.name)
		}
	}
}

func TestPageWriterMergesAndParents(t *testing.T) {
	d, _ := Create(filepath.Join(t.TempDir(), "img"))
	pw, _ := d.PageWriter(1)
	page := pageContent(0)
	pw.AddBytes(0x1000, page)
	pw.AddBytes(0x2000, page) // merged
	pw.AddParent(0x3000, 4)   // new entry: other flags
	pw.AddParent(0x7000, 1)   // merged
	pw.AddBytes(0x9000, page) // gap: new entry
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	pr, err := d.PageReader(1)
	if err != nil {
		t.Fatal(err)
	}
	var runs []PageRun
	for pr.Next() {
		runs = append(runs, pr.Run())
	}
	if pr.Err() != nil || len(runs) != 3 {
		t.Fatalf("runs %+v, %v", runs, pr.Err())
	}
	if runs[1].Flags != PeParent || runs[1].NrPages != 5 || runs[1].Offset != -1 || runs[2].Offset != 2*PageSize {
		t.Errorf("runs %+v", runs)
	}
	if d.PagesWritten() != 3 {
		t.Errorf("PagesWritten %d", d.PagesWritten())
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Dumping must not buffer memory: 256 MiB through Add keeps the heap small.
func TestPageWriterStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	d, _ := Create(filepath.Join(t.TempDir(), "img"))
	pw, _ := d.PageWriter(1)
	const total = 256 << 20
	var before, peak runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for off := uint64(0); off < total; off += 16 << 20 {
		if err := pw.Add(0x10_0000_0000+off, (16<<20)/PageSize, zeros{}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&peak)
		if grown := int64(peak.HeapInuse) - int64(before.HeapInuse); grown > 8<<20 {
			t.Fatalf("heap grew %d bytes while streaming pages", grown)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.PagesOnDisk(); n != total/PageSize {
		t.Errorf("PagesOnDisk %d", n)
	}
}
