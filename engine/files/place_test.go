package files

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/remote"
	"github.com/gocr/gocr/engine/remote/remotetest"
)

func TestPlanPlacement(t *testing.T) {
	const top = 1<<32 - 1
	for _, c := range []struct {
		name  string
		slots []slot
		sock  int
		want  placement
	}{{
		name:  "contiguous, socket above",
		slots: []slot{{0, 0, false}, {1, 1, true}, {2, 1, true}},
		sock:  7,
		want: placement{send: []int{0, 1, 1}, at: []int{0, 1, 2},
			closes: []fdRange{{7, top}}, cloexec: []fdRange{{1, 2}}, ceFds: []int{1, 2}},
	}, {
		name:  "gaps and the socket in one",
		slots: []slot{{0, 0, true}, {4, 1, true}, {5, 2, false}, {9, 0, true}},
		sock:  2,
		want: placement{send: []int{0, -1, -1, 1, 2, -1, -1, -1, 0}, at: []int{0, 1, 3, 4, 5, 6, 7, 8, 9},
			closes: []fdRange{{1, 3}, {6, 8}}, cloexec: []fdRange{{0, 4}, {9, 9}}, ceFds: []int{0, 4, 9}},
	}, {
		name:  "socket on a number of the table",
		slots: []slot{{0, 0, true}, {1, 1, true}, {3, 2, true}},
		sock:  1,
		want: placement{send: []int{0, -1, 2, 1}, at: []int{0, 2, 3, 4}, movedAt: 4,
			closes: []fdRange{{2, 2}, {4, top}}, allCloexec: true},
	}, {
		name: "empty table",
		sock: 3,
		want: placement{closes: []fdRange{{3, top}}, allCloexec: true},
	}} {
		t.Run(c.name, func(t *testing.T) {
			got := planPlacement(c.slots, c.sock)
			if got.moved != nil {
				if got.moved.fd != c.sock {
					t.Errorf("moved fd %d, want the socket's %d", got.moved.fd, c.sock)
				}
				got.moved = nil
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("planPlacement =\n %+v\nwant\n %+v", got, c.want)
			}
		})
	}
}

// table is a fd table to restore into a real process: fd number → file
// (an index into the files it opens) and close-on-exec.
type table map[int]struct {
	file    int
	cloexec bool
}

// restoreInto makes nfiles files with different offsets and open flags,
// gives a fresh process the socket at sock and nothing else, restores tab
// into it with room bytes of scratch for the passing and checks the result
// against /proc. It returns the injected calls RestoreTable took.
func restoreInto(t *testing.T, nfiles int, tab table, sock int, room uint64) uint64 {
	t.Helper()
	dir := t.TempDir()
	var entries []*fdinfo.FileEntry
	paths := make([]string, nfiles)
	for i := range nfiles {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(paths[i], make([]byte, 100), 0o600); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(paths[i], &st); err != nil {
			t.Fatal(err)
		}
		flags := uint32(unix.O_RDONLY)
		if i%2 == 1 {
			flags = unix.O_RDWR | unix.O_APPEND
		}
		e := regEntry(paths[i], flags, uint64(i%100), -1, &st)
		e.Id, e.Reg.Id = ptr(uint32(i+1)), ptr(uint32(i+1))
		entries = append(entries, e)
	}
	var fds []*fdinfo.FdinfoEntry
	for fd, s := range tab {
		var fl uint32
		if s.cloexec {
			fl = unix.FD_CLOEXEC
		}
		typ := fdinfo.FdTypes_REG
		fds = append(fds, &fdinfo.FdinfoEntry{Id: ptr(uint32(s.file + 1)), Flags: &fl, Type: &typ, Fd: ptr(uint32(fd))})
	}
	rt, p := stubWithSocket(t, sock, room)
	r := NewRestorer(entries, "")
	defer r.Close()
	before := rt.injected()
	if err := r.RestoreTable(rt.Task, p, sock, 0, fds); err != nil {
		t.Fatal(err)
	}
	calls := rt.injected() - before
	checkTable(t, rt.Pid, tab, paths)
	return calls
}

// stub is a task to restore into and its tracer's call counter.
type stub struct {
	*remote.Task
	injected func() uint64
}

// stubWithSocket starts a process whose only fd is the task's end of a fd
// passing socket pair, at number sock, with room bytes of scratch.
func stubWithSocket(t *testing.T, sock int, room uint64) (stub, *remote.FdPasser) {
	t.Helper()
	p, err := remote.NewFdPasser()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	end, err := unix.Dup(p.RemoteFd())
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(end), "fd passing socket")
	rt, tr := remotetest.Task(t, room, f) // the socket is fd 3 in there
	f.Close()
	p.CloseRemote()
	call := func(nr uint64, args ...uint64) {
		t.Helper()
		if _, err := rt.Syscall(nr, args...); err != nil {
			t.Fatal(err)
		}
	}
	call(unix.SYS_CLOSE_RANGE, 0, 2, 0)
	call(unix.SYS_CLOSE_RANGE, 4, 1<<32-1, 0)
	if sock != 3 {
		call(unix.SYS_DUP3, 3, uint64(sock), 0)
		call(unix.SYS_CLOSE, 3)
	}
	return stub{rt, tr.Injected}, p
}

