package files

import (
	"fmt"
	"os/exec"

	ext_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ext-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
	"github.com/gocr/gocr/engine/ns"
)

// pidfds: an fd that refers to a process (pidfd_open, clone with
// CLONE_PIDFD; Go's os/exec keeps one for every child it starts). Its
// fdinfo names the process ("Pid:"); the process must be in the tree,
// which the images number in its own pid namespace. files.img lists it
// as an EXT file; gocr-pidfds.img says which process it is. Restore opens
// it again with pidfd_open on the restored process, which has the same
// pid. A pidfd of a process that has exited and been reaped is kept by
// its pidfs inode (Linux 6.9), which tells which of them refer to the same
// process; restore makes a process of its own for each such, opens their
// pidfds while it is a zombie and reaps it (it exits 0: the image has no
// exit status, which only PIDFD_GET_INFO of 6.15 would show). Refused: a
// pidfd of a process outside the tree, and a dead one without pidfs.

// pidfdThread is PIDFD_THREAD (Linux 6.9): the pidfd is of one thread.
const pidfdThread = unix.O_EXCL

// dumpPidfd records a pidfd.
func (s *Set) dumpPidfd(pid int, fd Fd) (uint32, error) {
	p := fd.Info.PidfdPid
	if p == nil {
		return 0, fmt.Errorf("a pidfd whose fdinfo has no Pid")
	}
	if *p <= 0 {
		return s.dumpDeadPidfd(pid, fd)
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

// pidfsMagic is PID_FS_MAGIC: pidfds have inodes of their own (6.9).
const pidfsMagic = 0x50494446

// dumpDeadPidfd records a pidfd of a process that has exited and been
// reaped, by its inode.
func (s *Set) dumpDeadPidfd(pid int, fd Fd) (uint32, error) {
	p := fmt.Sprintf("/proc/%d/fd/%d", pid, fd.Fd)
	var fs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Statfs(p, &fs); err != nil {
		return 0, fmt.Errorf("a pidfd of a reaped process: statfs: %w", err)
	}
	if fs.Type != pidfsMagic {
		return 0, fmt.Errorf("a pidfd of a process that has exited and been reaped, without pidfs (Linux 6.9) to tell which: not supported")
	}
	if err := unix.Stat(p, &st); err != nil {
		return 0, fmt.Errorf("a pidfd of a reaped process: stat: %w", err)
	}
	typ := fdinfo.FdTypes_EXT
	id := s.add(&fdinfo.FileEntry{Type: &typ, Ext: &ext_file.ExtFileEntry{Fown: noOwner()}})
	flags := fd.Info.Flags & (unix.O_NONBLOCK | pidfdThread)
	s.Pidfds = append(s.Pidfds, &gocrpb.PidfdEntry{Id: ptr(id), Pid: ptr(int32(0)), Flags: ptr(flags), Dead: ptr(st.Ino)})
	return id, nil
}

// WritePidfds writes gocr-pidfds.img, if the tree has pidfds.
func (s *Set) WritePidfds(dir *image.Dir) error {
	if len(s.Pidfds) == 0 {
		return nil
	}
	return image.WriteAll(dir, image.GocrPidfds, image.GocrPidfdsFile, s.Pidfds)
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
		case e.GetDead() != 0 && e.GetPid() != 0:
			return nil, fmt.Errorf("%s: [%d]: pid %d of a dead process (dead %d): want 0", image.GocrPidfdsFile, i, e.GetPid(), e.GetDead())
		case e.GetDead() == 0 && !inTree(int(e.GetPid())):
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
	if e.GetDead() != 0 {
		return r.openDeadPidfd(e)
	}
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

// openDeadPidfd gives the pidfd of a dead process: every pidfd of the
// image with the same dead value is opened on one process of gocr's,
// started for it, while it is a zombie; it is reaped right after.
func (r *Restorer) openDeadPidfd(e *gocrpb.PidfdEntry) (int, error) {
	if fd, ok := r.open[e.GetId()]; ok {
		return fd, nil
	}
	// Born in the tree's pid namespace, as the dead one was: a pidfd of a
	// process outside it would signal nothing (EINVAL, not ESRCH).
	cmd := exec.Command("/proc/self/exe", "--version")
	err := ns.OnThrowawayThread(func() error {
		if r.Pid != 0 {
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/pid", r.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = unix.Setns(fd, unix.CLONE_NEWPID)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("join the tree's pid namespace: %w", err)
			}
		}
		return cmd.Start()
	})
	if err != nil {
		return -1, fmt.Errorf("pidfd of a dead process: start one to die: %w", err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait() //nolint:errcheck // reaped: the pidfds are of a dead process now
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		return -1, fmt.Errorf("pidfd of a dead process: wait for %d: %w", pid, err)
	}
	for id, p := range r.Pidfds {
		if p.GetDead() != e.GetDead() {
			continue
		}
		fd, err := unix.PidfdOpen(pid, int(p.GetFlags()))
		if err != nil {
			return -1, fmt.Errorf("pidfd_open %d, which is to die, flags %#o: %w", pid, p.GetFlags(), err)
		}
		r.open[id] = fd // Close closes it
	}
	return r.open[e.GetId()], nil
}
