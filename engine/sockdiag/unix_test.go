package sockdiag

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's sizes (linux/unix_diag.h).
func TestSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"unix_diag_req", unsafe.Sizeof(UnixDiagReq{}), 24},
		{"unix_diag_msg", unsafe.Sizeof(UnixDiagMsg{}), 16},
		{"unix_diag_vfs", unsafe.Sizeof(UnixDiagVFS{}), 8},
		{"unix_diag_rqlen", unsafe.Sizeof(UnixDiagRQLen{}), 8},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func inode(t *testing.T, fd int) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

func socket(t *testing.T, typ int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestAllUnix builds sockets of each shape the engine meets and checks what
// the kernel says of them.
func TestAllUnix(t *testing.T) {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.Write(p[0], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(p[1], unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "l.sock")
	l := socket(t, unix.SOCK_STREAM)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 7); err != nil {
		t.Fatal(err)
	}
	c1, c2 := socket(t, unix.SOCK_STREAM), socket(t, unix.SOCK_STREAM)
	for _, c := range []int{c1, c2} {
		if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
	}
	abs := socket(t, unix.SOCK_DGRAM)
	absName := "@gocr-sockdiag-test-" + filepath.Base(path) + string(rune('a'+os.Getpid()%26))
	if err := unix.Bind(abs, &unix.SockaddrUnix{Name: absName}); err != nil {
		t.Fatal(err)
	}

	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	all, err := c.AllUnix()
	if err != nil {
		t.Fatal(err)
	}
	get := func(fd int) *Unix {
		t.Helper()
		u := all[inode(t, fd)]
		if u == nil {
			t.Fatalf("socket %d not listed", inode(t, fd))
		}
		return u
	}
	a, b := get(p[0]), get(p[1])
	if a.Peer != b.Ino || b.Peer != a.Ino || a.Type != unix.SOCK_STREAM || a.State != StateEstablished {
		t.Errorf("pair: %+v %+v", a, b)
	}
	if b.RQueue != 5 || b.Shutdown != 2 || a.Shutdown != 1 {
		t.Errorf("pair queue/shutdown: rq %d shutdown %d/%d, want 5 and 1/2", b.RQueue, a.Shutdown, b.Shutdown)
	}
	lu := get(l)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if lu.State != StateListen || !slices.Equal(lu.Icons, []uint32{inode(t, c1), inode(t, c2)}) ||
		lu.RQueue != 2 || lu.WQueue != 7 {
		t.Errorf("listener: %+v, want icons %d %d, backlog 7", lu, inode(t, c1), inode(t, c2))
	}
	if string(bytes.TrimRight(lu.Name, "\x00")) != path || !lu.HasVFS || uint64(lu.VFSIno) != st.Ino {
		t.Errorf("listener name %q vfs %v %d, want %s inode %d", lu.Name, lu.HasVFS, lu.VFSIno, path, st.Ino)
	}
	if cu := get(c1); cu.State != StateEstablished || cu.Peer != 0 {
		t.Errorf("pending client: %+v, want established without a peer inode", cu)
	}
	if au := get(abs); string(au.Name) != "\x00"+absName[1:] || au.HasVFS || au.State != StateClose {
		t.Errorf("abstract: %+v name %q", au, au.Name)
	}
}

func TestParseUnixRefusesGarbage(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		make([]byte, 15),
		append(make([]byte, 16), 3, 0, 0, 0), // attribute shorter than its header
		append(make([]byte, 16), 200, 0, 2, 0, 1),        // attribute longer than the message
		append(make([]byte, 16), 6, 0, 2, 0, 1, 2, 0, 0), // peer of 2 bytes
	} {
		if _, err := ParseUnix(b); err == nil {
			t.Errorf("ParseUnix(%v) accepted garbage", b)
		}
	}
}

func FuzzParseUnix(f *testing.F) {
	f.Add(append(make([]byte, 16), 8, 0, 2, 0, 1, 2, 3, 4))
	f.Add(append(make([]byte, 16), 12, 0, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseUnix(b)
		parseAnswers(b, 0, map[uint32]*Unix{})
	})
}
