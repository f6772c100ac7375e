package image

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"google.golang.org/protobuf/proto"
)

// critImage is crit's JSON for one image.
type critImage struct {
	Magic   string `json:"magic"`
	Entries []any  `json:"entries"`
}

// get walks a decoded JSON value by map keys and slice indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

// TestCritDecode runs CRIU's own crit (Debian's python tool) on every
// image of the sample set and checks it finds what was written.
func TestCritDecode(t *testing.T) {
	critPath, err := exec.LookPath("crit")
	if err != nil {
		t.Skip("crit not installed: run `make deps` (ci/install-crit.sh)")
	}
	dir := filepath.Join(t.TempDir(), "img")
	writeSample(t, dir).Close()
	decode := func(name string) critImage {
		t.Helper()
		out, err := exec.Command(critPath, "decode", "-i", filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatalf("crit decode %s: %v\n%s", name, err, stderrOf(err))
		}
		var img critImage
		if err := json.Unmarshal(out, &img); err != nil {
			t.Fatalf("crit decode %s: %v\n%s", name, err, out)
		}
		return img
	}
	num := func(v any) float64 { f, _ := v.(float64); return f }
	usr1, _ := SigactionIndex(10)
	checks := []struct {
		file  string
		magic string
		check func(img critImage) bool
	}{
		{InventoryFile, "INVENTORY", func(i critImage) bool {
			return num(get(i.Entries, 0, "img_version")) == ImagesV1_1 && get(i.Entries, 0, "fdinfo_per_id") == true &&
				num(get(i.Entries, 0, "root_ids", "files_id")) == 7
		}},
		{PstreeFile, "PSTREE", func(i critImage) bool {
			return num(get(i.Entries, 0, "pid")) == samplePid && num(get(i.Entries, 0, "threads", 1)) == sampleThread &&
				num(get(i.Entries, 1, "ppid")) == samplePid
		}},
		{CoreFile(samplePid), "CORE", func(i critImage) bool {
			return get(i.Entries, 0, "mtype") == "X86_64" && get(i.Entries, 0, "tc", "comm") == sampleComm &&
				num(get(i.Entries, 0, "thread_info", "gpregs", "ip")) == 0x401000+samplePid &&
				num(get(i.Entries, 0, "thread_info", "fpregs", "xsave", "ymmh_space", 63)) == 5063 &&
				num(get(i.Entries, 0, "tc", "sigactions", usr1, "sigaction")) == 0x401234
		}},
		{CoreFile(sampleThread), "CORE", func(i critImage) bool {
			return get(i.Entries, 0, "tc") == nil && num(get(i.Entries, 0, "thread_info", "gpregs", "ip")) == 0x401000+sampleThread
		}},
		{MmFile(samplePid), "MM", func(i critImage) bool {
			return num(get(i.Entries, 0, "vmas", 1, "start")) == sampleHeap && num(get(i.Entries, 0, "exe_file_id")) == idExe
		}},
		{PagemapFile(samplePid), "PAGEMAP", func(i critImage) bool {
			return num(get(i.Entries, 0, "pages_id")) == 1 && num(get(i.Entries, 2, "vaddr")) == sampleHeap &&
				num(get(i.Entries, 2, "nr_pages")) == 3 && num(get(i.Entries, 2, "flags")) == PePresent
		}},
		{FilesFile, "FILES", func(i critImage) bool {
			usk, _ := get(i.Entries, 14, "usk", "name").(string)
			return get(i.Entries, 0, "reg", "name") == "/usr/bin/sleeper" && num(get(i.Entries, 3, "pipe", "pipe_id")) == 4242 &&
				get(i.Entries, 13, "type") == "TTY" && num(get(i.Entries, 13, "tty", "tty_info_id")) == samplePty<<1|1 &&
				num(get(i.Entries, 13, "tty", "regf_id")) == idPtmxPath &&
				get(i.Entries, 14, "type") == "UNIXSK" && num(get(i.Entries, 14, "usk", "type")) == 2 &&
				strings.HasPrefix(usk, skName) && get(i.Entries, 14, "usk", "opts", "so_passcred") == true &&
				num(get(i.Entries, 14, "usk", "file_perms", "mode")) == 0o140755
		}},
		{TtyInfoFile, "TTY_INFO", func(i critImage) bool {
			return get(i.Entries, 0, "type") == "PTY" && num(get(i.Entries, 0, "pty", "index")) == samplePty &&
				get(i.Entries, 0, "packet_mode") == true && num(get(i.Entries, 0, "sid")) == sampleChild &&
				num(get(i.Entries, 0, "winsize", "ws_col")) == 133 && num(get(i.Entries, 0, "termios", "c_cc", 6)) == 4 &&
				len(list(get(i.Entries, 0, "termios_locked", "c_cc"))) == 19
		}},
		{FdinfoFile(7), "FDINFO", func(i critImage) bool {
			return num(get(i.Entries, 1, "fd")) == 3 && get(i.Entries, 1, "type") == "PIPE" &&
				get(i.Entries, 3, "type") == "SIGNALFD" && get(i.Entries, 4, "type") == "TIMERFD" &&
				get(i.Entries, 5, "type") == "INOTIFY" && get(i.Entries, 6, "type") == "MEMFD"
		}},
		// One file of each further kind, as crit names their fields.
		{FilesFile, "FILES", func(i critImage) bool {
			return get(i.Entries, 8, "type") == "SIGNALFD" && hexNum(get(i.Entries, 8, "sgfd", "sigmask")) == 1<<9|1<<33
		}},
		{FilesFile, "FILES", func(i critImage) bool {
			return get(i.Entries, 9, "type") == "TIMERFD" && num(get(i.Entries, 9, "tfd", "clockid")) == 1 &&
				num(get(i.Entries, 9, "tfd", "ticks")) == 3 && num(get(i.Entries, 9, "tfd", "insec")) == 50_000_000
		}},
		{FilesFile, "FILES", func(i critImage) bool {
			return get(i.Entries, 10, "type") == "INOTIFY" && num(get(i.Entries, 10, "ify", "wd", 0, "wd")) == 3 &&
				num(get(i.Entries, 10, "ify", "wd", 0, "i_ino")) == 0x3c4a3 &&
				get(i.Entries, 10, "ify", "wd", 0, "f_handle", "path") == "/srv/watched"
		}},
		{FilesFile, "FILES", func(i critImage) bool {
			return get(i.Entries, 11, "type") == "MEMFD" && num(get(i.Entries, 11, "memfd", "inode_id")) == 1 &&
				num(get(i.Entries, 11, "memfd", "pos")) == 77
		}},
		{MemfdFile, "MEMFD_INODE", func(i critImage) bool {
			return get(i.Entries, 0, "name") == memfdName && num(get(i.Entries, 0, "shmid")) == memfdShmid &&
				num(get(i.Entries, 0, "size")) == PageSize
		}},
		{ShmemPagemapFile(memfdShmid), "PAGEMAP", func(i critImage) bool {
			return num(get(i.Entries, 1, "vaddr")) == 0 && num(get(i.Entries, 1, "nr_pages")) == 1
		}},
		{FsFile(samplePid), "FS", func(i critImage) bool { return num(get(i.Entries, 0, "cwd_id")) == idRoot }},
		{IdsFile(samplePid), "IDS", func(i critImage) bool { return num(get(i.Entries, 0, "files_id")) == 7 }},
		{CredsFile(samplePid), "CREDS", func(i critImage) bool { return num(get(i.Entries, 0, "cap_eff", 1)) == 0x1ff }},
		{StatsDumpFile, "STATS", func(i critImage) bool {
			return num(get(i.Entries, 0, "dump", "pages_written")) == 13 && num(get(i.Entries, 0, "dump", "frozen_time")) == 2222
		}},
		{PipesDataFile, "PIPES_DATA", func(i critImage) bool { return b64(get(i.Entries, 0, "extra")) == pipeText }},
		{SkQueuesFile, "SK_QUEUES", func(i critImage) bool {
			return num(get(i.Entries, 0, "id_for")) == idUsk && b64(get(i.Entries, 0, "extra")) == skText &&
				num(get(i.Entries, 1, "length")) == 0 && len(i.Entries) == 2
		}},
		{GhostFileName(1), "GHOST_FILE", func(i critImage) bool { return b64(get(i.Entries, 0, "extra")) == ghostText }},
		{GhostFileName(2), "GHOST_FILE", func(i critImage) bool {
			return get(i.Entries, 0, "chunks") == true && num(get(i.Entries, 0, "size")) == ghostSparseSize &&
				num(get(i.Entries, 2, "off")) == ghostChunk2At && b64(get(i.Entries, 1, "extra")) == ghostChunk1 &&
				b64(get(i.Entries, 2, "extra")) == ghostChunk2 && len(i.Entries) == 3
		}},
		{RemapFpathFile, "REMAP_FPATH", func(i critImage) bool {
			return num(get(i.Entries, 0, "orig_id")) == idGhost && get(i.Entries, 0, "remap_type") == "GHOST" &&
				num(get(i.Entries, 1, "remap_id")) == idLinkRemap && get(i.Entries, 1, "remap_type") == "LINKED"
		}},
		{MmFile(sampleChild), "MM", func(i critImage) bool {
			return num(get(i.Entries, 0, "vmas", 2, "shmid")) == sampleShmID && int(num(get(i.Entries, 0, "vmas", 2, "status")))&(1<<10) != 0
		}},
		{TimensFile(sampleTimeNS), "TIMENS", func(i critImage) bool {
			return num(get(i.Entries, 0, "monotonic", "tv_sec")) == 885296 && num(get(i.Entries, 0, "monotonic", "tv_nsec")) == 135818880 &&
				num(get(i.Entries, 0, "boottime", "tv_sec")) == 1749296 && num(get(i.Entries, 0, "boottime", "tv_nsec")) == 5
		}},
		{GocrTimensRefFile, "TIMENS", func(i critImage) bool {
			return num(get(i.Entries, 0, "monotonic", "tv_sec")) == 21296 && num(get(i.Entries, 0, "boottime", "tv_nsec")) == 5
		}},
		{IpcVarFile(sampleIpcNS), "IPC_VAR", func(i critImage) bool {
			return num(get(i.Entries, 0, "msg_ctlmax")) == 8192 && num(get(i.Entries, 0, "shm_next_id")) == 7
		}},
		{IpcnsShmFile(sampleIpcNS), "IPCNS_SHM", func(i critImage) bool {
			return len(i.Entries) == 2 && num(get(i.Entries, 0, "desc", "id")) == sampleShmID && b64(get(i.Entries, 0, "extra")) == sampleShm[0] &&
				num(get(i.Entries, 1, "size")) == float64(len(sampleShm[1])) && b64(get(i.Entries, 1, "extra")) == sampleShm[1]
		}},
		{IpcnsSemFile(sampleIpcNS), "IPCNS_SEM", func(i critImage) bool {
			return len(i.Entries) == 2 && fmt.Sprint(get(i.Entries, 0, "extra")) == "[1 2 3]" && fmt.Sprint(get(i.Entries, 1, "extra")) == "[7]" &&
				num(get(i.Entries, 1, "desc", "cuid")) == 18943
		}},
		{IpcnsMsgFile(sampleIpcNS), "IPCNS_MSG", func(i critImage) bool {
			// crit gives a queue's messages as [header, data, header, data, ...]
			return len(i.Entries) == 2 && num(get(i.Entries, 0, "qnum")) == 3 && b64(get(i.Entries, 0, "extra", 5)) == "third message" &&
				num(get(i.Entries, 0, "extra", 4, "mtype")) == 3 && b64(get(i.Entries, 1, "extra", 1)) == "x"
		}},
	}
	for _, c := range checks {
		img := decode(c.file)
		if img.Magic != c.magic {
			t.Errorf("%s: crit says magic %s, want %s", c.file, img.Magic, c.magic)
			continue
		}
		if !c.check(img) {
			b, _ := json.Marshal(img.Entries)
			t.Errorf("%s: crit decoded unexpected values: %s", c.file, b)
		}
	}

	explore := map[string][]string{
		"ps":   {"100", "102", sampleComm},
		"fds":  {"/dev/null", "pipe[4242]", "cwd: /", "TTY.14", "unix[4343"},
		"mems": {"/usr/bin/sleeper", "[stack]", "555555600000-555555604000"},
		"rss":  {"555555600000 / 3"},
	}
	for what, wants := range explore {
		out, err := exec.Command(critPath, "x", dir, what).Output()
		if err != nil {
			t.Errorf("crit x %s: %v\n%s", what, err, stderrOf(err))
			continue
		}
		for _, w := range wants {
			if !strings.Contains(string(out), w) {
				t.Errorf("crit x %s lacks %q:\n%s", what, w, out)
			}
		}
	}
	out, err := exec.Command(critPath, "show", filepath.Join(dir, PagemapFile(samplePid))).Output()
	if err != nil || !strings.Contains(string(out), "PE_PRESENT") {
		t.Errorf("crit show pagemap: %v\n%s", err, out)
	}
}

