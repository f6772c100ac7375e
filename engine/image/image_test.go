package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	ipc_sem "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-sem"
	pipe_data "github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/magic"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	// Register every message type a Kind names.
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/apparmor"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/bpfmap-data"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/cgroup"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/cpuinfo"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/eventpoll"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/fh"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/file-lock"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/fsnotify"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-msg"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-shm"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-var"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/netdev"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/pidns"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/rlimit"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/timens"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/timer"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	_ "github.com/checkpoint-restore/go-criu/v7/crit/images/utsns"

	"github.com/gocr/gocr/engine/image/gocrpb"
)

func TestKindsResolve(t *testing.T) {
	m := loadMagics()
	for _, k := range Kinds() {
		if _, err := headerWords(k, m); err != nil {
			t.Errorf("%v: %v", k, err)
		}
		i, _ := kindInfo(k)
		for _, name := range i.types {
			if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
				t.Errorf("%v: message %s: %v", k, name, err)
			}
		}
	}
}

// gocr's own magics must never be taken for one of CRIU's.
func TestGocrMagicsApart(t *testing.T) {
	criu := magic.LoadMagic()
	for name, v := range gocrMagics {
		if other, ok := criu.ByValue[uint64(v)]; ok {
			t.Errorf("%s = %#x is CRIU's %s", name, v, other)
		}
		if _, ok := criu.ByName[name]; ok {
			t.Errorf("%s: CRIU has a magic of that name", name)
		}
	}
}

func words(t *testing.T, path string, n int) []uint32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// Headers as CRIU writes them: IMG_COMMON first, IMG_SERVICE for stats,
// the bare magic for inventory; pages files raw.
func TestHeaders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	writeSample(t, dir).Close()
	m := magic.LoadMagic().ByName
	check := func(name string, want ...uint64) {
		t.Helper()
		got := words(t, filepath.Join(dir, name), len(want))
		for i := range want {
			if uint64(got[i]) != want[i] {
				t.Errorf("%s: word %d = %#x, want %#x", name, i, got[i], want[i])
			}
		}
	}
	check(PstreeFile, m["IMG_COMMON"], m["PSTREE"])
	check(CoreFile(samplePid), m["IMG_COMMON"], m["CORE"])
	check(PagemapFile(samplePid), m["IMG_COMMON"], m["PAGEMAP"])
	check(StatsDumpFile, m["IMG_SERVICE"], m["STATS"])
	check(InventoryFile, m["INVENTORY"])
	b, _ := os.ReadFile(filepath.Join(dir, PagesFile(1)))
	if !bytes.Equal(b[:PageSize], pageContent(9)) {
		t.Errorf("pages-1.img does not start with the first page's raw bytes")
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %#o, want 0700", fi.Mode().Perm())
	}
	fi, _ = os.Stat(filepath.Join(dir, PstreeFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %#o, want 0600", fi.Mode().Perm())
	}
}

func TestRoundTrip(t *testing.T) {
	d := writeSample(t, filepath.Join(t.TempDir(), "img"))
	defer d.Close()
	tree, err := ReadAll[pstree.PstreeEntry](d, Pstree, PstreeFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) != 2 || tree[0].GetPid() != samplePid || tree[1].GetPpid() != samplePid {
		t.Fatalf("pstree = %v", tree)
	}
	if err := ValidatePstree(PstreeFile, tree); err != nil {
		t.Fatal(err)
	}
	core, err := ReadOne[criu_core.CoreEntry](d, Core, CoreFile(samplePid))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateCore(CoreFile(samplePid), core); err != nil {
		t.Fatal(err)
	}
	if got := core.GetThreadInfo().GetFpregs().GetXsave().GetYmmhSpace()[3]; got != 5003 {
		t.Errorf("ymmh_space[3] = %d", got)
	}
	inv, err := d.ReadInventory()
	if err != nil || inv.GetImgVersion() != ImagesV1_1 || !inv.GetFdinfoPerId() {
		t.Fatalf("inventory %v, %v", inv, err)
	}
	st, err := d.ReadStats(StatsDumpFile)
	if err != nil || st.GetDump().GetPagesWritten() != 13 || d.PagesWritten() != 13 {
		t.Fatalf("stats %v (%v), PagesWritten %d", st, err, d.PagesWritten())
	}

	r, err := d.Reader(PipesData, PipesDataFile)
	if err != nil {
		t.Fatal(err)
	}
	var pd pipe_data.PipeDataEntry
	if !r.Next(&pd) {
		t.Fatal(r.Err())
	}
	got, _ := io.ReadAll(r.Payload())
	if string(got) != pipeText {
		t.Errorf("pipe payload %q", got)
	}
	if r.Next(&pd) || r.Err() != nil {
		t.Errorf("second entry or error: %v", r.Err())
	}
	r.Close()

	r, err = d.Reader(GhostFile, GhostFileName(1))
	if err != nil {
		t.Fatal(err)
	}
	var gf ghost_file.GhostFileEntry
	if !r.Next(&gf) {
		t.Fatal(r.Err())
	}
	got, _ = io.ReadAll(r.Payload())
	if string(got) != ghostText {
		t.Errorf("ghost payload %q", got)
	}
	r.Close()
}

