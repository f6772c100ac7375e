// Package lib is the workload side of the zdtm protocol, the same one CRIU's
// zdtm test library speaks, so a harness written for either runs both.
//
// A workload binary is started as
//
//	NAME --pidfile=F --outfile=O [--filename=P] [--dirname=D] [--name=value ...]
//
// The started process (the launcher) re-executes itself as a daemon in a new
// session, with stdin on /dev/null and stdout/stderr on O.inprogress. The
// daemon builds its state and calls T.Ready; only then does the launcher
// write F atomically (temp file + rename) with the daemon's pid and exit 0.
// It exits 1 if the daemon died first. The daemon then waits for SIGTERM,
// verifies its state, writes PASS or "FAIL: why" as its last line, renames
// O.inprogress to O and exits.
package lib

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Environment variables between the launcher and its daemon.
const (
	envDaemon  = "ZDTM_DAEMON"     // set in the daemon: the fd number of the ready pipe
	envFlavor  = "ZDTM_FLAVOR"     // h, ns or uns: which namespaces the daemon sets up
	EnvUID     = "ZDTM_UID"        // ids to switch to unless the workload is suid
	EnvGID     = "ZDTM_GID"        //
	EnvGroups  = "ZDTM_GROUPS"     //
	envNewRoot = "ZDTM_NEWROOT"    // ns flavors: set once the daemon pivoted into its root
	envUIDBase = "ZDTM_UNS_UIDMAP" // uns flavor: host id that maps to 0 inside
)

// Workload is one test program: Run builds the state, calls t.Ready, waits
// with t.WaitSignal and checks what survived.
type Workload struct {
	Name string
	// Suid workloads keep root; the others switch to ZDTM_UID/GID if set.
	Suid bool
	// HostDirs are host directories the workload needs in the ns and
	// uns flavors' root (a real program and its libraries): bound there
	// read-only, or made the same symlink where the host has one.
	HostDirs []string
	Run      func(t *T)
}

// T is what a running workload talks to.
type T struct {
	Name    string
	Opts    map[string]string // every --name=value given on the command line
	Flavor  string
	out     *os.File
	outPath string
	ready   *os.File
	sigterm chan os.Signal
	once    sync.Once
	mu      sync.Mutex
	failed  bool
}

// Opt returns the value of --name=value, or def.
func (t *T) Opt(name, def string) string {
	if v, ok := t.Opts[name]; ok {
		return v
	}
	return def
}

// Logf writes one line to the output file.
func (t *T) Logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, format+"\n", args...)
}

// Ready tells the launcher the state is built: it writes the pidfile and
// exits, and the harness may checkpoint from now on.
func (t *T) Ready() {
	t.once.Do(func() {
		t.ready.Write([]byte{'R'})
		t.ready.Close()
	})
}

// WaitSignal blocks until SIGTERM arrives (test_waitsig in CRIU's library).
func (t *T) WaitSignal() { <-t.sigterm; t.sigterm <- syscall.SIGTERM }

// Stopped reports without blocking whether SIGTERM has arrived.
func (t *T) Stopped() bool {
	select {
	case s := <-t.sigterm:
		t.sigterm <- s
		return true
	default:
		return false
	}
}

// Fail records a failure; the verdict line is written by Pass or at exit.
func (t *T) Fail(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	t.finish("FAIL: "+fmt.Sprintf(format, args...), 1)
}

// Fatal is Fail for errors during setup, before or after Ready.
func (t *T) Fatal(err error) { t.Fail("%v", err) }

// Pass writes the PASS verdict and exits.
func (t *T) Pass() { t.finish("PASS", 0) }

func (t *T) finish(verdict string, code int) {
	t.Logf("%s", verdict)
	t.out.Sync()
	t.out.Close()
	os.Rename(t.outPath+".inprogress", t.outPath)
	os.Exit(code)
}

// SleeperArg makes the workload binary a plain child for workloads that
// need one to start with os/exec: it waits for SIGTERM and exits 7.
const SleeperArg = "--zdtm-sleeper"

func sleeper() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	runtime.GC() // the runtime's threads are all there before the dump looks
	<-c
	os.Exit(7)
}

