package files

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
)

// The bytes queued in a pty: typed into its master and not read from the
// slave yet, and written by the slave and not read from the master yet.
// They are in tty-data.img, one entry per side that has some, by the file
// id of one of that side's files (as CRIU writes it): the bytes that side
// reads next.
//
// A queue is read by reading it: the dump drains both sides of the pair,
// the slave with its line discipline made raw for the time (so a line
// still being typed, which a canonical read would not return, comes out
// too), and puts the bytes straight back. Both dump and restore put bytes
// into a side with TIOCSTI, which hands them to that side's line
// discipline at once, as if they had just arrived: with echo, signals and
// input translations off for the time, so nothing is echoed, raised or
// translated twice, and with canonical mode as the slave has it, so the
// lines are cut where they were. (TIOCSTI on a terminal that is not one's
// own needs CAP_SYS_ADMIN, which gocr has.) What is lost: a line ended by
// the EOF character comes back as a line ending in a NUL byte, and a
// packet-mode master's pending status byte.

// MaxTtyQueue is what one side's queue may hold and be put back: n_tty's
// buffer takes 4095 bytes, and TIOCSTI drops, without a word, a byte that
// finds it full. A side with as much queued (more may wait in the pty's
// buffer behind it) is refused before anything is read.
const MaxTtyQueue = 4095

// DumpTtyData reads what is queued on both sides of every pty the tree
// holds both sides of, into TtyData, and puts it back. The slave is read
// through a file of gocr's own (TIOCGPTPEER), the master through the
// tree's, which is only polled and read: neither's flags change.
func (s *Set) DumpTtyData() error {
	for _, p := range s.Ptys() {
		if p.masterFd < 0 || p.Slave == nil {
			continue
		}
		if err := s.dumpTtyData(p); err != nil {
			return fmt.Errorf("pty %d: queued data: %w", p.Index, err)
		}
	}
	return nil
}

func (s *Set) dumpTtyData(p *PtyDump) error {
	slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(p.masterFd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return fmt.Errorf("open its slave (TIOCGPTPEER): %w", errno)
	}
	defer unix.Close(int(slave))
	toSlave, toMaster, err := drainPty(p.masterFd, int(slave), p.Master.GetPacketMode())
	// What was read goes back, whatever failed.
	if rerr := refillPty(p.masterFd, int(slave), toSlave, toMaster); rerr != nil {
		err = errors.Join(err, fmt.Errorf("put it back: %w", rerr))
	}
	if err != nil {
		return err
	}
	if len(toSlave) > 0 {
		s.TtyData = append(s.TtyData, &tty.TtyDataEntry{TtyId: ptr(p.slaveID), Data: toSlave})
	}
	if len(toMaster) > 0 {
		s.TtyData = append(s.TtyData, &tty.TtyDataEntry{TtyId: ptr(p.masterID), Data: toMaster})
	}
	return nil
}

// closePtyCopies closes gocr's copies of the ptys' masters.
func (s *Set) closePtyCopies() {
	for _, p := range s.ptys {
		if p.masterFd >= 0 {
			unix.Close(p.masterFd)
			p.masterFd = -1
		}
	}
}

// drainPty reads both queues of a pty: what the slave would read, then
// what the master would. It returns what it read also on failure.
func drainPty(master, slave int, packet bool) (toSlave, toMaster []byte, err error) {
	err = withTermios(master, drainTermios, func() error {
		var derr error
		toSlave, derr = drain(slave, false)
		return derr
	})
	if err != nil {
		return toSlave, nil, fmt.Errorf("slave: %w", err)
	}
	toMaster, err = drain(master, packet)
	if err != nil {
		return toSlave, toMaster, fmt.Errorf("master: %w", err)
	}
	return toSlave, toMaster, nil
}

// refillPty puts bytes back into the queues of a pty, both sides even if
// one fails.
func refillPty(master, slave int, toSlave, toMaster []byte) error {
	var errs []error
	if len(toSlave) > 0 {
		if err := withTermios(master, quietTermios, func() error { return inject(slave, toSlave) }); err != nil {
			errs = append(errs, fmt.Errorf("slave: %w", err))
		}
	}
	// The master's line discipline is raw (a pty master's termios cannot
	// be changed: TCSETS on it sets the slave's).
	if err := inject(master, toMaster); err != nil {
		errs = append(errs, fmt.Errorf("master: %w", err))
	}
	return errors.Join(errs...)
}

// drainTermios makes every byte of the slave's queue readable at once.
func drainTermios(t abi.Termios) abi.Termios {
	t.Lflag &^= unix.ICANON | unix.ECHO | unix.ECHONL | unix.ISIG | unix.IEXTEN
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return t
}

