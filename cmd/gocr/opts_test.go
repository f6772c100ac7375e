package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// zdtmOptions is every option CRIU 4.2's test/zdtm.py and the .desc files
// of its tests pass to criu, by command, with a value where one is
// needed. Each must be accepted or refused as not supported yet, never
// be an unknown option.
var zdtmOptions = map[string][][]string{
	"dump": {
		{"--no-default-config"}, {"--log-file", "dump.log"}, {"--images-dir", "D"}, {"--verbosity=4"},
		{"--tree", "1"}, {"--pidfile", "/tmp/x.pid"}, {"--root", "/"}, {"--external", "mnt[/dev]:ZDTM_DEV"},
		{"--libdir", "/x"}, {"--freeze-cgroup", "/sys/fs/cgroup/x"}, {"--manage-cgroups"}, {"--manage-cgroups=full"},
		{"--prev-images-dir", "../1"}, {"--track-mem"}, {"--page-server"}, {"--address", "127.0.0.1"},
		{"--port", "12345"}, {"--tls"}, {"--tls-no-cn-verify"}, {"--tls-key", "k"}, {"--tls-cert", "c"},
		{"--tls-cacert", "ca"}, {"--stream"}, {"--auto-dedup"}, {"--timeout", "10"}, {"--leave-stopped"},
		{"--empty-ns", "net"}, {"--pre-dump-mode", "splice"}, {"--pre-dump-mode", "read"}, {"--lazy-pages"},
		{"--leave-running"}, {"--unprivileged"}, {"--action-script", "/x.sh"}, {"--status-fd", "3"},
		{"--tcp-established"}, {"--file-locks"}, {"--network-lock", "nftables"}, {"--network-lock", "iptables"},
		{"--link-remap"}, {"--ghost-limit", "1M"}, {"--cgroup-root", "/x"}, {"--ext-mount-map", "a:b"},
		{"--enable-external-masters"}, {"--skip-in-flight"}, {"--pidfd-store", "3"}, {"--no-ghost-fiemap"},
		{"--lsm-mount-context", "x"}, {"--irmap-scan-path", "/x"}, {"--ghost-fiemap"}, {"--force-irmap"},
		{"--ext-unix-sk"}, {"--enable-fs", "x"}, {"--cgroup-yard", "/x"}, {"--allow-uprobes"}, {"--tcp-close"},
		{"--evasive-devices"}, {"--shell-job"}, {"-j"}, {"--log-pid"}, {"--display-stats"}, {"--join-ns", "net:/x"},
		{"--mntns-compat-mode"}, {"--no-mntns-compat-mode"}, {"-x"}, {"-l"}, {"-s"}, {"-R"},
	},
	"restore": {
		{"--no-default-config"}, {"--log-file", "restore.log"}, {"--images-dir", "D"}, {"--verbosity=4"},
		{"--restore-detached"}, {"-d"}, {"--pidfile", "/tmp/x.pid"}, {"--root", "/"}, {"--external", "mnt[ZDTM_DEV]:/dev"},
		{"--restore-sibling"}, {"--inherit-fd", "fd[3]:pipe:[1]"}, {"--join-ns", "net:/run/netns/zdtm_netns"},
		{"--empty-ns", "net"}, {"--action-script", "/x.sh"}, {"--stream"}, {"--auto-dedup"}, {"--page-server"},
		{"--port", "12345"}, {"--address", "127.0.0.1"}, {"--lazy-pages"}, {"--mntns-compat-mode"},
		{"--no-mntns-compat-mode"}, {"--leave-stopped"}, {"--status-fd", "3"}, {"--unprivileged"},
		{"--tcp-established"}, {"--file-locks"}, {"--manage-cgroups"}, {"--link-remap"}, {"--tcp-close"},
		{"--ext-mount-map", "a:b"}, {"--cgroup-root", "/x"}, {"--lsm-mount-context", "x"}, {"--evasive-devices"},
		{"--shell-job"}, {"-j"}, {"--log-pid"}, {"--display-stats"}, {"--daemon"}, {"--network-lock", "skip"},
	},
	"pre-dump": {{"--tree", "1"}},
	"check": {
		{"--no-default-config"}, {"-verbosity=0"}, {"--feature", "userns"}, {"--unprivileged"}, {"--all"},
		{"--extra"}, {"--experimental"},
	},
	"page-server": {{"--port", "12345"}},
	"lazy-pages":  {{"--page-server"}},
	"dedup":       {{"--images-dir", "D"}},
	"swrk":        {{"3"}},
	"service":     {{"--address", "/x"}},
	"cpuinfo":     {{"dump"}},
	"exec":        {{"-t", "1"}},
}

