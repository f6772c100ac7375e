package files

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fh"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timerfd"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
)

func TestHandleWords(t *testing.T) {
	h := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	words := handleWords(h)
	if len(words) != 16 || words[0] != 0x0807060504030201 || words[1] != 0x0b0a09 {
		t.Fatalf("words %#x", words)
	}
	back, err := handleBytes(&fh.FhEntry{Bytes: ptr(uint32(len(h))), Handle: words})
	if err != nil || !bytes.Equal(back, h) {
		t.Fatalf("back %v, %v", back, err)
	}
	if _, err := handleBytes(&fh.FhEntry{Bytes: ptr(uint32(200)), Handle: words}); err == nil {
		t.Fatal("a handle longer than MAX_HANDLE_SZ was accepted")
	}
}

func TestMemfdModeSurvivesEncoding(t *testing.T) {
	e := &memfd.MemfdInodeEntry{Name: ptr("x"), Uid: ptr(uint32(1)), Gid: ptr(uint32(2)), Size: ptr(uint64(3)),
		Shmid: ptr(uint32(4)), Seals: ptr(uint32(5)), InodeId: ptr(uint64(6))}
	if _, ok := memfdMode(e); ok {
		t.Fatal("mode found in an entry without one")
	}
	setMemfdMode(e, 0o100666)
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back memfd.MemfdInodeEntry
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if m, ok := memfdMode(&back); !ok || m != 0o100666 || back.GetInodeId() != 6 {
		t.Fatalf("mode %o (%v), inode id %d", m, ok, back.GetInodeId())
	}
}

// Watch descriptors come back as they were, with gaps.
func TestAddWatchAs(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, want := range []int{2, 7} {
		p := filepath.Join(dir, "f"+string(rune('0'+want)))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := addWatchAs(fd, p, unix.IN_MODIFY, want); err != nil {
			t.Fatalf("want wd %d: %v", want, err)
		}
	}
	info, err := procfs.FdInfo(os.Getpid(), fd)
	if err != nil {
		t.Fatal(err)
	}
	wds := map[int]bool{}
	for _, w := range info.Inotify {
		wds[w.WD] = true
	}
	if len(wds) != 2 || !wds[2] || !wds[7] {
		t.Fatalf("watches %+v", info.Inotify)
	}
}

// The dump finds a watched file's path from its handle, as a restore in
// another filesystem would need it.
func TestLocateWatch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "watched")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, file, unix.IN_MODIFY); err != nil {
		t.Fatal(err)
	}
	info, err := procfs.FdInfo(os.Getpid(), fd)
	if err != nil || len(info.Inotify) != 1 {
		t.Fatalf("fdinfo: %+v, %v", info.Inotify, err)
	}
	mounts, err := procfs.MountInfo(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	w := info.Inotify[0]
	if w.FhandleBytes == 0 {
		t.Skip("the temporary directory's filesystem gives no file handles")
	}
	got, err := locateWatch(os.Getpid(), mounts, w)
	if err != nil || got != file {
		t.Fatalf("path %q, %v; want %q", got, err, file)
	}
	w.Ino++
	if _, err := locateWatch(os.Getpid(), mounts, w); err == nil {
		t.Fatal("a handle that opens another inode was accepted")
	}
}

// A timerfd comes back with its time left, absolute or not, and its
// unread expirations.
func TestOpenTimerfd(t *testing.T) {
	for _, abs := range []uint32{0, unix.TFD_TIMER_ABSTIME} {
		e := &timerfd.TimerfdEntry{Flags: ptr(uint32(unix.O_NONBLOCK)), Clockid: ptr(uint32(unix.CLOCK_MONOTONIC)),
			Ticks: ptr(uint64(5)), SettimeFlags: ptr(abs), Vsec: ptr(uint64(100)), Vnsec: ptr(uint64(0)),
			Isec: ptr(uint64(0)), Insec: ptr(uint64(0))}
		fd, err := openTimerfd(e)
		if err != nil {
			t.Fatal(err)
		}
		var cur unix.ItimerSpec
		if err := unix.TimerfdGettime(fd, &cur); err != nil {
			t.Fatal(err)
		}
		left := time.Duration(cur.Value.Sec)*time.Second + time.Duration(cur.Value.Nsec)
		if left > 100*time.Second || left < 99*time.Second {
			t.Errorf("settime flags %d: %v left, want about 100s", abs, left)
		}
		var b [8]byte
		if n, err := unix.Read(fd, b[:]); err != nil || n != 8 || binary.LittleEndian.Uint64(b[:]) != 5 {
			t.Errorf("settime flags %d: read %d bytes %v (%v), want 5 expirations", abs, n, b, err)
		}
		unix.Close(fd)
	}
}

// A memfd written by the dump side comes back with its name, contents,
// size and seals.
func TestMemfdRoundTrip(t *testing.T) {
	src, err := unix.MemfdCreate("roundtrip", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(src)
	data := bytes.Repeat([]byte("gocr"), 3000) // 12000 bytes: a partial last page
	if _, err := unix.Pwrite(src, data, 1<<20); err != nil {
		t.Fatal(err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(src), unix.F_ADD_SEALS, seals); err != nil {
		t.Fatal(err)
	}
	dirPath := filepath.Join(t.TempDir(), "img")
	d, err := image.Create(dirPath)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(d)
	defer s.Close()
	id, err := s.memfdInode(src, "roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.memfdInode(src, "roundtrip"); err != nil || again != id {
		t.Fatalf("the same inode got id %d (%v), then %d", id, err, again)
	}
	fileID := s.addMemfd(unix.O_RDWR, 5, id)
	pages, err := s.WriteMemfds(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 {
		t.Errorf("%d pages written for a sparse memfd with 12000 bytes at 1 MiB, want 3", pages)
	}
	d.Close()

	rd, err := image.Open(dirPath)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ms, err := image.ReadAll[memfd.MemfdInodeEntry](rd, image.MemfdInode, image.MemfdFile)
	if err != nil || len(ms) != 1 {
		t.Fatalf("memfd.img: %v, %v", ms, err)
	}
	r := NewRestorer(s.Entries, "")
	defer r.Close()
	r.Dir, r.MemfdInodes = rd, map[uint64]*memfd.MemfdInodeEntry{ms[0].GetInodeId(): ms[0]}
	fd, err := r.Open(fileID)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SealMemfds(); err != nil {
		t.Fatal(err)
	}
	link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if link != "/memfd:roundtrip (deleted)" {
		t.Errorf("link %q", link)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != int64(1<<20+len(data)) {
		t.Errorf("size %d (%v)", st.Size, err)
	}
	got := make([]byte, len(data))
	if _, err := unix.Pread(fd, got, 1<<20); err != nil || !bytes.Equal(got, data) {
		t.Errorf("contents differ (%v)", err)
	}
	if pos, _ := unix.Seek(fd, 0, unix.SEEK_CUR); pos != 5 {
		t.Errorf("offset %d, want 5", pos)
	}
	if got, _ := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); got != seals {
		t.Errorf("seals %#x, want %#x", got, seals)
	}
}
