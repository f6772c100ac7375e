package ptrace

import (
	"testing"

	"github.com/gocr/gocr/engine/abi"
	"golang.org/x/sys/unix"
)

func neg(e int64) uint64 { return uint64(-e) }

func TestRestartedRegs(t *testing.T) {
	const rip, read = 0x401002, 0
	for _, c := range []struct {
		name         string
		in           abi.PtraceRegs
		wantRax      uint64
		wantRip      uint64
		resumeRax    uint64
		resumeRip    uint64
		notInSyscall bool
	}{
		{name: "ERESTARTSYS", in: abi.PtraceRegs{OrigRax: read, Rax: neg(512), Rip: rip}, wantRax: read, wantRip: rip - 2, resumeRax: read, resumeRip: rip - 2},
		{name: "ERESTARTNOINTR", in: abi.PtraceRegs{OrigRax: 7, Rax: neg(513), Rip: rip}, wantRax: 7, wantRip: rip - 2, resumeRax: 7, resumeRip: rip - 2},
		{name: "ERESTARTNOHAND", in: abi.PtraceRegs{OrigRax: 23, Rax: neg(514), Rip: rip}, wantRax: 23, wantRip: rip - 2, resumeRax: 23, resumeRip: rip - 2},
		{name: "ERESTART_RESTARTBLOCK", in: abi.PtraceRegs{OrigRax: 230, Rax: neg(516), Rip: rip}, wantRax: neg(4), wantRip: rip, resumeRax: unix.SYS_RESTART_SYSCALL, resumeRip: rip - 2},
		{name: "ordinary error", in: abi.PtraceRegs{OrigRax: 0, Rax: neg(11), Rip: rip}, wantRax: neg(11), wantRip: rip, resumeRax: neg(11), resumeRip: rip},
		{name: "ENOIOCTLCMD is not a restart", in: abi.PtraceRegs{OrigRax: 16, Rax: neg(515), Rip: rip}, wantRax: neg(515), wantRip: rip, resumeRax: neg(515), resumeRip: rip},
		{name: "not in a syscall", in: abi.PtraceRegs{OrigRax: ^uint64(0), Rax: neg(512), Rip: rip}, wantRax: neg(512), wantRip: rip, resumeRax: neg(512), resumeRip: rip},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := RestartedRegs(c.in)
			if got.Rax != c.wantRax || got.Rip != c.wantRip || got.OrigRax != c.in.OrigRax {
				t.Errorf("RestartedRegs: rax %#x rip %#x orig %#x, want rax %#x rip %#x", got.Rax, got.Rip, got.OrigRax, c.wantRax, c.wantRip)
			}
			res := resumeRegs(c.in)
			if res.Rax != c.resumeRax || res.Rip != c.resumeRip {
				t.Errorf("resumeRegs: rax %#x rip %#x, want rax %#x rip %#x", res.Rax, res.Rip, c.resumeRax, c.resumeRip)
			}
		})
	}
}

func TestParseExecMapping(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		want execMapping
	}{
		{"7ffd1c3f0000-7ffd1c3f2000 r-xp 00000000 00:00 0                          [vdso]", true, execMapping{0x7ffd1c3f0000, 0x7ffd1c3f2000, "[vdso]"}},
		{"55d0c0a00000-55d0c0a04000 r--p 00000000 fd:01 1234 /usr/bin/sleep", false, execMapping{}},
		{"7f00-7f10 r-xp 00000000 fd:01 42 /tmp/a dir/lib (deleted)", true, execMapping{0x7f00, 0x7f10, "/tmp/a dir/lib (deleted)"}},
		{"7f00-7f10 --xp 00000000 00:00 0", true, execMapping{0x7f00, 0x7f10, ""}},
		{"garbage", false, execMapping{}},
		{"7f10-7f00 r-xp 0 0 0", false, execMapping{}},
	} {
		got, ok := parseExecMapping(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("parseExecMapping(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}
