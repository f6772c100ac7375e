package workloads

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// NetnsSysctl changes sysctls of the tree's own network namespace and
// holds a ping socket (zdtm's netns-dev, netns_sub_sysctl, socket_icmp):
//
//   - all/forwarding on, then all/accept_redirects on again (turning
//     forwarding on turns that off: a restore must write them until they
//     stop changing each other);
//   - default/rp_filter 2, lo's arp_ignore 2, net.unix.max_dgram_qlen 123;
//   - ping_group_range "0 0": only group 0 of the tree's user namespace may
//     make ping sockets, which gocr, root of the host, is not in under uns.
//
// After restore each value is what it was, and the ping socket still
// gets an echo reply from 127.0.0.1.
var NetnsSysctl = lib.Workload{Name: "netns_sysctl", Run: func(t *lib.T) {
	set := []struct{ path, value string }{
		{"/proc/sys/net/ipv4/conf/all/forwarding", "1"},
		{"/proc/sys/net/ipv4/conf/all/accept_redirects", "1"},
		{"/proc/sys/net/ipv4/conf/default/rp_filter", "2"},
		{"/proc/sys/net/ipv4/conf/lo/arp_ignore", "2"},
		{"/proc/sys/net/unix/max_dgram_qlen", "123"},
		{"/proc/sys/net/ipv4/ping_group_range", "0 0"},
	}
	kept := set[:0]
	for _, s := range set {
		err := os.WriteFile(s.path, []byte(s.value), 0)
		if errors.Is(err, os.ErrNotExist) {
			// Not in this kernel's namespaces (net.unix before 5.15 in a
			// user namespace of its own, say): nothing to keep.
			t.Logf("%s: not in this namespace, left out", s.path)
			continue
		}
		if err != nil {
			t.Fatal(fmt.Errorf("write %s: %w", s.path, err))
		}
		kept = append(kept, s)
	}
	set = kept
	check := func(when string) {
		for _, s := range set {
			b, err := os.ReadFile(s.path)
			if got := strings.Join(strings.Fields(string(b)), " "); err != nil || got != s.value {
				t.Fail("%s: %s is %q (%v), want %q", when, s.path, got, err, s.value)
			}
		}
	}
	if err := loUp(); err != nil {
		t.Fatal(err)
	}
	ping, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(fmt.Errorf("ping socket: %w", err))
	}
	check("before the dump")
	if err := echo(ping, 1); err != nil {
		t.Fatal(fmt.Errorf("before the dump: %w", err))
	}
	t.Ready()
	t.WaitSignal()
	check("after restore")
	if err := echo(ping, 2); err != nil {
		t.Fail("after restore: %v", err)
	}
	t.Pass()
}}

// loUp brings the namespace's loopback up.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// echo sends an ICMP echo request with sequence seq to 127.0.0.1 on a
// ping socket (the kernel sets id and checksum) and waits for the reply.
func echo(fd int, seq uint16) error {
	req := []byte{8, 0, 0, 0, 0, 0, byte(seq >> 8), byte(seq)}
	to := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Sendto(fd, req, 0, to); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	b := make([]byte, 64)
	n, _, err := unix.Recvfrom(fd, b, 0)
	if err != nil {
		return fmt.Errorf("no echo reply: %w", err)
	}
	if n < 8 || b[0] != 0 || b[6] != byte(seq>>8) || b[7] != byte(seq) {
		return fmt.Errorf("reply %x, want an echo reply with sequence %d", b[:n], seq)
	}
	return nil
}