// Every option zdtm.py uses is either parsed or refused as not supported
// yet, with exit code 1 and the one line criu users would look for.
func TestZdtmOptionsNeverUnknown(t *testing.T) {
	for cmd, list := range zdtmOptions {
		opts, known := map[string][]option{"dump": dumpOpts, "restore": restoreOpts, "check": checkOpts}[cmd]
		for _, args := range list {
			if !known {
				var out, errb bytes.Buffer
				code := run(append([]string{cmd}, args...), &out, &errb)
				if code != 1 || !strings.HasPrefix(errb.String(), "gocr: "+cmd+" is not supported yet (") {
					t.Errorf("%s %v: exit %d, %q", cmd, args, code, errb.String())
				}
				continue
			}
			p, err := parseOpts(cmd, args, opts)
			if err == nil {
				err = checkValues(p)
			}
			if err == nil {
				continue
			}
			if _, ok := err.(*unsupportedError); !ok || !strings.Contains(err.Error(), " is not supported yet (") {
				t.Errorf("%s %v: %v", cmd, args, err)
			}
		}
	}
}

// Options whose behaviour gocr lacks are refused, not accepted and
// ignored; those it has, or that ask for what it does anyway, parse.
func TestOptionVerdicts(t *testing.T) {
	refused := map[string][]string{
		"dump":    {"--track-mem", "--prev-images-dir=../1", "--manage-cgroups", "--manage-cgroups=soft", "--link-remap", "--ghost-fiemap", "--ext-unix-sk", "-x", "--page-server", "--lazy-pages", "--action-script=/x", "--status-fd=3", "--network-lock=iptables", "--leave-stopped", "--auto-dedup"},
		"restore": {"--inherit-fd=fd[1]:x", "--restore-sibling", "-S", "--join-ns=uts:/x", "--lazy-pages", "--mntns-compat-mode"},
		"check":   {"--extra"},
	}
	for cmd, list := range refused {
		for _, a := range list {
			var out, errb bytes.Buffer
			code := run([]string{cmd, a}, &out, &errb)
			name, _, _ := strings.Cut(a, "=")
			if name == "-x" {
				name = "--ext-unix-sk"
			} else if name == "-S" {
				name = "--restore-sibling"
			}
			if name == "--network-lock" {
				name = "--network-lock iptables"
			}
			if name == "--join-ns" && cmd == "restore" {
				name = "--join-ns uts"
			}
			want := "gocr: " + name + " is not supported yet ("
			if code != 1 || !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("%s %s: exit %d, stderr %q, want exit 1 and %q...", cmd, a, code, errb.String(), want)
			}
		}
	}
	accepted := map[string][][]string{
		"dump": {{"-j"}, {"--shell-job"}, {"--pidfile", "/nonexistent/x"}, {"--pre-dump-mode", "splice"}, {"--log-pid"},
			{"--display-stats"}, {"--no-default-config"}, {"--no-ghost-fiemap"}, {"--no-tcp-established"}, {"--network-lock=skip"},
			{"--unprivileged"}, {"-v"}, {"-vvvv"}, {"-v4"}, {"--verbosity=4"}, {"--no-leave-running"}, {"-r", "/"}},
		"restore": {{"--status-fd", "5"}, {"--daemon"}, {"-d"}, {"--no-mntns-compat-mode"}},
		"check":   {{"-verbosity=0", "--feature", "userns"}},
	}
	for cmd, list := range accepted {
		opts := map[string][]option{"dump": dumpOpts, "restore": restoreOpts, "check": checkOpts}[cmd]
		for _, args := range list {
			p, err := parseOpts(cmd, args, opts)
			if err == nil {
				err = checkValues(p)
			}
			if err != nil {
				t.Errorf("%s %v: %v", cmd, args, err)
			}
		}
	}
	// --no-X switches an accepted X off again, as in criu.
	p, err := parseOpts("dump", []string{"--leave-running", "--no-leave-running"}, dumpOpts)
	if err != nil || p.has("leave-running") {
		t.Errorf("--no-leave-running: %v %v", p.vals, err)
	}
	for _, bad := range [][]string{{"--pre-dump-mode", "fast"}, {"--network-lock", "magic"}, {"-vx"}} {
		p, err := parseOpts("dump", bad, dumpOpts)
		if err == nil {
			err = checkValues(p)
		}
		if err == nil {
			t.Errorf("dump %v accepted", bad)
		}
	}
	if _, err := parseOpts("dump", []string{"--no-such-option"}, dumpOpts); err == nil || !strings.Contains(err.Error(), "unknown option --no-such-option") {
		t.Errorf("unknown option: %v", err)
	}
}

