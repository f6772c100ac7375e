// Package sig dumps and restores a task's signal state: the 64
// dispositions (sigaction.go) and queued signals (pending.go).
package sig

import (
	"fmt"

	criu_sa "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-sa"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/remote"
)

// unchangeable are the signals whose disposition the kernel does not let
// anyone read or set.
func unchangeable(s int) bool { return s == int(unix.SIGKILL) || s == int(unix.SIGSTOP) }

// DumpActions reads all 64 dispositions by injecting rt_sigaction(sig,
// NULL, scratch) into the task: there is no other way to see a handler's
// address, flags, restorer and mask from outside. The image keeps one
// entry per signal 1..64 except SIGKILL and SIGSTOP, in order.
func DumpActions(t *remote.Task) ([]*criu_sa.SaEntry, error) {
	var out []*criu_sa.SaEntry
	for s := 1; s <= abi.NSIG; s++ {
		if unchangeable(s) {
			continue
		}
		if _, err := t.Syscall(unix.SYS_RT_SIGACTION, uint64(s), 0, t.Scratch, abi.SigsetSize); err != nil {
			return nil, fmt.Errorf("read sigaction of signal %d: %w", s, err)
		}
		var sa abi.KernelSigaction
		if err := remote.ReadStruct(t, 0, &sa); err != nil {
			return nil, err
		}
		out = append(out, &criu_sa.SaEntry{Sigaction: &sa.Handler, Flags: &sa.Flags, Restorer: &sa.Restorer, Mask: &sa.Mask})
	}
	return out, nil
}

// RestoreActions sets every disposition from the image, in the same order
// DumpActions wrote them.
func RestoreActions(t *remote.Task, sas []*criu_sa.SaEntry) error {
	i := 0
	for s := 1; s <= abi.NSIG; s++ {
		if unchangeable(s) {
			continue
		}
		if i >= len(sas) {
			break // an older image with fewer entries: the rest stay default
		}
		e := sas[i]
		i++
		sa := abi.KernelSigaction{Handler: e.GetSigaction(), Flags: e.GetFlags(), Restorer: e.GetRestorer(), Mask: e.GetMask()}
		if err := remote.WriteStruct(t, 0, &sa); err != nil {
			return err
		}
		if _, err := t.Syscall(unix.SYS_RT_SIGACTION, uint64(s), t.Scratch, 0, abi.SigsetSize); err != nil {
			return fmt.Errorf("set sigaction of signal %d (handler %#x flags %#x): %w", s, sa.Handler, sa.Flags, err)
		}
	}
	return nil
}