// SysV semaphores are padded to 8 bytes, as crit expects.
func TestPayloadPadding(t *testing.T) {
	d, err := Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(IpcnsSem, IpcnsSemFile(1))
	if err != nil {
		t.Fatal(err)
	}
	sem := &ipc_sem.IpcSemEntry{Desc: nil, Nsems: u32(3)}
	if err := w.WritePayload(sem, bytes.NewReader([]byte{1, 0, 2, 0, 3, 0})); err == nil {
		t.Fatal("a semaphore set without its required desc was written")
	}
	w.Abort()
	if d.Exists(IpcnsSemFile(1)) {
		t.Fatal("aborted file is visible")
	}
	p := payloadOf(&ipc_sem.IpcSemEntry{Nsems: u32(3)})
	if p.n != 6 || p.padded != 8 {
		t.Errorf("sem payload %+v", p)
	}
}

func TestWriterRefuses(t *testing.T) {
	d, err := Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := d.Writer(Pstree, PstreeFile)
	if err := w.Write(&fdinfo.FdinfoEntry{}); !errors.Is(err, ErrWrongType) {
		t.Errorf("wrong type: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Error("a writer that failed committed its file")
	}
	if d.Exists(PstreeFile) || d.Exists(PstreeFile+partSuffix) {
		t.Error("failed file left behind")
	}
	w, _ = d.Writer(Pstree, PstreeFile)
	if err := w.Write(&pstree.PstreeEntry{Pid: u32(1)}); err == nil {
		t.Error("message without required fields was written")
	}
	w.Abort()
	w, _ = d.Writer(PipesData, PipesDataFile)
	if err := w.Write(&pipe_data.PipeDataEntry{PipeId: u32(1), Bytes: u32(5)}); err == nil {
		t.Error("pipe data without payload accepted by Write")
	}
	w.Abort()
	w, _ = d.Writer(PipesData, PipesDataFile)
	if err := w.WritePayload(&pipe_data.PipeDataEntry{PipeId: u32(1), Bytes: u32(5)}, strings.NewReader("abc")); !errors.Is(err, ErrTruncated) {
		t.Errorf("short payload: %v", err)
	}
	w.Abort()
	if err := d.WriteOne(Fs, "fs-1.img", nil); err == nil {
		t.Error("nil message written")
	}
	for _, name := range []string{"../x.img", "a/b.img", "", "..", "x.img.part"} {
		if _, err := d.Writer(Pstree, name); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if err := d.WriteOne(Pstree, PstreeFile, &pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Writer(Pstree, PstreeFile); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second pstree.img: %v", err)
	}
}

func TestCreateAndOpenChecks(t *testing.T) {
	base := t.TempDir()
	// An existing directory with a log is fine; one with images is not.
	dir := filepath.Join(base, "a")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "dump.log"), nil, 0o600)
	if d, err := Create(dir); err != nil {
		t.Fatalf("directory with only a log: %v", err)
	} else {
		d.Close()
	}
	os.WriteFile(filepath.Join(dir, "core-1.img"), nil, 0o600)
	if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "core-1.img") {
		t.Errorf("directory with an image: %v", err)
	}
	os.Remove(filepath.Join(dir, "core-1.img"))
	os.WriteFile(filepath.Join(dir, "pstree.img.part"), nil, 0o600)
	if _, err := Create(dir); err == nil {
		t.Error("directory with a partial image accepted")
	}

	// A directory others may write to is fine (zdtm.py makes them 0777):
	// its files are what is checked.
	open := filepath.Join(base, "b")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	d, err := Create(open)
	if err != nil {
		t.Fatalf("Create of a 0777 directory: %v", err)
	}
	if err := d.WriteOne(Pstree, PstreeFile, &pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if d, err = Open(open); err != nil {
		t.Fatalf("Open of a 0777 directory: %v", err)
	}
	if _, err := ReadOne[pstree.PstreeEntry](d, Pstree, PstreeFile); err != nil {
		t.Errorf("good image in a 0777 directory: %v", err)
	}
	d.Close()
	if _, err := Open(filepath.Join(base, "missing")); err == nil {
		t.Error("missing directory opened")
	}
}

