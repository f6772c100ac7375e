package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
	"unsafe"

	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	tcp_stream "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/netlock"
)

// Established TCP connections, through the kernel's TCP repair mode
// (TCP_REPAIR, Linux 3.5; the window, TCP_REPAIR_WINDOW, 4.8).
//
// Dump (criu's --tcp-established): gocr puts the task's socket in repair
// mode through its own copy of the fd. In repair mode the socket sends
// nothing when it is closed, so the tree can be killed without its peers
// seeing a FIN or a reset. Then it reads, for each queue, the sequence
// number at its end (TCP_QUEUE_SEQ) and its bytes (a MSG_PEEK of the
// queue selected with TCP_REPAIR_QUEUE: the receive queue is what the
// task has not read, the send queue what it wrote and the peer has not
// acknowledged, the unsent part of it counted by SIOCOUTQNSD), the
// options the handshake agreed on (tcp_info), the MSS clamp (TCP_MAXSEG
// in repair mode), the timestamp clock (TCP_TIMESTAMP) and the windows
// (TCP_REPAIR_WINDOW). All of it goes to tcp-stream-<inode>.img, the
// stream entry followed by the receive queue then the send queue, as
// CRIU writes it. If the dump fails, or the tree runs on, repair mode is
// turned off again; the watchdog does it if gocr dies.
//
// Restore: a fresh socket in repair mode is given the sequence numbers of
// its queues' starts, bound and "connected" (no handshake in repair mode:
// it is ESTABLISHED at once), given the options, the timestamp clock, the
// bytes of the receive queue and the sent part of the send queue. Once
// every socket of the image exists (release), it gets its windows, leaves
// repair mode, and the unsent bytes are written as the task would have.

