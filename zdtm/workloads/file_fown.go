package workloads

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// fownState is what F_GETOWN_EX, F_GETSIG and F_GETFL say of an fd.
type fownState struct {
	typ, pid, sig int32
	async         bool
}

func readFown(fd int) (fownState, error) {
	var ex struct{ Type, Pid int32 }
	if _, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), unix.F_GETOWN_EX, uintptr(unsafe.Pointer(&ex))); errno != 0 {
		return fownState{}, fmt.Errorf("F_GETOWN_EX fd %d: %w", fd, errno)
	}
	sig, err := unix.FcntlInt(uintptr(fd), unix.F_GETSIG, 0)
	if err != nil {
		return fownState{}, fmt.Errorf("F_GETSIG fd %d: %w", fd, err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fownState{}, fmt.Errorf("F_GETFL fd %d: %w", fd, err)
	}
	return fownState{ex.Type, ex.Pid, int32(sig), fl&unix.O_ASYNC != 0}, nil
}

func setFown(fd int, typ, pid int32, sig int) error {
	ex := struct{ Type, Pid int32 }{typ, pid}
	if _, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), unix.F_SETOWN_EX, uintptr(unsafe.Pointer(&ex))); errno != 0 {
		return fmt.Errorf("F_SETOWN_EX fd %d: %w", fd, errno)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETSIG, sig); err != nil {
		return fmt.Errorf("F_SETSIG fd %d: %w", fd, err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_ASYNC)
	}
	return err
}

// FileFown keeps the owners of open files (zdtm's file_fown): the read end
// of a pipe owned by the process (F_OWNER_PID) with SIGUSR2 for its
// signal, and one end of a socket pair owned by the process group
// (F_OWNER_PGRP) with SIGIO, both O_ASYNC. After restore each has the same
// owner, signal and flag, and data written to the pipe and to the other
// socket really brings the signals.
var FileFown = lib.Workload{Name: "file_fown", Run: func(t *lib.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	sk, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGUSR2, syscall.SIGIO)
	if err := setFown(p[0], 1 /* F_OWNER_PID */, int32(os.Getpid()), int(unix.SIGUSR2)); err != nil {
		t.Fatal(err)
	}
	if err := setFown(sk[0], 2 /* F_OWNER_PGRP */, int32(unix.Getpgrp()), int(unix.SIGIO)); err != nil {
		t.Fatal(err)
	}
	want := map[int]fownState{}
	for _, fd := range []int{p[0], sk[0]} {
		st, err := readFown(fd)
		if err != nil {
			t.Fatal(err)
		}
		want[fd] = st
	}
	// Each fd brings its signal before the dump, as after.
	expect := func(when string, write int, sig syscall.Signal) {
		for len(sigs) > 0 {
			<-sigs
		}
		if _, err := unix.Write(write, []byte("x")); err != nil {
			t.Fail("%s: write fd %d: %v", when, write, err)
			return
		}
		deadline := time.After(10 * time.Second)
		for {
			select {
			case s := <-sigs:
				if s == sig {
					return
				}
			case <-deadline:
				t.Fail("%s: no %v within 10 s of a write to fd %d", when, sig, write)
				return
			}
		}
	}
	drain := func(fd int) {
		buf := make([]byte, 16)
		unix.Read(fd, buf) //nolint:errcheck // one byte is there
	}
	expect("before the dump", p[1], syscall.SIGUSR2)
	drain(p[0])
	expect("before the dump", sk[1], syscall.SIGIO)
	drain(sk[0])
	t.Ready()
	t.WaitSignal()
	for fd, w := range want {
		got, err := readFown(fd)
		if err != nil {
			t.Fail("after restore: %v", err)
		} else if got != w {
			t.Fail("after restore fd %d has owner %+v, want %+v", fd, got, w)
		}
	}
	expect("after restore", p[1], syscall.SIGUSR2)
	expect("after restore", sk[1], syscall.SIGIO)
	t.Pass()
}}
