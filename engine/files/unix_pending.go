package files

import (
	"errors"
	"fmt"

	sk_unix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/sockdiag"
)

// Pending connections that carry data (part of unix.go's story).
//
// What the client of a connection not accepted yet has sent waits in the
// queue of the connection's server end, a socket with no file until
// accept takes it off the listener: nothing can peek at it. So the dump
// takes such connections off the listener itself — accepts them in gocr,
// in the listener's order, and reads what their clients sent — and gives
// the tree equivalent ones back: for each, a new client socket connected
// to the same listener, in the same order, with the same data sent and
// the old client's options, shutdowns and flags; every descriptor of the
// tree on an old client is then switched to its new one (FdSwap, done by
// the engine with injected calls). Once the old clients are closed, the
// tree cannot tell: its listener holds the same connections, each with
// the same bytes waiting, and its clients are connected to them.
//
// The data goes to gocr-sk-pending.img, by the id of the client that sent
// it (CRIU's sk-queues.img says what a socket will read; a pending
// client's own queue is always empty). Restore connects each client to
// its listener (unixBuild) and sends it again through the client.
//
// Between the accept and the switch the tree is not as it was: if gocr
// dies there, the clients lose their connections.

// FdSwap is a descriptor of the tree to be switched to another socket.
type FdSwap struct {
	Pid, Fd int
	Cloexec bool
	Local   int // gocr's fd on the socket to put there
}

// fdHolder is one descriptor of the tree on a file entry.
type fdHolder struct {
	pid, fd int
	cloexec bool
}

// pendingPacket is a packet read off an accepted pending connection, with
// the fds it carried (received into gocr).
type pendingPacket struct {
	data []byte
	fds  []int
}

// TakePending reads the data of the tree's pending unix connections that
// have any, and makes new clients to give the tree in place of the old
// ones. The swaps it returns must be made whatever the error (the old
// connections are gone from their listeners by then), and ReleasePending
// called afterwards.
func (s *Set) TakePending() ([]FdSwap, error) {
	u := s.usk
	if u == nil {
		return nil, nil
	}
	var swaps []FdSwap
	for _, ino := range u.order {
		l := u.dumped[ino]
		if l.d.State != sockdiag.StateListen || !u.carriesData(l) {
			continue
		}
		sw, err := s.takeListener(l)
		swaps = append(swaps, sw...)
		if err != nil {
			return swaps, fmt.Errorf("%s: pending connections: %w", l.where(), err)
		}
	}
	return swaps, nil
}

// ReleasePending closes gocr's sockets of TakePending, once the swaps are
// made.
func (s *Set) ReleasePending() {
	for _, fd := range s.pendingFds {
		unix.Close(fd)
	}
	s.pendingFds = nil
}

// carriesData says whether a client of one of l's pending connections has
// sent anything.
func (u *unixDump) carriesData(l *unixDumped) bool {
	for _, c := range l.d.Icons {
		if cl := u.dumped[c]; cl != nil && cl.d.WQueue != 0 {
			return true
		}
	}
	return false
}

