package ptrace

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadMem fills buf from addr in pid's address space. It uses
// process_vm_readv, and /proc/PID/mem for whatever that refuses:
// PROT_NONE or otherwise unreadable pages, which /proc/PID/mem reaches
// because it reads with FOLL_FORCE.
func ReadMem(pid int, addr uint64, buf []byte) error {
	return accessMem(pid, addr, buf, false)
}

// WriteMem copies buf to addr in pid's address space, falling back to
// /proc/PID/mem for read-only and PROT_NONE pages, as ReadMem does.
func WriteMem(pid int, addr uint64, buf []byte) error {
	return accessMem(pid, addr, buf, true)
}

func accessMem(pid int, addr uint64, buf []byte, write bool) error {
	done := 0
	for done < len(buf) {
		n, err := processVM(pid, addr+uint64(done), buf[done:], write)
		if err != nil || n == 0 {
			break
		}
		done += n
	}
	if done == len(buf) {
		return nil
	}
	return procMem(pid, addr+uint64(done), buf[done:], write)
}

func processVM(pid int, addr uint64, buf []byte, write bool) (int, error) {
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	if write {
		return unix.ProcessVMWritev(pid, local, remote, 0)
	}
	return unix.ProcessVMReadv(pid, local, remote, 0)
}

func procMem(pid int, addr uint64, buf []byte, write bool) error {
	flag, op := os.O_RDONLY, "read"
	if write {
		flag, op = os.O_WRONLY, "write"
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", flag, 0)
	if err != nil {
		return fmt.Errorf("%s memory of pid %d at %#x: %w", op, pid, addr, err)
	}
	defer f.Close()
	for done := 0; done < len(buf); {
		var n int
		// pread/pwrite directly: addresses above 2^63 would be negative offsets
		// for os.File, and the kernel takes the offset as unsigned here.
		if write {
			n, err = pwrite(int(f.Fd()), buf[done:], addr+uint64(done))
		} else {
			n, err = pread(int(f.Fd()), buf[done:], addr+uint64(done))
		}
		if err != nil {
			return fmt.Errorf("%s memory of pid %d at %#x: %w", op, pid, addr+uint64(done), err)
		}
		if n == 0 {
			return fmt.Errorf("%s memory of pid %d at %#x: %w", op, pid, addr+uint64(done), unix.EIO)
		}
		done += n
	}
	return nil
}

func pread(fd int, b []byte, off uint64) (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

func pwrite(fd int, b []byte, off uint64) (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}
