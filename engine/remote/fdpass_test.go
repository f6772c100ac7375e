package remote_test

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
	"github.com/gocr/gocr/engine/remote/remotetest"
)

// Send passes fds into a real process: they land on the lowest free
// numbers in order, an fd named twice arrives as two fds on one open file
// description, and more fds than one round holds take a recvmmsg per
// round, not per fd.
func TestSend(t *testing.T) {
	for _, c := range []struct {
		name    string
		n       int
		room    uint64
		cloexec bool
		calls   uint64
	}{
		{"one", 1, 4 << 10, false, 1},
		{"one round", 700, 4 << 10, true, 1},        // 3 datagrams
		{"several rounds", 2000, 4 << 10, false, 3}, // 8 datagrams, 3 a round
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := remote.NewFdPasser()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			end, err := unix.Dup(p.RemoteFd())
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(end), "fd passing socket")
			task, tr := remotetest.Task(t, c.room, f) // the socket is fd 3, 0-2 are taken
			f.Close()
			p.CloseRemote()
			// Whatever else it has (go test's own fds) goes.
			if _, err := task.Syscall(unix.SYS_CLOSE_RANGE, 4, 1<<32-1, 0); err != nil {
				t.Fatal(err)
			}
			files := []int{openNull(t), openNull(t)}
			var send []int
			for i := range c.n {
				send = append(send, files[i%2])
			}
			pass := p.Send
			if c.cloexec {
				pass = p.SendCloexec
			}
			before := tr.Injected()
			got, err := pass(task, 3, 0, send)
			if err != nil {
				t.Fatal(err)
			}
			if calls := tr.Injected() - before; calls != c.calls {
				t.Errorf("%d fds took %d injected calls, want %d", c.n, calls, c.calls)
			}
			for i, fd := range got {
				if want := 4 + i; fd != want {
					t.Fatalf("fd %d of %d landed on %d, want %d", i, c.n, fd, want)
				}
				info, err := procfs.FdInfo(task.Pid, fd)
				if err != nil {
					t.Fatal(err)
				}
				if ce := info.Flags&unix.O_CLOEXEC != 0; ce != c.cloexec {
					t.Errorf("fd %d close-on-exec %v, want %v", fd, ce, c.cloexec)
				}
			}
			if len(got) != c.n {
				t.Fatalf("%d fds arrived, sent %d", len(got), c.n)
			}
			if c.n > 2 {
				if same(t, task.Pid, got[0], got[2]) != true || same(t, task.Pid, got[0], got[1]) != false {
					t.Error("copies of one fd do not share their description, or of two fds do")
				}
			}
		})
	}
}

func openNull(t *testing.T) int {
	t.Helper()
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// same says whether two fds of pid share an open file description.
func same(t *testing.T, pid, fd1, fd2 int) bool {
	t.Helper()
	const kcmpFile = 0
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpFile, uintptr(fd1), uintptr(fd2), 0)
	if errno != 0 {
		t.Fatal(fmt.Errorf("kcmp: %w", errno))
	}
	return r == 0
}
