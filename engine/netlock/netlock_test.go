package netlock

import (
	"errors"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNewNetns runs fn on a thread of its own in a fresh network namespace
// whose loopback is up; the thread ends with it.
func inNewNetns(t *testing.T, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("lo")
		ifr.SetUint16(unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			t.Errorf("lo up: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// A locked connection carries nothing; once the lock is removed, what
// was written meanwhile arrives (retransmitted).
func TestLockDropsAndRemoveLetsThrough(t *testing.T) {
	inNewNetns(t, func() {
		l, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		defer unix.Close(l)
		if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Error(err)
			return
		}
		unix.Listen(l, 1) //nolint:errcheck
		sa, _ := unix.Getsockname(l)
		c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		defer unix.Close(c)
		if err := unix.Connect(c, sa); err != nil {
			t.Error(err)
			return
		}
		s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(s)
		ls, _ := unix.Getsockname(c)
		addr := func(sa unix.Sockaddr) netip.AddrPort {
			a := sa.(*unix.SockaddrInet4)
			return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
		}
		name := TableName(4242)
		if err := Add("", name, Conn{Local: addr(ls), Peer: addr(sa)}); err != nil {
			t.Error(err)
			return
		}
		if ok, err := Has("", name); !ok || err != nil {
			t.Errorf("table %s after Add: %v, %v", name, ok, err)
		}
		if _, err := unix.Write(c, []byte("held")); err != nil {
			t.Error(err)
			return
		}
		tv := unix.Timeval{Usec: 300000}
		unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) //nolint:errcheck
		buf := make([]byte, 8)
		if n, err := unix.Read(s, buf); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("read through the lock: %d bytes (%q), %v; want nothing", n, buf[:max(n, 0)], err)
		}
		if err := Remove("", name); err != nil {
			t.Error(err)
		}
		if ok, _ := Has("", name); ok {
			t.Errorf("table %s after Remove", name)
		}
		if err := Remove("", name); err != nil {
			t.Errorf("Remove of a table not there: %v", err)
		}
		tv = unix.Timeval{Sec: 10}
		unix.SetsockoptTimeval(s, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) //nolint:errcheck
		start := time.Now()
		if n, err := unix.Read(s, buf); err != nil || string(buf[:n]) != "held" {
			t.Errorf("read after the lock: %q, %v", buf[:max(n, 0)], err)
		}
		t.Logf("retransmitted %v after the unlock", time.Since(start).Round(time.Millisecond))
	})
}

// A namespace locked whole lets no new connection in, not even one to a
// listener of its own, without a word (no reset); a connection marked
// RepairMark gets through; Remove opens it again.
func TestLockAllDropsAllButMarked(t *testing.T) {
	inNewNetns(t, func() {
		l, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		defer unix.Close(l)
		if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Error(err)
			return
		}
		unix.Listen(l, 4) //nolint:errcheck
		sa, _ := unix.Getsockname(l)
		// dial connects with a 300 ms timeout, with mark on the packets.
		dial := func(mark int) error {
			c, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			defer unix.Close(c)
			if mark != 0 {
				if err := unix.SetsockoptInt(c, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
					return err
				}
			}
			tv := unix.Timeval{Usec: 300000}
			unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv) //nolint:errcheck
			return unix.Connect(c, sa)
		}
		name := TableName(4343)
		if err := LockAll("", name); err != nil {
			t.Error(err)
			return
		}
		if err := dial(0); !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EAGAIN) {
			t.Errorf("connect through the lock: %v; want a timeout", err)
		}
		// Both ways: the listener marks its answers too.
		unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_MARK, RepairMark) //nolint:errcheck
		if err := dial(RepairMark); err != nil {
			t.Errorf("connect marked %#x through the lock: %v", RepairMark, err)
		}
		unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_MARK, 0) //nolint:errcheck
		if err := Remove("", name); err != nil {
			t.Error(err)
		}
		if err := dial(0); err != nil {
			t.Errorf("connect after the lock: %v", err)
		}
	})
}
