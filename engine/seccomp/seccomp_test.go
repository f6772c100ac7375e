package seccomp

import (
	"strings"
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	seccompimg "github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/abi"
)

func prog(nr, errno uint32) []byte {
	return abi.EncodeSockFilters([]abi.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: nr},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | errno},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	})
}

var (
	fA = Filter{Prog: prog(unix.SYS_GETPPID, 1)}
	fB = Filter{Prog: prog(unix.SYS_GETPGID, 2), Flags: unix.SECCOMP_FILTER_FLAG_LOG}
	fC = Filter{Prog: prog(unix.SYS_GETSID, 3)}
)

// The layout is CRIU's: newest first, thread_core.seccomp_filter at the
// oldest, prev leading to the next newer; identical chains share entries.
func TestTableLayoutAndDedupe(t *testing.T) {
	var tb Table
	if !tb.Empty() {
		t.Fatal("new table not empty")
	}
	parent, err := tb.Add(Chain{fA})
	if err != nil {
		t.Fatal(err)
	}
	child, _ := tb.Add(Chain{fA, fB})
	sibling, _ := tb.Add(Chain{fA})
	other, _ := tb.Add(Chain{fA, fB, fC})
	if parent != 0 || sibling != parent {
		t.Errorf("chain {A} at %d and %d, want both 0", parent, sibling)
	}
	if child != 2 || other != 5 {
		t.Errorf("indexes %d %d, want 2 and 5", child, other)
	}
	e := tb.Entry()
	if len(e.SeccompFilters) != 6 {
		t.Fatalf("%d filters, want 6 (1+2+3)", len(e.SeccompFilters))
	}
	// {A, B} is stored B (no prev), A (prev → B).
	if e.SeccompFilters[1].Prev != nil || string(e.SeccompFilters[1].Filter) != string(fB.Prog) ||
		e.SeccompFilters[2].GetPrev() != 1 || string(e.SeccompFilters[2].Filter) != string(fA.Prog) {
		t.Errorf("chain {A, B} stored as %v", e.SeccompFilters[1:3])
	}
	// Through protobuf, as crit reads it, and back.
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back seccompimg.SeccompEntry
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idx  uint32
		want Chain
	}{{parent, Chain{fA}}, {child, Chain{fA, fB}}, {other, Chain{fA, fB, fC}}} {
		got, err := ReadChain(&back, c.idx)
		if err != nil {
			t.Fatalf("ReadChain %d: %v", c.idx, err)
		}
		if !got.Equal(c.want) {
			t.Errorf("ReadChain %d = %d filters, want %d", c.idx, len(got), len(c.want))
		}
	}
	if _, err := tb.Add(nil); err == nil {
		t.Error("an empty chain got an index")
	}
}

