// Package qemu boots a kernel and an initramfs in qemu-system-x86_64 and
// watches it through QMP (github.com/digitalocean/go-qemu/qmp) until the
// guest powers off, crashes (a panic resets it, and -no-reboot turns the
// reset into an exit) or runs out of time.
package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Binary is the QEMU system emulator vmtest runs.
const Binary = "qemu-system-x86_64"

// Config describes one VM.
type Config struct {
	Kernel  string // vmlinux (PVH) or bzImage
	Initrd  string
	Append  string // kernel command line
	MemMiB  int
	CPUs    int
	Dir     string // for the QMP socket, console.log and the results stream
	Timeout time.Duration
	// KVM: "auto" (when /dev/kvm opens), "on" or "off".
	KVM string
}

// How a VM ended.
const (
	EndPoweroff = "poweroff"    // the guest powered off: results are complete
	EndCrash    = "guest-reset" // panic=-1 + -no-reboot: the kernel panicked (or triple-faulted)
	EndTimeout  = "timeout"     // the wall clock ran out; QEMU was told to quit
	EndExit     = "qemu-exit"   // QEMU exited by itself for another reason
)

// Outcome of a VM run.
type Outcome struct {
	End      string        // one of the End* values
	Reason   string        // QEMU's SHUTDOWN reason, e.g. guest-shutdown
	Accel    string        // kvm or tcg
	Duration time.Duration // from QEMU's start to its exit
	Console  string        // path of the console log
	Results  string        // path of what the guest wrote to the results port
	Stderr   string        // QEMU's own messages
	// Status is the run state QMP reported when the wall clock ran out
	// (running, internal-error, ...); empty otherwise.
	Status string
}

// KVMAvailable reports whether /dev/kvm can be opened.
func KVMAvailable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Args returns QEMU's command line for c.
func (c Config) Args(accel string) []string {
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	return []string{
		"-machine", "q35,accel=" + accel,
		"-cpu", cpu,
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

// Run boots the VM and waits for its end. An error means the VM could
// not be run at all; how the guest ended is in the Outcome.
func Run(ctx context.Context, c Config) (*Outcome, error) {
	if _, err := exec.LookPath(Binary); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install qemu-system-x86): %w", Binary, err)
	}
	accel := "tcg"
	if c.KVM == "on" || (c.KVM != "off" && KVMAvailable()) {
		accel = "kvm"
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(c.Dir, "qmp.sock")
	for _, f := range []string{sock, "console.log", "results.tar"} {
		os.Remove(filepath.Join(c.Dir, filepath.Base(f)))
	}
	o := &Outcome{Accel: accel, Console: filepath.Join(c.Dir, "console.log"), Results: filepath.Join(c.Dir, "results.tar")}
	stderr, err := os.Create(filepath.Join(c.Dir, "qemu.stderr"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	o.Stderr = stderr.Name()
	cmd := exec.Command(Binary, c.Args(accel)...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var mu sync.Mutex
	reason := ""
	mon, err := connect(sock, exited)
	if err != nil {
		cmd.Process.Kill()
		<-exited
		b, _ := os.ReadFile(stderr.Name())
		return nil, fmt.Errorf("QMP: %w\n%s", err, strings.TrimSpace(string(b)))
	}
	defer mon.Disconnect()
	// go-qemu's event channel is unbuffered and shared with command
	// replies: drain it all the time, or replies stall.
	events, _ := mon.Events(context.Background())
	go func() {
		for e := range events {
			if e.Event == "SHUTDOWN" {
				mu.Lock()
				reason, _ = e.Data["reason"].(string)
				mu.Unlock()
			}
		}
	}()

	timer := time.NewTimer(c.Timeout)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		o.End = EndTimeout
		o.Status, _ = Status(mon)
		quit(mon, cmd, exited)
	case <-ctx.Done():
		o.End = EndTimeout
		o.Status, _ = Status(mon)
		quit(mon, cmd, exited)
	}
	o.Duration = time.Since(start)
	mu.Lock()
	o.Reason = reason
	mu.Unlock()
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
	return o, nil
}

func connect(sock string, exited <-chan error) (*qmp.SocketMonitor, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("QEMU exited before QMP was up: %v", err)
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			mon, err := qmp.NewSocketMonitor("unix", sock, 2*time.Second)
			if err == nil {
				if err = mon.Connect(); err == nil {
					return mon, nil
				}
			}
			if time.Now().After(deadline) {
				return nil, err
			}
		} else if time.Now().After(deadline) {
			return nil, errors.New("no QMP socket after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quit asks QEMU to quit through QMP, and kills it if it does not.
func quit(mon *qmp.SocketMonitor, cmd *exec.Cmd, exited <-chan error) {
	done := make(chan struct{})
	go func() {
		mon.Run([]byte(`{"execute":"quit"}`))
		close(done)
	}()
	select {
	case <-exited:
		return
	case <-time.After(5 * time.Second):
	}
	cmd.Process.Kill()
	<-exited
}

// Status asks QEMU for the VM's run state (running, shutdown, ...).
func Status(mon *qmp.SocketMonitor) (string, error) {
	out, err := mon.Run([]byte(`{"execute":"query-status"}`))
	if err != nil {
		return "", err
	}
	var r struct {
		Return struct {
			Status string `json:"status"`
		} `json:"return"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return "", fmt.Errorf("query-status: %w", err)
	}
	return r.Return.Status, nil
}
