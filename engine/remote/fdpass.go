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
// and an injected recvmmsg takes it in on the task's side, with thousands
// of others. The task's end
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

// Send gives the task a copy of each of gocr's fds, in order, and returns
// the numbers they got in the task: the lowest free ones, as any new fd. A
// fd named twice arrives twice, both copies on one open file description,
// as dup makes them. sock is the task's end of the pair (RemoteFd, unless
// moved); the message buffers go into scratch memory from off to the end
// of the data area (t.Size), which must hold nothing the caller keeps.
func (p *FdPasser) Send(t *Task, sock int, off uint64, fds []int) ([]int, error) {
	return p.send(t, sock, off, fds, 0)
}

// SendCloexec is Send with every copy close-on-exec in the task
// (MSG_CMSG_CLOEXEC).
func (p *FdPasser) SendCloexec(t *Task, sock int, off uint64, fds []int) ([]int, error) {
	return p.send(t, sock, off, fds, unix.MSG_CMSG_CLOEXEC)
}

// send passes fds in rounds: gocr queues as many datagrams of up to
// SCM_MAX_FD fds as the scratch area has room to receive, and one injected
// recvmmsg takes them all: with the 44 KiB a restore has, 40 datagrams,
// 10,120 fds per injected call.
func (p *FdPasser) send(t *Task, sock int, off uint64, fds []int, flags int) ([]int, error) {
	var out []int
	for len(fds) > 0 {
		msgs := roundSize(len(fds), t.Size-min(off, t.Size))
		if msgs == 0 {
			return nil, fmt.Errorf("send fds to pid %d: no room in scratch memory at %d", t.Pid, off)
		}
		got, err := p.round(t, sock, off, fds, msgs, flags)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		fds = fds[len(got):]
	}
	return out, nil
}

// Scratch layout of a round of n datagrams: n struct mmsghdr, n iovecs,
// one byte all iovecs point at, then n control buffers.
const (
	mmsghdrSize = 64 // struct msghdr (56) + msg_len, padded
	iovecSize   = 16
)

var ctrlSize = unix.CmsgSpace(4 * maxFdsPerMsg)

// roundSize is how many datagrams of the nfds to pass fit in room bytes.
func roundSize(nfds int, room uint64) int {
	want := (nfds + maxFdsPerMsg - 1) / maxFdsPerMsg
	per := uint64(mmsghdrSize + iovecSize + ctrlSize)
	fit := 0
	if room >= 8 {
		fit = int((room - 8) / per)
	}
	return min(want, fit)
}

// round queues up to msgs datagrams of fds and receives them in the task
// with one recvmmsg. It returns the numbers of the fds that arrived, in
// order: fewer than asked when the socket's send buffer filled up first.
func (p *FdPasser) round(t *Task, sock int, off uint64, fds []int, msgs, flags int) ([]int, error) {
	var counts []int
	for range msgs {
		n := min(len(fds), maxFdsPerMsg)
		if n == 0 {
			break
		}
		err := unix.Sendmsg(p.local, []byte{0}, unix.UnixRights(fds[:n]...), nil, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN && len(counts) > 0 {
			break // the task takes these first
		}
		if err != nil {
			return nil, fmt.Errorf("send %d fds to pid %d: %w", n, t.Pid, err)
		}
		counts = append(counts, n)
		fds = fds[n:]
	}
	m := len(counts)
	base := t.Scratch + off
	iovs := uint64(m * mmsghdrSize)
	dataByte := iovs + uint64(m*iovecSize)
	ctrls := dataByte + 8
	le := binary.LittleEndian
	buf := make([]byte, ctrls)
	for i := range m {
		h := buf[i*mmsghdrSize:]
		le.PutUint64(h[16:], base+iovs+uint64(i*iovecSize))         // msg_iov
		le.PutUint64(h[24:], 1)                                     // msg_iovlen
		le.PutUint64(h[32:], base+ctrls+uint64(i*ctrlSize))         // msg_control
		le.PutUint64(h[40:], uint64(ctrlSize))                      // msg_controllen
		le.PutUint64(buf[iovs+uint64(i*iovecSize):], base+dataByte) // iov_base
		le.PutUint64(buf[iovs+uint64(i*iovecSize)+8:], 1)           // iov_len
	}
	if err := t.Write(off, buf); err != nil {
		return nil, err
	}
	got, err := t.Syscall(unix.SYS_RECVMMSG, uint64(sock), base, uint64(m), uint64(unix.MSG_DONTWAIT|flags), 0)
	if err != nil {
		return nil, fmt.Errorf("receive %d fds in pid %d: %w", sum(counts), t.Pid, err)
	}
	if int(got) != m {
		return nil, fmt.Errorf("receive fds in pid %d: %d of %d messages arrived", t.Pid, got, m)
	}
	back := make([]byte, ctrls+uint64(m*ctrlSize))
	if err := t.Read(off, back); err != nil {
		return nil, err
	}
	var out []int
	for i := range m {
		h := back[i*mmsghdrSize:]
		if le.Uint32(h[48:])&unix.MSG_CTRUNC != 0 { // msg_flags
			return nil, fmt.Errorf("receive %d fds in pid %d: control message truncated (the task's fd limit?)", counts[i], t.Pid)
		}
		ctrl := back[ctrls+uint64(i*ctrlSize):]
		r, err := parseRights(ctrl[:le.Uint64(h[40:])])
		if err != nil {
			return nil, fmt.Errorf("receive fds in pid %d: %w", t.Pid, err)
		}
		if len(r) != counts[i] {
			return nil, fmt.Errorf("receive fds in pid %d: got %d, sent %d", t.Pid, len(r), counts[i])
		}
		out = append(out, r...)
	}
	return out, nil
}

// parseRights returns the fds of the SCM_RIGHTS messages in a control
// buffer.
func parseRights(ctrl []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(ctrl)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
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
