package files

import (
	"fmt"
	"os"
	"testing"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
)

func TestTermiosEntry(t *testing.T) {
	in := abi.Termios{Iflag: 1, Oflag: 2, Cflag: 0o277, Lflag: 0o5060, Line: 3}
	for i := range in.Cc {
		in.Cc[i] = uint8(i * 7)
	}
	e := termiosEntry(&in)
	if len(e.GetCCc()) != abi.NCCS || e.GetCIspeed() != 0 {
		t.Fatalf("entry %v", e)
	}
	if out, ok := termiosFrom(e); !ok || out != in {
		t.Fatalf("round trip: %+v, want %+v", out, in)
	}
	e.CCc = e.CCc[:5]
	if _, ok := termiosFrom(e); ok {
		t.Fatal("5 control characters accepted")
	}
}

func TestCheckTtyInfo(t *testing.T) {
	good := func() *tty.TtyInfoEntry {
		return &tty.TtyInfoEntry{Id: ptr(uint32(7)), Type: tty.TtyType_PTY.Enum(), Pty: &tty.TtyPtyEntry{Index: ptr(uint32(3))},
			Termios: termiosEntry(&abi.Termios{})}
	}
	if err := CheckTtyInfo(good()); err != nil {
		t.Fatal(err)
	}
	bad := []func(e *tty.TtyInfoEntry){
		func(e *tty.TtyInfoEntry) { e.Type = tty.TtyType_VT.Enum() },
		func(e *tty.TtyInfoEntry) { e.Pty = nil },
		func(e *tty.TtyInfoEntry) { e.Pty.Index = ptr(uint32(4)) },
		func(e *tty.TtyInfoEntry) { e.Termios.CCc = nil },
	}
	for i, b := range bad {
		e := good()
		b(e)
		if err := CheckTtyInfo(e); err == nil {
			t.Errorf("bad entry %d accepted: %v", i, e)
		}
	}
}

