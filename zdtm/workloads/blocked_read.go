package workloads

import (
	"bytes"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

// BlockedRead leaves a locked thread blocked in a raw read(2) (not the
// netpoller) of an empty pipe in blocking mode. After SIGTERM the thread
// must still be in read; the main goroutine writes a message, and the read
// must return exactly that message.
var BlockedRead = lib.Workload{Name: "blocked_read", Run: func(t *lib.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	msg := []byte("wake up, blocked reader #4711")
	buf := make([]byte, 64)
	tid, done := startBlocked(func() blockedResult {
		r, _, e := syscall.Syscall(unix.SYS_READ, uintptr(p[0]), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		return blockedResult{r, e}
	})
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_READ); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()

	select {
	case r := <-done:
		t.Fail("read returned before the pipe was written: %d, %v", r.r1, r.err)
	default:
	}
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_READ); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Write(p[1], msg); err != nil || n != len(msg) {
		t.Fail("write to the pipe: %d, %v", n, err)
	}
	select {
	case r := <-done:
		if r.err != 0 {
			t.Fail("read: %v", r.err)
		}
		if got := buf[:r.r1]; !bytes.Equal(got, msg) {
			t.Fail("read returned %q, want %q", got, msg)
		}
	case <-time.After(10 * time.Second):
		t.Fail("read still blocked 10 s after the pipe was written")
	}
	t.Pass()
}}