func TestVerbosity(t *testing.T) {
	for in, want := range map[string]int{"": 3, "v": 4, "vvvv": 4, "0": 0, "4": 4, "9": 4, "erbosity=0": 0, "erbosity=4": 4} {
		if got, err := verbosity(in); err != nil || got != want {
			t.Errorf("verbosity(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// gocr --version, -V and version print criu's "Version: " line.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}, {"version"}, {"check", "-V"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || out.String() != "Version: "+Version+"\n" {
			t.Errorf("%v: exit %d, %q %q", args, code, out.String(), errb.String())
		}
	}
}

// --status-fd on restore gets one zero byte and is closed; writeStatus is
// what restore calls once the tree runs.
func TestWriteStatus(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, err := dupFd(w)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeStatus(fd); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	n, _ := r.Read(b)
	if n != 1 || b[0] != 0 {
		t.Errorf("read %q", b[:n])
	}
	if n, err := r.Read(b); n != 0 || err == nil {
		t.Errorf("status fd not closed: %d %v", n, err)
	}
}

// --log-pid names the log LOG.PID, as criu does for each of its processes.
func TestLogPid(t *testing.T) {
	dir := t.TempDir()
	p, err := parseOpts("dump", []string{"-D", dir, "-o", "dump.log", "--log-pid"}, dumpOpts)
	if err != nil {
		t.Fatal(err)
	}
	_, path, closeLog, err := openLog(p)
	if err != nil {
		t.Fatal(err)
	}
	closeLog()
	if want := filepath.Join(dir, "dump.log."+itoa(os.Getpid())); path != want {
		t.Errorf("log %s, want %s", path, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func dupFd(f *os.File) (string, error) {
	fd, err := unix.Dup(int(f.Fd()))
	return strconv.Itoa(fd), err
}

// A refused command line leaves its reason in the log -o names (zdtm.py
// reads the log, looking for "Error"), and makes no directory.
func TestRefusalLog(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"dump", "--log-file", "dump.log", "--images-dir", dir, "--verbosity=4", "--tree", "1", "--track-mem"},
		{"pre-dump", "-o", "dump.log", "-D", dir},
		{"restore", "--log-file=dump.log", "-D" + dir, "--inherit-fd", "fd[3]:x"},
	} {
		os.Remove(filepath.Join(dir, "dump.log"))
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 {
			t.Errorf("%v: exit %d", args, code)
		}
		b, err := os.ReadFile(filepath.Join(dir, "dump.log"))
		if err != nil || string(b) != "Error: "+errb.String() {
			t.Errorf("%v: log %q (%v), stderr %q", args, b, err, errb.String())
		}
	}
	missing := filepath.Join(dir, "missing")
	var out, errb bytes.Buffer
	run([]string{"dump", "-o", "dump.log", "-D", missing, "--track-mem"}, &out, &errb)
	if _, err := os.Stat(missing); err == nil {
		t.Error("a refused dump made its images directory")
	}
}
