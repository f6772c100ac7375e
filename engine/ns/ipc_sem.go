package ns

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"unsafe"

	ipc_sem "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-sem"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
)

// SysV semaphore sets: ipcns-sem-ID.img holds an ipc_sem_entry per set
// followed by its values, 16 bits each, padded to 8 bytes. The values are
// read with GETALL, which changes nothing. Undo adjustments (SEM_UNDO) are
// per process and invisible from outside: they are not saved, as CRIU
// does not save them either.

// semSet is one set of the image with its values.
type semSet struct {
	e      *ipc_sem.IpcSemEntry
	values []uint16
}

// semctl is the raw system call: its fourth argument, a union, is passed
// as the value or address it holds.
func semctl(id, num, cmd int, arg uintptr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), arg, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// dumpSem writes ipcns-sem-ID.img with every set of the calling thread's
// ipc namespace.
func dumpSem(dir *image.Dir, nsID uint32, ids IDMap) error {
	list, err := sysvIDs("sem")
	if err != nil {
		return err
	}
	w, err := dir.Writer(image.IpcnsSem, image.IpcnsSemFile(nsID))
	if err != nil {
		return err
	}
	for _, id := range list {
		s, err := readSemSet(id, ids)
		if err == nil {
			err = w.WritePayload(s.e, s.payload())
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// readSemSet reads one set and its values.
func readSemSet(id int, ids IDMap) (*semSet, error) {
	var ds abi.SemidDS
	if _, err := semctl(id, 0, unix.IPC_STAT, uintptr(unsafe.Pointer(&ds))); err != nil {
		return nil, fmt.Errorf("SysV semaphore set %d: IPC_STAT: %w", id, err)
	}
	s := &semSet{e: &ipc_sem.IpcSemEntry{Desc: ipcDesc(id, &ds.Perm, ids), Nsems: ptr(uint32(ds.Nsems))}}
	s.values = make([]uint16, max(ds.Nsems, 1))
	if _, err := semctl(id, 0, abi.SemGetAll, uintptr(unsafe.Pointer(&s.values[0]))); err != nil {
		return nil, fmt.Errorf("%s: GETALL: %w", descName("semaphore set", s.e.Desc), err)
	}
	s.values = s.values[:ds.Nsems]
	return s, nil
}

// payload is the values as the image keeps them.
func (s *semSet) payload() io.Reader {
	b := make([]byte, 2*len(s.values))
	for i, v := range s.values {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return bytes.NewReader(b)
}

// readSem reads and checks ipcns-sem-ID.img.
func readSem(dir *image.Dir, nsID uint32) ([]*semSet, error) {
	name := image.IpcnsSemFile(nsID)
	if !dir.Exists(name) {
		return nil, nil
	}
	rd, err := dir.Reader(image.IpcnsSem, name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []*semSet
	for {
		e := &ipc_sem.IpcSemEntry{}
		if !rd.Next(e) {
			break
		}
		if e.GetDesc() == nil || e.GetNsems() == 0 {
			return nil, fmt.Errorf("%s: entry %d: no desc, or no semaphores", name, rd.Index())
		}
		b, err := io.ReadAll(rd.Payload())
		if err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", name, rd.Index(), err)
		}
		s := &semSet{e: e, values: make([]uint16, e.GetNsems())}
		for i := range s.values {
			s.values[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		out = append(out, s)
	}
	return out, rd.Err()
}

// restore makes the set in the calling thread's (fresh) ipc namespace with
// its id, creator, values, owner and mode.
func (s *semSet) restore(ids IDMap) error {
	d, n := s.e.GetDesc(), int(s.e.GetNsems())
	what := descName("semaphore set", d)
	flags := uintptr(d.GetMode()&abi.IpcModeBits) | unix.IPC_CREAT | unix.IPC_EXCL
	if err := makeIPC("semaphore set", "kernel/sem_next_id", d, ids, func() (int, error) {
		r, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(int32(d.GetKey())), uintptr(n), flags)
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}); err != nil {
		return err
	}
	id := int(d.GetId())
	if _, err := semctl(id, 0, abi.SemSetAll, uintptr(unsafe.Pointer(&s.values[0]))); err != nil {
		return fmt.Errorf("%s: SETALL %v: %w", what, s.values, err)
	}
	var ds abi.SemidDS
	if _, err := semctl(id, 0, unix.IPC_STAT, uintptr(unsafe.Pointer(&ds))); err != nil {
		return fmt.Errorf("%s: IPC_STAT: %w", what, err)
	}
	if err := setPerm("semaphore set", &ds.Perm, d, ids); err != nil {
		return err
	}
	if _, err := semctl(id, 0, unix.IPC_SET, uintptr(unsafe.Pointer(&ds))); err != nil {
		return fmt.Errorf("%s: IPC_SET uid %d gid %d mode %#o: %w", what, ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode, err)
	}
	return nil
}
