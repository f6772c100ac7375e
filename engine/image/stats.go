package image

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"google.golang.org/protobuf/proto"
)

// WriteDumpStats writes stats-dump with every field CRIU writes. CRIU's
// zdtm.py checks pages_written + shpages_written (private and shared
// pages) against the size of the pages images, so that is checked here
// too: a nil pages_written is filled in from the pages files on disk, and
// a sum that disagrees with them is an error. Counters left nil are
// written as zero: what gocr does not do (page pipes, parent images,
// lazy pages, irmap) it spends no pages or time on.
func (d *Dir) WriteDumpStats(s *stats.DumpStatsEntry) error {
	s = proto.CloneOf(s)
	onDisk, err := d.PagesOnDisk()
	if err != nil {
		return err
	}
	if s.PagesWritten == nil {
		if s.GetShpagesWritten() > onDisk {
			return errorf(StatsDumpFile, 0, "dump.shpages_written", ErrInvalid, "%d, but the pages images hold %d pages", s.GetShpagesWritten(), onDisk)
		}
		s.PagesWritten = proto.Uint64(onDisk - s.GetShpagesWritten())
	} else if sum := s.GetPagesWritten() + s.GetShpagesWritten(); sum != onDisk {
		return errorf(StatsDumpFile, 0, "dump.pages_written", ErrInvalid, "%d + shpages_written %d, but the pages images hold %d pages", s.GetPagesWritten(), s.GetShpagesWritten(), onDisk)
	}
	for _, p := range []**uint32{&s.FreezingTime, &s.FrozenTime, &s.MemdumpTime, &s.MemwriteTime, &s.IrmapResolve} {
		if *p == nil {
			*p = proto.Uint32(0)
		}
	}
	for _, p := range []**uint64{&s.PagesScanned, &s.PagesSkippedParent, &s.PagesLazy, &s.PagePipes, &s.PagePipeBufs,
		&s.ShpagesScanned, &s.ShpagesSkippedParent, &s.ShpagesWritten} {
		if *p == nil {
			*p = proto.Uint64(0)
		}
	}
	return d.writeStats(StatsDumpFile, &stats.StatsEntry{Dump: s})
}

// WriteRestoreStats writes stats-restore, replacing the one a previous
// restore of the same images left. Counters left nil are written as zero
// (gocr shares no pages copy-on-write between restored processes, so it
// compares and skips none).
func (d *Dir) WriteRestoreStats(s *stats.RestoreStatsEntry) error {
	s = proto.CloneOf(s)
	for _, p := range []**uint64{&s.PagesCompared, &s.PagesSkippedCow, &s.PagesRestored} {
		if *p == nil {
			*p = proto.Uint64(0)
		}
	}
	for _, p := range []**uint32{&s.ForkingTime, &s.RestoreTime} {
		if *p == nil {
			*p = proto.Uint32(0)
		}
	}
	return d.writeStats(StatsRestoreFile, &stats.StatsEntry{Restore: s})
}

func (d *Dir) writeStats(name string, e *stats.StatsEntry) error {
	w, err := d.writer(Stats, name, true)
	if err != nil {
		return err
	}
	if err := w.Write(e); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// ReadStats reads stats-dump or stats-restore.
func (d *Dir) ReadStats(name string) (*stats.StatsEntry, error) {
	return ReadOne[stats.StatsEntry](d, Stats, name)
}

// PagesOnDisk is the total size of the pages-<n>.img files divided by the
// page size: what zdtm.py compares with pages_written.
func (d *Dir) PagesOnDisk() (uint64, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return 0, fmt.Errorf("image directory %s: %w", d.path, err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return 0, fmt.Errorf("image directory %s: %w", d.path, err)
	}
	var bytes uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "pages-") || !strings.HasSuffix(n, ".img") {
			continue
		}
		if _, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, "pages-"), ".img"), 10, 32); err != nil {
			continue // pages-shmem-* of old CRIU, or foreign
		}
		fi, err := e.Info()
		if err != nil {
			return 0, fileErr(n, err)
		}
		bytes += uint64(fi.Size())
	}
	return bytes / PageSize, nil
}
