// Package sockdiag asks the kernel about sockets through NETLINK_SOCK_DIAG
// (linux/sock_diag.h, linux/unix_diag.h): what only the kernel knows of a
// unix socket without disturbing it — its peer, its bound name, the
// connections waiting on a listener, how much is queued. A netlink socket
// sees the sockets of the network namespace it was created in, so a caller
// that dumps a tree in a namespace of its own opens the Conn there.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UnixDiagReq is struct unix_diag_req: which unix sockets to describe and
// what to say about each.
type UnixDiagReq struct {
	Family   uint8 // AF_UNIX
	Protocol uint8 // 0
	Pad      uint16
	States   uint32 // bit mask of states (1 << TCP_*); all: ^0
	Ino      uint32 // one socket (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP)
	Show     uint32 // UDIAG_SHOW_*
	Cookie   [2]uint32
}

// UnixDiagMsg is struct unix_diag_msg, the head of each answer; netlink
// attributes (UNIX_DIAG_*) follow it.
type UnixDiagMsg struct {
	Family uint8
	Type   uint8 // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	State  uint8 // TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE
	Pad    uint8
	Ino    uint32
	Cookie [2]uint32
}

// UnixDiagVFS is struct unix_diag_vfs: the inode a path-bound socket made
// in the file system, and its device.
type UnixDiagVFS struct {
	Ino uint32
	Dev uint32
}

// UnixDiagRQLen is struct unix_diag_rqlen. For a listener: connections
// waiting and the backlog; otherwise bytes queued to read (the first
// datagram's length for a datagram socket) and bytes sent but not yet read
// by the peer (kernel memory, not payload).
type UnixDiagRQLen struct {
	RQueue uint32
	WQueue uint32
}

// What a request asks to be shown (UDIAG_SHOW_*).
const (
	ShowName    = 0x01
	ShowVFS     = 0x02
	ShowPeer    = 0x04
	ShowIcons   = 0x08
	ShowRQLen   = 0x10
	ShowMeminfo = 0x20
	ShowUID     = 0x40
)

// Attribute types of an answer (UNIX_DIAG_*).
const (
	attrName     = 0
	attrVFS      = 1
	attrPeer     = 2
	attrIcons    = 3
	attrRQLen    = 4
	attrMeminfo  = 5
	attrShutdown = 6
	attrUID      = 7
)

// Socket states as unix sockets use them (include/net/tcp_states.h).
const (
	StateEstablished = 1
	StateClose       = 7
	StateListen      = 10
)

// Unix is what the kernel says of one unix socket.
type Unix struct {
	Ino   uint32
	Type  uint8 // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	State uint8 // StateEstablished, StateClose, StateListen
	// Name is the bound address as sun_path holds it: a path, or an
	// abstract name starting with a NUL byte; empty when not bound. A
	// connection accepted from a listener carries the listener's name.
	Name []byte
	// VFSIno and VFSDev name the socket's file of a path-bound socket
	// (HasVFS).
	HasVFS         bool
	VFSIno, VFSDev uint32
	// Peer is the inode of the socket this one is connected to, 0 when it
	// has none or the peer has no inode (a connection not accepted yet).
	Peer uint32
	// Icons are the client sockets of the connections waiting on a
	// listener, in the order accept will return them (0: the client is
	// closed).
	Icons          []uint32
	RQueue, WQueue uint32
	Shutdown       uint8 // RCV_SHUTDOWN (1) | SEND_SHUTDOWN (2)
	HasUID         bool
	UID            uint32
}

// Conn is a NETLINK_SOCK_DIAG socket.
type Conn struct {
	fd  int
	seq uint32
}

// Open makes a sock_diag socket in the calling thread's network namespace;
// it stays in that namespace whichever thread uses it later.
func Open() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	return &Conn{fd: fd}, nil
}

// Close closes the netlink socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// AllUnix describes every unix socket of the namespace, by inode.
func (c *Conn) AllUnix() (map[uint32]*Unix, error) {
	req := UnixDiagReq{Family: unix.AF_UNIX, States: ^uint32(0),
		Show: ShowName | ShowVFS | ShowPeer | ShowIcons | ShowRQLen | ShowUID}
	c.seq++
	if err := c.send(req, unix.NLM_F_REQUEST|unix.NLM_F_DUMP); err != nil {
		return nil, err
	}
	out := map[uint32]*Unix{}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag: read answer: %w", err)
		}
		done, err := parseAnswers(buf[:n], c.seq, out)
		if err != nil {
			return nil, err
		}
		if done {
			return out, nil
		}
	}
}