// TCP repair queues (TCP_REPAIR_QUEUE).
const (
	tcpNoQueue   = 0
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// TCP options of TCP_REPAIR_OPTIONS (TCPOPT_*).
const (
	tcpoptMSS       = 2
	tcpoptWindow    = 3
	tcpoptSackPerm  = 4
	tcpoptTimestamp = 8
)

// tcpRepairWindow is struct tcp_repair_window.
type tcpRepairWindow struct {
	SndWl1, SndWnd, MaxWindow, RcvWnd, RcvWup uint32
}

const sizeofTCPRepairWindow = 20

// tcpRepairOpt is struct tcp_repair_opt.
type tcpRepairOpt struct {
	Code, Val uint32
}

const sizeofTCPRepairOpt = 8

// Repair is told when gocr puts a task's socket in repair mode and takes
// it out again, so that someone (the dump's watchdog) can take it out if
// gocr dies in between. reuse is the socket's SO_REUSEADDR, which leaving
// repair mode clears.
type Repair interface {
	RepairOn(pid, fd int, reuse bool) error
	RepairOff(pid, fd int) error
	// Locked says the network namespace of pid gets the network lock.
	Locked(pid int) error
}

// repaired is a socket of the tree in repair mode.
type repaired struct {
	pid, fd int // the task's
	local   int // gocr's copy
	reuse   bool
	ino     uint32
	ti      tcpInfo
	seen    tcpQueues // what its image holds
}

// dumpTCPStream puts the connection behind the task's fd in repair mode
// and writes its tcp-stream image.
func (s *Set) dumpTCPStream(pid, fd, local int, ino uint32, ti tcpInfo, opts *sk_opts.SkOptsEntry) error {
	own, err := unix.Dup(local)
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	rp := &repaired{pid: pid, fd: fd, local: own, reuse: opts.GetReuseaddr(), ino: ino, ti: ti}
	if err := s.lock(pid, own); err != nil {
		unix.Close(own)
		return err
	}
	if s.Repair != nil {
		if err := s.Repair.RepairOn(pid, fd, rp.reuse); err != nil {
			unix.Close(own)
			return err
		}
	}
	if err := unix.SetsockoptInt(own, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		unix.Close(own)
		return fmt.Errorf("TCP_REPAIR on: %w (gocr needs CAP_NET_ADMIN in the socket's network namespace)", err)
	}
	s.repaired = append(s.repaired, rp)
	return rp.write(s.dir, false)
}

// write reads the connection and writes its tcp-stream image (again,
// with replace).
func (rp *repaired) write(dir *image.Dir, replace bool) error {
	e, in, out, err := readTCPStream(rp.local, rp.ti)
	if err != nil {
		return err
	}
	rp.seen = queuesOf(e)
	open := dir.Writer
	if replace {
		open = dir.Replacer
	}
	w, err := open(image.TCPStream, image.TCPStreamFile(rp.ino))
	if err != nil {
		return err
	}
	if err := w.WritePayload(e, io.MultiReader(bytes.NewReader(in), bytes.NewReader(out))); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// tcpQueues is where a connection's queues end and how long they are:
// what changes if a segment or an acknowledgement arrives.
type tcpQueues struct {
	inSeq, inLen, outSeq, outLen, unsent uint32
}

func queuesOf(e *tcp_stream.TcpStreamEntry) tcpQueues {
	return tcpQueues{e.GetInqSeq(), e.GetInqLen(), e.GetOutqSeq(), e.GetOutqLen(), e.GetUnsqLen()}
}

// readQueues reads the ends and lengths of a repaired connection's queues.
func readQueues(fd int) (tcpQueues, error) {
	var q tcpQueues
	for _, x := range []struct {
		queue int
		seq   *uint32
		ioctl uint
		n     *uint32
	}{{tcpRecvQueue, &q.inSeq, unix.SIOCINQ, &q.inLen}, {tcpSendQueue, &q.outSeq, unix.SIOCOUTQ, &q.outLen}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, x.queue); err != nil {
			return q, fmt.Errorf("TCP_REPAIR_QUEUE %d: %w", x.queue, err)
		}
		seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
		if err != nil {
			return q, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
		}
		n, err := unix.IoctlGetInt(fd, x.ioctl)
		if err != nil {
			return q, fmt.Errorf("ioctl %#x: %w", x.ioctl, err)
		}
		*x.seq, *x.n = uint32(seq), uint32(n)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return q, fmt.Errorf("TCP_REPAIR_QUEUE none: %w", err)
	}
	unsent, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD)
	if err != nil {
		return q, fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	q.unsent = uint32(min(unsent, int(q.outLen)))
	return q, nil
}

// SettleTCP makes the tree's connections one consistent picture. The
// tasks are stopped, but the kernel still moves what was in flight: a
// segment sent before the freeze lands in its receiver's queue, an
// acknowledgement frees its sender's. Read one end before and the other
// after, and a segment is in neither image. So once every connection is
// in repair mode and read, each is looked at again, and those that moved
// are read and written anew, until a whole pass finds none moving.
func (s *Set) SettleTCP() error {
	const passes = 50
	for pass := 0; pass < passes; pass++ {
		moved := 0
		for _, rp := range s.repaired {
			q, err := readQueues(rp.local)
			if err != nil {
				return fmt.Errorf("connection of pid %d fd %d: %w", rp.pid, rp.fd, err)
			}
			if q == rp.seen {
				continue
			}
			moved++
			if err := rp.write(s.dir, true); err != nil {
				return fmt.Errorf("connection of pid %d fd %d: %w", rp.pid, rp.fd, err)
			}
		}
		if moved == 0 {
			return nil
		}
		time.Sleep(time.Duration(pass+1) * time.Millisecond)
	}
	return fmt.Errorf("TCP connections of the tree still move after %d passes: data is in flight between them", passes)
}

// readTCPStream reads a connection in repair mode.
func readTCPStream(fd int, ti tcpInfo) (e *tcp_stream.TcpStreamEntry, in, out []byte, err error) {
	e = &tcp_stream.TcpStreamEntry{OptMask: ptr(uint32(ti.Options) & (tcpiOptTimestamps | tcpiOptSack | tcpiOptWscale))}
	e.SndWscale, e.RcvWscale = ptr(uint32(ti.Wscale&0xf)), ptr(uint32(ti.Wscale>>4))
	// The queues are read between two readings of where they end: if a
	// segment or an acknowledgement came in between, again.
	var q tcpQueues
	for try := 0; ; try++ {
		before, err := readQueues(fd)
		if err != nil {
			return nil, nil, nil, err
		}
		if in, err = peekTCPQueue(fd, tcpRecvQueue, int(before.inLen)); err != nil {
			return nil, nil, nil, fmt.Errorf("receive queue: %w", err)
		}
		if out, err = peekTCPQueue(fd, tcpSendQueue, int(before.outLen)); err != nil {
			return nil, nil, nil, fmt.Errorf("send queue: %w", err)
		}
		after, err := readQueues(fd)
		if err != nil {
			return nil, nil, nil, err
		}
		if after == before && len(in) == int(before.inLen) && len(out) == int(before.outLen) {
			q = after
			break
		}
		if try == 100 {
			return nil, nil, nil, fmt.Errorf("its queues keep moving (%+v, then %+v)", before, after)
		}
		time.Sleep(time.Millisecond)
	}
	e.InqLen, e.InqSeq = ptr(q.inLen), ptr(q.inSeq)
	e.OutqLen, e.OutqSeq, e.UnsqLen = ptr(q.outLen), ptr(q.outSeq), ptr(q.unsent)
	mss, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("TCP_MAXSEG: %w", err)
	}
	e.MssClamp = ptr(uint32(mss))
	if ti.Options&tcpiOptTimestamps != 0 {
		ts, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
		e.Timestamp = ptr(uint32(ts))
	}
	var win tcpRepairWindow
	n := uint32(sizeofTCPRepairWindow)
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW,
		uintptr(unsafe.Pointer(&win)), uintptr(unsafe.Pointer(&n)), 0); errno != 0 {
		return nil, nil, nil, fmt.Errorf("TCP_REPAIR_WINDOW: %w", errno)
	}
	e.SndWl1, e.SndWnd, e.MaxWindow, e.RcvWnd, e.RcvWup = ptr(win.SndWl1), ptr(win.SndWnd), ptr(win.MaxWindow), ptr(win.RcvWnd), ptr(win.RcvWup)
	for _, o := range []struct {
		opt int
		v   **bool
	}{{unix.TCP_NODELAY, &e.Nodelay}, {unix.TCP_CORK, &e.Cork}} {
		v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, o.opt)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("getsockopt TCP %d: %w", o.opt, err)
		}
		*o.v = ptr(v != 0)
	}
	return e, in, out, nil
}

