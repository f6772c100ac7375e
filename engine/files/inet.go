package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/sockdiag"
)

// Sockets of the inet families (AF_INET, AF_INET6): TCP and UDP (and
// UDP-Lite), both halves. TCP connections are in tcp.go.
//
// Dump: gocr takes its own copy of the task's fd (pidfd_getfd) and asks
// the socket itself: its addresses (getsockname, getpeername), its state
// (TCP_INFO), its options. Each socket is one InetSkEntry of files.img,
// as CRIU writes it: addresses as the words of the kernel's in_addr or
// in6_addr, ports in host order.
//
// A listener is refused while connections wait in its accept queue, a
// UDP socket while datagrams wait in its receive queue (neither can be
// put back as it was); a TCP connection in a state other than listening,
// closed or established, raw and ICMP sockets, by the socket's addresses
// and state.
//
// Restore: gocr makes every inet socket of the image at once, in the
// tree's network namespace (makeInetSockets). A TCP socket is bound in
// repair mode, which lets it take its port whoever else holds it (its
// own listener, a connection accepted from it, a socket in TIME_WAIT);
// then a listener listens with its backlog, a connection is rebuilt
// (tcp.go). A UDP socket binds and connects as it was. Options and file
// flags last, then the sockets reach the tasks like any file.

// TCP states (include/net/tcp_states.h), which inet_sk_entry.state uses
// for UDP too: a connected UDP socket is ESTABLISHED, any other CLOSE.
const (
	tcpEstablished = 1
	tcpSynSent     = 2
	tcpSynRecv     = 3
	tcpFinWait1    = 4
	tcpFinWait2    = 5
	tcpTimeWait    = 6
	tcpClose       = 7
	tcpCloseWait   = 8
	tcpLastAck     = 9
	tcpListen      = 10
	tcpClosing     = 11
)

var tcpStateNames = map[uint32]string{
	tcpEstablished: "ESTABLISHED", tcpSynSent: "SYN_SENT", tcpSynRecv: "SYN_RECV", tcpFinWait1: "FIN_WAIT1",
	tcpFinWait2: "FIN_WAIT2", tcpTimeWait: "TIME_WAIT", tcpClose: "CLOSE", tcpCloseWait: "CLOSE_WAIT",
	tcpLastAck: "LAST_ACK", tcpListen: "LISTEN", tcpClosing: "CLOSING",
}

func tcpStateName(s uint32) string {
	if n, ok := tcpStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state %d", s)
}

const (
	ipprotoUDPLite = 136 // IPPROTO_UDPLITE
	ipprotoMPTCP   = 262 // IPPROTO_MPTCP: Go's net.Listen makes these by default (Go 1.24)
)

// tcpInfo is the head of struct tcp_info that gocr reads: the state, the
// options negotiated (TCPI_OPT_*) and the window scales, in the bit
// fields of its seventh byte; the accept queue of a listener in unacked
// (sk_ack_backlog) and its backlog in sacked (sk_max_ack_backlog).
type tcpInfo struct {
	State, CaState, Retransmits, Probes, Backoff, Options uint8
	Wscale                                                uint8 // snd_wscale:4, rcv_wscale:4
	Flags                                                 uint8
	Rto, Ato, SndMss, RcvMss                              uint32
	Unacked, Sacked                                       uint32
}

// sizeofTCPInfoHead is how many bytes of struct tcp_info tcpInfo holds.
const sizeofTCPInfoHead = 32

// TCPI_OPT_* bits of tcp_info.tcpi_options, kept in tcp_stream_entry.opt_mask.
const (
	tcpiOptTimestamps = 1
	tcpiOptSack       = 2
	tcpiOptWscale     = 4
)

func readTCPInfo(fd int) (tcpInfo, error) {
	var t tcpInfo
	b := make([]byte, 256)
	n := uint32(len(b))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0); errno != 0 {
		return t, fmt.Errorf("getsockopt TCP_INFO: %w", errno)
	}
	if n < sizeofTCPInfoHead {
		return t, fmt.Errorf("getsockopt TCP_INFO: %d bytes, want at least %d", n, sizeofTCPInfoHead)
	}
	t.State, t.CaState, t.Retransmits, t.Probes, t.Backoff, t.Options, t.Wscale, t.Flags = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
	le := binary.LittleEndian
	t.Rto, t.Ato, t.SndMss, t.RcvMss = le.Uint32(b[8:]), le.Uint32(b[12:]), le.Uint32(b[16:]), le.Uint32(b[20:])
	t.Unacked, t.Sacked = le.Uint32(b[24:]), le.Uint32(b[28:])
	return t, nil
}

