package files

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/sockdiag"
)

// These tests dump the sockets of a helper process that holds them (a
// sleep started with them as its fds 3, 4, ...) and restore them into the
// test process: the two halves of unix.go without the rest of the engine.
// They need root (pidfd_getfd of another process).

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: pidfd_getfd of another process")
	}
}

// holder starts a process whose fds 3, 4, ... are fds, and closes the
// test's copies.
func holder(t *testing.T, fds ...int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	for _, fd := range fds {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(fd), "sock"))
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	// Wait until it sleeps: its dynamic loader opens files of its own
	// first.
	for range 1000 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", cmd.Process.Pid))
		if strings.Contains(string(b), "nanosleep") {
			return cmd
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the helper never went to sleep")
	return nil
}

func kill(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

func pair(t *testing.T, typ int) [2]int {
	t.Helper()
	p, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return [2]int{p[0], p[1]}
}

func sock(t *testing.T, typ int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func accept(l int) (int, unix.Sockaddr, error) {
	return unix.Accept4(l, unix.SOCK_CLOEXEC)
}

func send(t *testing.T, fd int, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if _, err := unix.Write(fd, []byte(m)); err != nil {
			t.Fatalf("send %q: %v", m, err)
		}
	}
}

// dumped dumps the helper's fds and returns the set and, by fd number in
// the helper, the file ids.
func dumped(t *testing.T, pid int) (*Set, map[int]uint32) {
	t.Helper()
	s := NewSet(nil)
	fds, err := s.DumpTable(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishUnix(); err != nil {
		t.Fatal(err)
	}
	ids := map[int]uint32{}
	for _, f := range fds {
		ids[int(f.GetFd())] = f.GetId()
	}
	return s, ids
}

// restorer restores a dumped set into the test process.
func unixRestorer(t *testing.T, s *Set) *Restorer {
	t.Helper()
	r := NewRestorer(s.Entries, "")
	for _, p := range s.SkQueues {
		r.SkQueues[p.IDFor] = append(r.SkQueues[p.IDFor], p.Data)
	}
	for _, p := range s.SkPending {
		r.SkPending[p.IDFor] = append(r.SkPending[p.IDFor], p.Data)
	}
	t.Cleanup(r.Close)
	return r
}

func open(t *testing.T, r *Restorer, id uint32) int {
	t.Helper()
	fd, err := r.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// expect reads one record (or, for a stream, want's length) from fd.
func expect(t *testing.T, fd int, want string) {
	t.Helper()
	buf := make([]byte, len(want)+64)
	n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
	if err != nil || string(buf[:n]) != want {
		t.Errorf("read %q (%v), want %q", buf[:max(n, 0)], err, want)
	}
}

func expectEmpty(t *testing.T, fd int) {
	t.Helper()
	var b [1]byte
	if n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_DONTWAIT); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("more queued: %d bytes, %v", n, err)
	}
}

func TestUnixRoundTrip(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st, dg, sq := pair(t, unix.SOCK_STREAM), pair(t, unix.SOCK_DGRAM), pair(t, unix.SOCK_SEQPACKET)
	send(t, st[0], "stream ", "0 to 1")
	send(t, st[1], "stream 1 to 0")
	send(t, dg[0], "d1", "", "d3")
	send(t, sq[1], "s1", "s2")
	half := pair(t, unix.SOCK_STREAM)
	send(t, half[0], "before close")
	unix.Close(half[0])
	abs := sock(t, unix.SOCK_DGRAM)
	absName := "@gocr-files-test-" + filepath.Base(dir)
	if err := unix.Bind(abs, &unix.SockaddrUnix{Name: absName}); err != nil {
		t.Fatal(err)
	}
	tmp := sock(t, unix.SOCK_DGRAM)
	if err := unix.Sendto(tmp, []byte("to abstract"), 0, &unix.SockaddrUnix{Name: absName}); err != nil {
		t.Fatal(err)
	}
	unix.Close(tmp)
	cd := sock(t, unix.SOCK_DGRAM)
	if err := unix.Connect(cd, &unix.SockaddrUnix{Name: absName}); err != nil {
		t.Fatal(err)
	}
	send(t, cd, "from connected")
	lone, fresh := sock(t, unix.SOCK_STREAM), sock(t, unix.SOCK_SEQPACKET)
	if err := unix.Bind(lone, &unix.SockaddrUnix{Name: filepath.Join(dir, "lone.sock")}); err != nil {
		t.Fatal(err)
	}
	lpath := filepath.Join(dir, "l.sock")
	l := sock(t, unix.SOCK_STREAM)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: lpath}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(lpath, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 4); err != nil {
		t.Fatal(err)
	}
	c0, c1 := sock(t, unix.SOCK_STREAM), sock(t, unix.SOCK_STREAM)
	if err := unix.Connect(c0, &unix.SockaddrUnix{Name: lpath}); err != nil {
		t.Fatal(err)
	}
	a0, _, err := accept(l)
	if err != nil {
		t.Fatal(err)
	}
	send(t, c0, "to the accepted end")
	c2 := sock(t, unix.SOCK_STREAM)
	if err := unix.Connect(c2, &unix.SockaddrUnix{Name: lpath}); err != nil {
		t.Fatal(err)
	}
	a2, _, err := accept(l)
	if err != nil {
		t.Fatal(err)
	}
	send(t, c2, "last words")
	unix.Close(c2)
	if err := unix.Connect(c1, &unix.SockaddrUnix{Name: lpath}); err != nil { // left pending
		t.Fatal(err)
	}

	// fd 3+i in the helper
	h := holder(t, st[0], st[1], dg[0], dg[1], sq[0], sq[1], half[1], abs, l, c0, a0, c1, cd, lone, fresh, a2)
	s, ids := dumped(t, h.Process.Pid)
	kill(h)
	r := unixRestorer(t, s)
	fd := func(i int) int { return open(t, r, ids[3+i]) }

	expect(t, fd(1), "stream 0 to 1")
	expect(t, fd(0), "stream 1 to 0")
	for _, m := range []string{"d1", "", "d3"} {
		expect(t, fd(3), m)
	}
	for _, m := range []string{"s1", "s2"} {
		expect(t, fd(4), m)
	}
	expect(t, fd(6), "before close")
	expect(t, fd(7), "to abstract")
	expect(t, fd(7), "from connected")
	expect(t, fd(10), "to the accepted end")
	expect(t, fd(15), "last words")
	if n, err := unix.Read(fd(15), make([]byte, 1)); n != 0 || err != nil {
		t.Errorf("accepted end whose client closed: read %d, %v, want end of file", n, err)
	}
	if sa, err := unix.Getsockname(fd(15)); err != nil || sa.(*unix.SockaddrUnix).Name != lpath {
		t.Errorf("the accepted end whose client closed is named %v (%v), want %s", sa, err, lpath)
	}
	for _, i := range []int{0, 1, 2, 3, 4, 5, 7, 10, 9} {
		expectEmpty(t, fd(i))
	}
	if n, err := unix.Read(fd(6), make([]byte, 1)); n != 0 || err != nil {
		t.Errorf("half-closed end: read %d, %v, want end of file", n, err)
	}
	if sa, err := unix.Getsockname(fd(7)); err != nil || sa.(*unix.SockaddrUnix).Name != absName {
		t.Errorf("abstract name %v, %v", sa, err)
	}
	if sa, err := unix.Getsockname(fd(10)); err != nil || sa.(*unix.SockaddrUnix).Name != lpath {
		t.Errorf("the accepted end is named %v (%v), want the listener's %s", sa, err, lpath)
	}
	var fst unix.Stat_t
	if err := unix.Stat(lpath, &fst); err != nil || fst.Mode != unix.S_IFSOCK|0o604 {
		t.Errorf("%s: mode %o (%v), want socket 0604", lpath, fst.Mode, err)
	}
	// The pending connection is the listener's next one, and the pairs
	// still carry data.
	a1, _, err := accept(fd(8))
	if err != nil {
		t.Fatal(err)
	}
	send(t, fd(11), "hello")
	expect(t, a1, "hello")
	c3 := sock(t, unix.SOCK_STREAM)
	if err := unix.Connect(c3, &unix.SockaddrUnix{Name: lpath}); err != nil {
		t.Fatalf("connect to the listener's path after restore: %v", err)
	}
	if _, _, err := accept(fd(8)); err != nil {
		t.Fatal(err)
	}
	send(t, fd(9), "reply")
	expect(t, fd(10), "reply")
	send(t, fd(2), "again")
	expect(t, fd(3), "again")
	send(t, fd(12), "connected again")
	expect(t, fd(7), "connected again")
	if sa, err := unix.Getpeername(fd(12)); err != nil || sa.(*unix.SockaddrUnix).Name != absName {
		t.Errorf("the connected datagram socket's peer is %v (%v), want %s", sa, err, absName)
	}
	if sa, err := unix.Getsockname(fd(13)); err != nil || sa.(*unix.SockaddrUnix).Name != filepath.Join(dir, "lone.sock") {
		t.Errorf("the bound stream socket is named %v (%v)", sa, err)
	}
	if typ, err := unix.GetsockoptInt(fd(14), unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		t.Errorf("the fresh socket has type %d (%v), want seqpacket", typ, err)
	}
}

