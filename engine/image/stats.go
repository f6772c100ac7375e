package image

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"google.golang.org/protobuf/proto"
)

// WriteDumpStats writes stats-dump. CRIU's zdtm.py checks pages_written
// against the pages images, so it is checked here too: nil is filled in from
// the pages files on disk, a value that disagrees with them is an error.
// Other required counters left nil are written as zero.
func (d *Dir) WriteDumpStats(s *stats.DumpStatsEntry) error {
	s = proto.CloneOf(s)
	onDisk, err := d.PagesOnDisk()
	if err != nil {
		return err
	}
	if s.PagesWritten == nil {
		s.PagesWritten = proto.Uint64(onDisk)
	} else if s.GetPagesWritten() != onDisk {
		return errorf(StatsDumpFile, 0, "dump.pages_written", ErrInvalid, "%d, but the pages images hold %d pages", s.GetPagesWritten(), onDisk)
	}
	for _, p := range []**uint32{&s.FreezingTime, &s.FrozenTime, &s.MemdumpTime, &s.MemwriteTime} {
		if *p == nil {
			*p = proto.Uint32(0)
		}
	}
	for _, p := range []**uint64{&s.PagesScanned, &s.PagesSkippedParent, &s.PagesLazy} {
		if *p == nil {
			*p = proto.Uint64(0)
		}
	}
	return d.writeStats(StatsDumpFile, &stats.StatsEntry{Dump: s})
}

// WriteRestoreStats writes stats-restore, replacing the one a previous
// restore of the same images left.
func (d *Dir) WriteRestoreStats(s *stats.RestoreStatsEntry) error {
	s = proto.CloneOf(s)
	for _, p := range []**uint64{&s.PagesCompared, &s.PagesSkippedCow} {
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