// inetAddr is one end of an inet socket.
type inetAddr struct {
	ip   netip.Addr
	port uint16
	zone uint32 // an IPv6 scope (interface index)
}

func (a inetAddr) String() string {
	if !a.ip.IsValid() {
		return "-"
	}
	return netip.AddrPortFrom(a.ip, a.port).String()
}

func sockaddrOf(sa unix.Sockaddr) inetAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return inetAddr{ip: netip.AddrFrom4(a.Addr), port: uint16(a.Port)}
	case *unix.SockaddrInet6:
		return inetAddr{ip: netip.AddrFrom16(a.Addr), port: uint16(a.Port), zone: a.ZoneId}
	}
	return inetAddr{}
}

// addrWords is an address as inet_sk_entry keeps it: the 32-bit words of
// the kernel's in_addr or in6_addr, as the machine reads them.
func addrWords(ip netip.Addr, family int) []uint32 {
	var b []byte
	if family == unix.AF_INET {
		a := ip.Unmap().As4()
		b = a[:]
	} else {
		a := ip.As16()
		b = a[:]
	}
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

// wordsAddr is the reverse of addrWords; no words is the family's
// unspecified address.
func wordsAddr(w []uint32, family int) (netip.Addr, error) {
	n := 4
	if family == unix.AF_INET6 {
		n = 16
	}
	if len(w) == 0 {
		w = make([]uint32, n/4)
	}
	if len(w) != n/4 {
		return netip.Addr{}, fmt.Errorf("%d address words, want %d", len(w), n/4)
	}
	b := make([]byte, n)
	for i, x := range w {
		binary.NativeEndian.PutUint32(b[4*i:], x)
	}
	ip, _ := netip.AddrFromSlice(b)
	return ip, nil
}

func sockaddr(family int, ip netip.Addr, port uint32) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(port), Addr: ip.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
}

// inetWhere names an inet socket in errors: protocol, addresses, state.
func inetWhere(proto string, local, peer inetAddr, state string) string {
	if peer.ip.IsValid() {
		return fmt.Sprintf("%s %s → %s (%s)", proto, local, peer, state)
	}
	return fmt.Sprintf("%s %s (%s)", proto, local, state)
}

func protoName(family, typ, proto int) string {
	v := ""
	if family == unix.AF_INET6 {
		v = "v6"
	}
	switch {
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP:
		return "TCP" + v
	case typ == unix.SOCK_STREAM && proto == ipprotoMPTCP:
		return "MPTCP" + v
	case typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
		return "UDP" + v
	case typ == unix.SOCK_DGRAM && proto == ipprotoUDPLite:
		return "UDP-Lite" + v
	case typ == unix.SOCK_DGRAM && (proto == unix.IPPROTO_ICMP || proto == unix.IPPROTO_ICMPV6):
		return "ICMP" + v + " (ping)"
	}
	return fmt.Sprintf("IP%s type %d protocol %d", v, typ, proto)
}