func TestReadChainRefuses(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	for name, c := range map[string]struct {
		e    *seccompimg.SeccompEntry
		idx  uint32
		want string
	}{
		"index":  {&seccompimg.SeccompEntry{SeccompFilters: []*seccompimg.SeccompFilter{{Filter: fA.Prog}}}, 1, "has 1 filters"},
		"prev":   {&seccompimg.SeccompEntry{SeccompFilters: []*seccompimg.SeccompFilter{{Filter: fA.Prog, Prev: u(7)}}}, 0, "filter 7"},
		"loop":   {&seccompimg.SeccompEntry{SeccompFilters: []*seccompimg.SeccompFilter{{Filter: fA.Prog, Prev: u(1)}, {Filter: fB.Prog, Prev: u(0)}}}, 0, "loops"},
		"odd":    {&seccompimg.SeccompEntry{SeccompFilters: []*seccompimg.SeccompFilter{{Filter: fA.Prog[:7]}}}, 0, "7 bytes"},
		"empty":  {&seccompimg.SeccompEntry{SeccompFilters: []*seccompimg.SeccompFilter{{Filter: nil}}}, 0, "0 bytes"},
		"toobig": {&seccompimg.SeccompEntry{SeccompFilters: []*seccompimg.SeccompFilter{{Filter: make([]byte, 8*(abi.BPFMaxInsns+1))}}}, 0, "instructions"},
	} {
		if _, err := ReadChain(c.e, c.idx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
	// A path longer than MAX_INSNS_PER_PATH: 9 filters of 4096.
	big := &seccompimg.SeccompEntry{}
	for i := 0; i < 9; i++ {
		f := &seccompimg.SeccompFilter{Filter: make([]byte, 8*abi.BPFMaxInsns)}
		if i > 0 {
			f.Prev = u(uint32(i - 1))
		}
		big.SeccompFilters = append(big.SeccompFilters, f)
	}
	if _, err := ReadChain(big, 8); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a 9x4096 chain: %v", err)
	}
	if _, err := ReadChain(big, 6); err != nil {
		t.Errorf("a 7x4096 chain refused: %v", err)
	}
}

func TestReadThread(t *testing.T) {
	var tb Table
	idx, _ := tb.Add(Chain{fA, fB})
	mode := func(m criu_core.SeccompMode) *criu_core.SeccompMode { return &m }
	th, err := ReadThread(&criu_core.ThreadCoreEntry{SeccompMode: mode(criu_core.SeccompMode_filter), SeccompFilter: &idx}, tb.Entry())
	if err != nil || !th.Chain.Equal(Chain{fA, fB}) {
		t.Fatalf("ReadThread = %+v, %v", th, err)
	}
	if th, err := ReadThread(&criu_core.ThreadCoreEntry{SeccompMode: mode(criu_core.SeccompMode_strict)}, nil); err != nil || th.Mode != criu_core.SeccompMode_strict {
		t.Errorf("strict: %+v, %v", th, err)
	}
	if _, err := ReadThread(&criu_core.ThreadCoreEntry{SeccompMode: mode(criu_core.SeccompMode_filter)}, tb.Entry()); err == nil {
		t.Error("filter mode without seccomp_filter accepted")
	}
	if _, err := ReadThread(&criu_core.ThreadCoreEntry{SeccompMode: mode(criu_core.SeccompMode_filter), SeccompFilter: &idx}, nil); err == nil {
		t.Error("filter mode without seccomp.img accepted")
	}
	if _, err := ReadThread(&criu_core.ThreadCoreEntry{SeccompMode: mode(3)}, nil); err == nil {
		t.Error("mode 3 accepted")
	}
}

func TestSharedPrefix(t *testing.T) {
	f := func(c ...Filter) Thread { return Thread{Mode: criu_core.SeccompMode_filter, Chain: c} }
	for _, c := range []struct {
		name    string
		threads []Thread
		want    int
	}{
		{"one thread", []Thread{f(fA, fB)}, 0},
		{"same", []Thread{f(fA, fB), f(fA, fB)}, 2},
		{"one more", []Thread{f(fA), f(fA, fB), f(fA)}, 1},
		{"diverge", []Thread{f(fA, fB), f(fA, fC)}, 1},
		{"none shared", []Thread{f(fB), f(fA)}, 0},
		{"flags differ", []Thread{f(fA), f(Filter{Prog: fA.Prog, Flags: 2})}, 0},
		{"one disabled", []Thread{f(fA), {}}, 0},
	} {
		if got := SharedPrefix(c.threads); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// A filter that returns SECCOMP_RET_USER_NOTIF is refused: its listener
// cannot come back.
func TestUserNotifRefused(t *testing.T) {
	notif := Filter{Prog: abi.EncodeSockFilters([]abi.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_MOUNT},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_USER_NOTIF},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	})}
	if _, _, ok := (Chain{fA, fB}).UserNotif(); ok {
		t.Fatal("errno filters taken for user notification")
	}
	if i, pc, ok := (Chain{fA, notif}).UserNotif(); !ok || i != 1 || pc != 2 {
		t.Fatalf("UserNotif = %d, %d, %v; want 1, 2, true", i, pc, ok)
	}
	var tb Table
	idx, _ := tb.Add(Chain{fA, notif})
	mode := criu_core.SeccompMode_filter
	_, err := ReadThread(&criu_core.ThreadCoreEntry{SeccompMode: &mode, SeccompFilter: &idx}, tb.Entry())
	if err == nil || !strings.Contains(err.Error(), "SECCOMP_RET_USER_NOTIF") {
		t.Fatalf("ReadThread: %v", err)
	}
}
