package workloads

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// SeqpacketShutdown holds two SOCK_SEQPACKET pairs. In the first, records
// "one" and "two" are queued and the writer shut down (SHUT_WR): the
// reader's queue ends in end-of-file, which reads 0 forever (a dump that
// took each 0 for a record looped 2^24 times with the tree frozen). In
// the second, a zero-length record sits between two others. After
// restore the first reader gets "one", "two" and end-of-file, and its
// peer's writes fail with EPIPE; the second gets "a", the empty record,
// "b", then nothing (EAGAIN).
var SeqpacketShutdown = lib.Workload{Name: "seqpacket_shutdown", Run: func(t *lib.T) {
	pair := func() [2]int {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	send := func(fd int, rec string) {
		if _, err := unix.Write(fd, []byte(rec)); err != nil {
			t.Fatal(fmt.Errorf("send %q: %w", rec, err))
		}
	}
	shut, empty := pair(), pair()
	send(shut[0], "one")
	send(shut[0], "two")
	if err := unix.Shutdown(shut[0], unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	send(empty[0], "a")
	send(empty[0], "")
	send(empty[0], "b")
	t.Ready()
	t.WaitSignal()
	buf := make([]byte, 64)
	recv := func(fd int, want string, wantErr error) {
		n, err := unix.Read(fd, buf)
		switch {
		case wantErr != nil && !errors.Is(err, wantErr):
			t.Fail("fd %d: read %d bytes (%v), want %v", fd, n, err, wantErr)
		case wantErr == nil && (err != nil || string(buf[:n]) != want):
			t.Fail("fd %d: read %q (%v), want %q", fd, buf[:max(n, 0)], err, want)
		}
	}
	recv(shut[1], "one", nil)
	recv(shut[1], "two", nil)
	recv(shut[1], "", nil) // end of file
	recv(shut[1], "", nil) // and again
	if _, err := unix.Write(shut[0], []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fail("write after SHUT_WR: %v, want EPIPE", err)
	}
	recv(empty[1], "a", nil)
	recv(empty[1], "", nil)
	recv(empty[1], "b", nil)
	recv(empty[1], "", unix.EAGAIN)
	t.Pass()
}}
