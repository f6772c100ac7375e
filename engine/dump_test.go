package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/internal/rseqtest"
)

// TestDumpKeepsRseqArea: a dump copies the pages while it injects system
// calls, and the kernel rewrites a thread's rseq area each time one of
// them returns to user mode; the image must hold the area as the thread
// stopped. A stopped sleep (glibc ≥ 2.35 registers rseq for it) is given
// 256 MiB, copied before the area (which lies above, near glibc) so that
// the injection has begun by the time the copy reaches it, and cpu ids no
// CPU has in its area: they must be what the image holds.
func TestDumpKeepsRseqArea(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// Where the area is, and memory to copy first.
	const bigSize = 256 << 20
	sl := rseqtest.StartSleep(t, bigSize)
	pid, addr, big := sl.Pid, sl.Area, sl.Mapped
	if big > addr {
		t.Fatalf("256 MiB mapped at %#x, above the rseq area at %#x: it would be copied after it", big, addr)
	}
	chunk := bytes.Repeat([]byte("gocr"), 2<<20)
	for off := uint64(0); off < bigSize; off += uint64(len(chunk)) {
		if err := ptrace.WriteMem(pid, big+off, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	rseqtest.WaitState(t, pid, 'T')
	// struct rseq starts with cpu_id_start and cpu_id (u32 each).
	mark := []byte{0xad, 0xde, 0xad, 0xde, 0xef, 0xbe, 0xef, 0xbe}
	if err := ptrace.WriteMem(pid, addr, mark); err != nil {
		t.Fatal(err)
	}

	images := filepath.Join(t.TempDir(), "img")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: images, LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	d, err := image.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := pagesAt(t, d, uint32(pid), addr, len(mark))
	if !bytes.Equal(got, mark) {
		t.Fatalf("rseq area at %#x in the image: % x, want % x as the task stopped", addr, got, mark)
	}
	live := make([]byte, len(mark))
	if err := ptrace.ReadMem(pid, addr, live); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(live, mark) {
		t.Log("the kernel did not rewrite the rseq area during the dump: the image was not put to the test")
	} else {
		t.Logf("the kernel rewrote the rseq area during the dump (% x); the image kept % x", live, got)
	}
}

// pagesAt reads n bytes at addr from the pages image of pid.
func pagesAt(t *testing.T, d *image.Dir, pid uint32, addr uint64, n int) []byte {
	t.Helper()
	pr, err := d.PageReader(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	for pr.Next() {
		r := pr.Run()
		if r.Present() && r.Vaddr <= addr && addr+uint64(n) <= r.End() {
			b := make([]byte, n)
			if _, err := pr.PagesFile().ReadAt(b, r.Offset+int64(addr-r.Vaddr)); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	if err := pr.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no page at %#x in the image", addr)
	return nil
}

// TestDumpAbortsRseqCS: a thread stopped inside an rseq critical section
// must run on from the section's abort handler, as the kernel would send
// it there, and the image must say so too: injected calls make the kernel
// forget the section, so the dump moves the thread itself.
func TestDumpAbortsRseqCS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	v := rseqtest.Start(t)
	images := filepath.Join(t.TempDir(), "img")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Dump(ctx, DumpOptions{Pid: v.Pid, ImagesDir: images, LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	if ip := v.IP(t); ip != v.AbortIP {
		t.Errorf("the task left running goes on at %#x, want its abort handler %#x (stopped at %#x)", ip, v.AbortIP, v.StopIP)
	}
	d, err := image.Open(images)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	core, err := image.ReadOne[criu_core.CoreEntry](d, image.Core, image.CoreFile(uint32(v.Pid)))
	if err != nil {
		t.Fatal(err)
	}
	if ip := core.GetThreadInfo().GetGpregs().GetIp(); ip != v.AbortIP {
		t.Errorf("the image goes on at %#x, want the abort handler %#x", ip, v.AbortIP)
	}
}

// TestDumpRefusesRefusedRseqCS: a section whose abort handler lacks the
// thread's signature is one the kernel refuses, sending SIGSEGV at its
// next look, which every injected call would be. The dump must refuse the
// task, naming the section, and leave it as it was.
func TestDumpRefusesRefusedRseqCS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	v := rseqtest.StartWrongSignature(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Dump(ctx, DumpOptions{Pid: v.Pid, ImagesDir: filepath.Join(t.TempDir(), "img"), LeaveRunning: true})
	if err == nil || !strings.Contains(err.Error(), "critical section the kernel refuses") {
		t.Fatalf("dump: %v, want a refusal naming the critical section", err)
	}
	t.Log(err)
	if ip, cs := v.IP(t), v.RseqCS(t); !v.InSection(ip) || cs != v.CS {
		t.Errorf("after the refused dump the task goes on at %#x with rseq_cs %#x, want inside its section (at %#x) with %#x", ip, cs, v.StopIP, v.CS)
	}
}