// dumpInet records one inet socket.
func (s *Set) dumpInet(pid int, fd Fd, ino uint32, local, family int) (uint32, error) {
	typ, err := unix.GetsockoptInt(local, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return 0, fmt.Errorf("SO_TYPE: %w", err)
	}
	proto, err := unix.GetsockoptInt(local, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return 0, fmt.Errorf("SO_PROTOCOL: %w", err)
	}
	name := protoName(family, typ, proto)
	switch {
	case typ == unix.SOCK_STREAM && (proto == unix.IPPROTO_TCP || proto == ipprotoMPTCP),
		typ == unix.SOCK_DGRAM && (proto == unix.IPPROTO_UDP || proto == ipprotoUDPLite),
		typ == unix.SOCK_DGRAM && (proto == unix.IPPROTO_ICMP || proto == unix.IPPROTO_ICMPV6):
	case typ == unix.SOCK_RAW:
		return 0, fmt.Errorf("%s: raw sockets are not supported yet", name)
	default:
		return 0, fmt.Errorf("%s: not supported yet (only TCP, UDP and UDP-Lite are)", name)
	}
	sa, err := unix.Getsockname(local)
	if err != nil {
		return 0, fmt.Errorf("%s: getsockname: %w", name, err)
	}
	src := sockaddrOf(sa)
	var dst inetAddr
	if pa, err := unix.Getpeername(local); err == nil {
		dst = sockaddrOf(pa)
	} else if !errors.Is(err, unix.ENOTCONN) {
		return 0, fmt.Errorf("%s %s: getpeername: %w", name, src, err)
	}
	if src.zone != 0 || dst.zone != 0 {
		return 0, fmt.Errorf("%s: an IPv6 address with a scope (interface %d) is not supported yet", inetWhere(name, src, dst, "?"), max(src.zone, dst.zone))
	}
	state := uint32(tcpClose)
	var ti tcpInfo
	if typ == unix.SOCK_STREAM {
		if ti, err = readTCPInfo(local); err != nil {
			return 0, fmt.Errorf("%s: %w", inetWhere(name, src, dst, "?"), err)
		}
		state = uint32(ti.State)
	} else if dst.ip.IsValid() {
		state = tcpEstablished
	}
	where := inetWhere(name, src, dst, tcpStateName(state))
	opts, err := dumpSockOpts(local)
	if err == nil {
		err = dumpInetSockOpts(local, typ, opts)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	e := &sk_inet.InetSkEntry{
		Ino: ptr(ino), Family: ptr(uint32(family)), Type: ptr(uint32(typ)), Proto: ptr(uint32(proto)),
		State: ptr(state), SrcPort: ptr(uint32(src.port)), DstPort: ptr(uint32(dst.port)),
		Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Backlog: ptr(uint32(0)),
		Fown: noOwner(), Opts: opts,
	}
	if s.NetNsID != 0 {
		e.NsId = ptr(s.NetNsID)
	}
	if src.ip.IsValid() {
		e.SrcAddr = addrWords(src.ip, family)
	}
	if dst.ip.IsValid() {
		e.DstAddr = addrWords(dst.ip, family)
	}
	if e.IpOpts, err = dumpIPOpts(local, family); err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	if family == unix.AF_INET6 {
		v, err := unix.GetsockoptInt(local, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil {
			return 0, fmt.Errorf("%s: IPV6_V6ONLY: %w", where, err)
		}
		e.V6Only = ptr(v != 0)
	}
	if typ == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP {
		var o tcpOpts
		for _, x := range []struct {
			opt int
			v   *bool
		}{{unix.TCP_CORK, &o.Cork}, {unix.TCP_NODELAY, &o.Nodelay}} {
			v, err := unix.GetsockoptInt(local, unix.IPPROTO_TCP, x.opt)
			if err != nil {
				return 0, fmt.Errorf("%s: getsockopt TCP %d: %w", where, x.opt, err)
			}
			*x.v = v != 0
		}
		setTCPOpts(e, o)
	}
	if e.Shutdown, err = s.inetShutdown(pid, local, family, proto, typ, state); err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	switch {
	case typ == unix.SOCK_DGRAM:
		if proto == unix.IPPROTO_UDP || proto == ipprotoUDPLite {
			if v, err := unix.GetsockoptInt(local, unix.IPPROTO_UDP, unix.UDP_CORK); err == nil && v != 0 {
				return 0, fmt.Errorf("%s: corked (UDP_CORK): the data it holds back cannot be read, so it is not supported", where)
			}
		}
		if n, err := queuedDatagrams(local); err != nil {
			return 0, fmt.Errorf("%s: %w", where, err)
		} else if n > 0 {
			return 0, fmt.Errorf("%s: datagrams wait in its receive queue (%d bytes in the first): queued UDP datagrams are not supported yet", where, n)
		}
	case state == tcpListen:
		e.Backlog = ptr(ti.Sacked)
		if ti.Unacked > 0 && !s.SkipInFlight {
			return 0, fmt.Errorf("%s: %d connections wait in its accept queue (not accepted yet): not supported yet (--skip-in-flight leaves them out)", where, ti.Unacked)
		}
	case state == tcpClose:
	case proto == ipprotoMPTCP:
		return 0, fmt.Errorf("%s: MPTCP connections are not supported yet (only MPTCP listeners and unconnected sockets are)", where)
	case state == tcpEstablished:
		switch {
		case s.TCPEstablished:
			if err := s.dumpTCPStream(pid, fd.Fd, local, ino, ti, opts); err != nil {
				return 0, fmt.Errorf("%s: %w", where, err)
			}
		case s.TCPClose:
			// Not kept: restored closed (criu's --tcp-close); the peer
			// sees the connection end when the tree is killed.
		default:
			return 0, fmt.Errorf("%s: an established TCP connection: dump with --tcp-established to checkpoint it (or --tcp-close to restore it closed)", where)
		}
	default:
		return 0, fmt.Errorf("%s: TCP sockets in state %s are not supported yet", where, tcpStateName(state))
	}
	typEntry := fdinfo.FdTypes_INETSK
	return s.add(&fdinfo.FileEntry{Type: &typEntry, Isk: e}), nil
}

// inetShutdown finds how a socket was shut down. The kernel tells it of
// the sockets it has hashed (sock_diag's INET_DIAG_SHUTDOWN): UDP ones.
// A TCP socket in CLOSE is in no hash; what shows of its shutdown is the
// reading side (POLLRDHUP), the writing side changes nothing in a socket
// that is not connected (a write fails with EPIPE either way). Connected
// TCP sockets carry theirs in their state.
func (s *Set) inetShutdown(pid, fd, family, proto, typ int, state uint32) (*sk_opts.SkShutdown, error) {
	var how uint8
	switch {
	case typ == unix.SOCK_DGRAM:
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s/%d/%d", link, family, proto)
		all, ok := s.inetDiag[key]
		if !ok {
			err := ns.Enter(pid, "net", func() error {
				c, err := sockdiag.Open()
				if err != nil {
					return err
				}
				defer c.Close()
				all, err = c.AllInet(uint8(family), uint8(proto))
				return err
			})
			if err != nil {
				return nil, err
			}
			if s.inetDiag == nil {
				s.inetDiag = map[string]map[uint32]*sockdiag.Inet{}
			}
			s.inetDiag[key] = all
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, err
		}
		if d := all[uint32(st.Ino)]; d != nil {
			how = d.Shutdown
		} else {
			// Not hashed: never bound. Only the reading side shows.
			how = rdhup(fd)
		}
	case state == tcpClose:
		how = rdhup(fd)
	default:
		return nil, nil
	}
	if how &= rcvShutdown | sendShutdown; how == 0 {
		return nil, nil
	}
	return sk_opts.SkShutdown(how).Enum(), nil
}

// rdhup is RCV_SHUTDOWN if the socket polls POLLRDHUP.
func rdhup(fd int) uint8 {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&unix.POLLRDHUP != 0 {
		return rcvShutdown
	}
	return 0
}

// queuedDatagrams says how long the first datagram of a UDP socket's
// receive queue is, 0 if none waits (a zero-length one counts as 1).
func queuedDatagrams(fd int) (int, error) {
	var b [1]byte
	for {
		n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("peek at its receive queue: %w", err)
		}
		return max(n, 1), nil
	}
}

// dumpInetSockOpts adds to o the SOL_SOCKET options that matter to inet
// sockets, and the keepalive timing of a TCP socket.
func dumpInetSockOpts(fd, typ int, o *sk_opts.SkOptsEntry) error {
	flags := []struct {
		opt int
		set func(bool)
	}{
		{unix.SO_REUSEADDR, func(v bool) { o.Reuseaddr = ptr(v) }},
		{unix.SO_REUSEPORT, func(v bool) { o.SoReuseport = ptr(v) }},
		{unix.SO_BROADCAST, func(v bool) { o.SoBroadcast = ptr(v) }},
		{unix.SO_KEEPALIVE, func(v bool) { o.SoKeepalive = ptr(v) }},
		{unix.SO_DONTROUTE, func(v bool) { o.SoDontroute = ptr(v) }},
		{unix.SO_NO_CHECK, func(v bool) { o.SoNoCheck = ptr(v) }},
		{unix.SO_OOBINLINE, func(v bool) {
			if v {
				o.SoOobinline = ptr(uint32(1))
			}
		}},
	}
	for _, f := range flags {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, f.opt)
		if unsupportedOpt(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getsockopt %d: %w", f.opt, err)
		}
		f.set(v != 0)
	}
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if unsupportedOpt(err) {
		l, err = &unix.Linger{}, nil
	}
	if err != nil {
		return fmt.Errorf("getsockopt SO_LINGER: %w", err)
	}
	if l.Onoff != 0 {
		o.SoLinger = ptr(uint32(l.Linger))
	}
	dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	if unsupportedOpt(err) {
		dev, err = "", nil
	}
	if err != nil {
		return fmt.Errorf("getsockopt SO_BINDTODEVICE: %w", err)
	}
	if dev != "" {
		o.SoBoundDev = ptr(dev)
	}
	if typ == unix.SOCK_STREAM {
		for _, k := range []struct {
			opt int
			v   **uint32
		}{{unix.TCP_KEEPCNT, &o.TcpKeepcnt}, {unix.TCP_KEEPIDLE, &o.TcpKeepidle}, {unix.TCP_KEEPINTVL, &o.TcpKeepintvl}} {
			v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, k.opt)
			if unsupportedOpt(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("getsockopt TCP %d: %w", k.opt, err)
			}
			*k.v = ptr(uint32(v))
		}
	}
	return nil
}

