// Package qemutest is a stand-in for qemu-system-x86_64 in tests of
// vmtest: the test binary runs itself as QEMU (see Main) and misbehaves
// as told, the ways a real QEMU has: exiting at once with KVM's MSR
// error, aborting mid-run, never opening its QMP socket, hanging with
// QMP up and ignoring SIGTERM, or booting a "guest" that sends results
// and powers off.
package qemutest

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gocr/gocr/vmtest/guest"
)

// Env selects the stand-in's behaviour; when it is set, Main runs the
// stand-in instead of the tests.
const Env = "GOCR_FAKE_QEMU"

// PidsEnv names a file each stand-in appends its pid to, so a test can
// check that none is left.
const PidsEnv = "GOCR_FAKE_QEMU_PIDS"

// Behaviours of the stand-in.
const (
	ExitAtOnce = "exit"        // KVM's MSR error on stderr, then SIGABRT, before QMP
	AbortLater = "abort-later" // QMP up, then the same abort a second later
	NoQMP      = "no-qmp"      // never creates the QMP socket; ignores SIGTERM
	Hang       = "hang"        // QMP up, then never answers or exits; ignores SIGTERM
	Poweroff   = "poweroff"    // sends the results of Summary and powers off
	KVMAbort   = "kvm-abort"   // ExitAtOnce under accel=kvm, Poweroff under tcg
	KVMHang    = "kvm-hang"    // Hang under accel=kvm, Poweroff under tcg
)

// ModeFile, beside the kernel file QEMU is given, overrides Env for the
// VMs of that kernel, so one matrix can mix behaviours.
func ModeFile(kernel string) string { return kernel + ".fake-qemu" }

// Summary is the suite's summary line a powered-off stand-in guest reports.
const Summary = "zdtm: 3 passed, 0 failed, 0 skipped (engine none, kernel fake)"

// Main runs the stand-in and exits if Env is set; call it first in
// TestMain.
func Main() {
	mode := os.Getenv(Env)
	if mode == "" {
		return
	}
	args := parseArgs(os.Args[1:])
	if b, err := os.ReadFile(ModeFile(args["kernel"])); err == nil {
		mode = strings.TrimSpace(string(b))
	}
	if f := os.Getenv(PidsEnv); f != "" {
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			fmt.Fprintln(fh, os.Getpid())
			fh.Close()
		}
	}
	kvm := strings.Contains(args["machine"], "accel=kvm")
	switch {
	case mode == KVMAbort && kvm:
		mode = ExitAtOnce
	case mode == KVMHang && kvm:
		mode = Hang
	case mode == KVMAbort || mode == KVMHang:
		mode = Poweroff
	}
	switch mode {
	case ExitAtOnce:
		abort()
	case NoQMP:
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		time.Sleep(time.Hour)
	case AbortLater:
		serveQMP(args["qmp"], false)
		time.Sleep(time.Second)
		abort()
	case Hang:
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		serveQMP(args["qmp"], true)
		time.Sleep(time.Hour)
	case Poweroff:
		events := serveQMP(args["qmp"], false)
		<-handshake // a real guest takes seconds to boot: vmtest is connected by then
		writeResults(args["results"])
		events <- `{"event":"SHUTDOWN","data":{"guest":true,"reason":"guest-shutdown"}}`
		time.Sleep(100 * time.Millisecond)
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "fake qemu: unknown mode %q\n", mode)
	os.Exit(3)
}

// abort dies as QEMU 7.2 does under a KVM it cannot drive.
func abort() {
	fmt.Fprintln(os.Stderr, "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69")
	fmt.Fprintln(os.Stderr, "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.")
	// Go's runtime turns SIGABRT into its own crash (status 2): let a
	// shell, in this very process, die of it instead.
	syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -ABRT $$; sleep 1"}, os.Environ())
	os.Exit(134)
}

// parseArgs picks what the stand-in needs from QEMU's command line.
func parseArgs(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		switch v := args[i+1]; args[i] {
		case "-kernel":
			m["kernel"] = v
		case "-machine":
			m["machine"] = v
		case "-qmp":
			s := strings.TrimPrefix(v, "unix:")
			m["qmp"], _, _ = strings.Cut(s, ",")
		case "-chardev":
			if strings.HasPrefix(v, "file,id=res,path=") {
				m["results"] = strings.TrimPrefix(v, "file,id=res,path=")
			}
		}
	}
	return m
}

// handshake is closed once the client has done qmp_capabilities.
var handshake = make(chan struct{})

// serveQMP listens on the QMP socket and answers one client: the greeting,
// qmp_capabilities, query-status and quit (unless mute: then only the
// handshake). Events written to the returned channel are sent to it.
func serveQMP(path string, mute bool) chan<- string {
	events := make(chan string, 4)
	l, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake qemu: %v\n", err)
		os.Exit(3)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		out := make(chan string, 8)
		go func() {
			for {
				select {
				case s := <-out:
					fmt.Fprintln(c, s)
				case s := <-events:
					fmt.Fprintln(c, s)
				}
			}
		}()
		out <- `{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0}},"capabilities":[]}}`
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var cmd struct {
				Execute string `json:"execute"`
			}
			json.Unmarshal(sc.Bytes(), &cmd)
			switch {
			case cmd.Execute == "qmp_capabilities":
				out <- `{"return":{}}`
				close(handshake)
			case mute:
			case cmd.Execute == "query-status":
				out <- `{"return":{"status":"running","running":true}}`
			case cmd.Execute == "quit":
				out <- `{"return":{}}`
				time.Sleep(10 * time.Millisecond)
				os.Exit(0)
			}
		}
	}()
	return events
}

// writeResults writes what vmtest-init would: a tar stream ending in
// status.json.
func writeResults(path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	st, _ := json.Marshal(guest.Status{Release: "6.1.0-fake-amd64", Summary: Summary, FdinfoMnt: true})
	for _, e := range []struct {
		name string
		b    []byte
	}{{guest.FileLog, []byte(Summary + "\n")}, {guest.FileStatus, st}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.b))})
		tw.Write(e.b)
	}
	tw.Close()
}

// Pids returns the pids the stand-ins wrote to the file of PidsEnv.
func Pids(file string) []int {
	b, _ := os.ReadFile(filepath.Clean(file))
	var pids []int
	for _, l := range strings.Fields(string(b)) {
		var p int
		if _, err := fmt.Sscan(l, &p); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// Alive returns those of pids that still exist (as processes or zombies).
func Alive(pids []int) []int {
	var alive []int
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			alive = append(alive, p)
		}
	}
	return alive
}