// checkTable compares the task's fds with tab: the same numbers, each on
// its file, with its close-on-exec flag, the open flags and offset of its
// file, and sharing an open file description exactly with the fds of the
// same file.
func checkTable(t *testing.T, pid int, tab table, paths []string) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var have, want []int
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		have = append(have, n)
	}
	for fd := range tab {
		want = append(want, fd)
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		t.Fatalf("fds of the task %v\nwant %v", have, want)
	}
	first := map[int]int{} // file → its first fd
	for _, fd := range want {
		s := tab[fd]
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		if target != paths[s.file] {
			t.Errorf("fd %d on %s, want %s", fd, target, paths[s.file])
		}
		info, err := procfs.FdInfo(pid, fd)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Flags&unix.O_CLOEXEC != 0; got != s.cloexec {
			t.Errorf("fd %d close-on-exec %v, want %v", fd, got, s.cloexec)
		}
		wantFl := uint32(unix.O_RDONLY)
		if s.file%2 == 1 {
			wantFl = unix.O_RDWR | unix.O_APPEND
		}
		if fl := info.Flags & (unix.O_ACCMODE | unix.O_APPEND); fl != wantFl || info.Pos != int64(s.file%100) {
			t.Errorf("fd %d flags %#o pos %d, want %#o and %d", fd, fl, info.Pos, wantFl, s.file%100)
		}
		if f0, ok := first[s.file]; ok {
			if c, err := kcmpFiles(pid, f0, pid, fd); err != nil || c != 0 {
				t.Errorf("fds %d and %d do not share their file description (kcmp %d, %v)", f0, fd, c, err)
			}
		} else {
			first[s.file] = fd
		}
	}
	for file, fd := range first {
		for file2, fd2 := range first {
			if file < file2 {
				if c, _ := kcmpFiles(pid, fd, pid, fd2); c == 0 {
					t.Errorf("fds %d and %d of different files share a description", fd, fd2)
				}
			}
		}
	}
}

func TestRestoreTableGapsAndCloexecRuns(t *testing.T) {
	tab := table{}
	for fd, cloexec := range map[int]bool{0: false, 1: false, 2: false, 5: true, 6: true, 7: true, 9: false, 12: true, 13: true, 14: true, 40: false, 41: true} {
		tab[fd] = struct {
			file    int
			cloexec bool
		}{fd % 6, cloexec} // files shared between fds
	}
	calls := restoreInto(t, 6, tab, 3, 64<<10)
	// recvmmsg, the gaps, 4 runs of close-on-exec.
	if calls > 12 {
		t.Errorf("RestoreTable took %d injected calls for %d fds", calls, len(tab))
	}
}

func TestRestoreTableSocketOnATableNumber(t *testing.T) {
	for _, sock := range []int{0, 4, 6} {
		t.Run(strconv.Itoa(sock), func(t *testing.T) {
			tab := table{}
			for _, fd := range []int{0, 1, 2, 4, 5, 6} {
				tab[fd] = struct {
					file    int
					cloexec bool
				}{fd % 3, fd == 4 || fd == 6}
			}
			restoreInto(t, 3, tab, sock, 64<<10)
		})
	}
}

func TestRestoreTableSocketAbove(t *testing.T) {
	tab := table{0: {0, false}, 1: {1, true}, 2: {1, true}}
	restoreInto(t, 2, tab, 100, 64<<10)
}

// Thousands of fds, with gaps, through a scratch area that holds a few
// datagrams: several rounds of passing, and a close_range per gap.
func TestRestoreTableManyFdsInRounds(t *testing.T) {
	tab := table{}
	for fd := range 3000 {
		if fd%100 == 50 {
			continue
		}
		tab[fd] = struct {
			file    int
			cloexec bool
		}{fd % 50, fd >= 3}
	}
	calls := restoreInto(t, 50, tab, 3, 4<<10)
	// 4 recvmmsg (3 datagrams each), a dup3 onto the socket's number 3,
	// a close_range per gap and above the table, one close-on-exec run.
	if calls > 37 {
		t.Errorf("RestoreTable took %d injected calls for %d fds", calls, len(tab))
	}
}

// A task holding an fd RestoreTable does not expect gets an error naming
// it, not a table shifted by one.
func TestRestoreTableStrayFd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, nil, 0o600)
	var st unix.Stat_t
	unix.Stat(path, &st)
	e := regEntry(path, unix.O_RDONLY, 0, -1, &st)
	e.Id, e.Reg.Id = ptr(uint32(1)), ptr(uint32(1))
	rt, p := stubWithSocket(t, 3, 64<<10)
	if _, err := rt.Syscall(unix.SYS_DUP3, 3, 1, 0); err != nil { // a stray fd 1
		t.Fatal(err)
	}
	r := NewRestorer([]*fdinfo.FileEntry{e}, "")
	defer r.Close()
	typ, fl := fdinfo.FdTypes_REG, uint32(0)
	fds := []*fdinfo.FdinfoEntry{
		{Id: ptr(uint32(1)), Flags: &fl, Type: &typ, Fd: ptr(uint32(0))},
		{Id: ptr(uint32(1)), Flags: &fl, Type: &typ, Fd: ptr(uint32(1))},
		{Id: ptr(uint32(1)), Flags: &fl, Type: &typ, Fd: ptr(uint32(2))},
	}
	err := r.RestoreTable(rt.Task, p, 3, 0, fds)
	if err == nil || !strings.Contains(err.Error(), "the task has fds besides the fd passing socket") {
		t.Fatalf("RestoreTable with a stray fd: %v", err)
	}
}
