package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"time"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/image"
)

// startWorkload runs the test binary as the counting workload (see
// TestMain) and waits until it is ready.
func startWorkload(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	return startWorkloadMode(t, dir, "1")
}

// startWorkloadMode is startWorkload with workloadEnv set to mode.
func startWorkloadMode(t *testing.T, dir, mode string) (*exec.Cmd, string) {
	t.Helper()
	out := filepath.Join(dir, "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), workloadEnv+"="+mode)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(out); strings.Contains(string(b), "ready") {
			return cmd, out
		}
		if time.Now().After(deadline) {
			t.Fatal("workload never got ready")
		}
	}
}

// corruption is one way to damage a real image directory. want lists
// strings the restore error must contain: the file, and the field when
// the damage is to one.
type corruption struct {
	name   string
	damage func(t *testing.T, dir string, pid int)
	want   []string
	// mayRestore: the damage may go unnoticed (a flipped byte in page
	// contents or in a register); the restore must then still be whole.
	mayRestore bool
}

// TestCorruptImages takes one real dump and restores it damaged in many
// ways — fields out of range, overlapping VMAs, page counts that do not
// match, huge fd numbers and sizes, ".." in paths, truncated, flipped and
// swapped files. Restore must refuse with an error naming the file (and
// the field), create nothing, and never panic; an undetectable flip may
// restore, whole.
func TestCorruptImages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	cmd, _ := startWorkload(t, dir)
	pid := cmd.Process.Pid
	tids := threadsOf(pid)
	base := filepath.Join(dir, "base")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: base}); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	cases := structuredCorruptions(pid)
	names := listImages(t, base)
	for _, name := range names {
		st, err := os.Stat(filepath.Join(base, name))
		if err != nil {
			t.Fatal(err)
		}
		size := st.Size()
		for _, cut := range []int64{0, 4, 8, 12, size / 2, size - 1} {
			if cut < 0 || cut >= size {
				continue
			}
			// Cut at 8, after the magics, an image of entries holds none:
			// a valid image (a process without fds) unless something
			// else refers to an entry.
			cases = append(cases, corruption{name: fmt.Sprintf("%s truncated to %d", name, cut), damage: truncate(name, cut), want: []string{name},
				mayRestore: cut == 8})
		}
		// Files restore may do without: ids (also in core), pipe data.
		optional := strings.HasPrefix(name, "ids-") || name == image.PipesDataFile
		cases = append(cases, corruption{name: name + " missing", damage: remove(name), want: []string{name}, mayRestore: optional})
		if !strings.HasPrefix(name, "pages-") && size >= 12 {
			// The first entry's size word (after the magics) made huge.
			cases = append(cases, corruption{name: name + " huge entry size", damage: hugeSize(name), want: []string{name}})
		}
		for i, off := range []int64{0, 5, size / 3, size / 2, size - 1} {
			if off >= size {
				continue
			}
			// A flip in the magic must be caught; elsewhere it may land in
			// a value no check can tell from a good one.
			cases = append(cases, corruption{name: fmt.Sprintf("%s byte %d flipped (%d)", name, off, i), damage: flip(name, off),
				want: []string{name}, mayRestore: off >= 4 || strings.HasPrefix(name, "pages-")})
		}
	}
	// Every file given another's contents.
	for i, a := range names {
		b := names[(i+1)%len(names)]
		if a != b {
			cases = append(cases, corruption{name: a + " swapped with " + b, damage: swap(a, b), want: []string{a}, mayRestore: true})
		}
	}

	refused, restored, late := 0, 0, 0
	for i, c := range cases {
		work := filepath.Join(dir, fmt.Sprint("c", i))
		copyDir(t, base, work)
		c.damage(t, work, pid)
		res, err := restoreNoPanic(ctx, work)
		if err == nil {
			restored++
			unix.Kill(res.Pid, unix.SIGKILL)
			res.Wait(ctx)
			if !c.mayRestore {
				t.Errorf("%s: restore succeeded", c.name)
			} else {
				t.Logf("undetectable, restored: %s", c.name)
			}
		} else {
			refused++
			msg := err.Error()
			if c.mayRestore && !strings.Contains(msg, c.want[0]) {
				late++
			}
			if strings.Contains(msg, "panic") {
				t.Errorf("%s: %v", c.name, err)
			}
			// Damage that leaves a well-formed image (a flipped byte in a
			// path, a swapped thread) may fail later, on the kernel's
			// word; the rest must be caught naming the file.
			if !c.mayRestore {
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: error %q does not name %q", c.name, msg, w)
					}
				}
			}
		}
		if left := alive(tids); len(left) > 0 {
			t.Fatalf("%s: tasks %v left behind", c.name, left)
		}
		os.RemoveAll(work)
	}
	t.Logf("corrupt images: %d cases: %d refused (%d of them well-formed damage failing at the kernel), %d undetectable damages restored whole (killed after); no panic, nothing left behind",
		len(cases), refused, late, restored)
}

