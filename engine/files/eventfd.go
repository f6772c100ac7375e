package files

import (
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
