package vmtest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocr/gocr/vmtest/guest"
	"github.com/gocr/gocr/vmtest/kernel"
	"github.com/gocr/gocr/vmtest/qemu"
)

// GuestModules are the modules every guest needs unless they are built
// in: the virtio-serial port the results come out through.
var GuestModules = []string{"virtio_console", "virtio_pci"}

// OptionalGuestModules are loaded when the kernel ships them: features the
// engine uses that Debian builds as modules on some kernels (unix_diag,
// udp_diag and nf_tables, for the network lock, on 5.10 and 6.1), and the
// guest has no modprobe to load them on demand. A kernel without one runs
// the suite with the workloads that need it skipped, the feature named.
var OptionalGuestModules = []string{"unix_diag", "inet_diag", "udp_diag", "nf_tables"}

// Options of a run.
type Options struct {
	Engine  string // ZDTM_ENGINE in the guest
	Tests   string // ZDTM_TESTS
	Flavors string // ZDTM_FLAVORS
	Modes   string // ZDTM_MODES
	Out     string // results: Out/KERNEL/...
	MemMiB  int
	CPUs    int
	Jobs    int           // VMs at once
	Timeout time.Duration // wall clock per VM
	Accel   qemu.Accel    // from ChooseAccel; zero: TCG
	QEMU    string        // the emulator (default qemu.Binary)
	Inject  string        // panic or hang: prove that the host notices
	Append  string        // extra kernel command line
	Log     func(format string, args ...any)
	// Console, when set, gets the guests' console lines as they come,
	// each prefixed with its kernel.
	Console io.Writer
}

// Result of one kernel.
type Result struct {
	Line    string
	Kernel  *kernel.Kernel
	Release string // uname -r in the guest
	Passed  int
	Failed  int
	Skipped int
	Wall    time.Duration // the VM, boot to power-off
	Suite   time.Duration // the suite inside
	End     string        // how the VM ended (qemu.End*), or "error"
	Exit    string        // how QEMU ended, when it exited by itself: "status 134 (SIGABRT)"
	Accel   string
	Note    string // why it failed, when it did
	// Detail is what a failure left to read: the tail of qemu.stderr and
	// of the console.
	Detail string
	Dir    string
	Fdinfo bool // mnt_id in fdinfo
}

// OK reports whether the kernel's run passed.
func (r *Result) OK() bool { return r.End == qemu.EndPoweroff && r.Failed == 0 }

// Verdict is the result column of the matrix: ok, or FAIL with how the
// VM ended.
func (r *Result) Verdict() string {
	switch {
	case r.OK():
		return "ok"
	case r.End == qemu.EndExit && r.Exit != "":
		return "FAIL (" + r.End + ": " + r.Exit + ")"
	}
	return "FAIL (" + r.End + ")"
}

var summaryRE = regexp.MustCompile(`zdtm: (\d+) passed, (\d+) failed, (\d+) skipped`)

// RunKernel boots one kernel with the payload and collects its results.
func RunKernel(ctx context.Context, k *kernel.Kernel, p *Payload, o Options) *Result {
	r := &Result{Line: k.Line, Kernel: k, Dir: filepath.Join(o.Out, k.Line)}
	if err := runKernel(ctx, k, p, o, r); err != nil {
		r.End = "error"
		r.Note = err.Error()
		r.Failed++
		writeFailureJUnit(r, "vmtest could not run the suite", err.Error())
	}
	return r
}