// hexNum reads a number crit prints in hex ("0x200") or plain.
func hexNum(v any) uint64 {
	switch x := v.(type) {
	case float64:
		return uint64(x)
	case string:
		n, _ := strconv.ParseUint(strings.TrimPrefix(x, "0x"), 16, 64)
		return n
	}
	return 0
}
func list(v any) []any { l, _ := v.([]any); return l }

func b64(v any) string {
	s, _ := v.(string)
	b, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, "\n", ""))
	return string(b)
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestGoCritDecode reads the sample set back with go-criu's crit package,
// the decoder checkpointctl uses; it needs nothing installed.
func TestGoCritDecode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	writeSample(t, dir).Close()
	decode := func(name string, m proto.Message) *crit.CriuImage {
		t.Helper()
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := crit.New(f, nil, "", false, false).Decode(m)
		if err != nil {
			t.Fatalf("go-criu decode %s: %v", name, err)
		}
		return img
	}
	img := decode(PstreeFile, &pstree.PstreeEntry{})
	if img.Magic != "PSTREE" || len(img.Entries) != 2 || img.Entries[1].Message.(*pstree.PstreeEntry).GetPid() != sampleChild {
		t.Errorf("pstree: %+v", img)
	}
	img = decode(TtyInfoFile, &tty.TtyInfoEntry{})
	if img.Magic != "TTY_INFO" || len(img.Entries) != 1 || !proto.Equal(img.Entries[0].Message, ptyInfo()) {
		t.Errorf("tty-info: %+v", img)
	}
	img = decode(CoreFile(samplePid), &criu_core.CoreEntry{})
	if !proto.Equal(img.Entries[0].Message, sampleCore(samplePid, true)) {
		t.Error("core differs after go-criu decode")
	}
	img = decode(GhostFileName(2), &ghost_file.GhostFileEntry{})
	if len(img.Entries) != 3 || img.Entries[2].Message.(*ghost_file.GhostChunkEntry).GetOff() != ghostChunk2At ||
		b64(img.Entries[2].Extra) != ghostChunk2 {
		t.Errorf("sparse ghost file: %+v", img.Entries)
	}
	img = decode(RemapFpathFile, &remap.RemapFilePathEntry{})
	if len(img.Entries) != 2 || img.Entries[1].Message.(*remap.RemapFilePathEntry).GetRemapType() != remap.RemapType_LINKED {
		t.Errorf("remap-fpath: %+v", img.Entries)
	}
	if s, err := crit.GetDumpStats(dir); err != nil || s.GetPagesWritten() != 13 {
		t.Errorf("go-criu dump stats: %v, %v", s, err)
	}
	ps, err := crit.New(nil, nil, dir, false, false).ExplorePs()
	if err != nil || ps.PID != samplePid || len(ps.Children) != 1 || ps.Comm != sampleComm {
		t.Errorf("go-criu explore ps: %+v, %v", ps, err)
	}
}