// dumpIPOpts reads the IP-level options CRIU's ip_opts_entry keeps.
func dumpIPOpts(fd, family int) (*sk_inet.IpOptsEntry, error) {
	level, freebind, pktinfo := unix.IPPROTO_IP, unix.IP_FREEBIND, unix.IP_PKTINFO
	if family == unix.AF_INET6 {
		level, freebind, pktinfo = unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, unix.IPV6_RECVPKTINFO
	}
	fb, err := unix.GetsockoptInt(fd, level, freebind)
	if unsupportedOpt(err) {
		fb, err = 0, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getsockopt FREEBIND: %w", err)
	}
	pi, err := unix.GetsockoptInt(fd, level, pktinfo)
	if unsupportedOpt(err) {
		pi, err = 0, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getsockopt PKTINFO: %w", err)
	}
	o := &sk_inet.IpOptsEntry{Freebind: ptr(fb != 0), Pktinfo: ptr(pi != 0)}
	if family == unix.AF_INET {
		tos, err := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS)
		if err != nil && !unsupportedOpt(err) {
			return nil, fmt.Errorf("getsockopt IP_TOS: %w", err)
		}
		ttl, err2 := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL)
		if err2 != nil && !unsupportedOpt(err2) {
			return nil, fmt.Errorf("getsockopt IP_TTL: %w", err2)
		}
		if err == nil && err2 == nil {
			setIPTosTTL(o, uint32(tos), uint32(ttl))
		}
	}
	return o, nil
}