// quietTermios takes bytes that went through the line discipline once
// already: no echo, no signals, no translations, but canonical mode as it
// was. Flow control (IXON) stays: turning it off would restart a terminal
// stopped with ^S, and tell a packet-mode master so.
func quietTermios(t abi.Termios) abi.Termios {
	t.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ECHOCTL | unix.ECHOKE | unix.ISIG | unix.IEXTEN
	t.Iflag &^= unix.ICRNL | unix.INLCR | unix.IGNCR | unix.ISTRIP | unix.IUCLC | unix.BRKINT | unix.PARMRK | unix.INPCK | unix.IUTF8
	return t
}

// withTermios runs do with the slave's termios changed by change (through
// master, which sets the slave's), and the locked termios that would keep
// it from changing unlocked, then puts both back.
func withTermios(master int, change func(abi.Termios) abi.Termios, do func() error) error {
	var saved, locked, none abi.Termios
	if err := ioctlPtr(master, unix.TCGETS, unsafe.Pointer(&saved)); err != nil {
		return fmt.Errorf("TCGETS: %w", err)
	}
	if err := ioctlPtr(master, unix.TIOCGLCKTRMIOS, unsafe.Pointer(&locked)); err != nil {
		return fmt.Errorf("TIOCGLCKTRMIOS: %w", err)
	}
	if locked != none {
		if err := ioctlPtr(master, unix.TIOCSLCKTRMIOS, unsafe.Pointer(&none)); err != nil {
			return fmt.Errorf("unlock termios: %w", err)
		}
	}
	tmp := change(saved)
	err := ioctlPtr(master, unix.TCSETS, unsafe.Pointer(&tmp))
	if err != nil {
		err = fmt.Errorf("TCSETS: %w", err)
	} else {
		err = do()
	}
	if e := ioctlPtr(master, unix.TCSETS, unsafe.Pointer(&saved)); e != nil {
		err = errors.Join(err, fmt.Errorf("TCSETS back: %w", e))
	}
	if locked != none {
		if e := ioctlPtr(master, unix.TIOCSLCKTRMIOS, unsafe.Pointer(&locked)); e != nil {
			err = errors.Join(err, fmt.Errorf("lock termios back: %w", e))
		}
	}
	return err
}

// drain reads fd while it polls readable, without changing its flags (a
// poll finds what the other side wrote still in flight, too). A queue of
// MaxTtyQueue bytes or more is refused before anything is read. A
// packet-mode master starts each read with a status byte: data follows a
// zero one; a read that is a status alone has no data.
func drain(fd int, packet bool) ([]byte, error) {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if _, err := unix.Poll(p, 0); err != nil && err != unix.EINTR {
		return nil, err
	}
	if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err == nil && n >= MaxTtyQueue {
		return nil, fmt.Errorf("%d bytes queued, more than the %d a restore can put back", n, MaxTtyQueue-1)
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		p[0].Revents = 0
		n, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, err
		}
		if n == 0 || p[0].Revents&unix.POLLIN == 0 {
			return out, nil // nothing more (POLLHUP alone: the other side is closed)
		}
		r, err := unix.Read(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EIO || r == 0: // the other side is closed
			return out, nil
		case err != nil:
			return out, err
		}
		b := buf[:r]
		if packet {
			if b[0] != 0 {
				continue
			}
			b = b[1:]
		}
		if len(out)+len(b) >= MaxTtyQueue {
			return append(out, b...), fmt.Errorf("more than %d bytes queued", MaxTtyQueue-1)
		}
		out = append(out, b...)
	}
}

// inject hands b to the line discipline of fd's terminal, byte by byte
// (TIOCSTI), as if it had just come in.
func inject(fd int, b []byte) error {
	for i := range b {
		if err := ioctlPtr(fd, unix.TIOCSTI, unsafe.Pointer(&b[i])); err != nil {
			return fmt.Errorf("TIOCSTI byte %d of %d: %w", i, len(b), err)
		}
	}
	return nil
}

// refillPty puts back what tty-data.img has queued for either side of
// pty index, once its slave is open.
func (r *Restorer) refillPty(index uint32, master int, p *ptyPair) error {
	toMaster := r.TtyData[r.ptyMaster[index]]
	var toSlave []byte
	for _, id := range r.ptySlaves[index] {
		if b, ok := r.TtyData[id]; ok {
			toSlave = b
		}
	}
	if len(toSlave) > 0 && p.peer < 0 {
		return fmt.Errorf("%d bytes for its slave, which no process of the image has open", len(toSlave))
	}
	return refillPty(master, p.peer, toSlave, toMaster)
}
