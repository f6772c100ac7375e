package files

import (
	"encoding/binary"
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"
)

// dumpEventfd records an eventfd and its counter.
func (s *Set) dumpEventfd(fd Fd) (uint32, error) {
	if fd.Info.EventFd == nil {
		return 0, fmt.Errorf("fdinfo has no eventfd-count")
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	if fd.Info.EventFd.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	typ := fdinfo.FdTypes_EVENTFD
	return s.add(&fdinfo.FileEntry{Type: &typ, Efd: &eventfd.EventfdFileEntry{
		Flags: &flags, Fown: noOwner(), Counter: ptr(fd.Info.EventFd.Count),
	}}), nil
}

// openEventfd makes an eventfd with the saved counter and flags.
func openEventfd(e *eventfd.EventfdFileEntry) (int, error) {
	flags := int(e.GetFlags()) & (unix.EFD_SEMAPHORE | unix.EFD_NONBLOCK)
	fd, err := unix.Eventfd(0, flags|unix.EFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	if c := e.GetCounter(); c != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], c)
		if _, err := unix.Write(fd, b[:]); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("eventfd: set counter %d: %w", c, err)
		}
	}
	return fd, nil
}
