package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// InetDiagReqV2 is struct inet_diag_req_v2: a dump of the inet sockets
// of one family and protocol in some states.
type InetDiagReqV2 struct {
	Family, Protocol, Ext, Pad uint8
	States                     uint32
	ID                         InetDiagSockID
}

// InetDiagSockID is struct inet_diag_sockid.
type InetDiagSockID struct {
	Sport, Dport [2]byte // big-endian
	Src, Dst     [16]byte
	If           uint32
	Cookie       [2]uint32
}

// SizeofInetDiagMsg is the size of struct inet_diag_msg, which heads
// every answer: family, state, timer, retrans, the sockid, then expires,
// rqueue, wqueue, uid and inode.
const SizeofInetDiagMsg = 72

const inetDiagShutdown = 8 // INET_DIAG_SHUTDOWN: the socket's sk_shutdown, one byte

// Inet is what sock_diag says of an inet socket that gocr uses.
type Inet struct {
	Ino      uint32
	State    uint8
	Shutdown uint8 // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
}

// AllInet describes the inet sockets of a family and protocol that the
// kernel has hashed (bound or connected), by inode.
func (c *Conn) AllInet(family, protocol uint8) (map[uint32]*Inet, error) {
	req := InetDiagReqV2{Family: family, Protocol: protocol, States: ^uint32(0)}
	c.seq++
	const hdr = unix.SizeofNlMsghdr
	b := make([]byte, hdr+unsafe.Sizeof(req))
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	*h = unix.NlMsghdr{Len: uint32(len(b)), Type: unix.SOCK_DIAG_BY_FAMILY, Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP, Seq: c.seq}
	*(*InetDiagReqV2)(unsafe.Pointer(&b[hdr])) = req
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: send request: %w", err)
	}
	out := map[uint32]*Inet{}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag: read answer: %w", err)
		}
		done, err := parseInetAnswers(buf[:n], c.seq, out)
		if err != nil {
			return nil, err
		}
		if done {
			return out, nil
		}
	}
}

func parseInetAnswers(b []byte, seq uint32, out map[uint32]*Inet) (bool, error) {
	return walkAnswers(b, seq, func(body []byte) error {
		s, err := ParseInet(body)
		if err == nil {
			out[s.Ino] = s
		}
		return err
	})
}

// ParseInet decodes one answer: an inet_diag_msg and its attributes.
func ParseInet(b []byte) (*Inet, error) {
	if len(b) < SizeofInetDiagMsg {
		return nil, fmt.Errorf("sock_diag: inet answer of %d bytes, want at least %d", len(b), SizeofInetDiagMsg)
	}
	s := &Inet{State: b[1], Ino: binary.LittleEndian.Uint32(b[68:])}
	for a := b[SizeofInetDiagMsg:]; len(a) >= 4; {
		l := int(binary.LittleEndian.Uint16(a[0:]))
		typ := binary.LittleEndian.Uint16(a[2:]) & nlaTypeMask
		if l < 4 || l > len(a) {
			return nil, fmt.Errorf("sock_diag: attribute of %d bytes in %d", l, len(a))
		}
		if typ == inetDiagShutdown && l >= 5 {
			s.Shutdown = a[4]
		}
		a = a[min(nlAlign(l), len(a)):]
	}
	return s, nil
}
