package files

import (
	"net/netip"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel structures of inet.go, tcp.go and sockopts.go have the sizes
// the kernel's headers give them.
func TestInetStructSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"tcp_repair_window", unsafe.Sizeof(tcpRepairWindow{}), sizeofTCPRepairWindow},
		{"tcp_repair_opt", unsafe.Sizeof(tcpRepairOpt{}), sizeofTCPRepairOpt},
		{"sock_filter", unsafe.Sizeof(sockFilter{}), sizeofSockFilter},
		{"sock_fprog", unsafe.Sizeof(sockFprog{}), sizeofSockFprog},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}

// Addresses go to inet_sk_entry as the words of in_addr/in6_addr and
// come back the same.
func TestAddrWords(t *testing.T) {
	for _, c := range []struct {
		addr   string
		family int
		words  int
	}{{"127.0.0.1", unix.AF_INET, 1}, {"10.1.2.3", unix.AF_INET, 1}, {"::1", unix.AF_INET6, 4}, {"2001:db8::ff00:42:8329", unix.AF_INET6, 4}, {"::ffff:127.0.0.1", unix.AF_INET6, 4}} {
		ip := netip.MustParseAddr(c.addr)
		w := addrWords(ip, c.family)
		if len(w) != c.words {
			t.Errorf("%s: %d words", c.addr, len(w))
		}
		back, err := wordsAddr(w, c.family)
		if err != nil || back != ip {
			t.Errorf("%s: back %v, %v", c.addr, back, err)
		}
	}
	// 127.0.0.1 is the bytes 7f 00 00 01, read as the machine reads them.
	if w := addrWords(netip.MustParseAddr("127.0.0.1"), unix.AF_INET); w[0] != 0x0100007f {
		t.Errorf("127.0.0.1 is word %#x, want 0x0100007f", w[0])
	}
	if _, err := wordsAddr([]uint32{1, 2}, unix.AF_INET); err == nil {
		t.Error("two words for an IPv4 address accepted")
	}
}

// A classic BPF filter read from one socket attaches to another and reads
// back the same.
func TestSocketFilterRoundTrip(t *testing.T) {
	a, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(a)
	// ld #len; jge #100, accept, drop: lengths of 100 and more pass.
	prog := []uint64{0x80 | 0<<16, 0x35 | 0<<16 | 1<<24 | 100<<32, 0x06 | 0xffff<<32, 0x06}
	if err := restoreFilter(a, prog); err != nil {
		t.Fatal(err)
	}
	got, err := dumpFilter(a)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, prog) {
		t.Fatalf("dumped %#x, attached %#x", got, prog)
	}
	b, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(b)
	if err := restoreFilter(b, got); err != nil {
		t.Fatal(err)
	}
	if again, err := dumpFilter(b); err != nil || !slices.Equal(again, prog) {
		t.Fatalf("second socket: %#x, %v", again, err)
	}
	if none, err := dumpFilter(unixSocketNoFilter(t)); err != nil || none != nil {
		t.Errorf("a socket without a filter: %#x, %v", none, err)
	}
}

func unixSocketNoFilter(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}
