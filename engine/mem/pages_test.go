package mem

import (
	"bytes"
	"testing"

	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/engine/remote/remotetest"
)

// memWriter writes across writable, read-only and inaccessible pages of a
// real process, opening /proc/PID/mem once for all of them.
func TestMemWriter(t *testing.T) {
	task, _ := remotetest.Task(t, 4096)
	base := hole(t, task.Pid, 7*pageSize)
	vmas := entries(base, []area{{2, rw, 0, false}, {1, r, 0, false}, {1, no, 0, false}, {2, rw, 0, false}, {1, r, 0, false}})
	if err := mapVMAs(task, vmas, Fds{}, false); err != nil {
		t.Fatal(err)
	}
	w := newMemWriter(task.Pid)
	defer w.close()
	data := bytes.Repeat([]byte("gocr"), 7*pageSize/4)
	mem := -1
	for off := 0; off < len(data); off += 3000 { // runs across VMA boundaries
		n := min(3000, len(data)-off)
		if err := w.write(base+uint64(off), data[off:off+n]); err != nil {
			t.Fatal(err)
		}
		if mem < 0 {
			mem = w.mem
		} else if w.mem != mem {
			t.Fatalf("/proc/PID/mem opened again: fd %d, then %d", mem, w.mem)
		}
	}
	got := make([]byte, len(data))
	if err := ptrace.ReadMem(task.Pid, base, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("memory read back differs from what was written")
	}
}

// Overlays replace what was read wherever they fall in a chunk, also in
// part, across chunk boundaries, and leave the rest alone.
func TestApplyOverlays(t *testing.T) {
	mem := bytes.Repeat([]byte{'.'}, 64)
	overlays := []Overlay{{Addr: 1000 + 6, Data: []byte("abcd")}, {Addr: 1000 + 30, Data: []byte("0123456789")}, {Addr: 990, Data: []byte("xyz")}, {Addr: 1064, Data: []byte("!")}}
	want := append([]byte(nil), mem...)
	copy(want[6:], "abcd")
	copy(want[30:], "0123456789")
	for _, chunk := range []int{1, 3, 7, 32, 64} {
		got := append([]byte(nil), mem...)
		for off := 0; off < len(got); off += chunk {
			end := min(off+chunk, len(got))
			applyOverlays(got[off:end], uint64(1000+off), overlays)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("chunks of %d: got %q, want %q", chunk, got, want)
		}
	}
}