// restoreInetSockOpts sets what dumpInetSockOpts read.
func restoreInetSockOpts(fd int, e *sk_inet.InetSkEntry) error {
	o := e.GetOpts()
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	set := []struct {
		level, opt, v int
		have          bool
	}{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, b(o.GetReuseaddr()), o.Reuseaddr != nil},
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, b(o.GetSoReuseport()), o.SoReuseport != nil},
		{unix.SOL_SOCKET, unix.SO_BROADCAST, b(o.GetSoBroadcast()), o.GetSoBroadcast()},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, b(o.GetSoKeepalive()), o.GetSoKeepalive()},
		{unix.SOL_SOCKET, unix.SO_DONTROUTE, b(o.GetSoDontroute()), o.GetSoDontroute()},
		{unix.SOL_SOCKET, unix.SO_NO_CHECK, b(o.GetSoNoCheck()), o.GetSoNoCheck()},
		{unix.SOL_SOCKET, unix.SO_OOBINLINE, int(o.GetSoOobinline()), o.GetSoOobinline() != 0},
	}
	if e.GetType() == unix.SOCK_STREAM {
		set = append(set,
			struct {
				level, opt, v int
				have          bool
			}{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, int(o.GetTcpKeepcnt()), o.TcpKeepcnt != nil},
			struct {
				level, opt, v int
				have          bool
			}{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(o.GetTcpKeepidle()), o.TcpKeepidle != nil},
			struct {
				level, opt, v int
				have          bool
			}{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(o.GetTcpKeepintvl()), o.TcpKeepintvl != nil})
	}
	for _, s := range set {
		if !s.have {
			continue
		}
		if err := unix.SetsockoptInt(fd, s.level, s.opt, s.v); err != nil {
			return fmt.Errorf("setsockopt %d/%d to %d: %w", s.level, s.opt, s.v, err)
		}
	}
	if o.SoLinger != nil {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(o.GetSoLinger())}); err != nil {
			return fmt.Errorf("setsockopt SO_LINGER %d: %w", o.GetSoLinger(), err)
		}
	}
	return nil
}

// restoreTCPOpts sets TCP_CORK and TCP_NODELAY as tcp_opts has them.
func restoreTCPOpts(fd int, e *sk_inet.InetSkEntry) error {
	o, ok, err := getTCPOpts(e)
	if err != nil || !ok {
		return err
	}
	for _, x := range []struct {
		opt int
		v   bool
	}{{unix.TCP_NODELAY, o.Nodelay}, {unix.TCP_CORK, o.Cork}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, x.opt, boolInt(x.v)); err != nil {
			return fmt.Errorf("setsockopt TCP %d: %w", x.opt, err)
		}
	}
	return nil
}