func runKernel(ctx context.Context, k *kernel.Kernel, p *Payload, o Options, r *Result) error {
	if ctx.Err() != nil {
		r.End, r.Failed = qemu.EndInterrupted, 1
		r.Note = fmt.Sprintf("not started: %v", context.Cause(ctx))
		return nil
	}
	os.RemoveAll(r.Dir)
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	mods, err := k.ResolveModules(GuestModules)
	if err != nil {
		return err
	}
	cfg := guest.Config{Kernel: k.Line, Inject: o.Inject, InjectAfter: 10}
	for _, m := range mods {
		cfg.Modules = append(cfg.Modules, filepath.Base(m))
	}
	for _, m := range OptionalGuestModules {
		files, err := k.ResolveModules([]string{m})
		if err != nil {
			continue // neither built in nor shipped
		}
		for _, f := range files {
			if b := filepath.Base(f); !slices.Contains(cfg.Modules, b) && !slices.Contains(cfg.Optional, b) {
				mods = append(mods, f)
				cfg.Optional = append(cfg.Optional, b)
			}
		}
	}
	cfg.Env = []string{"ZDTM_ENGINE=" + o.Engine, "ZDTM_TESTS=" + o.Tests, "ZDTM_FLAVORS=" + o.Flavors, "ZDTM_MODES=" + o.Modes}
	// The suite must end before the wall clock does, so a hang inside it
	// is reported by the suite rather than as a lost VM.
	guestTimeout := o.Timeout - o.Timeout/10 - 30*time.Second
	cfg.Args = []string{"-test.v", "-test.timeout=" + guestTimeout.Round(time.Second).String(), "-ginkgo.v", "-ginkgo.no-color"}
	cb, _ := jsonConfig(cfg)
	initrd := filepath.Join(r.Dir, "initramfs.cpio")
	size, err := WriteInitramfs(initrd, p, mods, cb)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	o.Log("kernel %s: booting %s (%s), initramfs %d MiB, modules [%s]", k.Line, k.ABI, filepath.Base(k.Image), size>>20, strings.Join(cfg.Modules, " "))
	appendLine := kernelCmdline(o.Append)
	stopTail := make(chan struct{})
	var tailDone sync.WaitGroup
	if o.Console != nil {
		tailDone.Add(1)
		go func() {
			defer tailDone.Done()
			follow(filepath.Join(r.Dir, "console.log"), "["+k.Line+"] ", o.Console, stopTail)
		}()
	}
	out, err := qemu.Run(ctx, qemu.Config{Kernel: k.Image, Initrd: initrd, Append: appendLine, MemMiB: o.MemMiB,
		CPUs: o.CPUs, Dir: r.Dir, Timeout: o.Timeout, Accel: o.Accel, Binary: o.QEMU})
	close(stopTail)
	tailDone.Wait()
	os.Remove(initrd) // tens of MiB, rebuilt every run
	if err != nil {
		return err
	}
	r.Wall, r.End, r.Accel = out.Duration, out.End, out.Accel.Name
	st, err := unpackResults(out.Results, r.Dir)
	if st != nil {
		r.Release, r.Fdinfo, r.Suite = st.Release, st.FdinfoMnt, time.Duration(st.Seconds*float64(time.Second))
		if m := summaryRE.FindStringSubmatch(st.Summary); m != nil {
			r.Passed, _ = strconv.Atoi(m[1])
			r.Failed, _ = strconv.Atoi(m[2])
			r.Skipped, _ = strconv.Atoi(m[3])
		}
	}
	console := filepath.Join(r.Dir, "console.log")
	tails := "qemu.stderr:\n" + tailFile(out.Stderr, 20) + "\nconsole:\n" + tailFile(console, 40)
	switch {
	case out.End == qemu.EndCrash:
		r.Passed, r.Failed = consoleCounts(console)
		r.Failed++
		r.Note = fmt.Sprintf("the guest kernel crashed (%s)%s", out.Reason, during(console))
		writeFailureJUnit(r, r.Note, tailFile(console, 40))
	case out.End == qemu.EndTimeout && st == nil:
		r.Passed, r.Failed = consoleCounts(console)
		r.Failed++
		r.Note = fmt.Sprintf("no power-off within %v (%s, QMP status %q)%s", o.Timeout, out.Phase, out.Status, during(console))
		r.Detail = tails
		writeFailureJUnit(r, r.Note, tails)
	case out.End == qemu.EndTimeout:
		// The results came, but the guest never powered off.
		r.Failed++
		r.Note = fmt.Sprintf("the guest sent its results but did not power off within %v (QMP status %q)", o.Timeout, out.Status)
		writeFailureJUnit(r, r.Note, tailFile(console, 40))
	case out.End == qemu.EndInterrupted:
		r.Passed, r.Failed = consoleCounts(console)
		r.Failed++
		r.Note = fmt.Sprintf("interrupted (%s)%s: QEMU stopped", out.Detail, during(console))
		writeFailureJUnit(r, r.Note, tails)
	case out.End == qemu.EndNoQMP:
		r.Failed++
		r.Note = fmt.Sprintf("QEMU was killed: %s; %s", out.Detail, oneLine(tailFile(out.Stderr, 3)))
		r.Detail = tails
		writeFailureJUnit(r, r.Note, tails)
	case out.End != qemu.EndPoweroff:
		r.Passed, r.Failed = consoleCounts(console)
		r.Failed++
		r.Exit = out.Exit
		r.Note = fmt.Sprintf("QEMU exited by itself (%s, %s, shutdown reason %q)%s: %s", out.Exit, out.Phase, out.Reason,
			during(console), oneLine(tailFile(out.Stderr, 3)))
		r.Detail = tails
		writeFailureJUnit(r, r.Note, tails)
	case st == nil:
		r.Failed++
		r.Note = fmt.Sprintf("the guest sent no results: %v", err)
		writeFailureJUnit(r, r.Note, tailFile(console, 40))
	case st.Error != "":
		r.Failed++
		r.Note = st.Error
		writeFailureJUnit(r, "the suite could not run: "+st.Error, tailFile(filepath.Join(r.Dir, guest.FileLog), 40))
	case st.Summary == "" || (st.ExitCode != 0 && r.Failed == 0):
		r.Failed++
		r.Note = fmt.Sprintf("the suite exited %d without a failing spec", st.ExitCode)
		writeFailureJUnit(r, r.Note, tailFile(filepath.Join(r.Dir, guest.FileLog), 40))
	default:
		labelJUnit(filepath.Join(r.Dir, guest.FileJUnit), k)
		if r.Failed > 0 {
			r.Note = "see " + filepath.Join(r.Dir, guest.FileLog)
			if _, err := os.Stat(filepath.Join(r.Dir, guest.FileFailures)); err == nil {
				r.Note += " and " + filepath.Join(r.Dir, guest.FileFailures)
			}
		}
	}
	if !r.Fdinfo && st != nil {
		r.Note = strings.TrimSpace(r.Note + " (fdinfo has no mnt_id)")
	}
	return nil
}

