package files

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe"
	"golang.org/x/sys/unix"
)

// dumpPipe records one end of a pipe. The bytes in flight are copied once
// per pipe with tee(2), which leaves them in place for the task.
func (s *Set) dumpPipe(pid int, fd Fd) (uint32, error) {
	ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(fd.Target, "pipe:["), "]"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("pipe inode in %q: %w", fd.Target, err)
	}
	if _, done := s.PipeData[ino]; !done {
		data, size, err := peekPipe(pid, fd.Fd)
		if err != nil {
			return 0, err
		}
		s.PipeData[ino], s.PipeSize[ino] = data, size
	}
	typ := fdinfo.FdTypes_PIPE
	return s.add(&fdinfo.FileEntry{Type: &typ, Pipe: &pipe.PipeEntry{
		PipeId: ptr(uint32(ino)), Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Fown: noOwner(),
	}}), nil
}

// peekPipe returns what is queued in the pipe behind pid's fd without
// consuming it, and the pipe's capacity: it opens the pipe through /proc
// (a new read end of the same pipe) and tees its contents into a pipe of
// ours.
func peekPipe(pid, fd int) ([]byte, int, error) {
	src, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open pipe: %w", err)
	}
	defer unix.Close(src)
	size, err := unix.FcntlInt(uintptr(src), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("pipe size: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, 0, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return nil, 0, fmt.Errorf("grow copy pipe to %d: %w", size, err)
	}
	n, err := unix.Tee(src, p[1], size, unix.SPLICE_F_NONBLOCK)
	if err == unix.EAGAIN {
		return nil, size, nil // empty
	}
	if err != nil {
		return nil, 0, fmt.Errorf("tee pipe: %w", err)
	}
	data := make([]byte, n)
	for got := 0; got < int(n); {
		m, err := unix.Read(p[0], data[got:])
		if err != nil {
			return nil, 0, fmt.Errorf("read pipe copy: %w", err)
		}
		got += m
	}
	return data, size, nil
}

// pipeEnds is a pipe gocr made for the restore, and which of its ends a
// file entry has taken already.
type pipeEnds struct {
	fds   [2]int // read, write
	taken [2]bool
}

func (p *pipeEnds) close() {
	for _, fd := range p.fds {
		unix.Close(fd)
	}
}

// openPipe gives one end of the pipe with that pipe id, making the pipe and
// putting the saved bytes in flight into it on first use. A second file
// entry for an end already given out gets a new open file of the same end
// (through /proc, as the dumped task must have got it).
func (r *Restorer) openPipe(e *pipe.PipeEntry) (int, error) {
	id := e.GetPipeId()
	p, ok := r.pipes[id]
	if !ok {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			return -1, fmt.Errorf("pipe2: %w", err)
		}
		p = &pipeEnds{fds: fds}
		r.pipes[id] = p
		if err := setPipeSize(fds[1], r.PipeSize[id]); err != nil {
			return -1, fmt.Errorf("pipe %d: %w", id, err)
		}
		if data := r.PipeData[id]; len(data) > 0 {
			if err := fillPipe(fds[1], data); err != nil {
				return -1, fmt.Errorf("pipe %d: %w", id, err)
			}
		}
	}
	flags := int(e.GetFlags())
	end := 0
	if flags&unix.O_ACCMODE == unix.O_WRONLY {
		end = 1
	}
	var fd int
	var err error
	if !p.taken[end] {
		// The first entry of an end is that end's own open file.
		fd, err = unix.FcntlInt(uintptr(p.fds[end]), unix.F_DUPFD_CLOEXEC, 0)
		p.taken[end] = true
	} else {
		// Another open file of the same end, as /proc gives one.
		fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", p.fds[end]), flags&unix.O_ACCMODE|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("pipe %d: %w", id, err)
	}
	fl := flags &^ unix.O_ACCMODE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("pipe %d: set flags %#o: %w", id, fl, err)
	}
	return fd, nil
}

// setPipeSize gives a fresh pipe the capacity it had (0: unknown, as in
// images without it). Beyond /proc/sys/fs/pipe-max-size the kernel wants
// CAP_SYS_RESOURCE, and says so with EPERM.
func setPipeSize(fd, size int) error {
	if size == 0 {
		return nil
	}
	cur, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil || cur == size {
		return err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, size); err != nil {
		return fmt.Errorf("set its size to %d bytes (F_SETPIPE_SZ): %w", size, err)
	}
	return nil
}

// fillPipe writes the saved bytes in flight into a fresh pipe, growing it
// first if they do not fit the default size.
func fillPipe(w int, data []byte) error {
	size, err := unix.FcntlInt(uintptr(w), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return err
	}
	if len(data) > size {
		if _, err := unix.FcntlInt(uintptr(w), unix.F_SETPIPE_SZ, len(data)); err != nil {
			return fmt.Errorf("grow to %d bytes: %w", len(data), err)
		}
	}
	for done := 0; done < len(data); {
		n, err := unix.Write(w, data[done:])
		if err != nil {
			return fmt.Errorf("write %d bytes in flight: %w", len(data), err)
		}
		done += n
	}
	return nil
}
