// Package seccomp dumps and restores seccomp state: each thread's mode
// (strict or filter) and its chain of classic BPF filters, in CRIU's
// seccomp.img and thread_core's seccomp_mode and seccomp_filter.
//
// The kernel shares filters between threads and processes (inherited at
// clone, or spread by SECCOMP_FILTER_FLAG_TSYNC), but shows no identity for
// them: as CRIU does, chains are compared by content and order, and one
// image entry serves every thread whose chain is the same.
//
// The image's layout is CRIU's: each chain is stored newest filter first;
// thread_core.seccomp_filter names the chain's oldest filter, and each
// filter's prev the one installed after it (the newest has none). A restore
// installs from seccomp_filter following prev: oldest first, as the kernel
// stacked them.
package seccomp

import (
	"bytes"
	"fmt"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	seccompimg "github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
)

// Filter is one filter of a chain: its program (struct sock_filter after
// struct sock_filter) and the SECCOMP_FILTER_FLAG_* to install it with.
type Filter struct {
	Prog  []byte
	Flags uint32
}

// Chain is a thread's filters, the oldest (first installed) first.
type Chain []Filter

// Equal reports whether two chains have the same filters, flags and order.
func (c Chain) Equal(o Chain) bool {
	if len(c) != len(o) {
		return false
	}
	for i := range c {
		if c[i].Flags != o[i].Flags || !bytes.Equal(c[i].Prog, o[i].Prog) {
			return false
		}
	}
	return true
}

// key is the chain as a map key.
func (c Chain) key() string {
	var b bytes.Buffer
	for _, f := range c {
		fmt.Fprintf(&b, "%d:%d:", f.Flags, len(f.Prog))
		b.Write(f.Prog)
	}
	return b.String()
}

// Table collects the chains of a dump for seccomp.img, each distinct chain
// once.
type Table struct {
	filters []*seccompimg.SeccompFilter
	byKey   map[string]uint32
}

// Add stores a chain (once, however many threads have it) and returns its
// index for thread_core.seccomp_filter: the position of its oldest filter.
// An empty chain has none.
func (t *Table) Add(c Chain) (uint32, error) {
	if len(c) == 0 {
		return 0, fmt.Errorf("seccomp: an empty filter chain has no index")
	}
	if t.byKey == nil {
		t.byKey = map[string]uint32{}
	}
	k := c.key()
	if i, ok := t.byKey[k]; ok {
		return i, nil
	}
	for i := len(c) - 1; i >= 0; i-- {
		f := &seccompimg.SeccompFilter{Filter: append([]byte(nil), c[i].Prog...), Flags: ptr(c[i].Flags)}
		if i != len(c)-1 {
			f.Prev = ptr(uint32(len(t.filters) - 1)) // the one after it, written just before
		}
		t.filters = append(t.filters, f)
	}
	idx := uint32(len(t.filters) - 1)
	t.byKey[k] = idx
	return idx, nil
}

// Empty reports whether no chain was added: then no seccomp.img is written.
func (t *Table) Empty() bool { return len(t.filters) == 0 }

// Entry is seccomp.img's one entry.
func (t *Table) Entry() *seccompimg.SeccompEntry {
	return &seccompimg.SeccompEntry{SeccompFilters: t.filters}
}

// ReadChain follows a thread's chain in seccomp.img from index, the
// thread_core.seccomp_filter, checking each filter as the kernel would
// take it: a whole number of instructions, at most BPF_MAXINSNS each, the
// chain within MAX_INSNS_PER_PATH and without a loop.
func ReadChain(e *seccompimg.SeccompEntry, index uint32) (Chain, error) {
	fs := e.GetSeccompFilters()
	seen := map[uint32]bool{}
	var c Chain
	total := 0
	for i := index; ; {
		if int(i) >= len(fs) {
			return nil, fmt.Errorf("filter %d: seccomp.img has %d filters", i, len(fs))
		}
		if seen[i] {
			return nil, fmt.Errorf("filter %d: the chain from filter %d loops", i, index)
		}
		seen[i] = true
		f := fs[i]
		n := len(f.GetFilter())
		if n == 0 || n%abi.SockFilterSize != 0 || n/abi.SockFilterSize > abi.BPFMaxInsns {
			return nil, fmt.Errorf("filter %d: %d bytes: not 1 to %d instructions of %d bytes", i, n, abi.BPFMaxInsns, abi.SockFilterSize)
		}
		// kernel/seccomp.c: each filter costs its length plus 4.
		total += n/abi.SockFilterSize + 4
		if total > abi.SeccompMaxInsnsPerPath {
			return nil, fmt.Errorf("filter %d: the chain from filter %d has more than %d instructions", i, index, abi.SeccompMaxInsnsPerPath)
		}
		c = append(c, Filter{Prog: f.GetFilter(), Flags: f.GetFlags()})
		if f.Prev == nil {
			return c, nil
		}
		i = f.GetPrev()
	}
}

