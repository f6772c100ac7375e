package workloads

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// PipeSize holds pipes whose capacity is not the default 64 KiB: one
// grown to 1 MiB with 200 KiB in flight (more than a default pipe could
// take), an empty one shrunk to a page, and a FIFO under --dirname grown
// to 256 KiB. After restore each has its capacity (F_GETPIPE_SZ) and the
// bytes in flight again.
var PipeSize = lib.Workload{Name: "pipe_size", Run: func(t *lib.T) {
	dir := t.Opt("dirname", ".")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mkpipe := func(size int) [2]int {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_NONBLOCK); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
			t.Fatal(fmt.Errorf("F_SETPIPE_SZ %d: %w", size, err))
		}
		return p
	}
	big, small := mkpipe(1<<20), mkpipe(4096)
	data := make([]byte, 200<<10)
	seed := splitmix64(0x919e5123)
	for i := range data {
		data[i] = byte(seed.next())
	}
	if n, err := unix.Write(big[1], data); err != nil || n != len(data) {
		t.Fatal(fmt.Errorf("fill the 1 MiB pipe: %d, %v", n, err))
	}
	fifoPath := filepath.Join(dir, "pipe_size.fifo")
	os.Remove(fifoPath)
	if err := unix.Mkfifo(fifoPath, 0o600); err != nil {
		t.Fatal(err)
	}
	fifo, err := unix.Open(fifoPath, unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fifo), unix.F_SETPIPE_SZ, 256<<10); err != nil {
		t.Fatal(err)
	}
	sizes := []struct {
		name string
		fd   int
		want int
	}{{"the 1 MiB pipe", big[0], 1 << 20}, {"the one-page pipe", small[1], 4096}, {"the FIFO", fifo, 256 << 10}}
	check := func(when string) {
		for _, s := range sizes {
			if got, err := unix.FcntlInt(uintptr(s.fd), unix.F_GETPIPE_SZ, 0); err != nil || got != s.want {
				t.Fail("%s: %s holds %d bytes (%v), want %d", when, s.name, got, err, s.want)
			}
		}
	}
	check("before the dump")
	t.Ready()
	t.WaitSignal()
	check("after restore")
	got := make([]byte, len(data)+1)
	n, err := unix.Read(big[0], got)
	if err != nil || n != len(data) || !bytes.Equal(got[:n], data) {
		t.Fail("the 1 MiB pipe gave %d bytes (%v), want the %d in flight", n, err, len(data))
	}
	t.Pass()
}}
