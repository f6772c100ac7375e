package files

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fifo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"golang.org/x/sys/unix"
)

// A FIFO is two things, as CRIU has it: the path it is opened at (a
// regular file entry, regf_id) and the pipe behind it (pipe_id, the FIFO's
// inode), whose bytes in flight die with the last process holding it and
// are saved once per FIFO in fifo-data.img.

// dumpFifo records an fd of a FIFO opened by path. A FIFO whose name is
// gone gets a ghost (ghost.go), made again under a temporary name for the
// opens and removed after them.
func (s *Set) dumpFifo(pid int, fd Fd, p Path, st *unix.Stat_t) (uint32, error) {
	if _, done := s.FifoData[st.Ino]; !done {
		data, size, err := peekPipe(pid, fd.Fd)
		if err != nil {
			return 0, err
		}
		s.FifoData[st.Ino], s.FifoSize[st.Ino] = data, size
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	regID := s.add(regEntry(p.Name, flags, 0, fd.Info.MntID, st))
	if p.Deleted || st.Nlink == 0 {
		if st.Nlink != 0 {
			return 0, fmt.Errorf("pid %d %s: FIFO %s was unlinked yet has %d links: not supported yet", pid, p.What, p.Name, st.Nlink)
		}
		if err := s.remapDeleted(pid, regID, p, st); err != nil {
			return 0, err
		}
	}
	typ := fdinfo.FdTypes_FIFO
	return s.add(&fdinfo.FileEntry{Type: &typ, Fifo: &fifo.FifoEntry{PipeId: ptr(uint32(st.Ino)), RegfId: &regID}}), nil
}

// openFifo opens the FIFO at its path with the flags it had. The first
// open of a FIFO also opens it read-write in gocr and keeps that open to
// the end of the restore: then no open blocks waiting for the other end,
// and the saved bytes in flight go back in once.
func (r *Restorer) openFifo(e *fifo.FifoEntry) (int, error) {
	re, ok := r.entries[e.GetRegfId()]
	if !ok || re.GetReg() == nil {
		return -1, fmt.Errorf("fifo: regf_id %d is not a regular file entry", e.GetRegfId())
	}
	reg := re.GetReg()
	id := e.GetPipeId()
	if _, ok := r.fifos[id]; !ok {
		hold, err := r.openFifoFlags(reg, unix.O_RDWR|unix.O_NONBLOCK)
		if err != nil {
			return -1, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
		r.fifos[id] = hold
		if err := setPipeSize(hold, r.FifoSize[id]); err != nil {
			return -1, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
		if data := r.FifoData[id]; len(data) > 0 {
			if err := fillPipe(hold, data); err != nil {
				return -1, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
			}
		}
	}
	flags := int(reg.GetFlags())
	fd, err := r.openFifoFlags(reg, flags|unix.O_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
	}
	fl := flags &^ (unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY | unix.O_CLOEXEC)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("fifo %s: set flags %#o: %w", reg.GetName(), fl, err)
	}
	return fd, nil
}

// openFifoFlags opens the FIFO of reg with flags: at its path, or at its
// ghost's for a FIFO whose name was gone.
func (r *Restorer) openFifoFlags(reg *regfile.RegFileEntry, flags int) (int, error) {
	rm := r.Remaps[reg.GetId()]
	if rm == nil {
		return r.openRegFlags(reg, flags)
	}
	if rm.GetRemapType() != remap.RemapType_GHOST {
		return -1, fmt.Errorf("remap of type %s: only deleted FIFOs (ghosts) are restored", rm.GetRemapType())
	}
	g, err := r.ghost(rm.GetRemapId(), reg.GetName(), reg.GetMntId())
	if err != nil {
		return -1, err
	}
	if !g.isFifo {
		return -1, fmt.Errorf("ghost %d of FIFO %s is not a FIFO (mode %#o)", rm.GetRemapId(), reg.GetName(), g.entry.GetMode())
	}
	flags &^= unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY
	fd, err := unix.Open(r.pathOf(reg.GetMntId(), g.name), flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, fmt.Errorf("open ghost FIFO %s (flags %#o): %w", g.name, flags, err)
	}
	return fd, nil
}
