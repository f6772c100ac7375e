package engine

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/files"
	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/engine/remote"
)

// takePendingConnections reads what the clients of pending unix
// connections had sent (files.TakePending: the connections are accepted
// by gocr, so they leave their listener) and gives the tree equivalent
// connections back: each descriptor on an old client is switched to a new
// client connected to the same listener with the same data waiting. The
// switch is made whatever went wrong, so a failed dump leaves the tree
// with its connections.
func (d *dumper) takePendingConnections() error {
	swaps, err := d.files.TakePending()
	defer d.files.ReleasePending()
	if len(swaps) == 0 {
		return err
	}
	byPid := map[int][]files.FdSwap{}
	var pids []int
	for _, s := range swaps {
		if byPid[s.Pid] == nil {
			pids = append(pids, s.Pid)
		}
		byPid[s.Pid] = append(byPid[s.Pid], s)
	}
	// Every process is tried, whatever failed before: each switch made
	// is a connection given back.
	for _, pid := range pids {
		if serr := d.tr.Do(func() error { return d.swapFds(pid, byPid[pid]) }); serr != nil {
			err = errors.Join(err, fmt.Errorf("pid %d: the clients of its pending unix connections lost them: %w", pid, serr))
		}
	}
	return err
}

// swapFds puts gocr's sockets at descriptors of a stopped task: injected
// calls make a socket pair in the task, gocr takes one end (pidfd_getfd)
// and passes its sockets through it, and the task dup3s each over its
// descriptor.
func (d *dumper) swapFds(pid int, swaps []files.FdSwap) (err error) {
	insn, err := ptrace.FindSyscallInsn(pid)
	if err != nil {
		return err
	}
	lead, err := d.tr.BeginInject(pid, insn)
	if err != nil {
		return err
	}
	defer func() {
		if eerr := lead.End(); eerr != nil && err == nil {
			err = eerr
		}
	}()
	t, err := remote.MapScratch(lead, pid, 0, scratchSize, unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		return err
	}
	d.wd.send(wdRecord{Kind: wdScratch, Tid: int32(pid), Addr: t.Scratch, Size: t.Size}) //nolint:errcheck // left behind it is harmless
	defer func() {
		if uerr := t.Unmap(); uerr == nil {
			d.wd.send(wdRecord{Kind: wdUnscratch, Tid: int32(pid)}) //nolint:errcheck
		} else if err == nil {
			err = uerr
		}
	}()
	if _, err := t.Syscall(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0, t.Scratch); err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	var sv [2]int32
	if err := remote.ReadStruct(t, 0, &sv); err != nil {
		return err
	}
	defer func() {
		for _, fd := range sv {
			if _, cerr := t.Syscall(unix.SYS_CLOSE, uint64(fd)); cerr != nil && err == nil {
				err = fmt.Errorf("close fd passing socket %d: %w", fd, cerr)
			}
		}
	}()
	local, err := files.CopyFd(pid, int(sv[0]))
	if err != nil {
		return err
	}
	pass := remote.NewFdPasserOver(local)
	defer pass.Close()
	var send []int
	for _, s := range swaps {
		if !slices.Contains(send, s.Local) {
			send = append(send, s.Local)
		}
	}
	got, err := pass.Send(t, int(sv[1]), 64, send)
	if err != nil {
		return err
	}
	for _, s := range swaps {
		flags := uint64(0)
		if s.Cloexec {
			flags = unix.O_CLOEXEC
		}
		if _, err := t.Syscall(unix.SYS_DUP3, uint64(got[slices.Index(send, s.Local)]), uint64(s.Fd), flags); err != nil {
			return fmt.Errorf("fd %d: dup3: %w", s.Fd, err)
		}
	}
	for _, fd := range got {
		if _, err := t.Syscall(unix.SYS_CLOSE, uint64(fd)); err != nil {
			return fmt.Errorf("close passed fd %d: %w", fd, err)
		}
	}
	return nil
}
