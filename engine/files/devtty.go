package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
)

// /dev/tty (c 5:0) is no terminal of its own: opening it opens the
// controlling terminal of the process that opens it, and the file stays
// on that terminal. gocr is not in the tree's session, so its own open of
// /dev/tty would fail (ENXIO) or reach gocr's terminal: the engine opens
// it in the session leader's stub, right after the stub took its terminal
// back (engine/terminal.go), and hands the file over with SetOpened. In
// the image it is a regular file entry with the path it was opened by, as
// CRIU writes it.

// DevTtyFd is an fd of the tree on /dev/tty.
type DevTtyFd struct {
	Pid, Fd int    // gocr's pid of the process, and the fd
	ID      uint32 // its file id
}

// isDevTty tells /dev/tty by its device.
func isDevTty(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == abi.TtyAuxMajor && unix.Minor(st.Rdev) == abi.DevTtyMinor
}

// DevTtyFds are the fds of the tree on /dev/tty, for the engine to check
// that their processes have the controlling terminal they refer to.
func (s *Set) DevTtyFds() []DevTtyFd { return s.devTty }

// DevTtyNode opens the node of file id with O_PATH if it is a /dev/tty
// (a device node c 5:0 at its path now, on its mount): a handle that does
// not open the terminal, for a task of the session to open. It returns
// -1 and no error for a file that is not one, an error for one that
// cannot be told (its node cannot be reached).
func (r *Restorer) DevTtyNode(id uint32) (int, error) {
	e := r.entries[id]
	if e == nil || e.Reg == nil || e.Reg.GetMode()&unix.S_IFMT != unix.S_IFCHR || r.Remaps[id] != nil {
		return -1, nil
	}
	fd, err := r.openRegFlags(e.Reg, unix.O_PATH)
	if err != nil {
		return -1, fmt.Errorf("file id %d: device node %s: %w", id, e.Reg.GetName(), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("file id %d: device node %s: %w", id, e.Reg.GetName(), err)
	}
	if !isDevTty(&st) {
		unix.Close(fd)
		return -1, nil
	}
	return fd, nil
}

// DevTtyFlags are the flags file id, a /dev/tty, is opened with.
func (r *Restorer) DevTtyFlags(id uint32) int {
	return int(r.entries[id].GetReg().GetFlags()) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)
}

// SetOpened gives the restorer file id, opened by someone else (a task,
// for /dev/tty): fd is gocr's, and the restorer owns it from now on.
func (r *Restorer) SetOpened(id uint32, fd int) {
	if old, ok := r.open[id]; ok {
		unix.Close(old)
	}
	r.open[id] = fd
}