// restoreNoPanic runs Restore and turns a panic into an error.
func restoreNoPanic(ctx context.Context, dir string) (res *Restored, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return Restore(ctx, RestoreOptions{ImagesDir: dir})
}

func threadsOf(pid int) []int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscan(e.Name(), &n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// alive returns the pids of tids that still exist.
func alive(tids []int) []int {
	var out []int
	for _, tid := range tids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", tid)); err == nil {
			out = append(out, tid)
		}
	}
	return out
}

func listImages(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".img") && !strings.HasPrefix(e.Name(), "stats-") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Mkdir(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func truncate(name string, n int64) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		if err := os.Truncate(filepath.Join(dir, name), n); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(name string) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func flip(name string, off int64) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[off] ^= 0xa5
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// hugeSize sets the size word of the first entry to nearly 4 GiB: the
// reader must refuse it by its limit, not try to allocate it.
func hugeSize(name string) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// Images with two magics (most) have the size at 8, others at 4;
		// 8 is a size word or the start of the first entry either way.
		b[8], b[9], b[10], b[11] = 0xf0, 0xff, 0xff, 0xff
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func swap(a, b string) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		pb, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, a), pb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rewrite decodes every entry of one image, lets edit change them and
// writes them back.
func rewrite[T any, P interface {
	*T
	proto.Message
}](k image.Kind, name string, edit func([]P) []P) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		d, err := image.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		es, err := image.ReadAll[T, P](d, k, name)
		if err != nil {
			t.Fatal(err)
		}
		es = edit(es)
		os.Remove(filepath.Join(dir, name))
		w, err := d.Writer(k, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if err := w.Write(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// rewritePagemap edits the entries of a pagemap (after its head).
func rewritePagemap(name string, edit func([]*pagemap.PagemapEntry)) func(*testing.T, string, int) {
	return func(t *testing.T, dir string, _ int) {
		d, err := image.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r, err := d.Reader(image.Pagemap, name)
		if err != nil {
			t.Fatal(err)
		}
		var head pagemap.PagemapHead
		if !r.Next(&head) {
			t.Fatal(r.Err())
		}
		var es []*pagemap.PagemapEntry
		for {
			e := new(pagemap.PagemapEntry)
			if !r.Next(e) {
				break
			}
			es = append(es, e)
		}
		r.Close()
		edit(es)
		os.Remove(filepath.Join(dir, name))
		w, err := d.Writer(image.Pagemap, name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(&head)
		for _, e := range es {
			w.Write(e)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

// structuredCorruptions damage one field each, through the decoder.
func structuredCorruptions(pid int) []corruption {
	p := uint32(pid)
	mmName, coreName, fdName, pmName := image.MmFile(p), image.CoreFile(p), image.FdinfoFile(p), image.PagemapFile(p)
	mmEdit := func(f func(m *mm.MmEntry)) func(*testing.T, string, int) {
		return rewrite[mm.MmEntry](image.Mm, mmName, func(es []*mm.MmEntry) []*mm.MmEntry { f(es[0]); return es })
	}
	coreEdit := func(f func(c *criu_core.CoreEntry)) func(*testing.T, string, int) {
		return rewrite[criu_core.CoreEntry](image.Core, coreName, func(es []*criu_core.CoreEntry) []*criu_core.CoreEntry { f(es[0]); return es })
	}
	fdEdit := func(f func(es []*fdinfo.FdinfoEntry) []*fdinfo.FdinfoEntry) func(*testing.T, string, int) {
		return rewrite[fdinfo.FdinfoEntry](image.Fdinfo, fdName, f)
	}
	treeEdit := func(f func(e *pstree.PstreeEntry)) func(*testing.T, string, int) {
		return rewrite[pstree.PstreeEntry](image.Pstree, image.PstreeFile, func(es []*pstree.PstreeEntry) []*pstree.PstreeEntry { f(es[0]); return es })
	}
	filesEdit := func(f func(e *fdinfo.FileEntry)) func(*testing.T, string, int) {
		return rewrite[fdinfo.FileEntry](image.Files, image.FilesFile, func(es []*fdinfo.FileEntry) []*fdinfo.FileEntry {
			for _, e := range es {
				if e.Reg != nil {
					f(e)
					break
				}
			}
			return es
		})
	}
	return []corruption{
		{name: "VMA beyond user space", want: []string{mmName, "vmas["}, damage: mmEdit(func(m *mm.MmEntry) {
			v := m.Vmas[len(m.Vmas)-1]
			v.End = u64(1 << 60)
		})},
		{name: "overlapping VMAs", want: []string{mmName, "vmas[1].start"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.Vmas[1].Start = u64(m.Vmas[0].GetStart())
		})},
		{name: "VMA not page-aligned", want: []string{mmName, "vmas[0].start"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.Vmas[0].Start = u64(m.Vmas[0].GetStart() + 1)
		})},
		{name: "VMA end below start", want: []string{mmName, "vmas[0].end"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.Vmas[0].End = u64(m.Vmas[0].GetStart())
		})},
		{name: "a million VMAs", want: []string{mmName, "vmas["}, damage: mmEdit(func(m *mm.MmEntry) {
			for len(m.Vmas) < 1<<20 {
				m.Vmas = append(m.Vmas, m.Vmas...)
			}
		})},
		{name: "VMA with unknown prot bits", want: []string{mmName, ".prot"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.Vmas[0].Prot = u32(0x80)
		})},
		{name: "brk below start_brk", want: []string{mmName, "mm_start_brk"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.MmBrk = u64(m.GetMmStartBrk() - 4096)
		})},
		{name: "odd auxv", want: []string{mmName, "mm_saved_auxv"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.MmSavedAuxv = m.MmSavedAuxv[:len(m.MmSavedAuxv)-1]
		})},
		{name: "exe file id unknown", want: []string{mmName, "exe_file_id"}, damage: mmEdit(func(m *mm.MmEntry) {
			m.ExeFileId = u32(999999)
		})},
		{name: "pages counted beyond the pages file", want: []string{pmName}, damage: rewritePagemap(pmName, func(es []*pagemap.PagemapEntry) {
			es[len(es)-1].NrPages = u32(es[len(es)-1].GetNrPages() + 1000)
		})},
		{name: "pages outside every VMA", want: []string{pmName}, damage: rewritePagemap(pmName, func(es []*pagemap.PagemapEntry) {
			es[0].Vaddr = u64(4096)
		})},
		{name: "2^32-1 pages", want: []string{pmName}, damage: rewritePagemap(pmName, func(es []*pagemap.PagemapEntry) {
			es[0].NrPages = u32(^uint32(0))
		})},
		{name: "page run not page-aligned", want: []string{pmName}, damage: rewritePagemap(pmName, func(es []*pagemap.PagemapEntry) {
			es[0].Vaddr = u64(es[0].GetVaddr() + 12)
		})},
		{name: "huge fd number", want: []string{fdName, ".fd"}, damage: fdEdit(func(es []*fdinfo.FdinfoEntry) []*fdinfo.FdinfoEntry {
			es[0].Fd = u32(1 << 30)
			return es
		})},
		{name: "fd listed twice", want: []string{fdName, ".fd"}, damage: fdEdit(func(es []*fdinfo.FdinfoEntry) []*fdinfo.FdinfoEntry {
			return append(es, es[0])
		})},
		{name: "fd of an unknown file", want: []string{fdName, ".id"}, damage: fdEdit(func(es []*fdinfo.FdinfoEntry) []*fdinfo.FdinfoEntry {
			es[0].Id = u32(999999)
			return es
		})},
		{name: "path with ..", want: []string{image.FilesFile, "reg.name", ".."}, damage: filesEdit(func(e *fdinfo.FileEntry) {
			e.Reg.Name = proto.String("/tmp/../../etc/shadow")
		})},
		{name: "relative path", want: []string{image.FilesFile, "reg.name"}, damage: filesEdit(func(e *fdinfo.FileEntry) {
			e.Reg.Name = proto.String("etc/shadow")
		})},
		{name: "path longer than PATH_MAX", want: []string{image.FilesFile, "reg.name"}, damage: filesEdit(func(e *fdinfo.FileEntry) {
			e.Reg.Name = proto.String("/" + strings.Repeat("a", 5000))
		})},
		{name: "pid 0", want: []string{image.PstreeFile, "pid"}, damage: treeEdit(func(e *pstree.PstreeEntry) { e.Pid = u32(0) })},
		{name: "pid above PID_MAX_LIMIT", want: []string{image.PstreeFile, "pid"}, damage: treeEdit(func(e *pstree.PstreeEntry) { e.Pid = u32(1 << 30) })},
		{name: "task not among its threads", want: []string{image.PstreeFile, "threads"}, damage: treeEdit(func(e *pstree.PstreeEntry) { e.Threads = e.Threads[1:] })},
		{name: "thread listed twice", want: []string{image.PstreeFile, "threads["}, damage: treeEdit(func(e *pstree.PstreeEntry) { e.Threads = append(e.Threads, e.Threads[0]) })},
		{name: "thread without core", want: []string{"core-"}, damage: treeEdit(func(e *pstree.PstreeEntry) { e.Threads = append(e.Threads, 4000000) })},
		{name: "foreign architecture", want: []string{coreName, "mtype"}, damage: coreEdit(func(c *criu_core.CoreEntry) {
			c.Mtype = criu_core.CoreEntry_AARCH64.Enum()
		})},
		{name: "no registers", want: []string{coreName, "thread_info"}, damage: coreEdit(func(c *criu_core.CoreEntry) { c.ThreadInfo = nil })},
		{name: "comm too long", want: []string{coreName, "comm"}, damage: coreEdit(func(c *criu_core.CoreEntry) {
			c.Tc.Comm = proto.String(strings.Repeat("x", 64))
		})},
		{name: "3 sigactions", want: []string{coreName, "sigactions"}, damage: coreEdit(func(c *criu_core.CoreEntry) {
			c.Tc.Sigactions = c.Tc.Sigactions[:3]
		})},
		{name: "FPU state of the wrong size", want: []string{coreName, "xmm_space"}, damage: coreEdit(func(c *criu_core.CoreEntry) {
			c.ThreadInfo.Fpregs.XmmSpace = append(c.ThreadInfo.Fpregs.XmmSpace, 1)
		})},
		{name: "cwd of an unknown file", want: []string{image.FsFile(p)}, damage: rewrite[fs.FsEntry](image.Fs, image.FsFile(p), func(es []*fs.FsEntry) []*fs.FsEntry {
			es[0].CwdId = u32(999999)
			return es
		})},
		{name: "image file writable by group", want: []string{image.PstreeFile, "writable by group or others"}, damage: func(t *testing.T, dir string, _ int) {
			os.Chmod(filepath.Join(dir, image.PstreeFile), 0o660)
		}},
		{name: "image file is a FIFO", want: []string{image.PstreeFile, "not a regular file"}, damage: func(t *testing.T, dir string, _ int) {
			os.Remove(filepath.Join(dir, image.PstreeFile))
			unix.Mkfifo(filepath.Join(dir, image.PstreeFile), 0o600)
		}},
		{name: "image file is a symlink", want: []string{image.InventoryFile}, damage: func(t *testing.T, dir string, _ int) {
			os.Remove(filepath.Join(dir, image.InventoryFile))
			os.Symlink("/etc/passwd", filepath.Join(dir, image.InventoryFile))
		}},
		{name: "garbage appended to core", want: []string{coreName}, damage: func(t *testing.T, dir string, _ int) {
			f, _ := os.OpenFile(filepath.Join(dir, coreName), os.O_WRONLY|os.O_APPEND, 0)
			io.WriteString(f, "\x10\x00\x00\x00garbage garbage!")
			f.Close()
		}},
	}
}
