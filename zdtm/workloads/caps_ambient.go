package workloads

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/lib"
)

// threadCaps is one thread's capability sets, from /proc/thread-self/status.
type threadCaps struct{ inh, prm, eff, amb uint64 }

func (c threadCaps) String() string {
	return fmt.Sprintf("inh %#x prm %#x eff %#x amb %#x", c.inh, c.prm, c.eff, c.amb)
}

func readThreadCaps() (threadCaps, error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return threadCaps{}, err
	}
	var c threadCaps
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		dst := map[string]*uint64{"CapInh": &c.inh, "CapPrm": &c.prm, "CapEff": &c.eff, "CapAmb": &c.amb}[k]
		if dst == nil {
			continue
		}
		if *dst, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
			return threadCaps{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	return c, nil
}

// capsetThread sets the calling thread's effective, permitted and
// inheritable sets (capset(2), version 3).
func capsetThread(eff, prm, inh uint64) error {
	hdr := [2]uint32{unix.LINUX_CAPABILITY_VERSION_3, 0}
	data := [6]uint32{uint32(eff), uint32(prm), uint32(inh), uint32(eff >> 32), uint32(prm >> 32), uint32(inh >> 32)}
	if _, _, errno := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data)), 0); errno != 0 {
		return fmt.Errorf("capset eff %#x prm %#x inh %#x: %w", eff, prm, inh, errno)
	}
	return nil
}

// CapsAmbient keeps a thread's ambient capabilities (zdtm's caps01): one
// thread locked to its OS thread drops CAP_DAC_OVERRIDE from its permitted
// set and CAP_CHOWN from its effective one, makes its inheritable set its
// permitted one and raises CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT
// and CAP_SYSLOG (the high word) as ambient. After restore that thread has
// the same four sets and another thread still has no ambient set.
var CapsAmbient = lib.Workload{Name: "caps_ambient", Run: func(t *lib.T) {
	type result struct {
		caps threadCaps
		err  error
	}
	check := make(chan struct{})
	results := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread keeps its capabilities
		err := func() error {
			c, err := readThreadCaps()
			if err != nil {
				return err
			}
			prm := c.prm &^ (1 << unix.CAP_DAC_OVERRIDE)
			eff := c.eff &^ (1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_CHOWN) & prm
			if err := capsetThread(eff, prm, prm); err != nil {
				return err
			}
			for _, nr := range []uintptr{unix.CAP_KILL, unix.CAP_NET_BIND_SERVICE, unix.CAP_SYS_CHROOT, unix.CAP_SYSLOG} {
				if prm&(1<<nr) == 0 {
					continue // not ours to raise here
				}
				if _, _, errno := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, nr, 0, 0, 0); errno != 0 {
					return fmt.Errorf("raise ambient capability %d: %w", nr, errno)
				}
			}
			return nil
		}()
		c, rerr := readThreadCaps()
		if err == nil {
			err = rerr
		}
		if err == nil && c.amb == 0 {
			err = fmt.Errorf("no ambient capability raised (%v)", c)
		}
		results <- result{c, err}
		for range check {
			c, err := readThreadCaps()
			results <- result{c, err}
		}
	}()
	first := <-results
	if first.err != nil {
		t.Fatal(first.err)
	}
	t.Logf("ambient thread: %v", first.caps)
	t.Ready()
	t.WaitSignal()
	check <- struct{}{}
	if r := <-results; r.err != nil {
		t.Fail("after restore: %v", r.err)
	} else if r.caps != first.caps {
		t.Fail("after restore the ambient thread has %v, want %v", r.caps, first.caps)
	}
	runtime.LockOSThread() // a thread other than the ambient one
	if c, err := readThreadCaps(); err != nil {
		t.Fail("after restore: %v", err)
	} else if c.amb != 0 {
		t.Fail("after restore another thread has ambient capabilities %#x", c.amb)
	}
	t.Pass()
}}
