package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unsafe"

	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	tcp_stream "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
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
}

// repaired is a socket of the tree in repair mode.
type repaired struct {
	pid, fd int // the task's
	local   int // gocr's copy
	reuse   bool
}

// dumpTCPStream puts the connection behind the task's fd in repair mode
// and writes its tcp-stream image.
func (s *Set) dumpTCPStream(pid, fd, local int, ino uint32, ti tcpInfo, opts *sk_opts.SkOptsEntry) error {
	own, err := unix.Dup(local)
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	rp := repaired{pid: pid, fd: fd, local: own, reuse: opts.GetReuseaddr()}
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
	e, in, out, err := readTCPStream(own, ti)
	if err != nil {
		return err
	}
	w, err := s.dir.Writer(image.TCPStream, image.TCPStreamFile(ino))
	if err != nil {
		return err
	}
	if err := w.WritePayload(e, io.MultiReader(bytes.NewReader(in), bytes.NewReader(out))); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// readTCPStream reads a connection in repair mode.
func readTCPStream(fd int, ti tcpInfo) (e *tcp_stream.TcpStreamEntry, in, out []byte, err error) {
	e = &tcp_stream.TcpStreamEntry{OptMask: ptr(uint32(ti.Options) & (tcpiOptTimestamps | tcpiOptSack | tcpiOptWscale))}
	e.SndWscale, e.RcvWscale = ptr(uint32(ti.Wscale&0xf)), ptr(uint32(ti.Wscale>>4))
	var inSeq, outSeq uint32
	if in, inSeq, err = peekTCPQueue(fd, tcpRecvQueue, unix.SIOCINQ); err != nil {
		return nil, nil, nil, fmt.Errorf("receive queue: %w", err)
	}
	if out, outSeq, err = peekTCPQueue(fd, tcpSendQueue, unix.SIOCOUTQ); err != nil {
		return nil, nil, nil, fmt.Errorf("send queue: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return nil, nil, nil, fmt.Errorf("TCP_REPAIR_QUEUE none: %w", err)
	}
	unsent, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	e.InqLen, e.InqSeq = ptr(uint32(len(in))), ptr(inSeq)
	e.OutqLen, e.OutqSeq, e.UnsqLen = ptr(uint32(len(out))), ptr(outSeq), ptr(uint32(min(unsent, len(out))))
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

// peekTCPQueue selects a queue of a socket in repair mode and reads its
// end sequence number and its bytes, without taking them.
func peekTCPQueue(fd, queue int, lenIoctl uint) ([]byte, uint32, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return nil, 0, fmt.Errorf("TCP_REPAIR_QUEUE %d: %w", queue, err)
	}
	seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return nil, 0, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, lenIoctl)
	if err != nil {
		return nil, 0, fmt.Errorf("ioctl %#x: %w", lenIoctl, err)
	}
	if n == 0 {
		return nil, uint32(seq), nil
	}
	buf := make([]byte, n+1)
	for {
		got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("peek %d bytes: %w", n, err)
		}
		if got != n {
			return nil, 0, fmt.Errorf("peeked %d bytes of the %d queued", got, n)
		}
		return buf[:n], uint32(seq), nil
	}
}

// EndRepair takes the tree's sockets out of repair mode: the dump failed,
// or the tree runs on. Leaving repair mode clears SO_REUSEADDR, which is
// set back.
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
	unsent []byte
}

// restoreTCPConn rebuilds a connection from its tcp-stream image, up to
// what needs its peer to exist.
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
	// Buffers first: the queues must fit.
	if err := restoreSockOpts(fd, e.GetOpts()); err != nil {
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
	if err := set(unix.TCP_REPAIR_QUEUE, tcpSendQueue); err != nil {
		return nil, err
	}
	if err := writeTCPQueue(fd, out[:outLen-unsLen]); err != nil {
		return nil, fmt.Errorf("send queue: %w", err)
	}
	if err := set(unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return nil, err
	}
	return &tcpConn{fd: fd, e: e, st: st, unsent: out[outLen-unsLen:]}, nil
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
// socket's buffers take.
func writeTCPQueue(fd int, data []byte) error {
	const chunk = 64 << 10
	for len(data) > 0 {
		n, err := unix.Write(fd, data[:min(len(data), chunk)])
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
	if err := writeTCPQueue(c.fd, c.unsent); err != nil {
		return fmt.Errorf("unsent data: %w", err)
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