// kernelCmdline is the guests' kernel command line, with extra appended.
func kernelCmdline(extra string) string {
	l := "console=ttyS0 panic=-1 oops=panic quiet loglevel=4 mitigations=off random.trust_cpu=on rdinit=/init"
	if extra != "" {
		l += " " + extra
	}
	return l
}

func jsonConfig(cfg guest.Config) ([]byte, error) { return json.MarshalIndent(cfg, "", "  ") }

// unpackResults unpacks the guest's results stream into dir; it returns
// the guest's status when the stream is complete.
func unpackResults(stream, dir string) (*guest.Status, error) {
	f, err := os.Open(stream)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var st *guest.Status
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("results stream cut short: %w", err)
		}
		name := filepath.Base(h.Name)
		b, err := io.ReadAll(tr)
		if err != nil {
			return st, fmt.Errorf("results stream cut short in %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return st, err
		}
		if name == guest.FileStatus {
			st = &guest.Status{}
			if err := json.Unmarshal(b, st); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if st == nil {
		return nil, fmt.Errorf("results stream has no %s", guest.FileStatus)
	}
	os.Remove(stream)
	return st, nil
}

var specRE = regexp.MustCompile(`^zdtm (\S+) (\S+/\S+)$`)

// during names the last spec the console shows started, if any.
func during(console string) string {
	f, err := os.Open(console)
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := specRE.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			last = m[1] + " " + m[2]
		}
	}
	if last == "" {
		return ""
	}
	return " during " + last
}

// consoleCounts counts the specs the console shows as passed and failed,
// for a guest that died before sending its results.
func consoleCounts(console string) (passed, failed int) {
	b, err := os.ReadFile(console)
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "• [FAILED]"), strings.HasPrefix(l, "• [PANICKED]"), strings.HasPrefix(l, "• [TIMEDOUT]"):
			failed++
		case strings.HasPrefix(l, "• ["):
			passed++
		}
	}
	return passed, failed
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// follow copies complete lines appended to path to w, prefixed, until
// stop is closed (then it copies what is left).
func follow(path, prefix string, w io.Writer, stop <-chan struct{}) {
	var off int64
	var partial []byte
	flush := func() {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		f.Seek(off, io.SeekStart)
		b, _ := io.ReadAll(f)
		off += int64(len(b))
		partial = append(partial, b...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			fmt.Fprintf(w, "%s%s\n", prefix, bytes.TrimRight(partial[:i], "\r"))
			partial = partial[i+1:]
		}
	}
	for {
		select {
		case <-stop:
			flush()
			if len(partial) > 0 {
				fmt.Fprintf(w, "%s%s\n", prefix, partial)
			}
			return
		case <-time.After(200 * time.Millisecond):
			flush()
		}
	}
}

// labelJUnit names the kernel in the suite's JUnit report, so reports of
// several kernels can be told apart once merged.
func labelJUnit(path string, k *kernel.Kernel) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	b = bytes.Replace(b, []byte(`<testsuite name="zdtm"`), []byte(`<testsuite name="zdtm on `+k.Line+` (`+k.ABI+`)"`), 1)
	os.WriteFile(path, b, 0o644)
}

// writeFailureJUnit writes a JUnit report with one failing test case for
// a kernel whose guest did not finish the suite.
func writeFailureJUnit(r *Result, msg, detail string) {
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string  `xml:"name,attr"`
		Classname string  `xml:"classname,attr"`
		Time      float64 `xml:"time,attr"`
		Failure   failure `xml:"failure"`
	}
	type testsuite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	type testsuites struct {
		XMLName xml.Name    `xml:"testsuites"`
		Suites  []testsuite `xml:"testsuite"`
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return
	}
	ts := testsuites{Suites: []testsuite{{Name: "zdtm on " + r.Line, Tests: 1, Failures: 1, Cases: []testcase{{
		Name: "vmtest " + r.Line, Classname: "vmtest", Time: r.Wall.Seconds(),
		Failure: failure{Message: msg, Type: r.End, Text: detail},
	}}}}}
	b, _ := xml.MarshalIndent(ts, "", "  ")
	os.WriteFile(filepath.Join(r.Dir, guest.FileJUnit), append([]byte(xml.Header), b...), 0o644)
	os.WriteFile(filepath.Join(r.Dir, "failure.txt"), []byte(msg+"\n\n"+detail+"\n"), 0o644)
}
