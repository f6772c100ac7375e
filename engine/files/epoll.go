package files

import (
	"encoding/binary"
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/eventpoll"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/remote"
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

// openEpoll makes an empty epoll instance; its targets are added from
// inside the task once every fd is in place (restoreEpollTargets).
func openEpoll(e *eventpoll.EventpollFileEntry) (int, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("epoll_create1: %w", err)
	}
	if fl := int(e.GetFlags()) & unix.O_NONBLOCK; fl != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("epoll: set flags %#o: %w", fl, err)
		}
	}
	return fd, nil
}

// restoreEpollTargets adds each target by injected epoll_ctl: the kernel
// keys an epoll item by file and fd number, and the task later removes
// items by its own fd numbers, so the adding must happen inside it.
func restoreEpollTargets(t *remote.Task, off uint64, epfd int, e *eventpoll.EventpollFileEntry) error {
	for _, tg := range e.GetTfd() {
		// struct epoll_event is packed on x86_64: u32 events, u64 data.
		var ev [12]byte
		binary.LittleEndian.PutUint32(ev[0:], tg.GetEvents())
		binary.LittleEndian.PutUint64(ev[4:], tg.GetData())
		if err := t.Write(off, ev[:]); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_EPOLL_CTL, uint64(epfd), unix.EPOLL_CTL_ADD, uint64(tg.GetTfd()), t.Scratch+off); err != nil {
			return fmt.Errorf("epoll_ctl add fd %d (events %#x): %w", tg.GetTfd(), tg.GetEvents(), err)
		}
	}
	return nil
}
