package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/sockdiag"
)

// probeUnixDiag asks sock_diag (CONFIG_UNIX_DIAG) about a socket pair of
// our own.
func probeUnixDiag(*probeEnv) (bool, string) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("socketpair: %v", err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	c, err := sockdiag.Open()
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	all, err := c.AllUnix()
	if err != nil {
		return false, err.Error()
	}
	var st unix.Stat_t
	if err := unix.Fstat(p[0], &st); err != nil {
		return false, fmt.Sprintf("fstat: %v", err)
	}
	if u := all[uint32(st.Ino)]; u == nil || u.Peer == 0 {
		return false, "sock_diag does not show a socket pair's peer"
	}
	return true, fmt.Sprintf("sock_diag lists %d unix sockets with peers", len(all))
}

// probeUnixPeekOff peeks the second of two datagrams with SO_PEEK_OFF
// (added for CRIU in 3.4).
func probeUnixPeekOff(*probeEnv) (bool, string) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("socketpair: %v", err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	for _, m := range []string{"a", "bc"} {
		if _, err := unix.Write(p[0], []byte(m)); err != nil {
			return false, fmt.Sprintf("write: %v", err)
		}
	}
	if err := unix.SetsockoptInt(p[1], unix.SOL_SOCKET, unix.SO_PEEK_OFF, 1); err != nil {
		return false, fmt.Sprintf("SO_PEEK_OFF: %v", err)
	}
	buf := make([]byte, 8)
	n, _, err := unix.Recvfrom(p[1], buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil || string(buf[:n]) != "bc" {
		return false, fmt.Sprintf("peek at offset 1: %q, %v", buf[:max(n, 0)], err)
	}
	return true, "a datagram socket peeks past its first datagram"
}
