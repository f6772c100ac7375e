// Package qemu boots a kernel and an initramfs in qemu-system-x86_64 and
// watches it through QMP until the guest powers off, crashes (a panic
// resets it, and -no-reboot turns the reset into an exit), QEMU dies, the
// wall clock runs out or the caller gives up. Every phase has a deadline,
// from the start of the process to its reaping: Run always returns, and
// never leaves a QEMU behind.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Binary is the QEMU system emulator vmtest runs unless Config.Binary
// names another.
const Binary = "qemu-system-x86_64"

// Accel is how QEMU runs the guest's CPUs: the accelerator and the CPU
// model that goes with it.
type Accel struct {
	Name string // kvm or tcg
	CPU  string // -cpu
}

// TCG is software emulation, which works everywhere.
var TCG = Accel{Name: "tcg", CPU: "max"}

// KVMCPUs are the CPU models tried under KVM, best first. QEMU 7.2 aborts
// with "host" on some hosts ("failed to set MSR 0x10a"): the model
// without arch-capabilities may still work there.
var KVMCPUs = []string{"host", "host,-arch-capabilities"}

func (a Accel) String() string { return a.Name + " (-cpu " + a.CPU + ")" }

// Config describes one VM.
type Config struct {
	Kernel  string // vmlinux (PVH) or bzImage
	Initrd  string
	Append  string // kernel command line
	MemMiB  int
	CPUs    int
	Dir     string // for the QMP socket, console.log, qemu.stderr and the results stream
	Timeout time.Duration
	Accel   Accel // zero: TCG
	// Binary is the emulator to run (default Binary); tests put a
	// stand-in here.
	Binary string
	// QMPWait is how long QEMU may take to open its QMP socket (default
	// 10s); a QEMU that never does is killed.
	QMPWait time.Duration
}

// How a VM ended.
const (
	EndPoweroff    = "poweroff"    // the guest powered off: results are complete
	EndCrash       = "guest-reset" // panic=-1 + -no-reboot: the kernel panicked (or triple-faulted)
	EndTimeout     = "timeout"     // the wall clock ran out; QEMU was told to quit, then killed
	EndExit        = "qemu-exited" // QEMU exited by itself, not because the guest asked
	EndNoQMP       = "no-qmp"      // QEMU never answered on its QMP socket; it was killed
	EndInterrupted = "interrupted" // the caller gave up (a signal to vmtest); QEMU was stopped
)

// Outcome of a VM run.
type Outcome struct {
	End      string        // one of the End* values
	Reason   string        // QEMU's SHUTDOWN reason, e.g. guest-shutdown
	Exit     string        // how the QEMU process ended: "status 0", "status 134 (SIGABRT)"
	Phase    string        // when it ended: "before QMP" or "running"
	Accel    Accel         // what it ran with
	Duration time.Duration // from QEMU's start to its exit
	Console  string        // path of the console log
	Results  string        // path of what the guest wrote to the results port
	Stderr   string        // QEMU's own messages
	// Status is the run state QMP reported when the wall clock ran out
	// (running, internal-error, ...); empty otherwise.
	Status string
	// Detail says more about an end that is not a power-off (the QMP
	// error, the signal that interrupted the run).
	Detail string
}

// OpenKVM reports why /dev/kvm cannot be used, or nil.
func OpenKVM() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// Args returns QEMU's command line for c.
func (c Config) Args() []string {
	a := c.Accel
	if a.Name == "" {
		a = TCG
	}
	return []string{
		"-machine", "q35,accel=" + a.Name,
		"-cpu", a.CPU,
		"-m", strconv.Itoa(c.MemMiB),
		"-smp", strconv.Itoa(c.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-no-reboot",
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.Append,
		"-chardev", "file,id=con,path=" + filepath.Join(c.Dir, "console.log"),
		"-serial", "chardev:con",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "file,id=res,path=" + filepath.Join(c.Dir, "results.tar"),
		"-device", "virtserialport,bus=vser.0,chardev=res,name=results",
		"-qmp", "unix:" + filepath.Join(c.Dir, "qmp.sock") + ",server=on,wait=off",
	}
}

// proc is a started QEMU and its reaping.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
	err  error         // cmd.Wait's, valid after done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends QEMU (its whole process group) and waits until it is reaped.
func (p *proc) kill() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.cmd.Process.Kill()
	}
	<-p.done
}

