package files

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fifo"
	"golang.org/x/sys/unix"
)

// A FIFO is two things, as CRIU has it: the path it is opened at (a
// regular file entry, regf_id) and the pipe behind it (pipe_id, the FIFO's
// inode), whose bytes in flight die with the last process holding it and
// are saved once per FIFO in fifo-data.img.

// dumpFifo records an fd of a FIFO opened by path.
func (s *Set) dumpFifo(pid int, fd Fd, st *unix.Stat_t) (uint32, error) {
	if _, done := s.FifoData[st.Ino]; !done {
		data, size, err := peekPipe(pid, fd.Fd)
		if err != nil {
			return 0, err
		}
		s.FifoData[st.Ino], s.FifoSize[st.Ino] = data, size
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	regID := s.add(regEntry(fd.Target, flags, 0, fd.Info.MntID, st))
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
		hold, err := r.openRegFlags(reg, unix.O_RDWR|unix.O_NONBLOCK)
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
	fd, err := r.openRegFlags(reg, flags|unix.O_NONBLOCK)
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
