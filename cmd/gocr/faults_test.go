package main

// Tests that try to break gocr's promises (issue 6): a dump interrupted at
// any named step — by an error, by SIGTERM, by SIGKILL of gocr — leaves
// the process running unharmed; a restore interrupted at any step leaves
// nothing of the tree behind; two gocr never corrupt each other.
//
// The test binary is gocr itself (TestMain runs main's run() when
// envAsGocr is set, and the watchdog when re-executed as one) and the
// zdtm workloads (envAsZdtm), so no build step is needed.

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine"
	"github.com/gocr/gocr/engine/fault"
	"github.com/gocr/gocr/engine/netlock"
	"github.com/gocr/gocr/internal/rseqtest"
	"github.com/gocr/gocr/zdtm/lib"
	"github.com/gocr/gocr/zdtm/workloads"
)

const (
	envAsGocr = "GOCR_TEST_AS_GOCR"
	envAsZdtm = "GOCR_TEST_AS_ZDTM"
)

func TestMain(m *testing.M) {
	args := os.Args[1:]
	switch {
	case engine.IsWatchdog(args) || engine.IsStub(args) || os.Getenv(envAsGocr) != "":
		os.Exit(run(args, os.Stdout, os.Stderr))
	case os.Getenv(envAsZdtm) != "":
		lib.Main(append(workloads.All(), spinners)...)
		os.Exit(0)
	case os.Getenv(envAsShell) != "":
		os.Exit(runShell())
	case os.Getenv(envAsJob) != "":
		os.Exit(runJob(os.Getenv(envAsJob)))
	}
	os.Exit(m.Run())
}