// Main runs the workload named by os.Args[1] (multi-call binary) or, when
// only one workload is given, that one. It never returns.
func Main(workloads ...Workload) {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == SleeperArg {
		sleeper()
	}
	var w *Workload
	switch {
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		for i := range workloads {
			if workloads[i].Name == args[0] {
				w = &workloads[i]
			}
		}
		if w == nil {
			fmt.Fprintf(os.Stderr, "no workload named %q\n", args[0])
			os.Exit(2)
		}
		args = args[1:]
	case len(workloads) == 1:
		w = &workloads[0]
	default:
		fmt.Fprintf(os.Stderr, "usage: %s WORKLOAD --pidfile=F --outfile=O [--name=value...]\nworkloads:", filepath.Base(os.Args[0]))
		for _, w := range workloads {
			fmt.Fprintf(os.Stderr, " %s", w.Name)
		}
		fmt.Fprintln(os.Stderr)
		os.Exit(2)
	}
	opts, err := ParseOpts(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", w.Name, err)
		os.Exit(2)
	}
	if opts["pidfile"] == "" || opts["outfile"] == "" {
		fmt.Fprintf(os.Stderr, "%s: --pidfile and --outfile are required\n", w.Name)
		os.Exit(2)
	}
	if fd := os.Getenv(envDaemon); fd != "" {
		runDaemon(w, opts, fd)
		return
	}
	os.Exit(launch(opts))
}

// ParseOpts reads --name=value (or --name value) options, as the zdtm
// library's option parser accepts them.
func ParseOpts(args []string) (map[string]string, error) {
	opts := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") || len(a) == 2 {
			return nil, fmt.Errorf("unexpected argument %q: options are --name=value", a)
		}
		name, val, ok := strings.Cut(a[2:], "=")
		if !ok {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("option --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		opts[name] = val
	}
	return opts, nil
}

// runDaemon is the workload process proper.
func runDaemon(w *Workload, opts map[string]string, readyFd string) {
	fd, err := strconv.Atoi(readyFd)
	if err != nil {
		os.Exit(3)
	}
	t := &T{
		Name:    w.Name,
		Opts:    opts,
		Flavor:  os.Getenv(envFlavor),
		out:     os.Stdout,
		outPath: opts["outfile"],
		ready:   os.NewFile(uintptr(fd), "ready"),
		sigterm: make(chan os.Signal, 1),
	}
	os.Unsetenv(envDaemon)
	// The ready pipe must not be inherited by children the workload starts.
	unix.CloseOnExec(fd)
	signal.Notify(t.sigterm, syscall.SIGTERM)
	if t.Flavor == "ns" || t.Flavor == "uns" {
		if err := enterRoot(t, w.HostDirs); err != nil {
			t.Fatal(fmt.Errorf("set up %s flavor: %w", t.Flavor, err))
		}
	}
	if !w.Suid {
		if err := switchIDs(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	w.Run(t)
	if !t.failed {
		t.Fail("workload returned without a verdict")
	}
}

// switchIDs drops to ZDTM_UID/ZDTM_GID/ZDTM_GROUPS when they are set.
func switchIDs() error {
	uid, gid := os.Getenv(EnvUID), os.Getenv(EnvGID)
	if uid == "" && gid == "" {
		return nil
	}
	var groups []int
	for _, g := range strings.FieldsFunc(os.Getenv(EnvGroups), func(r rune) bool { return r == ' ' || r == ',' }) {
		n, err := strconv.Atoi(g)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", EnvGroups, os.Getenv(EnvGroups), err)
		}
		groups = append(groups, n)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if gid != "" {
		n, err := strconv.Atoi(gid)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", EnvGID, gid, err)
		}
		if err := syscall.Setresgid(n, n, n); err != nil {
			return fmt.Errorf("setresgid %d: %w", n, err)
		}
	}
	if uid != "" {
		n, err := strconv.Atoi(uid)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", EnvUID, uid, err)
		}
		if err := syscall.Setresuid(n, n, n); err != nil {
			return fmt.Errorf("setresuid %d: %w", n, err)
		}
	}
	// Changing ids clears the dumpable flag; the workload's own checks read
	// /proc/self files that need it, as CRIU's library restores it too.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set dumpable: %w", err)
	}
	return nil
}