// In a directory others may write to, an image file someone could have
// planted or could still change is refused, naming the file: a symlink (to
// a good image of the directory, too), a FIFO, a file writable by group or
// others, a file of another user.
func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	good := &pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)}
	if err := d.WriteOne(Pstree, "good.img", good); err != nil {
		t.Fatal(err)
	}
	copyOf := func(name string, mode os.FileMode) {
		b, err := os.ReadFile(filepath.Join(dir, "good.img"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, want string
		make       func(name string)
	}{
		{"link-out.img", "", func(n string) { os.Symlink("/etc/passwd", filepath.Join(dir, n)) }},
		{"link-in.img", "symbolic link", func(n string) { os.Symlink("good.img", filepath.Join(dir, n)) }},
		{"fifo.img", "not a regular file", func(n string) { unix.Mkfifo(filepath.Join(dir, n), 0o600) }},
		{"group.img", "mode 0620 is writable by group or others", func(n string) { copyOf(n, 0o620) }},
		{"others.img", "mode 0602 is writable by group or others", func(n string) { copyOf(n, 0o602) }},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			name, want string
			make       func(name string)
		}{"theirs.img", "owned by uid 12345", func(n string) {
			copyOf(n, 0o600)
			if err := os.Chown(filepath.Join(dir, n), 12345, 12345); err != nil {
				t.Fatal(err)
			}
		}})
	}
	for _, c := range cases {
		c.make(c.name)
		_, err := ReadOne[pstree.PstreeEntry](d, Pstree, c.name)
		if err == nil || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming it and saying %q", c.name, err, c.want)
		}
		if _, err := d.OpenRaw(c.name); err == nil {
			t.Errorf("%s: OpenRaw accepted it", c.name)
		}
	}
	copyOf("readable.img", 0o644) // readable by others is not a risk to restore
	if _, err := ReadOne[pstree.PstreeEntry](d, Pstree, "readable.img"); err != nil {
		t.Errorf("a 0644 image: %v", err)
	}
}

// corrupt writes raw bytes as an image and returns the reader's error.
func corrupt(t *testing.T, k Kind, data []byte) error {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	d, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "x.img"), data, 0o600)
	r, err := d.Reader(k, "x.img")
	if err != nil {
		return err
	}
	defer r.Close()
	var e pstree.PstreeEntry
	for r.Next(&e) {
	}
	return r.Err()
}

func le(ws ...uint32) []byte {
	var b []byte
	for _, w := range ws {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

func TestReaderErrors(t *testing.T) {
	m := magic.LoadMagic().ByName
	head := le(uint32(m["IMG_COMMON"]), uint32(m["PSTREE"]))
	entry, _ := proto.Marshal(&pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)})
	good := append(append(append([]byte{}, head...), le(uint32(len(entry)))...), entry...)

	if err := corrupt(t, Pstree, good); err != nil {
		t.Fatalf("good image: %v", err)
	}
	cases := []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"empty", nil, ErrTruncated, "x.img: header"},
		{"wrong magic", append(le(uint32(m["IMG_COMMON"]), uint32(m["CORE"])), good[8:]...), ErrBadMagic, "CORE"},
		{"no common magic", good[4:], ErrBadMagic, "header word 0"},
		{"truncated entry", good[:len(good)-2], ErrTruncated, "entry 0"},
		{"huge entry", append(append([]byte{}, head...), le(0xfffffff0)...), ErrTooLarge, "entry 0"},
		{"trailing bytes", append(append([]byte{}, good...), 1, 2), ErrTrailing, "entry 1"},
		{"garbage entry", append(append(append([]byte{}, good...), le(3)...), 0xff, 0xff, 0xff), ErrInvalid, "entry 1"},
	}
	for _, c := range cases {
		err := corrupt(t, Pstree, c.data)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), "x.img") {
			t.Errorf("%s: got %v, want %v mentioning %q", c.name, err, c.want, c.text)
		}
	}
}

