package engine

import (
	"encoding/binary"
	"fmt"
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
	why := ""
	if err := ptrace.ReadMem(pid, addr, buf); err != nil {
		why = "it cannot be read"
	} else {
		why = rseqCSRefusal(pid, &cs, t.rseq.Signature)
	}
	if why != "" {
		// Each injected call would make the kernel send SIGSEGV again;
		// left alone, the thread gets it as it runs on.
		return fmt.Errorf("rseq_cs %#x names a critical section the kernel refuses, killing the thread: %s", addr, why)
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

// rseqCSRefusal says why the kernel refuses a critical section, "" if it
// does not: as it checks a descriptor before looking at the thread's ip.
func rseqCSRefusal(pid int, cs *abi.RseqCS, signature uint32) string {
	var sig [4]byte
	switch {
	case cs.Version != 0:
		return fmt.Sprintf("version %d", cs.Version)
	case cs.StartIP+cs.PostCommitOffset < cs.StartIP:
		return "the section wraps around"
	case cs.Contains(cs.AbortIP):
		return fmt.Sprintf("abort handler %#x inside the section", cs.AbortIP)
	case cs.AbortIP < 4 || ptrace.ReadMem(pid, cs.AbortIP-4, sig[:]) != nil:
		return fmt.Sprintf("no signature readable before the abort handler %#x", cs.AbortIP)
	case binary.LittleEndian.Uint32(sig[:]) != signature:
		return fmt.Sprintf("signature %#x before the abort handler %#x, the thread registered %#x", binary.LittleEndian.Uint32(sig[:]), cs.AbortIP, signature)
	}
	return ""
}
