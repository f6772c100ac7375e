package engine

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/ptrace"
)

// abortRseqCS sends a thread stopped inside an rseq critical section to
// the section's abort handler, before anything is injected into it. The
// kernel would do that itself on the thread's way back to user mode, but
// injected calls make it forget the section: up to Linux 6.18 it clears
// rseq_cs when one returns outside the section, and since 6.19 it looks at
// rseq_cs only after an interrupt from user mode. So the thread runs on
// from its abort handler (after --leave-running or a failed dump), and the
// image holds the registers it would have had, as CRIU's do. rseq_cs is
// left as it is: it names a section the abort handler lies outside of,
// and the kernel clears it at its next look.
func (d *dumper) abortRseqCS(pid int, t *threadState) error {
	if len(t.rseqArea) < abi.RseqCSOffset+8 {
		return nil
	}
	addr := binary.LittleEndian.Uint64(t.rseqArea[abi.RseqCSOffset:])
	if addr == 0 {
		return nil
	}
	var cs abi.RseqCS
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&cs)), unsafe.Sizeof(cs))
	if err := ptrace.ReadMem(pid, addr, buf); err != nil || cs.Version != 0 {
		// A descriptor the kernel cannot use either: it kills the
		// thread at its next look, as it would have without the dump.
		return nil
	}
	if !cs.Contains(t.regs.Rip) {
		return nil
	}
	regs := t.regs
	regs.Rip = cs.AbortIP
	// A section makes no system call: none is left to restart.
	regs.OrigRax = ^uint64(0)
	if e := -int64(regs.Rax); e >= abi.ERESTARTSYS && e <= abi.ERESTART_RESTARTBLOCK {
		eintr := -int64(unix.EINTR)
		regs.Rax = uint64(eintr)
	}
	if err := d.tr.SetRegs(t.tid, regs); err != nil {
		return err
	}
	d.log.Info("thread stopped inside an rseq critical section: sent to its abort handler", "pid", pid, "tid", t.tid, "ip", t.regs.Rip, "abort_ip", cs.AbortIP)
	t.regs = regs
	return nil
}
