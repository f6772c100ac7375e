package files

import (
	"fmt"

	ext_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ext-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
)

// pidfds: an fd that refers to a process (pidfd_open, clone with
// CLONE_PIDFD; Go's os/exec keeps one for every child it starts). Its
// fdinfo names the process ("Pid:"); the process must be in the tree,
// which the images number in its own pid namespace. files.img lists it
// as an EXT file; gocr-pidfds.img says which process it is. Restore opens
// it again with pidfd_open on the restored process, which has the same
// pid. Refused: a pidfd of a process outside the tree, or of one that has
// exited and been reaped (nothing is left to open a pidfd on).

// pidfdThread is PIDFD_THREAD (Linux 6.9): the pidfd is of one thread.
const pidfdThread = unix.O_EXCL

// dumpPidfd records a pidfd.
func (s *Set) dumpPidfd(fd Fd) (uint32, error) {
	p := fd.Info.PidfdPid
	if p == nil {
		return 0, fmt.Errorf("a pidfd whose fdinfo has no Pid")
	}
	if *p <= 0 {
		return 0, fmt.Errorf("a pidfd of a process that has exited and been reaped: not supported yet")
	}
	if s.VPid == nil {
		return 0, fmt.Errorf("a pidfd of pid %d, and the dump knows no pids", *p)
	}
	vpid, ok := s.VPid(*p)
	if !ok {
		return 0, fmt.Errorf("a pidfd of pid %d, which is not in the tree: not supported", *p)
	}
	typ := fdinfo.FdTypes_EXT
	id := s.add(&fdinfo.FileEntry{Type: &typ, Ext: &ext_file.ExtFileEntry{Fown: noOwner()}})
	flags := fd.Info.Flags & (unix.O_NONBLOCK | pidfdThread)
	s.Pidfds = append(s.Pidfds, &gocrpb.PidfdEntry{Id: ptr(id), Pid: ptr(int32(vpid)), Flags: ptr(flags)})
	return id, nil
}

// WritePidfds writes gocr-pidfds.img, if the tree has pidfds.
func (s *Set) WritePidfds(dir *image.Dir) error {
	if len(s.Pidfds) == 0 {
		return nil
	}
	w, err := dir.Writer(image.GocrPidfds, image.GocrPidfdsFile)
	if err != nil {
		return err
	}
	for _, e := range s.Pidfds {
		if err := w.Write(e); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// ReadPidfds reads gocr-pidfds.img, if there is one, by file id; each must
// be an EXT file of files.img and name a process of the tree.
func ReadPidfds(dir *image.Dir, isExt func(id uint32) bool, inTree func(pid int) bool) (map[uint32]*gocrpb.PidfdEntry, error) {
	out := map[uint32]*gocrpb.PidfdEntry{}
	if !dir.Exists(image.GocrPidfdsFile) {
		return out, nil
	}
	list, err := image.ReadAll[gocrpb.PidfdEntry](dir, image.GocrPidfds, image.GocrPidfdsFile)
	if err != nil {
		return nil, err
	}
	for i, e := range list {
		switch {
		case !isExt(e.GetId()):
			return nil, fmt.Errorf("%s: [%d].id: file %d is not an EXT file of %s", image.GocrPidfdsFile, i, e.GetId(), image.FilesFile)
		case !inTree(int(e.GetPid())):
			return nil, fmt.Errorf("%s: [%d].pid: %d is not a process of the tree", image.GocrPidfdsFile, i, e.GetPid())
		case e.GetFlags()&^uint32(unix.O_NONBLOCK|pidfdThread) != 0:
			return nil, fmt.Errorf("%s: [%d].flags: %#o has bits other than O_NONBLOCK and PIDFD_THREAD", image.GocrPidfdsFile, i, e.GetFlags())
		}
		out[e.GetId()] = e
	}
	return out, nil
}

// openPidfd opens a pidfd of the restored process the entry names.
func (r *Restorer) openPidfd(e *gocrpb.PidfdEntry) (int, error) {
	if r.HostPid == nil {
		return -1, fmt.Errorf("pidfd of pid %d: the restore knows no pids", e.GetPid())
	}
	host, ok := r.HostPid(int(e.GetPid()))
	if !ok {
		return -1, fmt.Errorf("pidfd of pid %d: no such process restored", e.GetPid())
	}
	fd, err := unix.PidfdOpen(host, int(e.GetFlags()))
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d (pid %d in the tree), flags %#o: %w", host, e.GetPid(), e.GetFlags(), err)
	}
	return fd, nil
}
