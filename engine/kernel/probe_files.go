package kernel

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
)

// probeTimerfdSetTicks sets the unread expirations of a fresh timerfd:
// ENOTTY without CONFIG_CHECKPOINT_RESTORE or before 3.17.
func probeTimerfdSetTicks(*probeEnv) (bool, string) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return false, fmt.Sprintf("timerfd_create: %v", err)
	}
	defer unix.Close(fd)
	ticks := uint64(1)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), abi.TFD_IOC_SET_TICKS, uintptr(unsafe.Pointer(&ticks))); errno != 0 {
		return false, fmt.Sprintf("ioctl TFD_IOC_SET_TICKS: %v", errno)
	}
	return true, "ioctl TFD_IOC_SET_TICKS works"
}

// probeEventfdSemaphore looks for the eventfd-semaphore line in the fdinfo
// of an eventfd made with EFD_SEMAPHORE: without it (before 6.6) nothing
// outside the task shows the mode.
func probeEventfdSemaphore(*probeEnv) (bool, string) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_SEMAPHORE)
	if err != nil {
		return false, fmt.Sprintf("eventfd: %v", err)
	}
	defer unix.Close(fd)
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return false, err.Error()
	}
	if !strings.Contains(string(b), "eventfd-semaphore:") {
		return false, "fdinfo of an eventfd has no eventfd-semaphore line"
	}
	return true, "fdinfo shows eventfd-semaphore"
}

// probeInotifySetNextWd asks a fresh inotify instance for watch
// descriptor 5 next: ENOTTY without CONFIG_CHECKPOINT_RESTORE or before
// 4.16.
func probeInotifySetNextWd(*probeEnv) (bool, string) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return false, fmt.Sprintf("inotify_init1: %v", err)
	}
	defer unix.Close(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), abi.INOTIFY_IOC_SETNEXTWD, 5); errno != 0 {
		return false, fmt.Sprintf("ioctl INOTIFY_IOC_SETNEXTWD: %v", errno)
	}
	return true, "ioctl INOTIFY_IOC_SETNEXTWD works"
}