// spinners is a workload whose threads spend half their time in pure user
// code, where a thread let go with the registers of an injected syscall
// would crash at once (a thread caught in a syscall often survives that by
// luck: the code after the syscall instruction returns to its caller).
var spinners = lib.Workload{Name: "spinners", Run: func(t *lib.T) {
	const n = 3
	var stop atomic.Bool
	type spinner struct {
		a, b, x uint64
		done    chan string
	}
	ss := make([]*spinner, n)
	for i := range ss {
		s := &spinner{done: make(chan string, 1)}
		ss[i] = s
		go func() {
			runtime.LockOSThread()
			for !stop.Load() {
				until := time.Now().Add(3 * time.Millisecond)
				for k := 0; ; k++ {
					s.a++
					s.x = s.x*6364136223846793005 + 1442695040888963407
					if s.a != s.b+1 {
						s.done <- fmt.Sprintf("spinner %d torn: a=%d b=%d", i, s.a, s.b)
						return
					}
					s.b++
					if k%4096 == 0 && time.Now().After(until) {
						break
					}
				}
				time.Sleep(500 * time.Microsecond)
			}
			s.done <- ""
		}()
	}
	time.Sleep(20 * time.Millisecond)
	t.Ready()
	var a, b uint64
	for !t.Stopped() {
		until := time.Now().Add(3 * time.Millisecond)
		for k := 0; ; k++ {
			a++
			if a != b+1 {
				t.Fail("leader torn: a=%d b=%d", a, b)
			}
			b++
			if k%4096 == 0 && time.Now().After(until) {
				break
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	stop.Store(true)
	for i, s := range ss {
		if msg := <-s.done; msg != "" {
			t.Fail("%s", msg)
		}
		if s.a == 0 {
			t.Fail("spinner %d never ran", i)
		}
	}
	t.Pass()
}}

// The spinners' leader thread spins too: the dump's first injection
// session is on the leader. Locked in init, the main goroutine stays on
// the leader thread (see runtime.LockOSThread).
func init() {
	if os.Getenv(envAsZdtm) != "" {
		runtime.LockOSThread()
	}
}

// needRoot skips without root and makes the test process the subreaper of
// the daemons and stubs it starts, which it then reaps.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// testEnv is the environment of the subprocesses: no fault, no role.
func testEnv(extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOCR_") && !strings.HasPrefix(e, "ZDTM_") {
			env = append(env, e)
		}
	}
	return append(env, extra...)
}

// victim is a zdtm workload started through the zdtm protocol.
type victim struct {
	name, out string
	pid       int
	tids      []int
	sigblk    map[int]string // per thread, before any dump
	unstable  map[int]bool   // threads whose mask changed while recorded
	maps      []string       // scratch-sized anonymous mappings before any dump
}

func startVictim(t *testing.T, dir, name string) *victim {
	return startVictimFlavor(t, dir, name, "h")
}

// startVictimFlavor starts it in zdtm's flavor h (host namespaces) or ns
// (pid 1 of fresh pid, mount, uts, ipc and net namespaces, in a tmpfs root).
func startVictimFlavor(t *testing.T, dir, name, flavor string) *victim {
	t.Helper()
	f, err := os.CreateTemp(dir, name+"-*.pid")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	pidfile := f.Name()
	os.Remove(pidfile)
	v := &victim{name: name, out: strings.TrimSuffix(pidfile, ".pid") + ".out"}
	cmd := exec.Command("/proc/self/exe", name, "--pidfile="+pidfile, "--outfile="+v.out)
	cmd.Env = testEnv(envAsZdtm+"=1", "ZDTM_FLAVOR="+flavor)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start %s: %v: %s", name, err, b)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	if v.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(v.pid, unix.SIGKILL); reap(v.pid) })
	// A snapshot twice the same: a Go thread being born has every signal
	// blocked for a moment.
	snap := func() map[int]string {
		m := map[int]string{}
		for _, tid := range tidsOf(v.pid) {
			m[tid] = statusField(fmt.Sprintf("/proc/%d/task/%d/status", v.pid, tid), "SigBlk")
		}
		return m
	}
	// A thread whose mask changes while it is watched for a while (born,
	// in a handler, starved of CPU in between on a loaded machine) has no
	// mask that is its state: only the others are compared.
	v.sigblk, v.unstable = snap(), map[int]bool{}
	for range 4 {
		time.Sleep(50 * time.Millisecond)
		for tid, m := range snap() {
			if old, ok := v.sigblk[tid]; ok && old != m {
				v.unstable[tid] = true
			}
		}
	}
	// The threads whose masks were recorded: one the runtime starts later
	// has no "before" to compare with.
	v.tids = slices.Sorted(maps.Keys(v.sigblk))
	v.maps = scratchMaps(v.pid)
	return v
}

func tidsOf(pid int) []int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func statusField(path, field string) string {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// scratchMaps lists anonymous private mappings of the size of the dump's
// scratch area, to see one left behind.
func scratchMaps(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 5 || f[1] != "rw-p" || f[4] != "0" {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		z, _ := strconv.ParseUint(hi, 16, 64)
		if z-a == 64<<10 {
			out = append(out, f[0])
		}
	}
	return out
}

// healthy waits until the victim runs as before the dump: alive, no
// tracer, no thread stopped, signal masks and mappings as they were — and
// still so a moment later (a thread let go with bad registers may take a
// little while to crash).
func (v *victim) healthy() error {
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = v.check(); err == nil {
			time.Sleep(50 * time.Millisecond)
			return v.check()
		}
	}
	return err
}

func (v *victim) check() error {
	for _, tid := range v.tids {
		p := fmt.Sprintf("/proc/%d/task/%d/status", v.pid, tid)
		st := statusField(p, "State")
		if st == "" {
			return fmt.Errorf("thread %d is gone", tid)
		}
		if st[0] == 'T' || st[0] == 't' || st[0] == 'Z' || st[0] == 'X' {
			return fmt.Errorf("thread %d is in state %s", tid, st)
		}
		if tp := statusField(p, "TracerPid"); tp != "0" {
			return fmt.Errorf("thread %d is still traced by %s", tid, tp)
		}
		if m := statusField(p, "SigBlk"); m != v.sigblk[tid] && !v.unstable[tid] {
			return fmt.Errorf("thread %d has signal mask %s, had %s", tid, m, v.sigblk[tid])
		}
	}
	if m := scratchMaps(v.pid); !slices.Equal(m, v.maps) {
		return fmt.Errorf("64 KiB anonymous mappings %v, had %v: scratch left behind", m, v.maps)
	}
	return nil
}

// finish lets the victim check itself (SIGTERM) and reads its verdict.
func (v *victim) finish(t *testing.T) {
	t.Helper()
	if err := unix.Kill(v.pid, unix.SIGTERM); err != nil {
		t.Fatalf("%s pid %d: %v", v.name, v.pid, err)
	}
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ = os.ReadFile(v.out)
		if len(b) > 0 {
			break
		}
	}
	reap(v.pid)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if !strings.Contains(lines[len(lines)-1], "PASS") {
		t.Fatalf("%s pid %d: verdict %q", v.name, v.pid, b)
	}
}