func TestUnixPendingData(t *testing.T) {
	needRoot(t)
	lpath := filepath.Join(t.TempDir(), "l.sock")
	l := sock(t, unix.SOCK_STREAM)
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: lpath}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 4); err != nil {
		t.Fatal(err)
	}
	c := [2]int{sock(t, unix.SOCK_STREAM), sock(t, unix.SOCK_STREAM)}
	for i, fd := range c {
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: lpath}); err != nil {
			t.Fatal(err)
		}
		send(t, fd, "pending "+string(rune('1'+i)))
	}
	h := holder(t, l, c[0], c[1])
	s, ids := dumped(t, h.Process.Pid)
	swaps, err := s.TakePending()
	if err != nil {
		t.Fatal(err)
	}
	if len(swaps) != 2 || swaps[0].Fd != 4 || swaps[1].Fd != 5 {
		t.Fatalf("swaps %+v, want fds 4 and 5", swaps)
	}
	// The listener has new connections, from the swaps' sockets, with
	// the data.
	lg, err := CopyFd(h.Process.Pid, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lg)
	for i, sw := range swaps {
		a, _, err := accept(lg)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, a, "pending "+string(rune('1'+i)))
		send(t, a, "back")
		expect(t, sw.Local, "back")
		unix.Close(a)
	}
	s.ReleasePending()
	kill(h)

	r := unixRestorer(t, s)
	ln := open(t, r, ids[3])
	for i := range 2 {
		a, _, err := accept(ln)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, a, "pending "+string(rune('1'+i)))
		send(t, a, "back")
		expect(t, open(t, r, ids[4+i]), "back")
	}
}