// send writes one SOCK_DIAG_BY_FAMILY request.
func (c *Conn) send(req UnixDiagReq, flags uint16) error {
	const hdr = unix.SizeofNlMsghdr
	b := make([]byte, hdr+unsafe.Sizeof(req))
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	*h = unix.NlMsghdr{Len: uint32(len(b)), Type: unix.SOCK_DIAG_BY_FAMILY, Flags: flags, Seq: c.seq}
	*(*UnixDiagReq)(unsafe.Pointer(&b[hdr])) = req
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	if err := unix.Sendto(c.fd, b, 0, sa); err != nil {
		return fmt.Errorf("sock_diag: send request: %w", err)
	}
	return nil
}

// parseAnswers reads the netlink messages of one datagram into out and
// reports whether the dump is done.
func parseAnswers(b []byte, seq uint32, out map[uint32]*Unix) (bool, error) {
	return walkAnswers(b, seq, func(body []byte) error {
		u, err := ParseUnix(body)
		if err == nil {
			out[u.Ino] = u
		}
		return err
	})
}

// walkAnswers hands the body of each SOCK_DIAG_BY_FAMILY answer of one
// datagram to answer and reports whether the dump is done (NLMSG_DONE).
// Messages of another sequence number are skipped.
func walkAnswers(b []byte, seq uint32, answer func(body []byte) error) (bool, error) {
	le := binary.LittleEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := le.Uint32(b[0:])
		typ := le.Uint16(b[4:])
		mseq := le.Uint32(b[8:])
		if l < unix.SizeofNlMsghdr || int(l) > len(b) {
			return false, fmt.Errorf("sock_diag: netlink message of %d bytes in %d", l, len(b))
		}
		body := b[unix.SizeofNlMsghdr:l]
		b = b[min(nlAlign(int(l)), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return false, fmt.Errorf("sock_diag: short error message")
			}
			if e := int32(le.Uint32(body)); e != 0 {
				return false, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
			}
		case unix.SOCK_DIAG_BY_FAMILY:
			if err := answer(body); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// ParseUnix decodes one answer: a unix_diag_msg and its attributes.
func ParseUnix(b []byte) (*Unix, error) {
	var m UnixDiagMsg
	if len(b) < int(unsafe.Sizeof(m)) {
		return nil, fmt.Errorf("sock_diag: unix_diag_msg of %d bytes", len(b))
	}
	le := binary.LittleEndian
	u := &Unix{Type: b[1], State: b[2], Ino: le.Uint32(b[4:])}
	attrs := b[nlAlign(int(unsafe.Sizeof(m))):]
	for len(attrs) >= unix.SizeofNlAttr {
		l := int(le.Uint16(attrs[0:]))
		typ := le.Uint16(attrs[2:]) & nlaTypeMask
		if l < unix.SizeofNlAttr || l > len(attrs) {
			return nil, fmt.Errorf("sock_diag: socket %d: attribute %d of %d bytes in %d", u.Ino, typ, l, len(attrs))
		}
		v := attrs[unix.SizeofNlAttr:l]
		if err := u.setAttr(typ, v); err != nil {
			return nil, fmt.Errorf("sock_diag: socket %d: %w", u.Ino, err)
		}
		attrs = attrs[min(nlAlign(l), len(attrs)):]
	}
	return u, nil
}

// setAttr records one UNIX_DIAG_* attribute.
func (u *Unix) setAttr(typ uint16, v []byte) error {
	le := binary.LittleEndian
	need := func(n int) error {
		if len(v) < n {
			return fmt.Errorf("attribute %d of %d bytes, want %d", typ, len(v), n)
		}
		return nil
	}
	switch typ {
	case attrName:
		u.Name = append([]byte(nil), v...)
	case attrVFS:
		if err := need(8); err != nil {
			return err
		}
		u.HasVFS, u.VFSIno, u.VFSDev = true, le.Uint32(v), le.Uint32(v[4:])
	case attrPeer:
		if err := need(4); err != nil {
			return err
		}
		u.Peer = le.Uint32(v)
	case attrIcons:
		u.Icons = make([]uint32, 0, len(v)/4)
		for i := 0; i+4 <= len(v); i += 4 {
			u.Icons = append(u.Icons, le.Uint32(v[i:]))
		}
	case attrRQLen:
		if err := need(8); err != nil {
			return err
		}
		u.RQueue, u.WQueue = le.Uint32(v), le.Uint32(v[4:])
	case attrShutdown:
		if err := need(1); err != nil {
			return err
		}
		u.Shutdown = v[0]
	case attrUID:
		if err := need(4); err != nil {
			return err
		}
		u.HasUID, u.UID = true, le.Uint32(v)
	}
	return nil
}

// nlAlign rounds up to NLMSG_ALIGNTO (and NLA_ALIGNTO), 4 bytes.
func nlAlign(n int) int { return (n + 3) &^ 3 }

// nlaTypeMask clears NLA_F_NESTED and NLA_F_NET_BYTEORDER off an attribute
// type.
const nlaTypeMask = 0x3fff