// reap waits for pid if it is a child of ours (the subreaper's orphans).
func reap(pid int) {
	var ws unix.WaitStatus
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		got, err := unix.Wait4(pid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil && err != unix.EINTR {
			return // not ours, or gone
		}
		if got == pid {
			return
		}
	}
}

// reapWatchdogs waits for the watchdogs orphaned by a killed gocr.
func reapWatchdogs(t *testing.T) {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		left := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if !bytes.Contains(cl, []byte("__watchdog")) || statusField("/proc/"+e.Name()+"/status", "PPid") != me {
				continue
			}
			left++
			reap0(pid)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watchdogs still running", left)
		}
	}
}

func reap0(pid int) {
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WALL|unix.WNOHANG, nil) //nolint:errcheck
}

// result is how a gocr run ended.
type result struct {
	code   int
	signal syscall.Signal
	out    string
}

// gocr runs the test binary as gocr with GOCR_FAULT=spec. A stop point is
// answered with SIGTERM then SIGCONT (the run must end cancelled).
func gocr(t *testing.T, spec string, args ...string) result {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Env = testEnv(envAsGocr+"=1", fault.Env+"="+spec)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(spec, ":stop") {
		stopped := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if st := statusField(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid), "State"); strings.HasPrefix(st, "T") {
				stopped = true
				break
			}
		}
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("gocr %v with %s never stopped: %s", args, spec, out.String())
		}
		cmd.Process.Signal(unix.SIGTERM)
		cmd.Process.Signal(unix.SIGCONT)
	}
	err := cmd.Wait()
	r := result{out: out.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			r.signal = ws.Signal()
		} else {
			r.code = ws.ExitStatus()
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// expectFault checks that a run ended the way its fault says.
func expectFault(t *testing.T, spec string, r result) {
	t.Helper()
	switch {
	case strings.HasSuffix(spec, ":kill"):
		if r.signal != unix.SIGKILL {
			t.Fatalf("%s: gocr ended with code %d signal %v, want SIGKILL: %s", spec, r.code, r.signal, r.out)
		}
	case strings.HasSuffix(spec, ":error"):
		if r.code != 1 || !strings.Contains(r.out, "fault injected") {
			t.Fatalf("%s: gocr ended with code %d signal %v: %s", spec, r.code, r.signal, r.out)
		}
	case strings.HasSuffix(spec, ":stop"):
		if r.code != 1 || !strings.Contains(r.out, "context canceled") {
			t.Fatalf("%s then SIGTERM: gocr ended with code %d signal %v: %s", spec, r.code, r.signal, r.out)
		}
	}
}

var actions = []fault.Action{fault.Kill, fault.Error, fault.Stop}

// TestDumpKillPoints walks every named step of the dump with every action
// on the multi-threaded zdtm workload "threads", without --leave-running
// (a dump that got through would kill it): the workload must run on as
// before each time, and pass its own verification at the end.
func TestDumpKillPoints(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	walked := 0
	victims := []struct{ workload, flavor string }{{"threads", "h"}, {"spinners", "h"}, {"seccomp_tsync", "h"}, {"threads", "ns"}}
	if maps, _ := os.ReadFile("/proc/self/maps"); bytes.Contains(maps, []byte("libc.so")) {
		victims = victims[:3] // the ns flavor needs a static test binary (CGO_ENABLED=0, as make does)
	}
	for _, step := range fault.DumpSteps {
		for _, vf := range victims {
			// The zdtm workload, one that spins in user code, one whose
			// threads are under seccomp filters (injected calls would
			// meet them unless seccomp is suspended), and the zdtm
			// workload as pid 1 of its own namespaces.
			w := vf.workload + "-" + vf.flavor
			v := startVictimFlavor(t, dir, vf.workload, vf.flavor)
			if len(v.tids) < 2 {
				t.Fatalf("%s workload has %d threads", v.name, len(v.tids))
			}
			for _, a := range actions {
				spec := fmt.Sprintf("dump:%s:%s", step, a)
				img := filepath.Join(dir, fmt.Sprintf("img-%s-%s-%s", w, step, a))
				r := gocr(t, spec, "dump", "-t", strconv.Itoa(v.pid), "-D", img)
				expectFault(t, spec, r)
				if err := v.healthy(); err != nil {
					t.Fatalf("%s: workload pid %d harmed: %v\ngocr: %s", spec, v.pid, err, r.out)
				}
				reapWatchdogs(t)
				walked++
			}
			v.finish(t)
		}
	}
	t.Logf("dump kill points walked: %d steps × %d actions × %d workloads = %d, workload unharmed every time", len(fault.DumpSteps), len(actions), len(victims), walked)
}

// TestDumpKillPointsRseqCS kills gocr at every step of a dump with
// --leave-running of a task stopped inside an rseq critical section: it
// must be left either at its abort handler, or where it stopped with its
// rseq_cs intact (nothing injected yet, so the kernel still knows the
// section) — never inside the section with the section forgotten.
func TestDumpKillPointsRseqCS(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	for _, step := range fault.DumpSteps {
		if step == "thread" {
			continue // multi-threaded tasks only
		}
		v := rseqtest.Start(t) // a fresh one: a dump that got past its registers has moved the last
		spec := "dump:" + step + ":kill"
		r := gocr(t, spec, "dump", "-t", strconv.Itoa(v.Pid), "-D", filepath.Join(dir, "img-"+step), "--leave-running")
		expectFault(t, spec, r)
		reapWatchdogs(t)
		if ip, cs := v.IP(t), v.RseqCS(t); ip != v.AbortIP && (!v.InSection(ip) || cs != v.CS) {
			t.Fatalf("%s: the task goes on at %#x with rseq_cs %#x; want its abort handler %#x, or inside its section with rseq_cs %#x", spec, ip, cs, v.AbortIP, v.CS)
		}
	}
}

// TestRestoreKillPoints dumps the workload once, then walks every named
// step of the restore with every action: nothing of the tree may be left
// (no process with its pids, no mount, no file in the image directory),
// and a last clean restore must give a workload that passes.
func TestRestoreKillPoints(t *testing.T) {
	needRoot(t)
	for _, vf := range []struct{ workload, flavor string }{{"threads", "h"}, {"threads", "ns"}, {"seccomp_tsync", "h"}} {
		name := vf.flavor
		if vf.workload != "threads" {
			name = vf.workload + "-" + vf.flavor // threads under seccomp filters: stubs restored with seccomp suspended
		}
		t.Run(name, func(t *testing.T) { restoreKillPoints(t, vf.workload, vf.flavor) })
	}
}

func restoreKillPoints(t *testing.T, workload, flavor string) {
	if maps, _ := os.ReadFile("/proc/self/maps"); flavor != "h" && bytes.Contains(maps, []byte("libc.so")) {
		t.Skip("the ns flavor's root holds only the test binary: build it static (CGO_ENABLED=0, as make does)")
	}
	dir := t.TempDir()
	v := startVictimFlavor(t, dir, workload, flavor)
	img := filepath.Join(dir, "img")
	if r := gocr(t, "", "dump", "-t", strconv.Itoa(v.pid), "-D", img); r.code != 0 || r.signal != 0 {
		t.Fatalf("dump: %+v", r)
	}
	reap(v.pid)
	files := listDir(t, img)
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	walked := 0
	for _, step := range fault.RestoreSteps {
		for _, a := range actions {
			spec := fmt.Sprintf("restore:%s:%s", step, a)
			r := gocr(t, spec, "restore", "-D", img, "-d")
			// Test binaries of other packages run beside this one and
			// may take a pid of the tree between dump and restore (pid_max
			// is small here): restore then fails, cleanly, before the step.
			// That failure must leave nothing either; the step is tried
			// again.
			for try := 0; try < 3 && pidTaken(r); try++ {
				if err := nothingLeft(v.tids); err != nil {
					t.Fatalf("%s: restore refused a taken pid and left: %v\ngocr: %s", spec, err, r.out)
				}
				t.Logf("%s: a pid of the tree was taken by another process, trying again: %s", spec, strings.TrimSpace(r.out))
				time.Sleep(200 * time.Millisecond)
				r = gocr(t, spec, "restore", "-D", img, "-d")
			}
			expectFault(t, spec, r)
			if err := nothingLeft(v.tids); err != nil {
				t.Fatalf("%s: %v\ngocr: %s", spec, err, r.out)
			}
			if m, _ := os.ReadFile("/proc/self/mountinfo"); !bytes.Equal(m, mounts) {
				t.Fatalf("%s: the mount table changed:\n%s\nwas\n%s", spec, m, mounts)
			}
			if got := listDir(t, img); !slices.Equal(got, files) {
				t.Fatalf("%s: image directory holds %v, held %v", spec, got, files)
			}
			walked++
		}
	}
	pidfile := filepath.Join(dir, "restored.pid")
	if r := gocr(t, "", "restore", "-D", img, "-d", "--pidfile", pidfile); r.code != 0 || r.signal != 0 {
		t.Fatalf("clean restore after the walk: %+v", r)
	}
	v.finish(t)
	t.Logf("restore kill points walked (%s): %d steps × %d actions = %d, nothing left every time", flavor, len(fault.RestoreSteps), len(actions), walked)
}

func listDir(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// nothingLeft waits until no task has any of the pids (reaping the
// zombies that come to us as subreaper).
func nothingLeft(pids []int) error {
	var busy []int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		busy = busy[:0]
		for _, p := range pids {
			reap0(p)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
				busy = append(busy, p)
			}
		}
		if len(busy) == 0 {
			return nil
		}
	}
	var who []string
	for _, p := range busy {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		who = append(who, fmt.Sprintf("%d (%s, state %s)", p, strings.TrimSpace(string(comm)), statusField(fmt.Sprintf("/proc/%d/status", p), "State")))
	}
	return fmt.Errorf("tasks left behind: %s", strings.Join(who, ", "))
}

