package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	pipe_data "github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	"github.com/checkpoint-restore/go-criu/v7/magic"
	"google.golang.org/protobuf/proto"
)

// fuzzKinds are the kinds the reader fuzzer picks from, each with a
// constructor for the message type its entries hold.
var fuzzKinds = []struct {
	kind Kind
	file string
	msg  func() proto.Message
}{
	{Pstree, PstreeFile, func() proto.Message { return &pstree.PstreeEntry{} }},
	{Core, CoreFile(samplePid), func() proto.Message { return &criu_core.CoreEntry{} }},
	{Mm, MmFile(samplePid), func() proto.Message { return &mm.MmEntry{} }},
	{Files, FilesFile, func() proto.Message { return &fdinfo.FileEntry{} }},
	{PipesData, PipesDataFile, func() proto.Message { return &pipe_data.PipeDataEntry{} }},
	{GhostFile, GhostFileName(1), func() proto.Message { return &ghost_file.GhostFileEntry{} }},
	{GhostFile, GhostFileName(2), func() proto.Message { return &ghost_file.GhostFileEntry{} }},
	{RemapFpath, RemapFpathFile, func() proto.Message { return &remap.RemapFilePathEntry{} }},
	{SkQueues, SkQueuesFile, func() proto.Message { return &sk_packet.SkPacketEntry{} }},
}

// seedCorpus adds the sample images, so the fuzzer starts from valid
// framing and mutates toward the interesting edges.
func seedCorpus(f *testing.F, dir string) {
	for i, k := range fuzzKinds {
		b, err := os.ReadFile(filepath.Join(dir, k.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
}

// FuzzReader feeds arbitrary bytes to the entry reader: it must end with
// an error or cleanly, never panic, and never hand out payload bytes past
// the end of the input.
func FuzzReader(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "img")
	writeSample(f, dir).Close()
	seedCorpus(f, dir)
	d := &Dir{magics: magic.LoadMagic(), limits: DefaultLimits()}
	d.limits.MaxEntry = 1 << 20
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		k := fuzzKinds[int(which)%len(fuzzKinds)]
		r, err := newReader(k.file, bytes.NewReader(data), int64(len(data)), k.kind, d)
		if err != nil {
			return
		}
		for n := 0; n < 1000 && r.Next(k.msg()); n++ {
			off, size := r.PayloadOffset()
			if off < 0 || size < 0 || off+size > int64(len(data)) {
				t.Fatalf("payload %d+%d outside %d bytes", off, size, len(data))
			}
			io.Copy(io.Discard, r.Payload())
		}
	})
}

// FuzzPageReader feeds an arbitrary pagemap and pages-file size to the
// page reader: every run it yields must be aligned, sorted, inside user
// space and inside the pages file.
func FuzzPageReader(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "img")
	writeSample(f, dir).Close()
	b, err := os.ReadFile(filepath.Join(dir, PagemapFile(samplePid)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, int64(6*PageSize))
	f.Add(b, int64(5*PageSize))
	d := &Dir{magics: magic.LoadMagic(), limits: DefaultLimits()}
	f.Fuzz(func(t *testing.T, data []byte, pagesSize int64) {
		if pagesSize < 0 {
			pagesSize = -pagesSize
		}
		r, err := newReader("pagemap-1.img", bytes.NewReader(data), int64(len(data)), Pagemap, d)
		if err != nil {
			return
		}
		var head pagemap.PagemapHead
		if !r.Next(&head) {
			return
		}
		pr := newPageReader(r, head.GetPagesId(), bytes.NewReader(nil), pagesSize, d.limits)
		var end uint64
		for n := 0; n < 1000 && pr.Next(); n++ {
			run := pr.Run()
			if run.Vaddr%PageSize != 0 || run.Vaddr < end || run.End() > d.limits.UserSpaceEnd || run.NrPages == 0 {
				t.Fatalf("bad run accepted: %+v after %#x", run, end)
			}
			if run.Present() && (run.Offset < 0 || run.Offset+run.Len() > pagesSize) {
				t.Fatalf("run %+v outside pages file of %d bytes", run, pagesSize)
			}
			end = run.End()
		}
	})
}
