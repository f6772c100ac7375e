package workloads

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gocr/gocr/zdtm/lib"
	"golang.org/x/sys/unix"
)

const (
	fileOffsetSize = 3*4096 + 123 // not a page multiple
	fileOffsetPos  = 4096 + 777   // where the read-write fd is left
)

// FileOffset keeps two open files whose fd state a restore must rebuild:
// --filename opened O_RDWR (close-on-exec), filled with known data and
// seeked into the middle; and a second file under --dirname opened
// O_WRONLY|O_APPEND and seeked back to 0. After SIGTERM it checks both
// offsets, the F_GETFL and F_GETFD flags and the contents, reads on from
// the first fd's offset, and writes through the O_APPEND fd, which must
// land at the end of the file.
var FileOffset = lib.Workload{Name: "file_offset", Run: func(t *lib.T) {
	name := t.Opt("filename", "file_offset.data")
	dir := t.Opt("dirname", ".")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appName := filepath.Join(dir, "file_offset.append")
	data := make([]byte, fileOffsetSize)
	seed := splitmix64(0xf11e0ff5)
	for i := range data {
		data[i] = byte(seed.next())
	}
	appData := []byte("first line of the append-only file\n")

	rw, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(fmt.Errorf("open %s: %w", name, err))
	}
	if n, err := unix.Write(rw, data); err != nil || n != len(data) {
		t.Fatal(fmt.Errorf("write %s: %d, %v", name, n, err))
	}
	if _, err := unix.Seek(rw, fileOffsetPos, 0); err != nil {
		t.Fatal(err)
	}
	app, err := unix.Open(appName, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(fmt.Errorf("open %s: %w", appName, err))
	}
	if n, err := unix.Write(app, appData); err != nil || n != len(appData) {
		t.Fatal(fmt.Errorf("write %s: %d, %v", appName, n, err))
	}
	if _, err := unix.Seek(app, 0, 0); err != nil {
		t.Fatal(err)
	}
	type fdState struct {
		pos    int64
		fl, fd int
	}
	state := func(fd int) fdState {
		pos, err := unix.Seek(fd, 0, 1)
		if err != nil {
			t.Fatal(fmt.Errorf("lseek fd %d: %w", fd, err))
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fdState{pos, fl, fdfl}
	}
	rwWant, appWant := state(rw), state(app)
	if rwWant.pos != fileOffsetPos || rwWant.fl&unix.O_ACCMODE != unix.O_RDWR || rwWant.fd != unix.FD_CLOEXEC {
		t.Fail("fd %d set up wrong: %+v", rw, rwWant)
	}
	if appWant.pos != 0 || appWant.fl&(unix.O_ACCMODE|unix.O_APPEND) != unix.O_WRONLY|unix.O_APPEND || appWant.fd != 0 {
		t.Fail("fd %d set up wrong: %+v", app, appWant)
	}
	t.Ready()
	t.WaitSignal()

	if got := state(rw); got != rwWant {
		t.Fail("%s (fd %d): offset/F_GETFL/F_GETFD %+v, want %+v", name, rw, got, rwWant)
	}
	if got := state(app); got != appWant {
		t.Fail("%s (fd %d): offset/F_GETFL/F_GETFD %+v, want %+v", appName, app, got, appWant)
	}
	got := make([]byte, len(data)+1)
	if n, err := unix.Pread(rw, got, 0); err != nil || n != len(data) || !bytes.Equal(got[:n], data) {
		t.Fail("%s: content changed (read %d bytes, %v)", name, n, err)
	}
	if n, err := unix.Read(rw, got); err != nil || n != len(data)-fileOffsetPos || !bytes.Equal(got[:n], data[fileOffsetPos:]) {
		t.Fail("%s: reading on from offset %d gave %d bytes (%v), want the file's last %d", name, fileOffsetPos, n, err, len(data)-fileOffsetPos)
	}
	tail := []byte("appended after SIGTERM\n")
	if n, err := unix.Write(app, tail); err != nil || n != len(tail) {
		t.Fail("write %s: %d, %v", appName, n, err)
	}
	if pos, _ := unix.Seek(app, 0, 1); pos != int64(len(appData)+len(tail)) {
		t.Fail("%s: offset %d after an O_APPEND write, want %d", appName, pos, len(appData)+len(tail))
	}
	content, err := os.ReadFile(appName)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(appData, tail...); !bytes.Equal(content, want) {
		t.Fail("%s holds %q, want %q", appName, content, want)
	}
	t.Pass()
}}