// TestDumpStoppedVictim: a process stopped (state T) before the dump is
// still stopped after it — after a dump that fails, one that succeeds with
// --leave-running, and one whose gocr is killed mid-injection.
func TestDumpStoppedVictim(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	v := startVictim(t, dir, "threads")
	if err := unix.Kill(v.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			ok := true
			for _, tid := range v.tids {
				p := fmt.Sprintf("/proc/%d/task/%d/status", v.pid, tid)
				if !strings.HasPrefix(statusField(p, "State"), "T") || statusField(p, "TracerPid") != "0" {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		t.Fatalf("%s: workload pid %d not left stopped", what, v.pid)
	}
	waitState("SIGSTOP")
	for i, spec := range []string{"dump:memory:error", "", "dump:syscalls:kill"} {
		r := gocr(t, spec, "dump", "-t", strconv.Itoa(v.pid), "-D", filepath.Join(dir, fmt.Sprint("img", i)), "--leave-running")
		if spec != "" {
			expectFault(t, spec, r)
		} else if r.code != 0 || r.signal != 0 {
			t.Fatalf("dump --leave-running of a stopped process: %+v", r)
		}
		reapWatchdogs(t)
		waitState(fmt.Sprintf("dump with %q", spec))
	}
	if err := unix.Kill(v.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := v.healthy(); err != nil {
		t.Fatal(err)
	}
	v.finish(t)
}

// TestOneAtATime: a second gocr dumping a process another gocr holds, or
// restoring into pids another restore holds, fails saying what is in the
// way; the first is not disturbed.
func TestOneAtATime(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	v := startVictim(t, dir, "threads")

	// The first dump stops itself while it holds the process.
	first := exec.Command("/proc/self/exe", "dump", "-t", strconv.Itoa(v.pid), "-D", filepath.Join(dir, "a"), "--leave-running")
	first.Env = testEnv(envAsGocr+"=1", fault.Env+"=dump:syscalls:stop")
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, first.Process.Pid)
	r := gocr(t, "", "dump", "-t", strconv.Itoa(v.pid), "-D", filepath.Join(dir, "b"), "--leave-running")
	want := fmt.Sprintf("already traced by pid")
	if r.code != 1 || !strings.Contains(r.out, want) {
		t.Fatalf("second dump: code %d: %s (want %q)", r.code, r.out, want)
	}
	t.Logf("second dump refused: %s", strings.TrimSpace(r.out))
	first.Process.Signal(unix.SIGCONT)
	if err := first.Wait(); err != nil {
		t.Fatalf("first dump, continued: %v: %s", err, firstOut.String())
	}
	if err := v.healthy(); err != nil {
		t.Fatal(err)
	}

	// Restore: dump for real, then hold the pids with a stopped restore.
	img := filepath.Join(dir, "img")
	if r := gocr(t, "", "dump", "-t", strconv.Itoa(v.pid), "-D", img); r.code != 0 {
		t.Fatalf("dump: %+v", r)
	}
	reap(v.pid)
	first = exec.Command("/proc/self/exe", "restore", "-D", img, "-d")
	first.Env = testEnv(envAsGocr+"=1", fault.Env+"=restore:memory:stop")
	firstOut.Reset()
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, first.Process.Pid)
	r = gocr(t, "", "restore", "-D", img, "-d")
	want = fmt.Sprintf("pid %d is held by", v.pid)
	if r.code != 1 || !strings.Contains(r.out, want) || !strings.Contains(r.out, "traced by") {
		t.Fatalf("second restore: code %d: %s (want %q, traced by)", r.code, r.out, want)
	}
	t.Logf("second restore refused: %s", strings.TrimSpace(r.out))
	first.Process.Signal(unix.SIGCONT)
	if err := first.Wait(); err != nil {
		t.Fatalf("first restore, continued: %v: %s", err, firstOut.String())
	}
	v.finish(t)
}

func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if strings.HasPrefix(statusField(fmt.Sprintf("/proc/%d/status", pid), "State"), "T") {
			return
		}
	}
	t.Fatalf("gocr pid %d never stopped", pid)
}

