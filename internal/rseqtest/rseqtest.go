// Package rseqtest starts a victim for the dump tests with a thread
// stopped inside an rseq critical section.
package rseqtest

import (
	"encoding/binary"
	"errors"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
)

// Victim is a sleep (glibc ≥ 2.35 registers an rseq area for it), stopped
// by SIGSTOP with its rseq_cs naming a critical section around where it
// stopped, as a thread's does when a signal stops it inside one. It stays
// stopped: its abort handler is not code.
type Victim struct {
	Pid int
	// StopIP is where it stopped, AbortIP the section's abort handler.
	StopIP, AbortIP uint64
	// CSAddr is where its rseq_cs is; CS what it holds: the address of
	// the section's descriptor.
	CSAddr, CS uint64
}

// Start starts the victim, or skips the test when sleep has no rseq area.
// The victim is killed when the test ends.
func Start(t testing.TB) *Victim {
	t.Helper()
	return start(t, false)
}

// StartWrongSignature starts a victim whose abort handler is not preceded
// by its signature: a descriptor the kernel refuses (it kills the thread
// at its next look).
func StartWrongSignature(t testing.TB) *Victim {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, wrongSignature bool) *Victim {
	t.Helper()
	sl := StartSleep(t, 4096)
	v := &Victim{Pid: sl.Pid}
	v.StopIP = v.IP(t) // right after the syscall instruction of its sleep
	page, sig := sl.Mapped, sl.Signature
	// The descriptor at page: a section around StopIP (see InSection),
	// its abort handler at page+132, after the signature.
	v.CS, v.AbortIP = page, page+132
	cs := abi.RseqCS{StartIP: v.sectionStart(), PostCommitOffset: sectionLen, AbortIP: v.AbortIP}
	if wrongSignature {
		sig = ^sig
	}
	desc, _ := binary.Append(nil, binary.LittleEndian, &cs)
	if err := errors.Join(ptrace.WriteMem(v.Pid, page, desc),
		ptrace.WriteMem(v.Pid, page+128, binary.LittleEndian.AppendUint32(nil, sig))); err != nil {
		t.Fatal(err)
	}
	// Stopped, it stays off the CPU and the kernel leaves rseq_cs alone.
	if err := unix.Kill(v.Pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	WaitState(t, v.Pid, 'T')
	v.CSAddr = sl.Area + abi.RseqCSOffset
	if err := ptrace.WriteMem(v.Pid, v.CSAddr, binary.LittleEndian.AppendUint64(nil, v.CS)); err != nil {
		t.Fatal(err)
	}
	return v
}

// Sleep is a sleep whose rseq area glibc registered, with memory the
// test mapped into it.
type Sleep struct {
	Pid       int
	Area      uint64 // its struct rseq
	Signature uint32 // the signature it registered the area with
	Mapped    uint64 // where the test's mapping is
}

// StartSleep starts a sleep and maps size bytes of private anonymous
// memory into it, or skips the test when sleep has no rseq area. The
// sleep is killed when the test ends.
func StartSleep(t testing.TB, size uint64) *Sleep {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sl := &Sleep{Pid: cmd.Process.Pid}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	WaitState(t, sl.Pid, 'S') // past exec and glibc's start-up
	withTracer(t, sl.Pid, func(tr *ptrace.Tracer) {
		rc, err := tr.GetRseqConfig(sl.Pid)
		if err != nil || rc.RseqAbiPointer == 0 {
			tr.Detach(sl.Pid, 0)
			t.Skipf("sleep has no rseq area (kernel < 5.13, glibc < 2.35, or glibc.pthread.rseq=0): %v", err)
		}
		sl.Area, sl.Signature = rc.RseqAbiPointer, rc.Signature
		insn, err := ptrace.FindSyscallInsn(sl.Pid)
		if err != nil {
			t.Fatal(err)
		}
		r, err := tr.BeginInject(sl.Pid, insn)
		if err != nil {
			t.Fatal(err)
		}
		sl.Mapped, err = r.Syscall(unix.SYS_MMAP, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
		if err := errors.Join(err, r.End()); err != nil {
			t.Fatal(err)
		}
	})
	return sl
}

// InSection reports whether ip lies in the victim's critical section
// (which holds both where its sleep stopped and the syscall instruction
// before, where the kernel moves it to restart the sleep).
func (v *Victim) InSection(ip uint64) bool {
	return ip-v.sectionStart() < sectionLen
}

func (v *Victim) sectionStart() uint64 { return v.StopIP - sectionLen/2 }

const sectionLen = 32

// IP is where the victim will run on from.
func (v *Victim) IP(t testing.TB) uint64 {
	t.Helper()
	var ip uint64
	withTracer(t, v.Pid, func(tr *ptrace.Tracer) {
		regs, err := tr.GetRegs(v.Pid)
		if err != nil {
			t.Fatal(err)
		}
		ip = regs.Rip
	})
	return ip
}

// RseqCS is what its rseq_cs holds now.
func (v *Victim) RseqCS(t testing.TB) uint64 {
	t.Helper()
	b := make([]byte, 8)
	if err := ptrace.ReadMem(v.Pid, v.CSAddr, b); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

// withTracer runs f with the victim seized and stopped by a tracer of the
// test's own, and lets go of it after.
func withTracer(t testing.TB, pid int, f func(*ptrace.Tracer)) {
	t.Helper()
	tr := ptrace.NewTracer()
	defer tr.Close()
	if err := tr.Seize(pid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		t.Fatal(err)
	}
	defer tr.Detach(pid, 0)
	if _, err := tr.Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	f(tr)
}

// WaitState waits until pid's state in /proc/PID/stat is state.
func WaitState(t testing.TB, pid int, state byte) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if st, err := procfs.Stat(pid); err == nil && st.State == state {
			return
		}
	}
	t.Fatalf("pid %d never reached state %c", pid, state)
}