// restoreIPOpts sets the options that decide what bind accepts, before it.
func restoreIPOpts(fd int, e *sk_inet.InetSkEntry) error {
	family := int(e.GetFamily())
	if family == unix.AF_INET6 && e.V6Only != nil {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(e.GetV6Only())); err != nil {
			return fmt.Errorf("setsockopt IPV6_V6ONLY: %w", err)
		}
	}
	io := e.GetIpOpts()
	if io == nil {
		return nil
	}
	if io.GetRaw() != nil {
		return fmt.Errorf("raw socket options in ip_opts: raw sockets are not supported yet")
	}
	level, freebind, pktinfo := unix.IPPROTO_IP, unix.IP_FREEBIND, unix.IP_PKTINFO
	if family == unix.AF_INET6 {
		level, freebind, pktinfo = unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, unix.IPV6_RECVPKTINFO
	}
	if io.GetFreebind() {
		if err := unix.SetsockoptInt(fd, level, freebind, 1); err != nil {
			return fmt.Errorf("setsockopt FREEBIND: %w", err)
		}
	}
	if io.GetPktinfo() {
		if err := unix.SetsockoptInt(fd, level, pktinfo, 1); err != nil {
			return fmt.Errorf("setsockopt PKTINFO: %w", err)
		}
	}
	tos, ttl, hasTOS, hasTTL, err := getIPTosTTL(io)
	if err != nil {
		return err
	}
	if hasTOS && family == unix.AF_INET {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, int(tos)); err != nil {
			return fmt.Errorf("setsockopt IP_TOS %#x: %w", tos, err)
		}
	}
	if hasTTL && family == unix.AF_INET {
		// getsockopt gives the route's TTL for an unset one; setting
		// it pins the same value.
		if cur, err := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL); err != nil || cur != int(ttl) {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, int(ttl)); err != nil {
				return fmt.Errorf("setsockopt IP_TTL %d: %w", ttl, err)
			}
		}
	}
	return nil
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// inetBuild is the restore of the inet sockets of an image.
type inetBuild struct {
	r    *Restorer
	ents []*sk_inet.InetSkEntry
	fds  map[uint32]int // file id → the socket made
	// conns are the TCP connections rebuilt in repair mode, let go of
	// once every socket exists (a peer in the tree must be there first).
	conns []*tcpConn
}

// makeInetSockets makes every inet socket of the image, on a thread of
// its own that has joined the tree's network namespace.
func (r *Restorer) makeInetSockets() error {
	b := &inetBuild{r: r, fds: map[uint32]int{}}
	for _, fe := range r.order {
		if e := fe.GetIsk(); e != nil {
			b.ents = append(b.ents, e)
		}
	}
	err := ns.OnThrowawayThread(func() error {
		if err := enterTree(r.NetNS, ""); err != nil {
			return err
		}
		return b.build()
	})
	if err != nil {
		for _, fd := range b.fds {
			unix.Close(fd)
		}
		return err
	}
	r.isk = b.fds
	return nil
}

// build makes listeners first: a connection accepted from one shares its
// port, which the listener, made later, could not take (listen checks
// the port again, against sockets that did not come from it).
func (b *inetBuild) build() error {
	for _, listeners := range []bool{true, false} {
		for _, e := range b.ents {
			if (e.GetState() == tcpListen) != listeners {
				continue
			}
			fd, err := b.make(e)
			if err != nil {
				return fmt.Errorf("%s: %w", entryWhere(e), err)
			}
			b.fds[e.GetId()] = fd
		}
	}
	for _, c := range b.conns {
		if err := c.fillSent(); err != nil {
			return fmt.Errorf("%s: %w", entryWhere(c.e), err)
		}
	}
	for _, c := range b.conns {
		if err := c.release(); err != nil {
			return fmt.Errorf("%s: %w", entryWhere(c.e), err)
		}
	}
	for _, e := range b.ents {
		fd := b.fds[e.GetId()]
		if err := restoreSockOpts(fd, e.GetOpts()); err != nil {
			return fmt.Errorf("%s: %w", entryWhere(e), err)
		}
		if err := restoreInetSockOpts(fd, e); err != nil {
			return fmt.Errorf("%s: %w", entryWhere(e), err)
		}
		if err := restoreTCPOpts(fd, e); err != nil {
			return fmt.Errorf("%s: %w", entryWhere(e), err)
		}
		if how, ok := shutdownHow[e.GetShutdown()]; ok {
			// A socket that is not connected answers ENOTCONN, but is
			// marked shut down all the same.
			if err := unix.Shutdown(fd, how); err != nil && !errors.Is(err, unix.ENOTCONN) {
				return fmt.Errorf("%s: shutdown %v: %w", entryWhere(e), e.GetShutdown(), err)
			}
		}
		fl := int(e.GetFlags()) &^ unix.O_ACCMODE
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil {
			return fmt.Errorf("%s: set flags %#o: %w", entryWhere(e), fl, err)
		}
	}
	return nil
}