// TestParallelDumps dumps 20 workloads at once with 20 gocr, leaving them
// running: every dump succeeds and every workload passes.
func TestParallelDumps(t *testing.T) {
	needRoot(t)
	const n = 20
	dir := t.TempDir()
	vs := make([]*victim, n)
	for i := range vs {
		vs[i] = startVictim(t, dir, "counter")
	}
	var wg sync.WaitGroup
	res := make([]result, n)
	for i, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = gocr(t, "", "dump", "-t", strconv.Itoa(v.pid), "-D", filepath.Join(dir, fmt.Sprint("img", i)), "--leave-running")
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 || r.signal != 0 {
			t.Errorf("dump %d of pid %d: %+v", i, vs[i].pid, r)
		}
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprint("img", i), "inventory.img")); err != nil {
			t.Errorf("dump %d: %v", i, err)
		}
	}
	for _, v := range vs {
		if err := v.healthy(); err != nil {
			t.Fatal(err)
		}
		v.finish(t)
	}
	t.Logf("%d parallel dumps held", n)
}

// TestPrivileges: a user who may not trace a root process cannot dump it,
// and a gocr without full privileges refuses to restore credentials beyond
// its user's, before creating anything.
func TestPrivileges(t *testing.T) {
	needRoot(t)
	const nobody = 65534
	dir, err := os.MkdirTemp("", "gocr-priv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	exe, _ := os.Executable()
	bin := filepath.Join(dir, "gocr")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) result {
		cmd := exec.Command(bin, args...)
		cmd.Env = testEnv(envAsGocr + "=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		r := result{out: string(out)}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	v := startVictim(t, t.TempDir(), "threads")
	mine := filepath.Join(dir, "nobody")
	os.Mkdir(mine, 0o700)
	os.Chown(mine, nobody, nobody)
	r := asNobody("dump", "-t", strconv.Itoa(v.pid), "-D", filepath.Join(mine, "img"), "--leave-running")
	if r.code != 1 || !strings.Contains(r.out, "may not trace pid") {
		t.Fatalf("nobody dumping root's pid %d: code %d: %s", v.pid, r.code, r.out)
	}
	t.Logf("non-root dump refused: %s", strings.TrimSpace(r.out))
	if err := v.healthy(); err != nil {
		t.Fatal(err)
	}

	img := filepath.Join(dir, "img")
	if r := gocr(t, "", "dump", "-t", strconv.Itoa(v.pid), "-D", img); r.code != 0 {
		t.Fatalf("dump: %+v", r)
	}
	reap(v.pid)
	// Readable by nobody, writable by root alone: the image is root's.
	os.Chmod(img, 0o755)
	for _, n := range listDir(t, img) {
		os.Chmod(filepath.Join(img, n), 0o644)
	}
	r = asNobody("restore", "-D", img, "-d")
	if r.code != 1 || !strings.Contains(r.out, "needs full privileges") || !strings.Contains(r.out, "core-") {
		t.Fatalf("nobody restoring root's image: code %d: %s", r.code, r.out)
	}
	t.Logf("non-root restore of root credentials refused: %s", strings.TrimSpace(r.out))
	if err := nothingLeft(v.tids); err != nil {
		t.Fatal(err)
	}
	// A directory anyone may write to (as zdtm.py makes them) is fine; an
	// image file anyone may write to is refused even for root.
	os.Chmod(img, 0o777)
	os.Chmod(filepath.Join(img, "pstree.img"), 0o666)
	if r := gocr(t, "", "restore", "-D", img, "-d"); r.code != 1 || !strings.Contains(r.out, "pstree.img") || !strings.Contains(r.out, "writable by group or others") {
		t.Fatalf("restore of a world-writable image file: %+v", r)
	}
	os.Chmod(filepath.Join(img, "pstree.img"), 0o644)
	if r := gocr(t, "", "restore", "-D", img, "-d"); r.code != 0 {
		t.Fatalf("restore: %+v", r)
	}
	v.finish(t)
}

// pidTaken reports whether a restore failed because a process outside the
// tree holds one of its pids (clone3 with set_tid says EEXIST).
func pidTaken(r result) bool {
	return r.code != 0 && strings.Contains(r.out, "set_tid") && strings.Contains(r.out, "file exists") && strings.Contains(r.out, " is held by ")
}

// TestDumpKillPointsTCP interrupts dumps with --tcp-established of the
// zdtm workload tcp_established (connections with data in flight both
// ways, a writer blocked on a full window, an IPv6 listener) from the
// step where its connections are in repair mode and under the network
// lock on: whatever ends the dump — an error, SIGTERM, SIGKILL of gocr
// and its watchdog's repair — the connections must leave repair mode, the
// lock's table must be gone, and the workload must pass its own check of
// every byte at the end.
func TestDumpKillPointsTCP(t *testing.T) {
	needRoot(t)
	if ok, detail := netlock.Probe(); !ok {
		t.Skipf("no nftables here: %s", detail)
	}
	dir := t.TempDir()
	v := startVictimFlavor(t, dir, "tcp_established", "h")
	table := netlock.TableName(v.pid)
	walked := 0
	for _, step := range []string{"files", "images", "memory", "resume"} {
		for _, a := range actions {
			spec := fmt.Sprintf("dump:%s:%s", step, a)
			img := filepath.Join(dir, fmt.Sprintf("img-tcp-%s-%s", step, a))
			r := gocr(t, spec, "dump", "-t", strconv.Itoa(v.pid), "-D", img, "--tcp-established")
			expectFault(t, spec, r)
			if err := v.healthy(); err != nil {
				t.Fatalf("%s: workload pid %d harmed: %v\ngocr: %s", spec, v.pid, err, r.out)
			}
			reapWatchdogs(t)
			if has, err := netlock.Has("", table); err != nil || has {
				t.Fatalf("%s: the network lock's table %s is still there (%v)\ngocr: %s", spec, table, err, r.out)
			}
			walked++
		}
	}
	v.finish(t)
	t.Logf("TCP dump kill points walked: %d, the connections intact every time", walked)
}