// TestPtyDumpRestore dumps a pty of the test's own (a master and two opens
// of its slave, in raw mode, packet mode, a window size, exclusive),
// closes it, and makes it again from the entries: the same index, the same
// state on either side, and data flows.
func TestPtyDumpRestore(t *testing.T) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	index, _ := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/dev/pts/%d", index)
	s1, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawTermios(t, s1)
	ws := abi.Winsize{Row: 41, Col: 133}
	if err := ioctlPtr(m, unix.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCPKT, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetInt(s1, unix.TIOCEXCL, 0); err != nil {
		t.Fatal(err)
	}

	// Queued both ways at the dump: "wait" for the slave, "back" for the
	// master (after packet mode's status byte).
	if _, err := unix.Write(m, []byte("wait")); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(s1, []byte("back")); err != nil {
		t.Fatal(err)
	}

	s := NewSet(nil)
	ids := map[int]uint32{}
	for _, fd := range []int{m, s2, s1} { // a slave first: the order must not matter
		target, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		info, err := procfs.FdInfo(os.Getpid(), fd)
		if err != nil {
			t.Fatal(err)
		}
		id, typ, err := s.dumpFile(os.Getpid(), Fd{Fd: fd, Target: target, Info: info})
		if err != nil || typ.String() != "TTY" {
			t.Fatalf("dump fd %d (%s): %v, %v", fd, target, typ, err)
		}
		ids[fd] = id
	}
	ptys := s.Ptys()
	if len(ptys) != 1 || ptys[0].Index != uint32(index) || ptys[0].Master == nil || ptys[0].Slave == nil ||
		!ptys[0].Master.GetPacketMode() || !ptys[0].Slave.GetExclusive() || len(s.TtyInfos) != 2 {
		t.Fatalf("ptys %+v, infos %v", ptys, s.TtyInfos)
	}
	if err := s.DumpTtyData(); err != nil {
		t.Fatal(err)
	}
	queued := map[uint32][]byte{}
	for _, e := range s.TtyData {
		queued[e.GetTtyId()] = e.GetData()
	}
	if len(s.TtyData) != 2 || string(queued[ids[m]]) != "back" || string(queued[ptys[0].slaveID]) != "wait" {
		t.Fatalf("tty data %v, want wait for the slave, back for the master", s.TtyData)
	}
	// Put back in the pty dumped, as the dump leaves it.
	b := make([]byte, 8)
	if n, err := unix.Read(s1, b); err != nil || string(b[:n]) != "wait" {
		t.Fatalf("slave read %q after the dump, %v", b[:max(n, 0)], err)
	}
	for _, fd := range []int{m, s1, s2} {
		unix.Close(fd)
	}
	s.Close()

	r := NewRestorer(s.Entries, "")
	for _, e := range s.TtyInfos {
		r.TtyInfos[e.GetId()] = e
	}
	r.TtyData = queued
	defer r.Close()
	got := map[int]int{}
	for _, fd := range []int{s1, m, s2} {
		if got[fd], err = r.Open(ids[fd]); err != nil {
			t.Fatalf("restore: %v", err)
		}
	}
	m, s1, s2 = got[m], got[s1], got[s2]
	if n, err := unix.IoctlGetInt(m, unix.TIOCGPTN); err != nil || n != index {
		t.Fatalf("restored master has index %d (%v), want %d", n, err, index)
	}
	for _, fd := range []int{m, s1} {
		var tt abi.Termios
		var w abi.Winsize
		if err := ioctlPtr(fd, unix.TCGETS, unsafe.Pointer(&tt)); err != nil || tt != raw {
			t.Errorf("fd %d: termios %+v (%v), want %+v", fd, tt, err, raw)
		}
		if err := ioctlPtr(fd, unix.TIOCGWINSZ, unsafe.Pointer(&w)); err != nil || w != ws {
			t.Errorf("fd %d: window %+v (%v), want %+v", fd, w, err, ws)
		}
	}
	if v, err := unix.IoctlGetInt(m, unix.TIOCGPKT); err != nil || v != 1 {
		t.Errorf("packet mode %d (%v)", v, err)
	}
	if v, err := unix.IoctlGetInt(s1, unix.TIOCGEXCL); err != nil || v != 1 {
		t.Errorf("slave exclusive %d (%v)", v, err)
	}
	if fl, _ := unix.FcntlInt(uintptr(s2), unix.F_GETFL, 0); fl&(unix.O_ACCMODE|unix.O_NONBLOCK) != unix.O_RDONLY|unix.O_NONBLOCK {
		t.Errorf("second slave flags %#o", fl)
	}
	if n, err := unix.Read(m, b); err != nil || string(b[:n]) != "\x00back" {
		t.Fatalf("master read %q after restore, %v, want \\0back", b[:max(n, 0)], err)
	}
	if n, err := unix.Read(s1, b); err != nil || string(b[:n]) != "wait" {
		t.Fatalf("slave read %q after restore, %v", b[:max(n, 0)], err)
	}
	if _, err := unix.Write(m, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Read(s1, b); err != nil || string(b[:n]) != "ping" {
		t.Fatalf("slave read %q, %v", b[:max(n, 0)], err)
	}
}

// rawTermios puts fd in raw mode with VMIN 4 and returns its termios.
func rawTermios(t *testing.T, fd int) abi.Termios {
	t.Helper()
	var tt abi.Termios
	if err := ioctlPtr(fd, unix.TCGETS, unsafe.Pointer(&tt)); err != nil {
		t.Fatal(err)
	}
	tt.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tt.Oflag &^= unix.OPOST
	tt.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tt.Cc[unix.VMIN], tt.Cc[unix.VTIME] = 4, 0
	if err := ioctlPtr(fd, unix.TCSETS, unsafe.Pointer(&tt)); err != nil {
		t.Fatal(err)
	}
	return tt
}