// peekTCPQueue reads the bytes of a queue of a socket in repair mode
// without taking them: about n, as many as are there.
func peekTCPQueue(fd, queue, n int) ([]byte, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return nil, fmt.Errorf("TCP_REPAIR_QUEUE %d: %w", queue, err)
	}
	defer unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue) //nolint:errcheck // read again by readQueues
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, n+4096)
	for {
		got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peek %d bytes: %w", n, err)
		}
		return buf[:got], nil
	}
}

// lock puts a connection under the network lock (netlock), before its
// state is read: from then on none of its packets pass, either way.
func (s *Set) lock(pid, fd int) error {
	if s.LockName == "" {
		return nil
	}
	la, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	pa, err := unix.Getpeername(fd)
	if err != nil {
		return fmt.Errorf("getpeername: %w", err)
	}
	l, p := sockaddrOf(la), sockaddrOf(pa)
	netns := fmt.Sprintf("/proc/%d/ns/net", pid)
	if s.Repair != nil {
		if err := s.Repair.Locked(pid); err != nil {
			return err
		}
	}
	if s.lockedNS == nil {
		s.lockedNS = map[string]bool{}
	}
	s.lockedNS[netns] = true
	conn := netlock.Conn{Local: netip.AddrPortFrom(l.ip.Unmap(), l.port), Peer: netip.AddrPortFrom(p.ip.Unmap(), p.port)}
	if err := netlock.Add(netns, s.LockName, conn); err != nil {
		return fmt.Errorf("network lock: %w", err)
	}
	return nil
}

// LockNetns locks the whole network namespace of pid (netlock.LockAll),
// the tree's own, for the time of the dump and until the restore: Unlock
// takes it off with the rest. A kernel without nftables gets no lock
// (netlock.ErrNoNftables): the tree's connections, which need theirs,
// refuse the dump then.
func (s *Set) LockNetns(pid int) error {
	netns := fmt.Sprintf("/proc/%d/ns/net", pid)
	if s.Repair != nil {
		if err := s.Repair.Locked(pid); err != nil {
			return err
		}
	}
	if err := netlock.LockAll(netns, s.LockName); err != nil {
		return fmt.Errorf("network lock of the tree's network namespace: %w", err)
	}
	if s.lockedNS == nil {
		s.lockedNS = map[string]bool{}
	}
	s.lockedNS[netns] = true
	return nil
}

// Unlock removes the network lock of the dump (a failed dump, a tree
// that runs on; after a kill it stays for restore to remove).
func (s *Set) Unlock() error {
	var errs []error
	for netns := range s.lockedNS {
		if err := netlock.Remove(netns, s.LockName); err != nil {
			errs = append(errs, err)
		}
	}
	s.lockedNS = nil
	return errors.Join(errs...)
}