// entryWhere names a socket of the image in errors.
func entryWhere(e *sk_inet.InetSkEntry) string {
	family := int(e.GetFamily())
	src, _ := wordsAddr(e.GetSrcAddr(), family)
	l := inetAddr{ip: src, port: uint16(e.GetSrcPort())}
	var p inetAddr
	if len(e.GetDstAddr()) > 0 {
		dst, _ := wordsAddr(e.GetDstAddr(), family)
		p = inetAddr{ip: dst, port: uint16(e.GetDstPort())}
	}
	return fmt.Sprintf("inet socket %d: %s", e.GetIno(), inetWhere(protoName(family, int(e.GetType()), int(e.GetProto())), l, p, tcpStateName(e.GetState())))
}

// make makes one socket: bound, and listening or connected as it was.
func (b *inetBuild) make(e *sk_inet.InetSkEntry) (int, error) {
	family, typ := int(e.GetFamily()), int(e.GetType())
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, int(e.GetProto()))
	if errors.Is(err, unix.EACCES) && typ == unix.SOCK_DGRAM && (e.GetProto() == unix.IPPROTO_ICMP || e.GetProto() == unix.IPPROTO_ICMPV6) {
		fd, err = pingSocket(family, int(e.GetProto()))
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := b.setup(fd, e); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// pingSocket makes an ICMP (ping) socket that gocr's own groups may not
// make: the kernel lets a group of net.ipv4.ping_group_range make them
// (both families), which the tree's processes are in and gocr, root of
// the host, need not be (a tree in a user namespace of its own). The
// calling thread, in the tree's network namespace, takes the range's
// first group as its only supplementary group for the call, with
// setgroups on this thread alone (not Go's, which changes every thread;
// and not its egid, whose change would make gocr undumpable), and then
// its own groups back.
func pingSocket(family, proto int) (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if err != nil {
		return -1, fmt.Errorf("ping_group_range: %w", err)
	}
	var low, high uint32
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low > high {
		return -1, fmt.Errorf("ping_group_range %q: no group may make ping sockets: %w", b, unix.EACCES)
	}
	own, err := unix.Getgroups()
	if err != nil {
		return -1, err
	}
	setgroups := func(gs []uint32) error {
		var p unsafe.Pointer
		if len(gs) > 0 {
			p = unsafe.Pointer(&gs[0])
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(p), 0); e != 0 {
			return e
		}
		return nil
	}
	if err := setgroups([]uint32{low}); err != nil {
		return -1, fmt.Errorf("take group %d of ping_group_range: %w", low, err)
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	back := make([]uint32, len(own))
	for i, g := range own {
		back[i] = uint32(g)
	}
	if e := setgroups(back); e != nil {
		// The thread is thrown away with the build, which fails.
		if err == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("back to groups %v after a ping socket: %w", own, e)
	}
	return fd, err
}

func (b *inetBuild) setup(fd int, e *sk_inet.InetSkEntry) error {
	family := int(e.GetFamily())
	if err := restoreIPOpts(fd, e); err != nil {
		return err
	}
	if dev := e.GetOpts().GetSoBoundDev(); dev != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev); err != nil {
			return fmt.Errorf("setsockopt SO_BINDTODEVICE %q: %w", dev, err)
		}
	}
	src, err := wordsAddr(e.GetSrcAddr(), family)
	if err != nil {
		return fmt.Errorf("src_addr: %w", err)
	}
	local := sockaddr(family, src, e.GetSrcPort())
	if e.GetType() == unix.SOCK_DGRAM {
		// A UDP socket takes its port as it did: with the same reuse
		// options as it had, set before bind.
		if err := restoreInetSockOpts(fd, e); err != nil {
			return err
		}
		if e.GetSrcPort() != 0 || !src.IsUnspecified() {
			if err := bindFreely(fd, local, e); err != nil {
				return fmt.Errorf("bind: %w", err)
			}
		}
		if e.GetState() == tcpEstablished {
			dst, err := wordsAddr(e.GetDstAddr(), family)
			if err != nil {
				return fmt.Errorf("dst_addr: %w", err)
			}
			if err := unix.Connect(fd, sockaddr(family, dst, e.GetDstPort())); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
		}
		return nil
	}
	switch e.GetState() {
	case tcpEstablished:
		if b.r.TCPClose {
			// Closed, as after its peer's end (criu's --tcp-close): a
			// socket shut down both ways reads end of file and polls
			// POLLHUP; shutdown answers ENOTCONN but marks it so.
			if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		}
		c, err := b.r.restoreTCPConn(fd, e, local)
		if err != nil {
			return err
		}
		b.conns = append(b.conns, c)
		return nil
	case tcpListen, tcpClose:
		if e.GetSrcPort() == 0 && src.IsUnspecified() {
			return nil // never bound
		}
		// Bound as the task did, with its reuse options; a TCP port still
		// held by someone else (a connection in TIME_WAIT, which takes
		// no new data) is taken in repair mode. No repair mode for MPTCP.
		if err := restoreInetSockOpts(fd, e); err != nil {
			return err
		}
		err := bindFreely(fd, local, e)
		if errors.Is(err, unix.EADDRINUSE) && e.GetProto() == unix.IPPROTO_TCP {
			err = bindRepaired(fd, local)
		}
		if err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if e.GetState() == tcpListen {
			if err := unix.Listen(fd, int(e.GetBacklog())); err != nil {
				return fmt.Errorf("listen %d: %w", e.GetBacklog(), err)
			}
		}
		return nil
	}
	return fmt.Errorf("state %s: not supported yet", tcpStateName(e.GetState()))
}

