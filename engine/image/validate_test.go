package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"google.golang.org/protobuf/proto"
)

func TestValidateMM(t *testing.T) {
	if err := ValidateMM("mm-1.img", sampleMM()); err != nil {
		t.Fatalf("sample: %v", err)
	}
	cases := []struct {
		field string
		edit  func(m *mm.MmEntry)
	}{
		{"vmas[1].start", func(m *mm.MmEntry) { m.Vmas[1].Start = u64(sampleHeap + 1) }},
		{"vmas[1].end", func(m *mm.MmEntry) { m.Vmas[1].End = u64(sampleHeap) }},
		{"vmas[2].end", func(m *mm.MmEntry) { m.Vmas[2].End = u64(TaskSize5Level + PageSize) }},
		{"vmas[1].start", func(m *mm.MmEntry) { m.Vmas[1].Start = u64(0x400000) }},
		{"vmas[0].prot", func(m *mm.MmEntry) { m.Vmas[0].Prot = u32(8) }},
		{"vmas[0].flags", func(m *mm.MmEntry) { m.Vmas[0].Flags = u32(3) }},
		{"vmas[0].flags", func(m *mm.MmEntry) { m.Vmas[0].Flags = u32(2 | 0x10) }},
		{"vmas[3].start", func(m *mm.MmEntry) { m.Vmas[3].Start = u64(VsyscallStart - PageSize) }},
		{"vmas[0].pgoff", func(m *mm.MmEntry) { m.Vmas[0].Pgoff = u64(12) }},
		{"vmas[0].status", func(m *mm.MmEntry) { m.Vmas[0].Status = u32(1 << 31) }},
		{"mm_start_brk", func(m *mm.MmEntry) { m.MmStartBrk = u64(m.GetMmBrk() + 1) }},
		{"mm_env_end", func(m *mm.MmEntry) { m.MmEnvEnd = u64(1 << 63) }},
		{"mm_saved_auxv", func(m *mm.MmEntry) { m.MmSavedAuxv = []uint64{1} }},
	}
	for _, c := range cases {
		m := sampleMM()
		c.edit(m)
		err := ValidateMM("mm-1.img", m)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "mm-1.img: entry 0: field "+c.field+":") {
			t.Errorf("%s: %v", c.field, err)
		}
	}
}

func TestValidatePath(t *testing.T) {
	for _, p := range []string{"/", "/etc/passwd", "/a/b..c/..d", "/tmp/x (deleted)"} {
		if err := ValidatePath("files.img", "reg.name", p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "rel/x", "/a/../../etc", "/..", "/a\x00b", "/" + strings.Repeat("a", PathMax)} {
		err := ValidatePath("files.img", "reg.name", p)
		if err == nil || !strings.Contains(err.Error(), "files.img: field reg.name") {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func TestValidateFdPid(t *testing.T) {
	if ValidateFd("fdinfo-1.img", "fd", 0) != nil || ValidateFd("fdinfo-1.img", "fd", FdLimit-1) != nil {
		t.Error("valid fd refused")
	}
	if ValidateFd("fdinfo-1.img", "fd", -1) == nil || ValidateFd("fdinfo-1.img", "fd", FdLimit) == nil {
		t.Error("invalid fd accepted")
	}
	if ValidatePid("pstree.img", "pid", 1) != nil || ValidatePid("pstree.img", "pid", PidMaxLimit) != nil {
		t.Error("valid pid refused")
	}
	if ValidatePid("pstree.img", "pid", 0) == nil || ValidatePid("pstree.img", "pid", PidMaxLimit+1) == nil {
		t.Error("invalid pid accepted")
	}
}

func TestValidatePstree(t *testing.T) {
	e := func(pid, ppid uint32, threads ...uint32) *pstree.PstreeEntry {
		return &pstree.PstreeEntry{Pid: u32(pid), Ppid: u32(ppid), Pgid: u32(pid), Sid: u32(1), Threads: threads}
	}
	if err := ValidatePstree("pstree.img", []*pstree.PstreeEntry{e(1, 0, 1, 2), e(3, 1, 3)}); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]*pstree.PstreeEntry{
		"entry 0: field ppid":       {e(1, 5, 1)},
		"entry 1: field ppid":       {e(1, 0, 1), e(3, 7, 3)},
		"entry 1: field threads[0]": {e(1, 0, 1, 2), e(2, 1, 2)},
		"entry 0: field threads":    {e(1, 0, 2)},
		"entry 0: field pid":        {e(0, 0, 0)},
	}
	for want, tree := range bad {
		if err := ValidatePstree("pstree.img", tree); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestValidateCore(t *testing.T) {
	c := sampleCore(1, true)
	c.Tc.Sigactions = c.Tc.Sigactions[:10]
	if err := ValidateCore("core-1.img", c); err == nil || !strings.Contains(err.Error(), "tc.sigactions") {
		t.Errorf("short sigactions: %v", err)
	}
	c = sampleCore(1, true)
	c.Tc.Comm = proto.String("a very long command name")
	if err := ValidateCore("core-1.img", c); err == nil || !strings.Contains(err.Error(), "tc.comm") {
		t.Errorf("long comm: %v", err)
	}
	c = sampleCore(1, false)
	c.ThreadInfo.Fpregs.XmmSpace = nil
	if err := ValidateCore("core-1.img", c); err == nil || !strings.Contains(err.Error(), "xmm_space") {
		t.Errorf("no xmm: %v", err)
	}
}
