package workloads

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// tcpBulk is what the bulk connection's client writes without the server
// reading: far more than both ends' buffers hold, so at the checkpoint
// some of it sits in the server's receive queue, some in the client's
// send queue as sent but not acknowledged, and some not sent at all (its
// writer blocked in the middle of a write).
const tcpBulk = 8 << 20

func tcpPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>11)
	}
	return b
}

// TCPEstablished holds TCP sockets over loopback in every state gocr
// checkpoints with --tcp-established: a listener (IPv4, and IPv6 where
// the namespace has ::1), a connection accepted from it with unread data
// both ways and TCP_NODELAY and keepalive options, a bulk connection whose
// client is blocked writing into a full window, a bound socket that is
// not listening, and UDP sockets bound and connected. After the restore
// every socket must have its addresses and options, the unread data must
// read back byte for byte, the bulk writer must finish and its data
// arrive whole, the listener must accept a new connection and the UDP
// sockets must exchange datagrams.
var TCPEstablished = lib.Workload{Name: "tcp_established", Run: func(t *lib.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback here (%v): IPv4 only", err)
		ln6 = nil
	}
	dial := func(l net.Listener) (*net.TCPConn, *net.TCPConn) {
		c, err := net.Dial(l.Addr().Network(), l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.TCPConn), s.(*net.TCPConn)
	}
	client, server := dial(ln)
	if err := client.SetNoDelay(true); err != nil {
		t.Fatal(err)
	}
	if err := server.SetKeepAlive(true); err != nil {
		t.Fatal(err)
	}
	if err := server.SetKeepAlivePeriod(77 * time.Second); err != nil {
		t.Fatal(err)
	}
	toServer, toClient := []byte("from the client, unread"), []byte("from the server, unread too")
	if _, err := client.Write(toServer); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write(toClient); err != nil {
		t.Fatal(err)
	}
	var c6, s6 *net.TCPConn
	if ln6 != nil {
		c6, s6 = dial(ln6)
		if _, err := c6.Write([]byte("six")); err != nil {
			t.Fatal(err)
		}
	}
	bulkC, bulkS := dial(ln)
	bulk := tcpPattern(tcpBulk)
	wrote := make(chan error, 1)
	go func() {
		_, err := bulkC.Write(bulk)
		wrote <- err
	}()
	// A bound TCP socket that never listens or connects.
	bound, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(bound, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(bound, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	boundName, _ := unix.Getsockname(bound)
	// UDP: one bound, one connected to it.
	u1, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u2, err := net.DialUDP("udp4", nil, u1.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the bulk writer to block: the window is full.
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-wrote:
		t.Fail("the bulk write of %d bytes finished before the checkpoint (%v): the buffers hold it all", tcpBulk, err)
		return
	default:
	}
	type names struct{ local, remote string }
	conns := map[string]*net.TCPConn{"client": client, "server": server, "bulk client": bulkC, "bulk server": bulkS}
	if c6 != nil {
		conns["v6 client"], conns["v6 server"] = c6, s6
	}
	before := map[string]names{}
	for n, c := range conns {
		before[n] = names{c.LocalAddr().String(), c.RemoteAddr().String()}
	}
	keepIdle := func() int {
		raw, err := server.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		v := -1
		raw.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE) }) //nolint:errcheck
		return v
	}
	idle := keepIdle()

	t.Ready()
	t.WaitSignal()

	for n, c := range conns {
		if now := (names{c.LocalAddr().String(), c.RemoteAddr().String()}); now != before[n] {
			t.Fail("%s: addresses %v, were %v", n, now, before[n])
		}
	}
	if got := keepIdle(); got != idle {
		t.Fail("server TCP_KEEPIDLE %d, was %d", got, idle)
	}
	deadline := time.Now().Add(20 * time.Second)
	readExactly := func(what string, c *net.TCPConn, want []byte) {
		c.SetReadDeadline(deadline) //nolint:errcheck
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fail("%s: read: %v", what, err)
			return
		}
		if !bytes.Equal(got, want) {
			t.Fail("%s: read %q, want %q", what, got, want)
		}
	}
	readExactly("server", server, toServer)
	readExactly("client", client, toClient)
	// The connection goes on both ways.
	if _, err := client.Write([]byte("after")); err != nil {
		t.Fail("client write after restore: %v", err)
	}
	readExactly("server after restore", server, []byte("after"))
	if _, err := server.Write([]byte("reply")); err != nil {
		t.Fail("server write after restore: %v", err)
	}
	readExactly("client after restore", client, []byte("reply"))
	if c6 != nil {
		readExactly("v6 server", s6, []byte("six"))
	}
	// The bulk data, whole and in order.
	bulkS.SetReadDeadline(deadline) //nolint:errcheck
	got := make([]byte, tcpBulk)
	if n, err := io.ReadFull(bulkS, got); err != nil {
		t.Fail("bulk: read %d of %d bytes: %v", n, tcpBulk, err)
	} else if !bytes.Equal(got, bulk) {
		i := 0
		for i < len(got) && got[i] == bulk[i] {
			i++
		}
		t.Fail("bulk: the data differs from byte %d on", i)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fail("bulk write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fail("bulk write did not finish")
	}
	// The listener accepts again.
	c2, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fail("connect to the restored listener: %v", err)
	} else {
		ln.(*net.TCPListener).SetDeadline(deadline) //nolint:errcheck
		s2, err := ln.Accept()
		if err != nil {
			t.Fail("accept on the restored listener: %v", err)
		} else {
			s2.Close()
		}
		c2.Close()
	}
	if name, err := unix.Getsockname(bound); err != nil || fmt.Sprint(name) != fmt.Sprint(boundName) {
		t.Fail("bound socket: name %v (%v), was %v", name, err, boundName)
	}
	if v, err := unix.GetsockoptInt(bound, unix.SOL_SOCKET, unix.SO_REUSEADDR); err != nil || v != 1 {
		t.Fail("bound socket: SO_REUSEADDR %d (%v), want 1", v, err)
	}
	// UDP both ways.
	if _, err := u2.Write([]byte("ping")); err != nil {
		t.Fail("udp write: %v", err)
	}
	u1.SetReadDeadline(deadline) //nolint:errcheck
	buf := make([]byte, 16)
	n, from, err := u1.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" || from.String() != u2.LocalAddr().String() {
		t.Fail("udp read: %q from %v (%v), want ping from %v", buf[:n], from, err, u2.LocalAddr())
	} else if _, err := u1.WriteToUDP([]byte("pong"), from); err != nil {
		t.Fail("udp reply: %v", err)
	} else {
		u2.SetReadDeadline(deadline) //nolint:errcheck
		if n, err := u2.Read(buf); err != nil || string(buf[:n]) != "pong" {
			t.Fail("udp reply read: %q (%v)", buf[:n], err)
		}
	}
	t.Pass()
}}
