// Package creds dumps and restores a task's credentials: uids, gids,
// supplementary groups, capability sets and securebits.
package creds

import (
	"errors"
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
)

// Dump builds the image's creds from /proc/PID/status and the securebits
// read from inside the task.
func Dump(st procfs.TaskStatus, secbits uint32) *creds.CredsEntry {
	caps := func(v uint64) []uint32 { return []uint32{uint32(v), uint32(v >> 32)} }
	c := &creds.CredsEntry{
		Uid: &st.Uid[0], Euid: &st.Uid[1], Suid: &st.Uid[2], Fsuid: &st.Uid[3],
		Gid: &st.Gid[0], Egid: &st.Gid[1], Sgid: &st.Gid[2], Fsgid: &st.Gid[3],
		CapInh: caps(st.CapInh), CapPrm: caps(st.CapPrm), CapEff: caps(st.CapEff), CapBnd: caps(st.CapBnd),
		Secbits: &secbits, Groups: append([]uint32(nil), st.Groups...),
	}
	setCapAmb(c, st.CapAmb)
	return c
}

// capWords joins the image's two 32-bit halves.
func capWords(v []uint32) uint64 {
	var out uint64
	for i, w := range v {
		if i < 2 {
			out |= uint64(w) << (32 * i)
		}
	}
	return out
}

// Same reports whether the task already has exactly these credentials, as a
// restored stub of a root task does; then there is nothing to inject.
func Same(c *creds.CredsEntry, st procfs.TaskStatus, secbits uint32) bool {
	if c.GetUid() != st.Uid[0] || c.GetEuid() != st.Uid[1] || c.GetSuid() != st.Uid[2] || c.GetFsuid() != st.Uid[3] ||
		c.GetGid() != st.Gid[0] || c.GetEgid() != st.Gid[1] || c.GetSgid() != st.Gid[2] || c.GetFsgid() != st.Gid[3] ||
		capWords(c.CapInh) != st.CapInh || capWords(c.CapPrm) != st.CapPrm || capWords(c.CapEff) != st.CapEff ||
		capWords(c.CapBnd) != st.CapBnd || c.GetSecbits() != secbits || len(c.Groups) != len(st.Groups) {
		return false
	}
	if amb, err := CapAmb(c); err != nil || amb != st.CapAmb {
		return false
	}
	for i := range c.Groups {
		if c.Groups[i] != st.Groups[i] {
			return false
		}
	}
	return true
}

// Bits of securebits (include/uapi/linux/securebits.h).
const (
	secbitKeepCaps       = 1 << 4
	secbitKeepCapsLocked = 1 << 5
)

// Restore sets the credentials of one thread by injection (credentials are
// per thread), in the order that keeps the privileges each step needs:
// groups, bounding set and securebits while still root (securebits with
// KEEP_CAPS, so the uid change keeps the permitted set), gids, uids, then
// the capability sets, and last KEEP_CAPS off again if the image had it
// off (PR_SET_KEEPCAPS needs no privilege; PR_SET_SECUREBITS would need
// CAP_SETPCAP, which the task may no longer have). The ambient set comes
// after capset, as the kernel allows only capabilities both permitted and
// inheritable in it.
func Restore(t *remote.Task, c *creds.CredsEntry) error {
	const off = 0
	amb, err := CapAmb(c)
	if err != nil {
		return err
	}
	groups := make([]byte, 4*len(c.Groups))
	for i, g := range c.Groups {
		groups[4*i], groups[4*i+1], groups[4*i+2], groups[4*i+3] = byte(g), byte(g>>8), byte(g>>16), byte(g>>24)
	}
	if len(groups) > 0 {
		if err := t.Write(off, groups); err != nil {
			return err
		}
	}
	if _, err := t.Syscall(unix.SYS_SETGROUPS, uint64(len(c.Groups)), t.Scratch+off); err != nil {
		return fmt.Errorf("setgroups %v: %w", c.Groups, err)
	}
	bnd := capWords(c.CapBnd)
	for capNr := uint64(0); capNr <= unix.CAP_LAST_CAP; capNr++ {
		if bnd&(1<<capNr) == 0 {
			if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, capNr); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("drop capability %d from the bounding set: %w", capNr, err)
			}
		}
	}
	secbits := uint64(c.GetSecbits())
	keep := secbits
	if keep&secbitKeepCapsLocked == 0 {
		keep |= secbitKeepCaps
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, keep); err != nil {
		return fmt.Errorf("set securebits %#x: %w", keep, err)
	}
	if _, err := t.Syscall(unix.SYS_SETRESGID, uint64(c.GetGid()), uint64(c.GetEgid()), uint64(c.GetSgid())); err != nil {
		return fmt.Errorf("setresgid %d %d %d: %w", c.GetGid(), c.GetEgid(), c.GetSgid(), err)
	}
	if _, err := t.Syscall(unix.SYS_SETFSGID, uint64(c.GetFsgid())); err != nil {
		return fmt.Errorf("setfsgid %d: %w", c.GetFsgid(), err)
	}
	if _, err := t.Syscall(unix.SYS_SETRESUID, uint64(c.GetUid()), uint64(c.GetEuid()), uint64(c.GetSuid())); err != nil {
		return fmt.Errorf("setresuid %d %d %d: %w", c.GetUid(), c.GetEuid(), c.GetSuid(), err)
	}
	if _, err := t.Syscall(unix.SYS_SETFSUID, uint64(c.GetFsuid())); err != nil {
		return fmt.Errorf("setfsuid %d: %w", c.GetFsuid(), err)
	}
	// capset takes a header {version, pid} and two data structs
	// {effective, permitted, inheritable} for the low and high words.
	hdr := []uint32{unix.LINUX_CAPABILITY_VERSION_3, 0}
	eff, prm, inh := capWords(c.CapEff), capWords(c.CapPrm), capWords(c.CapInh)
	data := []uint32{uint32(eff), uint32(prm), uint32(inh), uint32(eff >> 32), uint32(prm >> 32), uint32(inh >> 32)}
	buf := make([]byte, 0, 32)
	for _, w := range append(hdr, data...) {
		buf = append(buf, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	if err := t.Write(off, buf); err != nil {
		return err
	}
	if _, err := t.Syscall(unix.SYS_CAPSET, t.Scratch+off, t.Scratch+off+8); err != nil {
		return fmt.Errorf("capset eff %#x prm %#x inh %#x: %w", eff, prm, inh, err)
	}
	if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear the ambient set: %w", err)
	}
	for capNr := uint64(0); capNr < 64; capNr++ {
		if amb&(1<<capNr) == 0 {
			continue
		}
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, capNr, 0, 0); err != nil {
			return fmt.Errorf("raise capability %d in the ambient set %#x: %w", capNr, amb, err)
		}
	}
	if keep != secbits {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0); err != nil {
			return fmt.Errorf("clear keep-caps: %w", err)
		}
	}
	return nil
}