// Thread is the seccomp state of one thread as the image has it.
type Thread struct {
	Mode  criu_core.SeccompMode
	Chain Chain // in filter mode
}

// ReadThread reads the seccomp state of a thread from its thread_core and
// seccomp.img (e may be nil when the image has none).
func ReadThread(tc *criu_core.ThreadCoreEntry, e *seccompimg.SeccompEntry) (Thread, error) {
	th := Thread{Mode: tc.GetSeccompMode()}
	switch th.Mode {
	case criu_core.SeccompMode_disabled, criu_core.SeccompMode_strict:
		return th, nil
	case criu_core.SeccompMode_filter:
	default:
		return th, fmt.Errorf("seccomp_mode: %d: not a seccomp mode", th.Mode)
	}
	if tc.SeccompFilter == nil {
		return th, fmt.Errorf("seccomp_filter: missing in filter mode")
	}
	if e == nil {
		return th, fmt.Errorf("seccomp_filter: %d, but there is no seccomp.img", tc.GetSeccompFilter())
	}
	c, err := ReadChain(e, tc.GetSeccompFilter())
	if err != nil {
		return th, fmt.Errorf("seccomp_filter: %w", err)
	}
	if i, pc, ok := c.UserNotif(); ok {
		return th, fmt.Errorf("seccomp_filter: filter %d (the chain's %d, oldest first) instruction %d returns SECCOMP_RET_USER_NOTIF: "+
			"its listener, a supervisor's fd, cannot be restored: not supported", tc.GetSeccompFilter(), i, pc)
	}
	th.Chain = c
	return th, nil
}

// UserNotif finds a filter that hands calls to a user-space supervisor
// (an instruction `ret #SECCOMP_RET_USER_NOTIF`): the listener fd the
// kernel gave at its installation (SECCOMP_FILTER_FLAG_NEW_LISTENER), held
// by the supervisor, cannot be made again. It returns the filter's
// position in the chain and the instruction's.
func (c Chain) UserNotif() (filter, insn int, found bool) {
	for i, f := range c {
		insns, err := abi.DecodeSockFilters(f.Prog)
		if err != nil {
			continue
		}
		for pc, in := range insns {
			if in.Code == unix.BPF_RET|unix.BPF_K && in.K&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_USER_NOTIF {
				return i, pc, true
			}
		}
	}
	return 0, 0, false
}

// SharedPrefix is how many of the oldest filters every thread of a process
// has in common, when every thread is in filter mode and there are several:
// those are installed once, by one thread with SECCOMP_FILTER_FLAG_TSYNC,
// so that the threads share them as they did (the kernel would refuse a
// later TSYNC call of the task otherwise). The rest of each chain is
// installed by its own thread.
func SharedPrefix(threads []Thread) int {
	if len(threads) < 2 {
		return 0
	}
	n := -1
	for _, th := range threads {
		if th.Mode != criu_core.SeccompMode_filter {
			return 0
		}
		if n < 0 || len(th.Chain) < n {
			n = len(th.Chain)
		}
	}
	for i := 0; i < n; i++ {
		for _, th := range threads[1:] {
			if !Chain(threads[0].Chain[i : i+1]).Equal(th.Chain[i : i+1]) {
				return i
			}
		}
	}
	return n
}

func ptr[T any](v T) *T { return &v }
