package files

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/signalfd"
	"golang.org/x/sys/unix"
)

// dumpSignalfd records a signalfd: the signals it reads, which fdinfo
// prints as "sigmask:", and its flags. The signals themselves stay pending
// on the task and are restored with it; a signalfd only reads them.
func (s *Set) dumpSignalfd(fd Fd) (uint32, error) {
	if fd.Info.SignalFd == nil {
		return 0, fmt.Errorf("fdinfo has no sigmask")
	}
	typ := fdinfo.FdTypes_SIGNALFD
	return s.add(&fdinfo.FileEntry{Type: &typ, Sgfd: &signalfd.SignalfdEntry{
		Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Fown: noOwner(), Sigmask: ptr(fd.Info.SignalFd.Mask),
	}}), nil
}

// openSignalfd makes a signalfd for the saved signals. A signalfd is not
// bound to the task that made it (a read takes signals of the reader), so
// gocr can make it and pass it in.
func openSignalfd(e *signalfd.SignalfdEntry) (int, error) {
	mask := unix.Sigset_t{Val: [16]uint64{e.GetSigmask()}}
	flags := unix.SFD_CLOEXEC
	if e.GetFlags()&unix.O_NONBLOCK != 0 {
		flags |= unix.SFD_NONBLOCK
	}
	fd, err := unix.Signalfd(-1, &mask, flags)
	if err != nil {
		return -1, fmt.Errorf("signalfd (mask %#x): %w", e.GetSigmask(), err)
	}
	return fd, nil
}