// bindFreely binds a socket to its address. An address the namespace
// does not have (any more) was taken with IP_FREEBIND, which the task may
// have turned off since: it is bound with it on, then the option is put
// back as the image has it.
func bindFreely(fd int, sa unix.Sockaddr, e *sk_inet.InetSkEntry) error {
	err := unix.Bind(fd, sa)
	if !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	level, opt := unix.IPPROTO_IP, unix.IP_FREEBIND
	if e.GetFamily() == unix.AF_INET6 {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_FREEBIND
	}
	if serr := unix.SetsockoptInt(fd, level, opt, 1); serr != nil {
		return err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, level, opt, boolInt(e.GetIpOpts().GetFreebind()))
}

// bindRepaired binds a TCP socket in repair mode, which takes the port
// whoever holds it (SK_FORCE_REUSE), then leaves repair mode: the socket
// is a plain one again, its reuse options set later from the image.
func bindRepaired(fd int, sa unix.Sockaddr) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return fmt.Errorf("TCP_REPAIR on: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP); err != nil {
		return fmt.Errorf("TCP_REPAIR off: %w", err)
	}
	return nil
}

// openInet hands out the socket made for a file entry, making all of
// them on first use.
func (r *Restorer) openInet(e *fdinfo.FileEntry) (int, error) {
	if r.isk == nil {
		if err := r.makeInetSockets(); err != nil {
			return -1, err
		}
	}
	fd, ok := r.isk[e.GetId()]
	if !ok {
		return -1, fmt.Errorf("inet socket %d: handed out already", e.GetIsk().GetIno())
	}
	delete(r.isk, e.GetId())
	return fd, nil
}

// CheckInet checks the inet sockets of files.img as restore would: known
// families, types and states, addresses of the right size, and the TCP
// stream of each connection in the image directory, unless the restore
// closes connections (closing).
func CheckInet(dir *image.Dir, e *sk_inet.InetSkEntry, closing bool) error {
	family := int(e.GetFamily())
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return fmt.Errorf("family %d: not an inet family", family)
	}
	if _, err := wordsAddr(e.GetSrcAddr(), family); err != nil {
		return fmt.Errorf("src_addr: %w", err)
	}
	if len(e.GetDstAddr()) > 0 {
		if _, err := wordsAddr(e.GetDstAddr(), family); err != nil {
			return fmt.Errorf("dst_addr: %w", err)
		}
	}
	typ, proto, st := int(e.GetType()), int(e.GetProto()), e.GetState()
	switch {
	case typ == unix.SOCK_DGRAM && (proto == unix.IPPROTO_UDP || proto == ipprotoUDPLite || proto == unix.IPPROTO_ICMP || proto == unix.IPPROTO_ICMPV6):
		if st != tcpEstablished && st != tcpClose {
			return fmt.Errorf("state %s: a UDP socket is ESTABLISHED or CLOSE", tcpStateName(st))
		}
	case typ == unix.SOCK_STREAM && proto == ipprotoMPTCP:
		if st != tcpListen && st != tcpClose {
			return fmt.Errorf("MPTCP state %s: only listeners and unconnected sockets are supported", tcpStateName(st))
		}
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP:
		switch st {
		case tcpListen, tcpClose:
		case tcpEstablished:
			if !closing && !dir.Exists(image.TCPStreamFile(e.GetIno())) {
				return fmt.Errorf("an established connection without its %s (dumped with --tcp-close): restore with --tcp-close", image.TCPStreamFile(e.GetIno()))
			}
		default:
			return fmt.Errorf("TCP state %s: not supported yet", tcpStateName(st))
		}
	default:
		return fmt.Errorf("%s: not supported yet", protoName(family, typ, proto))
	}
	return nil
}