// EndRepair takes the tree's sockets out of repair mode, then off the
// network lock: the dump failed, or the tree runs on. Leaving repair mode
// clears SO_REUSEADDR, which is set back.
func (s *Set) EndRepair() error {
	var errs []error
	for _, rp := range s.repaired {
		if err := leaveRepair(rp.local, rp.reuse); err != nil {
			errs = append(errs, fmt.Errorf("pid %d fd %d: %w", rp.pid, rp.fd, err))
			continue
		}
		if s.Repair != nil {
			if err := s.Repair.RepairOff(rp.pid, rp.fd); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.closeRepaired()
	if err := s.Unlock(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeRepaired closes gocr's copies of the sockets in repair mode. Left
// in repair mode (the tree is killed), they close without a word to their
// peers.
func (s *Set) closeRepaired() {
	for _, rp := range s.repaired {
		unix.Close(rp.local)
	}
	s.repaired = nil
}

// LeaveRepair takes a socket out of repair mode (TCP_REPAIR_OFF, which
// sends a window probe so the peer learns the window again) and gives it
// back its SO_REUSEADDR.
func LeaveRepair(fd int, reuse bool) error { return leaveRepair(fd, reuse) }

func leaveRepair(fd int, reuse bool) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return fmt.Errorf("TCP_REPAIR off: %w", err)
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("SO_REUSEADDR: %w", err)
		}
	}
	return nil
}

// tcpConn is a connection being rebuilt, in repair mode until release.
type tcpConn struct {
	fd     int
	e      *sk_inet.InetSkEntry
	st     *tcp_stream.TcpStreamEntry
	sent   []byte // sent, not acknowledged: written in repair mode
	unsent []byte // written as the task would, once out of repair mode
}

// restoreTCPConn rebuilds a connection from its tcp-stream image, up to
// what needs its peer to exist: in repair mode, bound, connected, with
// its options and its receive queue.
func (r *Restorer) restoreTCPConn(fd int, e *sk_inet.InetSkEntry, local unix.Sockaddr) (*tcpConn, error) {
	name := image.TCPStreamFile(e.GetIno())
	rd, err := r.Dir.Reader(image.TCPStream, name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	st := &tcp_stream.TcpStreamEntry{}
	if !rd.Next(st) {
		if err := rd.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: no entry", name)
	}
	data, err := io.ReadAll(rd.Payload())
	if err != nil {
		return nil, fmt.Errorf("%s: queues: %w", name, err)
	}
	inLen, outLen, unsLen := int(st.GetInqLen()), int(st.GetOutqLen()), int(st.GetUnsqLen())
	if len(data) != inLen+outLen || unsLen > outLen {
		return nil, fmt.Errorf("%s: %d bytes of queues, want inq_len %d + outq_len %d (unsq_len %d)", name, len(data), inLen, outLen, unsLen)
	}
	in, out := data[:inLen], data[inLen:]
	set := func(opt, v int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, opt, v); err != nil {
			return fmt.Errorf("setsockopt TCP %d to %d: %w", opt, v, err)
		}
		return nil
	}
	if err := set(unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return nil, err
	}
	// Buffers first, with room for the queues: memory for the same bytes
	// is counted with the overhead of the pieces they are written in now,
	// which may be more than it was. The buffers get the image's sizes
	// back in release.
	if err := restoreSockOpts(fd, e.GetOpts()); err != nil {
		return nil, err
	}
	if err := roomFor(fd, unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, outLen); err != nil {
		return nil, err
	}
	if err := roomFor(fd, unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, inLen); err != nil {
		return nil, err
	}
	if err := set(unix.TCP_REPAIR_QUEUE, tcpSendQueue); err != nil {
		return nil, err
	}
	if err := set(unix.TCP_QUEUE_SEQ, int(int32(st.GetOutqSeq()-uint32(outLen)))); err != nil {
		return nil, err
	}
	if err := set(unix.TCP_REPAIR_QUEUE, tcpRecvQueue); err != nil {
		return nil, err
	}
	if err := set(unix.TCP_QUEUE_SEQ, int(int32(st.GetInqSeq()-uint32(inLen)))); err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, local); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	family := int(e.GetFamily())
	dst, err := wordsAddr(e.GetDstAddr(), family)
	if err != nil {
		return nil, fmt.Errorf("dst_addr: %w", err)
	}
	if err := unix.Connect(fd, sockaddr(family, dst, e.GetDstPort())); err != nil {
		return nil, fmt.Errorf("connect in repair mode: %w", err)
	}
	if err := setRepairOptions(fd, st); err != nil {
		return nil, err
	}
	if st.GetOptMask()&tcpiOptTimestamps != 0 {
		if err := set(unix.TCP_TIMESTAMP, int(int32(st.GetTimestamp()))); err != nil {
			return nil, err
		}
	}
	if err := writeTCPQueue(fd, in); err != nil {
		return nil, fmt.Errorf("receive queue: %w", err)
	}
	if err := set(unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return nil, err
	}
	return &tcpConn{fd: fd, e: e, st: st, sent: out[:outLen-unsLen], unsent: out[outLen-unsLen:]}, nil
}