// exitStatus says how the process ended, the way a shell would count it.
func (p *proc) exitStatus() string {
	ps := p.cmd.ProcessState
	if ps == nil {
		return ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("status %d (%s)", 128+int(ws.Signal()), unix.SignalName(ws.Signal()))
	}
	return fmt.Sprintf("status %d", ps.ExitCode())
}

// Run boots the VM and waits for its end. An error means the VM could
// not be started at all; how it ended once started is in the Outcome.
func Run(ctx context.Context, c Config) (*Outcome, error) {
	bin := c.Binary
	if bin == "" {
		bin = Binary
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install qemu-system-x86): %w", bin, err)
	}
	if c.Accel.Name == "" {
		c.Accel = TCG
	}
	if c.QMPWait == 0 {
		c.QMPWait = 10 * time.Second
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("not started: %w", context.Cause(ctx))
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(c.Dir, "qmp.sock")
	for _, f := range []string{"qmp.sock", "console.log", "results.tar"} {
		os.Remove(filepath.Join(c.Dir, f))
	}
	o := &Outcome{Accel: c.Accel, Console: filepath.Join(c.Dir, "console.log"), Results: filepath.Join(c.Dir, "results.tar")}
	stderr, err := os.Create(filepath.Join(c.Dir, "qemu.stderr"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	o.Stderr = stderr.Name()
	cmd := exec.Command(bin, c.Args()...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// A process group of its own: a Ctrl-C on the terminal reaches vmtest,
	// which stops QEMU itself; and QEMU dies with vmtest if vmtest is
	// killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	wall := time.NewTimer(c.Timeout)
	defer wall.Stop()
	finish := func(end string) *Outcome {
		if o.End == "" {
			o.End = end
		}
		o.Duration = time.Since(start)
		o.Exit = p.exitStatus()
		return o
	}

	// Phase 1: QEMU opens its QMP socket, or dies, or never does.
	o.Phase = "before QMP"
	mon, end, detail := connect(ctx, sock, p, wall.C, c.QMPWait)
	if mon == nil {
		o.Detail = detail
		p.kill()
		return finish(end), nil
	}
	defer mon.close()

	// Phase 2: the guest runs until QEMU exits or someone gives up.
	o.Phase = "running"
	select {
	case <-p.done:
	case <-wall.C:
		o.End = EndTimeout
		o.Status, _ = mon.status(2 * time.Second)
		quit(mon, p, 3*time.Second)
	case <-ctx.Done():
		o.End = EndInterrupted
		o.Detail = fmt.Sprint(context.Cause(ctx))
		quit(mon, p, time.Second)
	}
	o.Reason = mon.shutdownReason(time.Second)
	if o.End == "" {
		switch o.Reason {
		case "guest-shutdown":
			o.End = EndPoweroff
		case "guest-reset", "guest-panic":
			o.End = EndCrash
		default:
			o.End = EndExit
		}
	}
	return finish(""), nil
}

// connect waits for QEMU's QMP socket and connects to it. It gives up,
// returning how the VM ended, when QEMU exits, when the socket does not
// answer within wait, when the wall clock runs out or when ctx ends.
func connect(ctx context.Context, sock string, p *proc, wall <-chan time.Time, wait time.Duration) (*monitor, string, string) {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error = errors.New("no QMP socket")
	for {
		select {
		case <-p.done:
			return nil, EndExit, "QEMU exited before its QMP socket was up"
		case <-wall:
			return nil, EndTimeout, fmt.Sprintf("no QMP yet when the wall clock ran out (%v)", last)
		case <-ctx.Done():
			return nil, EndInterrupted, fmt.Sprint(context.Cause(ctx))
		case <-tick.C:
		}
		if _, err := os.Stat(sock); err == nil {
			mon, err := dialQMP(sock, max(time.Until(deadline), 100*time.Millisecond))
			if err == nil {
				return mon, "", ""
			}
			last = err
		}
		if time.Now().After(deadline) {
			if p.exited() {
				return nil, EndExit, "QEMU exited before its QMP socket was up"
			}
			return nil, EndNoQMP, fmt.Sprintf("QEMU gave no QMP within %v: %v", wait, last)
		}
	}
}

// quit asks QEMU to quit through QMP and kills it if it has not exited
// within grace.
func quit(mon *monitor, p *proc, grace time.Duration) {
	go mon.run(`{"execute":"quit"}`, grace)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}
