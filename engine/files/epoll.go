package files

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventpoll"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"
)

// dumpEpoll records an epoll instance and what it watches: for each target
// the fd number it was added with, the file behind it, events and data.
func (s *Set) dumpEpoll(fd Fd) (uint32, error) {
	e := &eventpoll.EventpollFileEntry{Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Fown: noOwner()}
	for _, t := range fd.Info.Epoll {
		id, ok := s.fileIDs[t.TFD]
		if !ok {
			// The target was added under an fd number since closed or
			// reused for another file: restore could not re-add it.
			return 0, fmt.Errorf("epoll target fd %d (inode %d) is not open in the task", t.TFD, t.Ino)
		}
		e.Tfd = append(e.Tfd, &eventpoll.EventpollTfdEntry{
			Id: ptr(id), Tfd: ptr(uint32(t.TFD)), Events: ptr(t.Events), Data: ptr(t.Data),
			Dev: ptr(t.Sdev), Inode: ptr(t.Ino), Pos: ptr(uint64(t.Pos)),
		})
	}
	typ := fdinfo.FdTypes_EVENTPOLL
	return s.add(&fdinfo.FileEntry{Type: &typ, Epfd: e}), nil
}
