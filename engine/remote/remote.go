// Package remote pairs an injection session with a scratch area of memory
// inside the task, where injected system calls find their arguments and
// leave their results.
package remote

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/ptrace"
)

// Task is an injection session on one thread with scratch memory.
type Task struct {
	*ptrace.Remote
	Pid     int    // the thread group, whose memory the scratch area is in
	Scratch uint64 // start of the scratch area
	Size    uint64
}

// MapScratch maps size bytes of anonymous read-write memory in the task
// (at addr when addr is not 0) to be used as scratch.
func MapScratch(r *ptrace.Remote, pid int, addr, size uint64, prot int) (*Task, error) {
	flags := uint64(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS)
	if addr != 0 {
		flags |= unix.MAP_FIXED_NOREPLACE
	}
	got, err := r.Syscall(unix.SYS_MMAP, addr, size, uint64(prot), flags, ^uint64(0), 0)
	if err != nil {
		return nil, fmt.Errorf("map scratch memory in pid %d: %w", pid, err)
	}
	if addr != 0 && got != addr {
		return nil, fmt.Errorf("map scratch memory in pid %d: got %#x, asked %#x", pid, got, addr)
	}
	return &Task{Remote: r, Pid: pid, Scratch: got, Size: size}, nil
}

// On returns a session on another thread of the same task sharing this
// scratch area (threads share memory).
func (t *Task) On(r *ptrace.Remote) *Task {
	return &Task{Remote: r, Pid: t.Pid, Scratch: t.Scratch, Size: t.Size}
}

// Forked returns a session on pid, a child forked from this task while
// the scratch area was mapped: the child has its own copy of it, at the
// same address.
func (t *Task) Forked(r *ptrace.Remote, pid int) *Task {
	return &Task{Remote: r, Pid: pid, Scratch: t.Scratch, Size: t.Size}
}

// Unmap removes the scratch area.
func (t *Task) Unmap() error {
	if _, err := t.Syscall(unix.SYS_MUNMAP, t.Scratch, t.Size); err != nil {
		return fmt.Errorf("unmap scratch memory in pid %d: %w", t.Pid, err)
	}
	return nil
}

// Read copies scratch memory at off into b.
func (t *Task) Read(off uint64, b []byte) error {
	if off+uint64(len(b)) > t.Size {
		return fmt.Errorf("scratch read %d+%d beyond %d bytes", off, len(b), t.Size)
	}
	return ptrace.ReadMem(t.Pid, t.Scratch+off, b)
}

// Write copies b into scratch memory at off.
func (t *Task) Write(off uint64, b []byte) error {
	if off+uint64(len(b)) > t.Size {
		return fmt.Errorf("scratch write %d+%d beyond %d bytes", off, len(b), t.Size)
	}
	return ptrace.WriteMem(t.Pid, t.Scratch+off, b)
}

// ReadStruct and WriteStruct move a fixed-size kernel struct.
func ReadStruct[T any](t *Task, off uint64, v *T) error {
	b := unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
	return t.Read(off, b)
}

func WriteStruct[T any](t *Task, off uint64, v *T) error {
	b := unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
	return t.Write(off, b)
}

// ReadU64 reads one little-endian word of scratch memory.
func (t *Task) ReadU64(off uint64) (uint64, error) {
	var b [8]byte
	if err := t.Read(off, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}