// fillSent writes the sent part of the send queue, once every connection
// of the image exists with its receive queue: sent data arms the
// retransmission timer, and a segment sent again must find its peer, or
// the peer's port answers with a reset.
func (c *tcpConn) fillSent() error {
	if err := unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpSendQueue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE send: %w", err)
	}
	if err := writeTCPQueue(c.fd, c.sent); err != nil {
		return fmt.Errorf("send queue: %w", err)
	}
	if err := unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE none: %w", err)
	}
	return nil
}

// roomFor grows a socket buffer to hold n bytes of queue with room to
// spare.
func roomFor(fd, get, force, n int) error {
	cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, get)
	if err != nil {
		return fmt.Errorf("getsockopt %d: %w", get, err)
	}
	want := 2*n + 1<<20
	if n == 0 || cur >= want {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, want/2); err != nil {
		return fmt.Errorf("setsockopt %d to %d: %w", force, want/2, err)
	}
	return nil
}

// setRepairOptions gives a connection in repair mode the options its
// handshake had agreed on.
func setRepairOptions(fd int, st *tcp_stream.TcpStreamEntry) error {
	opts := []tcpRepairOpt{{tcpoptMSS, st.GetMssClamp()}}
	m := st.GetOptMask()
	if m&tcpiOptWscale != 0 {
		opts = append(opts, tcpRepairOpt{tcpoptWindow, st.GetSndWscale() | st.GetRcvWscale()<<16})
	}
	if m&tcpiOptSack != 0 {
		opts = append(opts, tcpRepairOpt{tcpoptSackPerm, 0})
	}
	if m&tcpiOptTimestamps != 0 {
		opts = append(opts, tcpRepairOpt{tcpoptTimestamp, 0})
	}
	if _, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS,
		uintptr(unsafe.Pointer(&opts[0])), uintptr(len(opts)*sizeofTCPRepairOpt), 0); errno != 0 {
		return fmt.Errorf("TCP_REPAIR_OPTIONS %v: %w", opts, errno)
	}
	return nil
}

// writeTCPQueue fills the queue selected in repair mode, in pieces the
// socket's buffers take, never waiting (a full buffer is an error, not a
// hang: roomFor made it large enough).
func writeTCPQueue(fd int, data []byte) error {
	const chunk = 64 << 10
	for len(data) > 0 {
		n, err := unix.SendmsgN(fd, data[:min(len(data), chunk)], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %d bytes: %w", min(len(data), chunk), err)
		}
		data = data[n:]
	}
	return nil
}

// release ends the rebuild of a connection once its peer exists: the
// windows, out of repair mode, the unsent bytes written, TCP options.
func (c *tcpConn) release() error {
	st := c.st
	if st.SndWl1 != nil {
		win := tcpRepairWindow{st.GetSndWl1(), st.GetSndWnd(), st.GetMaxWindow(), st.GetRcvWnd(), st.GetRcvWup()}
		if _, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(c.fd), unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW,
			uintptr(unsafe.Pointer(&win)), sizeofTCPRepairWindow, 0); errno != 0 {
			return fmt.Errorf("TCP_REPAIR_WINDOW %+v: %w", win, errno)
		}
	}
	if err := leaveRepair(c.fd, false); err != nil {
		return err
	}
	// The unsent bytes go as the task's write would send them; never
	// waiting, as the peer may not run yet (its buffers were grown).
	for data := c.unsent; len(data) > 0; {
		n, err := unix.SendmsgN(c.fd, data[:min(len(data), 64<<10)], nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("unsent data: %d of %d bytes written: %w", len(c.unsent)-len(data), len(c.unsent), err)
		}
		data = data[n:]
	}
	if err := restoreSockOpts(c.fd, c.e.GetOpts()); err != nil {
		return err
	}
	for _, o := range []struct {
		opt int
		v   bool
	}{{unix.TCP_NODELAY, st.GetNodelay()}, {unix.TCP_CORK, st.GetCork()}} {
		if !o.v {
			continue
		}
		if err := unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, o.opt, 1); err != nil {
			return fmt.Errorf("setsockopt TCP %d: %w", o.opt, err)
		}
	}
	return nil
}
