package sockdiag

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestInetSizes(t *testing.T) {
	if n := unsafe.Sizeof(InetDiagReqV2{}); n != 56 {
		t.Errorf("inet_diag_req_v2: %d bytes, want 56", n)
	}
	if n := unsafe.Sizeof(InetDiagSockID{}); n != 48 {
		t.Errorf("inet_diag_sockid: %d bytes, want 48", n)
	}
}

// A bound UDP socket shut down for writing is listed with its inode and
// SEND_SHUTDOWN.
func TestAllInetShutdown(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	unix.Shutdown(fd, unix.SHUT_WR) //nolint:errcheck // ENOTCONN, but marked
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all, err := c.AllInet(unix.AF_INET, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatal(err)
	}
	s := all[uint32(st.Ino)]
	if s == nil {
		t.Fatalf("socket %d not among the %d listed", st.Ino, len(all))
	}
	if s.Shutdown != 2 {
		t.Errorf("shutdown %d, want 2 (SEND_SHUTDOWN)", s.Shutdown)
	}
}
