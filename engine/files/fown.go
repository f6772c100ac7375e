package files

import (
	"fmt"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gocr/gocr/engine/ns"
)

// File owners: the process, thread or process group that F_SETOWN(_EX)
// named to get SIGIO/SIGURG from an open file description, the signal
// F_SETSIG chose instead of SIGIO, and the uid and euid of whoever set the
// owner (the kernel checks them when it sends the signal). They belong to
// the description, so gocr reads them through its own copy of one fd of
// it (pidfd_getfd), with nothing injected, into the fown entry of the
// file's kind-specific message, as CRIU does. Restore sets them on gocr's
// fd of the description once every process of the tree exists (an owner
// must exist to be named), under the image's uid and euid; and turns
// O_ASYNC on again with F_SETFL, because an open(2) with O_ASYNC sets the
// flag without registering the file for the signals.

// fcntl commands of include/uapi/asm-generic/fcntl.h that x/sys lacks.
const (
	fGetOwnerUids = 17 // F_GETOWNER_UIDS (CONFIG_CHECKPOINT_RESTORE)
	ownerTid      = 0  // F_OWNER_TID
	ownerPid      = 1  // F_OWNER_PID
	ownerPgrp     = 2  // F_OWNER_PGRP
)

// fOwnerEx is struct f_owner_ex (F_GETOWN_EX, F_SETOWN_EX).
type fOwnerEx struct {
	Type int32
	Pid  int32
}

// kindMessage is e's kind-specific message (reg, pipe, usk, ...), the one
// with the flags and fown fields; nil if e has none.
func kindMessage(e *fdinfo.FileEntry) protoreflect.Message {
	var m protoreflect.Message
	e.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
			m = v.Message()
			return false
		}
		return true
	})
	return m
}

// entryFown is the fown of e's kind-specific message, nil if it has none.
func entryFown(e *fdinfo.FileEntry) *fown.FownEntry {
	m := kindMessage(e)
	if m == nil {
		return nil
	}
	f := m.Descriptor().Fields().ByName("fown")
	if f == nil || !m.Has(f) {
		return nil
	}
	o, _ := m.Get(f).Message().Interface().(*fown.FownEntry)
	return o
}

// entryFlags is the flags field of e's kind-specific message.
func entryFlags(e *fdinfo.FileEntry) (uint32, bool) {
	m := kindMessage(e)
	if m == nil {
		return 0, false
	}
	f := m.Descriptor().Fields().ByName("flags")
	if f == nil || f.Kind() != protoreflect.Uint32Kind || !m.Has(f) {
		return 0, false
	}
	return uint32(m.Get(f).Uint()), true
}

// entryByID finds the entry the dump just added with that id.
func (s *Set) entryByID(id uint32) *fdinfo.FileEntry {
	for i := len(s.Entries) - 1; i >= 0; i-- {
		if s.Entries[i].GetId() == id {
			return s.Entries[i]
		}
	}
	return nil
}

// dumpOwner fills the fown of file id from fd of pid, through gocr's copy
// of it taken with pidfd pfd. An owner outside the tree is refused: after
// restore its pid could be anyone's.
func (s *Set) dumpOwner(pfd, pid int, fd Fd, id uint32) error {
	e := s.entryByID(id)
	if e == nil {
		return nil
	}
	o := entryFown(e)
	if o == nil || fd.Info.Flags&unix.O_PATH != 0 {
		return nil // an O_PATH file has no owner (and fcntl refuses to say)
	}
	own, err := unix.PidfdGetfd(pfd, fd.Fd, 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd pid %d fd %d (to read its owner): %w", pid, fd.Fd, err)
	}
	defer unix.Close(own)
	var ex fOwnerEx
	if err := fcntlPtr(own, unix.F_GETOWN_EX, unsafe.Pointer(&ex)); err != nil {
		return fmt.Errorf("F_GETOWN_EX: %w", err)
	}
	sig, err := unix.FcntlInt(uintptr(own), unix.F_GETSIG, 0)
	if err != nil {
		return fmt.Errorf("F_GETSIG: %w", err)
	}
	o.Signum = ptr(uint32(sig))
	if ex.Pid == 0 {
		return nil
	}
	var uids [2]uint32
	if err := fcntlPtr(own, fGetOwnerUids, unsafe.Pointer(&uids)); err != nil {
		return fmt.Errorf("F_GETOWNER_UIDS: %w", err)
	}
	kind := map[int32]string{ownerTid: "thread", ownerPid: "process", ownerPgrp: "process group"}[ex.Type]
	if kind == "" {
		return fmt.Errorf("F_GETOWN_EX: owner type %d unknown", ex.Type)
	}
	if s.VPid == nil {
		return fmt.Errorf("its owner is %s %d, and the dump knows no pids", kind, ex.Pid)
	}
	vpid, ok := s.VPid(int(ex.Pid))
	if !ok {
		return fmt.Errorf("its owner (F_SETOWN) is %s %d, outside the tree: not supported", kind, ex.Pid)
	}
	if s.UserMaps != nil {
		uids[0], uids[1] = ns.Inside(s.UserMaps.UidMap, uids[0]), ns.Inside(s.UserMaps.UidMap, uids[1])
	}
	o.Pid, o.PidType, o.Uid, o.Euid = ptr(uint32(vpid)), ptr(uint32(ex.Type)), &uids[0], &uids[1]
	return nil
}