// FullyPrivileged says whether the invoking gocr may give a restored task
// any credentials: root with CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID in
// effect (other capabilities, such as CAP_SYS_RESOURCE, may be missing).
func FullyPrivileged(inv procfs.TaskStatus) bool {
	need := uint64(1)<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_SETUID | 1<<unix.CAP_SETGID
	return inv.Uid[1] == 0 && inv.CapEff&need == need
}

// Within refuses credentials beyond those of the invoking user inv, for a
// gocr without full privileges: every uid one of inv's, every gid one of
// its gids or groups, no capability outside its permitted set, no bounding
// capability outside its bounding set. The kernel would refuse most of
// these half-way through the restore; this says so before anything is
// made, naming the field.
func Within(c *creds.CredsEntry, inv procfs.TaskStatus) error {
	amb, err := CapAmb(c)
	if err != nil {
		return err
	}
	uidOK := func(u uint32) bool { return u == inv.Uid[0] || u == inv.Uid[1] || u == inv.Uid[2] }
	gidOK := func(g uint32) bool {
		if g == inv.Gid[0] || g == inv.Gid[1] || g == inv.Gid[2] {
			return true
		}
		for _, x := range inv.Groups {
			if x == g {
				return true
			}
		}
		return false
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{{"uid", c.GetUid()}, {"euid", c.GetEuid()}, {"suid", c.GetSuid()}, {"fsuid", c.GetFsuid()}} {
		if !uidOK(f.v) {
			return fmt.Errorf("creds.%s: %d is not a uid of the invoking user (%d): restoring it needs full privileges", f.name, f.v, inv.Uid[1])
		}
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{{"gid", c.GetGid()}, {"egid", c.GetEgid()}, {"sgid", c.GetSgid()}, {"fsgid", c.GetFsgid()}} {
		if !gidOK(f.v) {
			return fmt.Errorf("creds.%s: %d is not a group of the invoking user: restoring it needs full privileges", f.name, f.v)
		}
	}
	for i, g := range c.GetGroups() {
		if !gidOK(g) {
			return fmt.Errorf("creds.groups[%d]: %d is not a group of the invoking user: restoring it needs full privileges", i, g)
		}
	}
	for _, f := range []struct {
		name      string
		v, within uint64
	}{
		{"cap_eff", capWords(c.CapEff), inv.CapPrm}, {"cap_prm", capWords(c.CapPrm), inv.CapPrm},
		{"cap_inh", capWords(c.CapInh), inv.CapPrm | inv.CapInh}, {"cap_bnd", capWords(c.CapBnd), inv.CapBnd},
		{"cap_amb", amb, inv.CapPrm},
	} {
		if extra := f.v &^ f.within; extra != 0 {
			return fmt.Errorf("creds.%s: %#x has capabilities %#x the invoking user lacks: restoring them needs full privileges", f.name, f.v, extra)
		}
	}
	return nil
}
