package engine

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"golang.org/x/sys/unix"
)

// stats-dump and stats-restore hold every field CRIU writes, with values
// that agree with the images: read as zdtm.py reads them (go-criu's
// decoder; CRIU's crit too when installed), pages_written +
// shpages_written is the size of the pages images over the page size,
// and the shared memory of the workload (a shared anonymous mapping and a
// memfd) is counted as shpages.
func TestDumpStats(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	cmd, _ := startWorkloadMode(t, dir, "shmem")
	pid := cmd.Process.Pid
	imgs := filepath.Join(dir, "img")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: imgs}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	ds, err := crit.GetDumpStats(imgs)
	if err != nil {
		t.Fatalf("go-criu reads stats-dump: %v", err)
	}
	t.Logf("stats-dump: %v", ds)
	for name, set := range map[string]bool{
		"freezing_time": ds.FreezingTime != nil, "frozen_time": ds.FrozenTime != nil, "memdump_time": ds.MemdumpTime != nil,
		"memwrite_time": ds.MemwriteTime != nil, "pages_scanned": ds.PagesScanned != nil, "pages_skipped_parent": ds.PagesSkippedParent != nil,
		"pages_written": ds.PagesWritten != nil, "irmap_resolve": ds.IrmapResolve != nil, "pages_lazy": ds.PagesLazy != nil,
		"page_pipes": ds.PagePipes != nil, "page_pipe_bufs": ds.PagePipeBufs != nil, "shpages_scanned": ds.ShpagesScanned != nil,
		"shpages_skipped_parent": ds.ShpagesSkippedParent != nil, "shpages_written": ds.ShpagesWritten != nil,
	} {
		if !set {
			t.Errorf("stats-dump lacks %s", name)
		}
	}
	// zdtm.py's check_pages_counts, as it does it.
	var bytes int64
	ents, _ := os.ReadDir(imgs)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pages-") {
			fi, _ := e.Info()
			bytes += fi.Size()
		}
	}
	pg := int64(os.Getpagesize())
	if got := int64(ds.GetPagesWritten() + ds.GetShpagesWritten()); bytes%pg != 0 || got != bytes/pg {
		t.Errorf("pages_written %d + shpages_written %d, but the pages images hold %d bytes (%d pages)",
			ds.GetPagesWritten(), ds.GetShpagesWritten(), bytes, bytes/pg)
	}
	if ds.GetShpagesWritten() != shmemTouched+memfdPages || ds.GetShpagesScanned() != shmemPages+memfdPages {
		t.Errorf("shpages written %d scanned %d, want %d and %d", ds.GetShpagesWritten(), ds.GetShpagesScanned(), shmemTouched+memfdPages, shmemPages+memfdPages)
	}
	if ds.GetPagesWritten() == 0 || ds.GetPagesScanned() < ds.GetPagesWritten() {
		t.Errorf("pages written %d of %d scanned", ds.GetPagesWritten(), ds.GetPagesScanned())
	}
	if ds.GetFrozenTime() == 0 || ds.GetMemdumpTime() == 0 || ds.GetMemdumpTime() > ds.GetFrozenTime() ||
		ds.GetMemwriteTime() > ds.GetMemdumpTime() {
		t.Errorf("times (µs): frozen %d, memdump %d, memwrite %d: want 0 < memwrite ≤ memdump ≤ frozen",
			ds.GetFrozenTime(), ds.GetMemdumpTime(), ds.GetMemwriteTime())
	}
	if ds.GetPagesSkippedParent() != 0 || ds.GetPagesLazy() != 0 || ds.GetPagePipes() != 0 {
		t.Errorf("parent, lazy or page-pipe counts from a dump that has none: %v", ds)
	}

	res, err := Restore(ctx, RestoreOptions{ImagesDir: imgs})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { unix.Kill(res.Pid, unix.SIGKILL); res.Wait(ctx) }()
	rs, err := crit.GetRestoreStats(imgs)
	if err != nil {
		t.Fatalf("go-criu reads stats-restore: %v", err)
	}
	t.Logf("stats-restore: %v", rs)
	if rs.PagesCompared == nil || rs.PagesSkippedCow == nil || rs.ForkingTime == nil || rs.RestoreTime == nil || rs.PagesRestored == nil {
		t.Errorf("stats-restore lacks a field: %v", rs)
	}
	if rs.GetPagesRestored() != ds.GetPagesWritten()+ds.GetShpagesWritten() {
		t.Errorf("pages_restored %d, the dump wrote %d + %d", rs.GetPagesRestored(), ds.GetPagesWritten(), ds.GetShpagesWritten())
	}
	if rs.GetRestoreTime() == 0 || rs.GetForkingTime() > rs.GetRestoreTime() {
		t.Errorf("restore time %d µs, forking %d µs", rs.GetRestoreTime(), rs.GetForkingTime())
	}

	// CRIU's own decoder, when installed, finds the same fields by name.
	critPath, err := exec.LookPath("crit")
	if err != nil {
		t.Log("crit not installed: CRIU's decoder not tried")
		return
	}
	out, err := exec.Command(critPath, "decode", "-i", filepath.Join(imgs, "stats-dump")).Output()
	if err != nil {
		t.Fatalf("crit decode stats-dump: %v", err)
	}
	var img struct {
		Entries []struct {
			Dump map[string]any `json:"dump"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(out, &img); err != nil || len(img.Entries) != 1 {
		t.Fatalf("crit's JSON %s: %v", out, err)
	}
	for _, k := range []string{"shpages_written", "pages_written", "pages_scanned", "frozen_time", "memwrite_time"} {
		if _, ok := img.Entries[0].Dump[k]; !ok {
			t.Errorf("crit finds no %s in %s", k, out)
		}
	}
}
