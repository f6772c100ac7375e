package remote

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxFdsPerMsg is SCM_MAX_FD: how many fds one SCM_RIGHTS message carries.
const maxFdsPerMsg = 253

// FdPasser carries file descriptors from gocr into a task: gocr opens or
// creates a file itself, sends it over a unix socket pair with SCM_RIGHTS,
// and an injected recvmsg takes it in on the task's side. The task's end
// of the pair reaches it by inheritance, at the same fd number, when it is
// forked while that end is inheritable (see Inheritable).
type FdPasser struct {
	local  int // gocr's end
	remote int // the task's end; the same number in gocr and in the task
}

// NewFdPasser makes the socket pair; both ends are close-on-exec.
func NewFdPasser() (*FdPasser, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fd passing socket pair: %w", err)
	}
	return &FdPasser{local: fds[0], remote: fds[1]}, nil
}

// NewFdPasserOver passes fds through local, gocr's end of a socket pair
// whose other end a task already has (made there by an injected
// socketpair, gocr's end taken with pidfd_getfd). Close closes local.
func NewFdPasserOver(local int) *FdPasser {
	return &FdPasser{local: local, remote: -1}
}

// RemoteFd is the number of the task's end, in gocr and in the task.
func (p *FdPasser) RemoteFd() int { return p.remote }

// Inheritable runs spawn (which forks the task) with the task's end
// inheritable, so the child gets it.
func (p *FdPasser) Inheritable(spawn func() error) error {
	if _, err := unix.FcntlInt(uintptr(p.remote), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("fd passing socket: %w", err)
	}
	err := spawn()
	if _, cerr := unix.FcntlInt(uintptr(p.remote), unix.F_SETFD, unix.FD_CLOEXEC); cerr != nil && err == nil {
		err = fmt.Errorf("fd passing socket: %w", cerr)
	}
	return err
}

// Close closes gocr's ends.
func (p *FdPasser) Close() {
	if p.local >= 0 {
		unix.Close(p.local)
		p.local = -1
	}
	if p.remote >= 0 {
		unix.Close(p.remote)
		p.remote = -1
	}
}

// CloseRemote closes gocr's copy of the task's end, once the task has it.
func (p *FdPasser) CloseRemote() {
	if p.remote >= 0 {
		unix.Close(p.remote)
		p.remote = -1
	}
}

// Send gives the task a copy of each of gocr's fds and returns the numbers
// they got in the task (the lowest free ones, as any new fd). sock is the
// task's end of the pair (RemoteFd, unless moved); off is where in scratch
// memory the message buffers may go (about 1.2 KiB).
func (p *FdPasser) Send(t *Task, sock int, off uint64, fds []int) ([]int, error) {
	var out []int
	for len(fds) > 0 {
		n := min(len(fds), maxFdsPerMsg)
		got, err := p.sendBatch(t, sock, off, fds[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		fds = fds[n:]
	}
	return out, nil
}

func (p *FdPasser) sendBatch(t *Task, sock int, off uint64, fds []int) ([]int, error) {
	rights := unix.UnixRights(fds...)
	if err := unix.Sendmsg(p.local, []byte{0}, rights, nil, 0); err != nil {
		return nil, fmt.Errorf("send %d fds to pid %d: %w", len(fds), t.Pid, err)
	}
	// struct msghdr, then one iovec, one data byte and the control buffer.
	const (
		hdrSize  = 56
		iovOff   = hdrSize
		byteOff  = iovOff + 16
		ctrlOff  = byteOff + 8
		flagsOff = 48 // msg_flags in struct msghdr
	)
	ctrlLen := unix.CmsgSpace(4 * maxFdsPerMsg)
	buf := make([]byte, ctrlOff)
	le := binary.LittleEndian
	base := t.Scratch + off
	le.PutUint64(buf[16:], base+iovOff)      // msg_iov
	le.PutUint64(buf[24:], 1)                // msg_iovlen
	le.PutUint64(buf[32:], base+ctrlOff)     // msg_control
	le.PutUint64(buf[40:], uint64(ctrlLen))  // msg_controllen
	le.PutUint64(buf[iovOff:], base+byteOff) // iov_base
	le.PutUint64(buf[iovOff+8:], 1)          // iov_len
	if err := t.Write(off, buf); err != nil {
		return nil, err
	}
	if _, err := t.Syscall(unix.SYS_RECVMSG, uint64(sock), base, 0); err != nil {
		return nil, fmt.Errorf("receive %d fds in pid %d: %w", len(fds), t.Pid, err)
	}
	back := make([]byte, ctrlOff+ctrlLen)
	if err := t.Read(off, back); err != nil {
		return nil, err
	}
	if f := le.Uint32(back[flagsOff:]); f&unix.MSG_CTRUNC != 0 {
		return nil, fmt.Errorf("receive %d fds in pid %d: control message truncated (the task's fd limit?)", len(fds), t.Pid)
	}
	clen := le.Uint64(back[40:])
	msgs, err := unix.ParseSocketControlMessage(back[ctrlOff : ctrlOff+int(clen)])
	if err != nil {
		return nil, fmt.Errorf("receive fds in pid %d: %w", t.Pid, err)
	}
	var got []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, fmt.Errorf("receive fds in pid %d: %w", t.Pid, err)
		}
		got = append(got, r...)
	}
	if len(got) != len(fds) {
		return nil, fmt.Errorf("receive fds in pid %d: got %d, sent %d", t.Pid, len(got), len(fds))
	}
	return got, nil
}

// WriteString puts a NUL-terminated string into scratch memory at off and
// returns its address in the task.
func (t *Task) WriteString(off uint64, s string) (uint64, error) {
	b := append([]byte(s), 0)
	if err := t.Write(off, b); err != nil {
		return 0, err
	}
	return t.Scratch + off, nil
}

// WriteU64s writes little-endian words into scratch memory at off and
// returns their address in the task.
func (t *Task) WriteU64s(off uint64, v []uint64) (uint64, error) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 8*len(v))
	if err := t.Write(off, b); err != nil {
		return 0, err
	}
	return t.Scratch + off, nil
}
