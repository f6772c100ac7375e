package ns

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
)

// ipcState is what a test compares of an ipc namespace.
type ipcState struct {
	shm  map[int]string // id → "key uid gid cuid cgid mode size: contents"
	sem  map[int]string
	msg  map[int]string
	mq   map[string]string
	next string
}

// readIPCState reads every object of the calling thread's namespace,
// taking nothing (it is also how the test checks the dump took nothing).
func readIPCState(t *testing.T) ipcState {
	t.Helper()
	s := ipcState{shm: map[int]string{}, sem: map[int]string{}, msg: map[int]string{}, mq: map[string]string{}}
	perm := func(p unix.SysvIpcPerm) string {
		return fmt.Sprintf("key %#x uid %d gid %d cuid %d cgid %d mode %#o", p.Key, p.Uid, p.Gid, p.Cuid, p.Cgid, p.Mode)
	}
	ids, err := sysvIDs("shm")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var ds abi.ShmidDS
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil {
			t.Fatal(err)
		}
		f, err := openSegment(id, ds.Segsz, "")
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, ds.Segsz)
		f.ReadAt(b, 0)
		f.Close()
		at := bytes.IndexFunc(b, func(r rune) bool { return r != 0 })
		s.shm[id] = fmt.Sprintf("%s size %d: at %d %q", perm(ds.Perm), ds.Segsz, at, bytes.Trim(b, "\x00"))
	}
	if ids, err = sysvIDs("sem"); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		set, err := readSemSet(id, IDMap{})
		if err != nil {
			t.Fatal(err)
		}
		s.sem[id] = fmt.Sprintf("%v %v", set.e, set.values)
	}
	if ids, err = sysvIDs("msg"); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		q, err := readMsgQueue(id, IDMap{}, 8192)
		if err != nil {
			t.Fatal(err)
		}
		s.msg[id] = fmt.Sprintf("%v %v", q.e, q.msgs)
	}
	root, err := mqueueFS()
	if err != nil {
		t.Fatal(err)
	}
	names, _ := root.Readdirnames(-1)
	root.Close()
	for _, name := range names {
		fd, err := mqOpen(name, unix.O_RDWR|unix.O_NONBLOCK, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		q, err := dumpQueue(fd, name, false, IDMap{})
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		q.e.Id = nil // the inode is the filesystem's to choose
		s.mq[name] = fmt.Sprintf("%v %v", q.e, q.msgs)
	}
	e, err := dumpIPCVar()
	if err != nil {
		t.Fatal(err)
	}
	s.next = fmt.Sprintf("msg %d sem %d shm %d", e.GetMsgNextId(), e.GetSemNextId(), e.GetShmNextId())
	return s
}

// makeIPCObjects fills the calling thread's namespace: objects made by
// uid 1000 at chosen ids, with contents.
func makeIPCObjects(t *testing.T) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(setSysctl("kernel/shm_next_id", "7"))
	var shmid int
	must(asIDs(1000, 1000, func() (err error) { shmid, err = unix.SysvShmGet(0x1234, 10000, 0o640|unix.IPC_CREAT); return err }))
	mem, err := unix.SysvShmAttach(shmid, 0, 0)
	must(err)
	copy(mem[5000:], "in the middle of a segment")
	must(unix.SysvShmDetach(mem))
	var ds abi.ShmidDS
	_, err = unix.SysvShmCtl(shmid, unix.IPC_STAT, &ds)
	must(err)
	ds.Perm.Uid = 2000
	_, err = unix.SysvShmCtl(shmid, unix.IPC_SET, &ds)
	must(err)

	must(setSysctl("kernel/sem_next_id", "3"))
	var semid int
	must(asIDs(1000, 1001, func() error {
		r, _, e := unix.Syscall(unix.SYS_SEMGET, 0, 3, 0o600|unix.IPC_CREAT)
		semid = int(r)
		return errnoOrNil(e)
	}))
	vals := []uint16{1, 42, 7}
	_, err = semctl(semid, 0, abi.SemSetAll, uintptr(unsafe.Pointer(&vals[0])))
	must(err)

	r, _, e := unix.Syscall(unix.SYS_MSGGET, 0x77, 0o666|unix.IPC_CREAT, 0)
	must(errnoOrNil(e))
	for i, text := range []string{"one", "", "three is longer"} {
		must(msgsnd(int(r), sysvMsg{mtype: uint64(i%2 + 1), text: []byte(text)}))
	}

	attr := abi.MqAttr{Maxmsg: 4, Msgsize: 64}
	fd, err := mqOpen("gocr-test", unix.O_RDWR|unix.O_CREAT|unix.O_NONBLOCK, 0o640, &attr)
	must(err)
	for i, text := range []string{"low", "high", "low again", ""} {
		must(mqSend(fd, []byte(text), uint32(5*(i%2))))
	}
	unix.Close(fd)
	must(setSysctl("kernel/msg_next_id", "99"))
}

// Objects made in one ipc namespace come back, the same, in a fresh one,
// and the dump takes nothing from the first.
func TestDumpRestoreIPCObjects(t *testing.T) {
	a, b := sleeper(t), sleeper(t)
	var before, after ipcState
	if err := Enter(a, "ipc", func() error { makeIPCObjects(t); before = readIPCState(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(before.shm) != 1 || len(before.sem) != 1 || len(before.msg) != 1 || len(before.mq) != 1 {
		t.Fatalf("objects not made: %+v", before)
	}
	dir, err := image.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	host, err := nsIno(unix.Getpid(), "ipc")
	if err != nil {
		t.Fatal(err)
	}
	mq := NewMqueues(host)
	if err := DumpIPC(a, dir, 1, IDMap{}, mq, []int{a}); err != nil {
		t.Fatal(err)
	}
	if err := mq.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := Enter(a, "ipc", func() error { after = readIPCState(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the dump changed the namespace:\nbefore %+v\nafter  %+v", before, after)
	}

	img, err := ReadIPC(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := RestoreIPC(b, dir, img, IDMap{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var restored ipcState
	if err := Enter(b, "ipc", func() error { restored = readIPCState(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(restored) {
		t.Fatalf("restored namespace differs:\nwant %+v\ngot  %+v", before, restored)
	}
}

func nsIno(pid int, kind string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, kind), &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}
