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
		data, err := peekPipe(pid, fd.Fd)
		if err != nil {
			return 0, err
		}
		s.PipeData[ino] = data
	}
	typ := fdinfo.FdTypes_PIPE
	return s.add(&fdinfo.FileEntry{Type: &typ, Pipe: &pipe.PipeEntry{
		PipeId: ptr(uint32(ino)), Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Fown: noOwner(),
	}}), nil
}

// peekPipe returns what is queued in the pipe behind pid's fd without
// consuming it: it opens the pipe through /proc (a new read end of the same
// pipe) and tees its contents into a pipe of ours.
func peekPipe(pid, fd int) ([]byte, error) {
	src, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open pipe: %w", err)
	}
	defer unix.Close(src)
	size, err := unix.FcntlInt(uintptr(src), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return nil, fmt.Errorf("pipe size: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return nil, fmt.Errorf("grow copy pipe to %d: %w", size, err)
	}
	n, err := unix.Tee(src, p[1], size, unix.SPLICE_F_NONBLOCK)
	if err == unix.EAGAIN {
		return nil, nil // empty
	}
	if err != nil {
		return nil, fmt.Errorf("tee pipe: %w", err)
	}
	data := make([]byte, n)
	for got := 0; got < int(n); {
		m, err := unix.Read(p[0], data[got:])
		if err != nil {
			return nil, fmt.Errorf("read pipe copy: %w", err)
		}
		got += m
	}
	return data, nil
}