func TestReadOneRefusesSecondEntry(t *testing.T) {
	d, _ := Create(filepath.Join(t.TempDir(), "img"))
	w, _ := d.Writer(Pstree, PstreeFile)
	e := &pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)}
	w.Write(e)
	w.Write(e)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadOne[pstree.PstreeEntry](d, Pstree, PstreeFile); !errors.Is(err, ErrTrailing) {
		t.Errorf("ReadOne of two entries: %v", err)
	}
	d.SetLimits(Limits{MaxEntry: 64 << 20, MaxEntries: 1, UserSpaceEnd: TaskSize4Level})
	if _, err := ReadAll[pstree.PstreeEntry](d, Pstree, PstreeFile); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadAll over MaxEntries: %v", err)
	}
}

func TestInventoryChecks(t *testing.T) {
	inv := NewInventory(sampleIDs(), 0)
	inv.FdinfoPerId = proto.Bool(false)
	if err := checkInventory(inv); err == nil || !strings.Contains(err.Error(), "fdinfo_per_id") {
		t.Errorf("fdinfo_per_id false: %v", err)
	}
	inv = NewInventory(nil, 0)
	inv.ImgVersion = u32(ImagesV1_2)
	if err := checkInventory(inv); err == nil || !strings.Contains(err.Error(), "img_version") {
		t.Errorf("V1_2: %v", err)
	}
}

func TestSigactionIndex(t *testing.T) {
	for i := 0; i < NumSigactions; i++ {
		sig := SigactionSignal(i)
		if sig == 9 || sig == 19 || sig < 1 || sig > 64 {
			t.Fatalf("index %d -> signal %d", i, sig)
		}
		if j, ok := SigactionIndex(sig); !ok || j != i {
			t.Fatalf("signal %d -> index %d, %v; want %d", sig, j, ok, i)
		}
	}
	if SigactionSignal(NumSigactions-1) != 64 {
		t.Fatal("last sigaction is not signal 64")
	}
}

// gocr's own message queue images: gocr's magic in the header, messages
// padded to 8 bytes, read back entry by entry.
func TestGocrMqueueImage(t *testing.T) {
	d, err := Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	msgs := []string{"hello", "", "a message of 17 b"}
	w, err := d.Writer(GocrMqueue, GocrMqueueFile(4))
	if err != nil {
		t.Fatal(err)
	}
	e := &gocrpb.MqueueEntry{Id: u32(9), Name: proto.String("q"), Uid: u32(1), Gid: u32(2), Mode: u32(0o640), Maxmsg: u64(10),
		Msgsize: u64(64), Curmsgs: u32(uint32(len(msgs)))}
	if err := w.Write(e); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if err := w.WritePayload(&gocrpb.MqueueMsg{Prio: u32(uint32(i)), Size: u32(uint32(len(m)))}, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := words(t, filepath.Join(d.Path(), GocrMqueueFile(4)), 2)
	if got[0] != uint32(magic.LoadMagic().ByName["IMG_COMMON"]) || got[1] != gocrMagics["GOCR_MQUEUE"] {
		t.Errorf("header %#x", got)
	}
	r, err := d.Reader(GocrMqueue, GocrMqueueFile(4))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var back gocrpb.MqueueEntry
	if !r.Next(&back) || !proto.Equal(&back, e) {
		t.Fatalf("entry: %v, %v", &back, r.Err())
	}
	for i, m := range msgs {
		var hm gocrpb.MqueueMsg
		if !r.Next(&hm) {
			t.Fatalf("message %d: %v", i, r.Err())
		}
		b, _ := io.ReadAll(r.Payload())
		if hm.GetPrio() != uint32(i) || string(b) != m {
			t.Errorf("message %d: priority %d %q", i, hm.GetPrio(), b)
		}
	}
	if r.Next(&back) || r.Err() != nil {
		t.Errorf("more entries, or %v", r.Err())
	}
}