func fcntlPtr(fd, cmd int, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// RestoreOwners gives every file gocr opened its owner, owner signal and
// working O_ASYNC, as the image has them. Call it once every process of
// the tree exists, before any runs.
func (r *Restorer) RestoreOwners() error {
	for id, fd := range r.open {
		e := r.entries[id]
		if e == nil {
			continue
		}
		if o := entryFown(e); o != nil {
			if err := r.restoreOwner(fd, o); err != nil {
				return fmt.Errorf("file id %d: %w", id, err)
			}
		}
		if flags, ok := entryFlags(e); ok && flags&unix.O_ASYNC != 0 {
			if err := setAsync(fd); err != nil {
				return fmt.Errorf("file id %d: O_ASYNC: %w", id, err)
			}
		}
	}
	return nil
}

func (r *Restorer) restoreOwner(fd int, o *fown.FownEntry) error {
	if sig := o.GetSignum(); sig != 0 {
		if sig >= 65 {
			return fmt.Errorf("fown.signum: %d is not a signal", sig)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETSIG, int(sig)); err != nil {
			return fmt.Errorf("F_SETSIG %d: %w", sig, err)
		}
	}
	if o.GetPid() == 0 {
		return nil
	}
	typ := int32(o.GetPidType())
	if typ != ownerTid && typ != ownerPid && typ != ownerPgrp {
		return fmt.Errorf("fown.pid_type: %d is not F_OWNER_TID, F_OWNER_PID or F_OWNER_PGRP", typ)
	}
	if r.HostPid == nil {
		return fmt.Errorf("fown.pid: %d, and the restore knows no pids", o.GetPid())
	}
	host, ok := r.HostPid(int(o.GetPid()))
	if !ok {
		return fmt.Errorf("fown.pid: %d is not a process of the tree", o.GetPid())
	}
	uid, euid := o.GetUid(), o.GetEuid()
	if r.UserMaps != nil {
		var ok1, ok2 bool
		uid, ok1 = ns.Outside(r.UserMaps.UidMap, uid)
		euid, ok2 = ns.Outside(r.UserMaps.UidMap, euid)
		if !ok1 || !ok2 {
			return fmt.Errorf("fown.uid/euid: %d/%d are not mapped in the tree's user namespace", o.GetUid(), o.GetEuid())
		}
	}
	ex := fOwnerEx{Type: typ, Pid: int32(host)}
	set := func() error {
		if err := fcntlPtr(fd, unix.F_SETOWN_EX, unsafe.Pointer(&ex)); err != nil {
			return fmt.Errorf("F_SETOWN_EX type %d pid %d (pid %d in the tree): %w", typ, host, o.GetPid(), err)
		}
		return nil
	}
	// The kernel records the caller's uid and euid with the owner.
	if uid == uint32(unix.Getuid()) && euid == uint32(unix.Geteuid()) {
		return set()
	}
	return ns.OnThrowawayThread(func() error {
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(euid), ^uintptr(0)); errno != 0 {
			return fmt.Errorf("setresuid %d %d (the owner's setter): %w", uid, euid, errno)
		}
		return set()
	})
}

// setAsync turns O_ASYNC off and on again, so the file's fasync hook runs.
func setAsync(fd int) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_ASYNC); err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_ASYNC)
	return err
}