// takeListener accepts every pending connection of l, reads each, and
// connects a new client for each with the same data.
func (s *Set) takeListener(l *unixDumped) ([]FdSwap, error) {
	lg, err := CopyFd(l.pid, l.fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(lg)
	var accepted []int
	for i := range l.d.Icons {
		var a int
		if a, err = acceptNow(lg); err != nil {
			err = fmt.Errorf("accept pending connection %d of %d: %w", i+1, len(l.d.Icons), err)
			break
		}
		s.pendingFds = append(s.pendingFds, a)
		accepted = append(accepted, a)
	}
	if err == nil {
		err = checkAccepted(l.pid, accepted, l.d.Icons)
	}
	queues := make([][]pendingPacket, len(accepted))
	for i, a := range accepted {
		var rerr error
		if queues[i], rerr = readPending(a, l.d.Type); rerr != nil && err == nil {
			err = fmt.Errorf("pending connection %d: %w", i+1, rerr)
		}
	}
	// From here on the connections are given back, whatever failed.
	swaps, gerr := s.giveBack(l, queues)
	if err == nil {
		for i, q := range queues {
			cl := s.usk.dumped[l.d.Icons[i]]
			for _, p := range q {
				if len(p.fds) > 0 {
					err = fmt.Errorf("pending connection %d from %s: %w", i+1, cl.where(), errFdsInFlight)
				}
				s.SkPending = append(s.SkPending, QueuedPacket{IDFor: cl.e.GetId(), Data: p.data})
			}
		}
	}
	for _, q := range queues {
		for _, p := range q {
			for _, fd := range p.fds {
				unix.Close(fd)
			}
		}
	}
	return swaps, errors.Join(err, gerr)
}

// acceptNow accepts a connection that must be waiting already: gocr's
// copy shares the task's file, whose blocking mode is not gocr's to change.
func acceptNow(l int) (int, error) {
	pfd := []unix.PollFd{{Fd: int32(l), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			return -1, fmt.Errorf("no connection waiting")
		}
		fd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// checkAccepted checks that the connections accepted are those sock_diag
// showed waiting, in that order.
func checkAccepted(pid int, accepted []int, icons []uint32) error {
	var all map[uint32]*sockdiag.Unix
	err := ns.Enter(pid, "net", func() error {
		c, err := sockdiag.Open()
		if err != nil {
			return err
		}
		defer c.Close()
		all, err = c.AllUnix()
		return err
	})
	if err != nil {
		return err
	}
	for i, a := range accepted {
		var st unix.Stat_t
		if err := unix.Fstat(a, &st); err != nil {
			return err
		}
		if d := all[uint32(st.Ino)]; d == nil || d.Peer != icons[i] {
			return fmt.Errorf("accepted connection %d is not the one from unix socket %d", i+1, icons[i])
		}
	}
	return nil
}

// readPending reads everything queued on an accepted connection, keeping
// the fds that came with it.
func readPending(fd int, typ uint8) ([]pendingPacket, error) {
	var out []pendingPacket
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*maxFdsInMsg)+unix.CmsgSpace(unix.SizeofUcred))
	for {
		flags := unix.MSG_DONTWAIT | unix.MSG_CMSG_CLOEXEC
		if typ != unix.SOCK_STREAM {
			flags |= unix.MSG_PEEK | unix.MSG_TRUNC // learn the record's size before taking it
		}
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, flags)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return out, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return out, fmt.Errorf("read: %w", err)
		}
		if typ != unix.SOCK_STREAM {
			if n > len(buf) {
				buf = make([]byte, n)
			}
			closeRights(oob[:oobn])
			if n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC); err != nil {
				return out, fmt.Errorf("read: %w", err)
			}
		} else if n == 0 {
			return out, nil
		}
		p := pendingPacket{data: append([]byte{}, buf[:n]...)}
		p.fds = rights(oob[:oobn])
		out = append(out, p)
	}
}

// rights returns the fds of the SCM_RIGHTS messages in oob.
func rights(oob []byte) []int {
	msgs, _ := unix.ParseSocketControlMessage(oob)
	var fds []int
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_RIGHTS {
			f, _ := unix.ParseUnixRights(&m)
			fds = append(fds, f...)
		}
	}
	return fds
}

func closeRights(oob []byte) {
	for _, fd := range rights(oob) {
		unix.Close(fd)
	}
}

// giveBack connects a new client to l for each accepted connection, in
// order, sends it what the old client had sent (fds included), gives it
// the old client's options, shutdowns and flags, and lists the swaps that
// put it in place of the old one in the tree.
func (s *Set) giveBack(l *unixDumped, queues [][]pendingPacket) ([]FdSwap, error) {
	var swaps []FdSwap
	err := ns.OnThrowawayThread(func() error {
		if err := enterTree(fmt.Sprintf("/proc/%d/ns/net", l.pid), fmt.Sprintf("/proc/%d/root", l.pid)); err != nil {
			return err
		}
		for i, q := range queues {
			cl := s.usk.dumped[l.d.Icons[i]]
			fd, err := s.newClient(l.e, cl.e, q)
			if err != nil {
				return fmt.Errorf("give %s its connection back: %w", cl.where(), err)
			}
			for _, h := range s.holders[cl.e.GetId()] {
				swaps = append(swaps, FdSwap{Pid: h.pid, Fd: h.fd, Cloexec: h.cloexec, Local: fd})
			}
		}
		return nil
	})
	return swaps, err
}

// newClient makes a client like c connected to listener l, with q sent.
func (s *Set) newClient(l, c *sk_unix.UnixSkEntry, q []pendingPacket) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, int(c.GetType())|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	s.pendingFds = append(s.pendingFds, fd)
	if err := withName(l, func(sa *unix.SockaddrUnix) error { return unix.Connect(fd, sa) }); err != nil {
		return -1, fmt.Errorf("connect to the listener %s: %w", printableName(l.GetName()), err)
	}
	packets := make([][]byte, len(q))
	for i, p := range q {
		packets[i] = p.data
	}
	if err := growSndbuf(fd, packets); err != nil {
		return -1, err
	}
	for i, p := range q {
		var oob []byte
		if len(p.fds) > 0 {
			oob = unix.UnixRights(p.fds...)
		}
		if err := unix.Sendmsg(fd, p.data, oob, nil, 0); err != nil {
			return -1, fmt.Errorf("send packet %d of %d (%d bytes): %w", i+1, len(q), len(p.data), err)
		}
	}
	return fd, finishSocket(fd, c)
}