func TestUnixRefusals(t *testing.T) {
	needRoot(t)
	outside := pair(t, unix.SOCK_STREAM)
	defer unix.Close(outside[1])
	h := holder(t, outside[0])
	s := NewSet(nil)
	if _, err := s.DumpTable(h.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishUnix(); err == nil || !strings.Contains(err.Error(), "outside the tree") {
		t.Errorf("a peer outside the tree: %v", err)
	}

	inFlight := pair(t, unix.SOCK_DGRAM)
	if err := unix.Sendmsg(inFlight[0], []byte("x"), unix.UnixRights(inFlight[0]), nil, 0); err != nil {
		t.Fatal(err)
	}
	h = holder(t, inFlight[0], inFlight[1])
	if _, err := NewSet(nil).DumpTable(h.Process.Pid); err == nil || !strings.Contains(err.Error(), "SCM_RIGHTS") {
		t.Errorf("an fd in flight: %v", err)
	}

	// A family gocr does not dump (inet sockets are inet.go's).
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	h = holder(t, nl)
	if _, err := NewSet(nil).DumpTable(h.Process.Pid); err == nil || !strings.Contains(err.Error(), "AF_NETLINK") {
		t.Errorf("a netlink socket: %v", err)
	}
}

// TestUnixOrderIcons checks that the clients of pending connections are
// put in the listener's order among themselves.
func TestUnixOrderIcons(t *testing.T) {
	e := func() *fdinfo.FileEntry { return &fdinfo.FileEntry{} }
	x, c1, y, c2, c3 := e(), e(), e(), e(), e()
	u := &unixDump{dumped: map[uint32]*unixDumped{}}
	u.dumped[1] = &unixDumped{d: listenerDiag(1, 12, 13, 11)}
	client := func(e *fdinfo.FileEntry) *unixDumped { return &unixDumped{entry: e, d: &sockdiag.Unix{}} }
	u.dumped[11], u.dumped[12], u.dumped[13] = client(c1), client(c2), client(c3)
	u.order = []uint32{1, 11, 12, 13}
	entries := []*fdinfo.FileEntry{x, c1, y, c2, c3}
	u.orderIcons(entries)
	want := []*fdinfo.FileEntry{x, c2, y, c3, c1}
	for i := range want {
		if entries[i] != want[i] {
			t.Fatalf("entry %d is not the expected one", i)
		}
	}
}

func listenerDiag(ino uint32, icons ...uint32) *sockdiag.Unix {
	return &sockdiag.Unix{Ino: ino, State: sockdiag.StateListen, Type: unix.SOCK_STREAM, Icons: icons}
}
