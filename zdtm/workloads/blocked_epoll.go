package workloads

import (
	"encoding/binary"
	"syscall"
	"time"
	"unsafe"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	epollEventfdTag = 0x1122_3344_5566_7788
	epollPipeTag    = 0x0bad_0bad_0bad_0bad
	epollValue      = 7
)

// BlockedEpoll leaves a locked thread in a raw epoll_pwait(2) with no
// timeout on an epoll fd watching an eventfd (EPOLLIN, data 0x1122334455667788)
// and the read end of an empty pipe (EPOLLIN, other data). After SIGTERM the
// thread must be in epoll_pwait; the main goroutine adds 7 to the eventfd,
// and epoll_pwait must return exactly one event, EPOLLIN with the eventfd's
// data; the eventfd must then read 7.
var BlockedEpoll = lib.Workload{Name: "blocked_epoll", Run: func(t *lib.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	add := func(fd int, tag uint64) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(tag)), Pad: int32(uint32(tag >> 32))}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			t.Fatal(err)
		}
	}
	add(efd, epollEventfdTag)
	add(p[0], epollPipeTag)
	events := make([]unix.EpollEvent, 4)
	tid, done := startBlocked(func() blockedResult {
		for {
			r, _, e := syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
			if e != unix.EINTR {
				return blockedResult{r, e}
			}
		}
	})
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_EPOLL_PWAIT); err != nil {
		t.Fatal(err)
	}
	t.Ready()
	t.WaitSignal()

	select {
	case r := <-done:
		t.Fail("epoll_pwait returned before the eventfd was written: %d, %v", r.r1, r.err)
	default:
	}
	if err := waitInSyscall(tid, 5*time.Second, unix.SYS_EPOLL_PWAIT); err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], epollValue)
	if _, err := unix.Write(efd, b[:]); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != 0 || r.r1 != 1 {
			t.Fail("epoll_pwait returned %d, %v; want 1 event", int(r.r1), r.err)
		}
		ev := events[0]
		if data := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32; ev.Events != unix.EPOLLIN || data != epollEventfdTag {
			t.Fail("epoll_pwait event: events %#x data %#x, want %#x data %#x", ev.Events, data, unix.EPOLLIN, uint64(epollEventfdTag))
		}
	case <-time.After(5 * time.Second):
		t.Fail("epoll_pwait still blocked 5 s after the eventfd was written")
	}
	if n, err := unix.Read(efd, b[:]); err != nil || n != 8 || binary.NativeEndian.Uint64(b[:]) != epollValue {
		t.Fail("eventfd read %d bytes (%v): %d, want %d", n, err, binary.NativeEndian.Uint64(b[:]), epollValue)
	}
	t.Pass()
}}
