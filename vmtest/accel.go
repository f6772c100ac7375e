package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocr/gocr/vmtest/guest"
	"github.com/gocr/gocr/vmtest/kernel"
	"github.com/gocr/gocr/vmtest/qemu"
)

// AccelProbe says how to decide between KVM and TCG.
type AccelProbe struct {
	Mode   string         // auto, on or off (vmtest's -kvm)
	Kernel *kernel.Kernel // booted by the probe
	Init   string         // vmtest-init, the probe guest's only program
	Dir    string         // for the probe VMs' files
	QEMU   string         // the emulator (default qemu.Binary)
	// Timeout is how long a probe guest may take to say hello (default
	// 30s; a KVM guest needs one or two).
	Timeout time.Duration
	// Device is the KVM device (default /dev/kvm); tests point it
	// elsewhere.
	Device string
	Log    func(format string, args ...any)
}

// ChooseAccel decides how the guests run. KVM is used only once a guest
// has been seen to run under it: a probe VM boots the kernel to /init,
// which answers on the results port and powers off. Each CPU model of
// qemu.KVMCPUs is tried in turn. With -kvm auto a KVM that fails the
// probe means TCG, with the reason; with -kvm on it is an error naming
// QEMU's own message. The string says which accelerator and why.
func ChooseAccel(ctx context.Context, p AccelProbe) (qemu.Accel, string, error) {
	if p.Device == "" {
		p.Device = "/dev/kvm"
	}
	if p.Timeout == 0 {
		p.Timeout = 30 * time.Second
	}
	switch p.Mode {
	case "off":
		return qemu.TCG, "TCG: -kvm off", nil
	case "on", "auto":
	default:
		return qemu.Accel{}, "", fmt.Errorf("-kvm %q: want auto, on or off", p.Mode)
	}
	if err := openDevice(p.Device); err != nil {
		if p.Mode == "on" {
			return qemu.Accel{}, "", fmt.Errorf("-kvm on: %w", err)
		}
		return qemu.TCG, fmt.Sprintf("TCG: no KVM (%v)", err), nil
	}
	var why []string
	for _, cpu := range qemu.KVMCPUs {
		a := qemu.Accel{Name: "kvm", CPU: cpu}
		t := time.Now()
		err := probe(ctx, p, a)
		if err == nil {
			return a, fmt.Sprintf("KVM with -cpu %s: a probe guest (kernel %s) reached /init and answered in %v", cpu, p.Kernel.Line, time.Since(t).Round(100*time.Millisecond)), nil
		}
		if ctx.Err() != nil {
			return qemu.Accel{}, "", err
		}
		why = append(why, fmt.Sprintf("-cpu %s: %v", cpu, err))
		if p.Log != nil {
			p.Log("KVM probe with -cpu %s failed: %v", cpu, err)
		}
	}
	if p.Mode == "on" {
		return qemu.Accel{}, "", fmt.Errorf("-kvm on: KVM does not work here: %s", strings.Join(why, "; "))
	}
	return qemu.TCG, "TCG: KVM does not work here (" + strings.Join(why, "; ") + ")", nil
}

func openDevice(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// probe boots the kernel with only /init under a, and returns why the
// guest did not answer.
func probe(ctx context.Context, p AccelProbe, a qemu.Accel) error {
	k := p.Kernel
	dir := filepath.Join(p.Dir, "kvm-probe-"+strings.NewReplacer(",", "", "-", "").Replace(a.CPU))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mods, err := k.ResolveModules(GuestModules)
	if err != nil {
		return err
	}
	cfg := guest.Config{Kernel: k.Line, Probe: true}
	for _, m := range mods {
		cfg.Modules = append(cfg.Modules, filepath.Base(m))
	}
	cb, _ := jsonConfig(cfg)
	initrd := filepath.Join(dir, "initramfs.cpio")
	pl := &Payload{Files: []File{{Dest: "/init", Src: p.Init, Mode: 0o755}}}
	if _, err := WriteInitramfs(initrd, pl, mods, cb); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer os.Remove(initrd)
	out, err := qemu.Run(ctx, qemu.Config{Kernel: k.Image, Initrd: initrd, Append: kernelCmdline(""), MemMiB: 256,
		CPUs: 1, Dir: dir, Timeout: p.Timeout, Accel: a, Binary: p.QEMU})
	if err != nil {
		return err
	}
	switch out.End {
	case qemu.EndPoweroff:
		st, err := unpackResults(out.Results, dir)
		if err != nil {
			return fmt.Errorf("the probe guest powered off without answering: %v", err)
		}
		if st.Release == "" || st.Error != "" {
			return fmt.Errorf("the probe guest could not start: %s", st.Error)
		}
		return nil
	case qemu.EndExit, qemu.EndNoQMP:
		return fmt.Errorf("QEMU %s (%s): %s", out.End, out.Exit, oneLine(tailFile(out.Stderr, 3)))
	case qemu.EndTimeout:
		return fmt.Errorf("the guest did not answer within %v (console: %s)", p.Timeout, oneLine(tailFile(out.Console, 2)))
	case qemu.EndInterrupted:
		return fmt.Errorf("interrupted: %s", out.Detail)
	default:
		return fmt.Errorf("the probe guest ended with %s (%s): %s", out.End, out.Reason, oneLine(tailFile(out.Console, 3)))
	}
}

// oneLine joins the lines of s with "; ".
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return "(nothing)"
	}
	return strings.Join(parts, "; ")
}
