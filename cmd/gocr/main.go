// Command gocr checkpoints and restores live Linux process trees. Its
// options are spelled as criu's, so scripts written for criu drive it:
//
//	gocr dump -t PID -D DIR [--leave-running] [--shell-job] [-o LOG] [-v4]
//	gocr restore -D DIR [-d] [--pidfile F] [--status-fd FD] [--shell-job] [-o LOG] [-v4]
//	gocr check [--all] [--feature NAME]
//	gocr show DIR
//	gocr version
//
// criu's options whose behaviour gocr lacks are refused by name (opts.go),
// never accepted and ignored. The command only parses flags and calls the
// engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gocr/gocr/engine"
	"github.com/gocr/gocr/engine/fault"
	"github.com/gocr/gocr/engine/mount"
)

// reexecEnv marks a gocr restore that re-executed itself once to give
// back pids its own threads held.
const reexecEnv = "GOCR_RESTORE_REEXEC"

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// common options every command takes, as criu does.
var commonOpts = []option{
	{"o", "log-file", true, "log file; relative to the images directory like criu's", false},
	{"v", "verbosity", true, "log level 0-4 (-v, -v4, -vvvv, --verbosity=4)", true},
	{"", "log-pid", false, "name the log file LOG.PID, PID being gocr's (criu's log per process; gocr logs from one)", false},
	{"", "no-default-config", false, "accepted: gocr reads no configuration file", false},
	{"", "unprivileged", false, "accepted: gocr never needs to be told it runs without full privileges", false},
	{"D", "images-dir", true, "directory of image files", false},
	{"W", "work-dir", true, "directory for logs (default: the images directory)", false},
	{"j", "shell-job", false, "the tree was started from a shell: keep its controlling terminal", false},
	{"r", "root", true, "root of the tree: a directory of the host that is the root of its mount namespace", false},
	{"", "external", true, "external resource: dump mnt[PATH]:KEY, restore mnt[KEY]:HOSTPATH (repeatable)", false},
	{"", "network-lock", true, "nftables (the default): drop the packets of the tree's TCP connections from their dump to their restore; skip: leave the network alone", false},
	{"", "display-stats", false, "print the dump's or restore's statistics at the end, as criu does", false},
}

var dumpOpts = append([]option{
	{"t", "tree", true, "pid of the tree's root", false},
	{"R", "leave-running", false, "let the tree run on after the dump", false},
	{"", "timeout", true, "seconds to wait for the tree to stop (default 10)", false},
	{"", "ghost-limit", true, "most data a deleted file in use may hold to be saved (bytes; K/M/G suffix; default 1M)", false},
	{"", "pidfile", true, "accepted: as criu's dump, which writes no pidfile (only restore does)", false},
	{"", "pre-dump-mode", true, "splice or read: how a pre-dump reads memory; a dump is not a pre-dump, so no effect, as in criu", false},
	{"l", "file-locks", false, "save the file locks the tree holds (without it a tree holding one is refused)", false},
	{"", "tcp-established", false, "checkpoint established TCP connections, in TCP repair mode (without it a tree holding one is refused)", false},
	{"", "tcp-close", false, "dump established TCP connections without their state, to be restored closed", false},
	{"", "skip-in-flight", false, "leave out TCP connections waiting in a listener's accept queue instead of refusing the dump", false},
}, commonOpts...)

var restoreOpts = append([]option{
	{"d", "restore-detached", false, "exit once the tree runs; do not wait for it", false},
	{"", "daemon", false, "the same as --restore-detached, as in criu", false},
	{"", "pidfile", true, "write the pid of the restored root here", false},
	{"", "status-fd", true, "write one zero byte to this fd and close it once the tree runs", false},
	{"l", "file-locks", false, "take again the file locks the images hold (needed when they hold any)", false},
	{"", "tcp-established", false, "accepted, as criu's: the images say which connections to rebuild", false},
	{"", "tcp-close", false, "restore established TCP connections closed (shut down both ways)", false},
	{"", "skip-in-flight", false, "accepted, as criu's: a dump option (the images hold no connection not accepted yet)", false},
	{"", "ghost-limit", true, "accepted, as criu's: a dump option (the images hold the deleted files saved)", false},
	{"J", "join-ns", true, "net:PATH or net:PID: restore into that existing network namespace instead of a new one, as criu's (other kinds are not supported yet)", false},
}, commonOpts...)

var checkOpts = append([]option{
	{"", "all", false, "also list features gocr can live without", false},
	{"", "feature", true, "check one feature (gocr's or criu's name); exit 0 only if gocr can use it here", false},
}, commonOpts...)

// unsupportedCmds are criu's commands gocr does not have yet.
var unsupportedCmds = map[string]string{
	"pre-dump":    "dump memory ahead of the dump, for an incremental one",
	"page-server": "receive pages from a dump over the network",
	"lazy-pages":  "serve memory to a restored tree on demand",
	"dedup":       "free the pages of parent images a new dump supersedes",
	"service":     "criu's RPC service",
	"swrk":        "criu's RPC service",
	"cpuinfo":     "record and check the CPU's capabilities",
	"exec":        "run a system call in a task",
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: gocr dump|restore|check|show|version [options]; gocr CMD --help")
		return 2
	}
	if engine.IsStub(args) {
		return engine.RunStub(args)
	}
	if engine.IsWatchdog(args) {
		return engine.RunWatchdog(args)
	}
	if mount.IsFsmountHelper(args) {
		return mount.RunFsmountHelper(args)
	}
	if mount.IsDigoutHelper(args) {
		return mount.RunDigoutHelper(args)
	}
	cmd, args := args[0], args[1:]
	if cmd == "-V" || cmd == "--version" {
		cmd = "version"
	}
	if what, ok := unsupportedCmds[cmd]; ok {
		msg := fmt.Sprintf("gocr: %s is not supported yet (%s)", cmd, what)
		fmt.Fprintln(stderr, msg)
		refusalLog(args, msg)
		return 1
	}
	table := map[string][]option{"dump": dumpOpts, "restore": restoreOpts, "check": checkOpts, "show": commonOpts, "version": nil}
	opts, ok := table[cmd]
	if !ok {
		fmt.Fprintf(stderr, "gocr: unknown command %q: want dump, restore, check, show or version\n", cmd)
		return 2
	}
	for _, a := range args {
		if a == "-h" || a == "--help" {
			fmt.Fprint(stdout, usage(cmd, opts))
			return 0
		}
		if a == "-V" || a == "--version" { // criu prints its version wherever -V is
			cmd = "version"
		}
	}
	if cmd == "version" {
		// criu's format: scripts read the "Version: " line.
		fmt.Fprintf(stdout, "Version: %s\n", Version)
		return 0
	}
	p, err := parseOpts(cmd, args, opts)
	if err == nil {
		err = checkValues(p)
	}
	if err != nil {
		msg := fmt.Sprintf("gocr: %v", err)
		fmt.Fprintln(stderr, msg)
		if cmd == "dump" || cmd == "restore" {
			refusalLog(args, msg)
		}
		var ue *unsupportedError
		if errors.As(err, &ue) {
			return 1
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "check":
		return check(ctx, p, stdout, stderr)
	case "show":
		return show(p, stdout, stderr)
	}
	log, logPath, closeLog, err := openLog(p)
	if err != nil {
		fmt.Fprintf(stderr, "gocr %s: %v\n", cmd, err)
		return 1
	}
	defer closeLog()
	// GOCR_FAULT=PHASE:STEP:ACTION injects a failure, a stop or a SIGKILL
	// of gocr at a named step (engine/fault), for tests.
	faults, err := fault.Parse(os.Getenv(fault.Env))
	if err != nil {
		fmt.Fprintf(stderr, "gocr %s: %v\n", cmd, err)
		return 2
	}
	fail := func(err error) int {
		msg := fmt.Sprintf("gocr %s: %v", cmd, err)
		if logPath != "" {
			// "Error" as criu's log lines say it: zdtm.py shows the
			// log lines holding that word.
			log.Error("Error: "+cmd+" failed", "err", err) // stderr gets the line below
			msg += " (log: " + logPath + ")"
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	switch cmd {
	case "dump":
		pid, err := strconv.Atoi(p.get("tree"))
		if err != nil || pid <= 0 {
			return fail(fmt.Errorf("-t/--tree PID is required, got %q", p.get("tree")))
		}
		timeout := 10 * time.Second
		if t := p.get("timeout"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil || n <= 0 {
				return fail(fmt.Errorf("--timeout %q: want seconds", t))
			}
			timeout = time.Duration(n) * time.Second
		}
		ghost, err := parseSize(p.get("ghost-limit"), 1<<20)
		if err != nil {
			return fail(fmt.Errorf("--ghost-limit: %w", err))
		}
		if ghost == 0 {
			ghost = -1 // the engine's 0 is its default; an explicit 0 saves empty files only
		}
		err = engine.Dump(ctx, engine.DumpOptions{
			Pid: pid, ImagesDir: p.get("images-dir"), LeaveRunning: p.has("leave-running"),
			ShellJob: p.has("shell-job"), Timeout: timeout, GhostLimit: ghost, Root: p.get("root"), Log: log,
			FileLocks: p.has("file-locks"), TCPEstablished: p.has("tcp-established"), TCPClose: p.has("tcp-close"), SkipInFlight: p.has("skip-in-flight"), NoNetworkLock: skipLock(p),
			Fault: faults, External: p.vals["external"],
		})
		if err != nil {
			return fail(err)
		}
		if p.has("display-stats") {
			if err := displayStats(stdout, p.get("images-dir"), "dump"); err != nil {
				return fail(err)
			}
		}
		return 0
	case "restore":
		if held, err := engine.ReservePids(p.get("images-dir")); err == nil && len(held) > 0 && os.Getenv(reexecEnv) == "" {
			// Threads of this very process hold pids the restore needs:
			// start again as a new process, whose threads get others.
			os.Setenv(reexecEnv, "1")
			if err := syscall.Exec("/proc/self/exe", os.Args, os.Environ()); err != nil {
				return fail(fmt.Errorf("re-execute to free pids %v: %w", held, err))
			}
		}
		detached := p.has("restore-detached") || p.has("daemon")
		res, err := engine.Restore(ctx, engine.RestoreOptions{
			ImagesDir: p.get("images-dir"), Detached: detached,
			ShellJob: p.has("shell-job"), Root: p.get("root"), Log: log, Fault: faults, FileLocks: p.has("file-locks"), NoNetworkLock: skipLock(p), TCPClose: p.has("tcp-close"),
			External: p.vals["external"], JoinNetNS: joinNetNS(p),
		})
		if err != nil {
			return fail(err)
		}
		if f := p.get("pidfile"); f != "" {
			if err := os.WriteFile(f, []byte(strconv.Itoa(res.Pid)+"\n"), 0o644); err != nil {
				return fail(fmt.Errorf("write pidfile: %w", err))
			}
		}
		if p.has("display-stats") {
			if err := displayStats(stdout, p.get("images-dir"), "restore"); err != nil {
				return fail(err)
			}
		}
		if p.has("status-fd") {
			if err := writeStatus(p.get("status-fd")); err != nil {
				return fail(err)
			}
		}
		if detached {
			return 0
		}
		code, err := res.Wait(ctx)
		if err != nil {
			return fail(err)
		}
		return code
	}
	return 2
}

// skipLock says --network-lock asks for no lock.
func skipLock(p parsed) bool {
	v := p.get("network-lock")
	return v == "skip" || v == "none"
}

// joinNetNS is the file of the network namespace --join-ns net:X names
// (checked by checkValues): X itself, or a pid's.
func joinNetNS(p parsed) string {
	for _, v := range p.vals["join-ns"] {
		if x, ok := strings.CutPrefix(v, "net:"); ok {
			x, _, _ = strings.Cut(x, ",")
			if _, err := strconv.Atoi(x); err == nil {
				return "/proc/" + x + "/ns/net"
			}
			return x
		}
	}
	return ""
}

// checkValues refuses values of accepted options that ask for what gocr
// lacks, and malformed ones, before anything is done.
func checkValues(p parsed) error {
	for _, v := range p.vals["join-ns"] {
		kind, x, _ := strings.Cut(v, ":")
		x, extra, _ := strings.Cut(x, ",")
		switch {
		case kind != "net":
			return &unsupportedError{"--join-ns " + kind, "restore into an existing " + kind + " namespace (only net is)"}
		case x == "":
			return fmt.Errorf("--join-ns %q: want net:PATH or net:PID", v)
		case extra != "":
			return fmt.Errorf("--join-ns %q: a network namespace takes no extra options", v)
		}
	}
	if len(p.vals["join-ns"]) > 1 {
		return fmt.Errorf("--join-ns given %d times: there is one network namespace to join", len(p.vals["join-ns"]))
	}
	if p.has("network-lock") {
		switch v := p.get("network-lock"); v {
		case "skip", "none", "nftables":
		case "iptables":
			return &unsupportedError{"--network-lock " + v, "lock the tree's network with iptables rules (gocr locks it with nftables)"}
		default:
			return fmt.Errorf("--network-lock %q: want iptables, nftables or skip", v)
		}
	}
	if p.has("pre-dump-mode") {
		if v := p.get("pre-dump-mode"); v != "splice" && v != "read" {
			return fmt.Errorf("--pre-dump-mode %q: want splice or read", v)
		}
	}
	if p.has("status-fd") {
		if n, err := strconv.Atoi(p.get("status-fd")); err != nil || n < 0 {
			return fmt.Errorf("--status-fd %q: want an fd number", p.get("status-fd"))
		}
	}
	if p.has("verbosity") {
		if _, err := verbosity(p.get("verbosity")); err != nil {
			return err
		}
	}
	return nil
}

// writeStatus tells whoever gave --status-fd that the tree runs: one zero
// byte, then the fd is closed, as criu does when it is ready.
func writeStatus(s string) error {
	n, _ := strconv.Atoi(s) // checked by checkValues
	f := os.NewFile(uintptr(n), "status-fd")
	if f == nil {
		return fmt.Errorf("--status-fd %d: not an fd", n)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		return fmt.Errorf("--status-fd %d: %w", n, err)
	}
	return nil
}

// verbosity reads criu's -v forms, on criu's scale (default 2, at most 4
// counts): "" is one more than the default, "vvv" (from -vvvv) one more
// per v, a number is the level, and "erbosity=N" is N: criu's getopt reads
// -verbosity=N, which zdtm.py passes to check, as -v with that value.
func verbosity(v string) (int, error) {
	if rest, ok := strings.CutPrefix(v, "erbosity"); ok {
		v = strings.TrimPrefix(rest, "=")
	}
	switch {
	case v == "":
		return 3, nil
	case strings.Trim(v, "v") == "":
		return min(2+len(v)+1, 4), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("-v%s: want a level 0-4", v)
	}
	return min(n, 4), nil
}

// refusalLog writes why the command line was refused to the log -o
// names, when it names one in a directory that exists: a caller that
// reads the log (zdtm.py looks for "Error" in it) finds the reason there
// too. args are scanned as they are, since they did not parse.
func refusalLog(args []string, msg string) {
	val := func(short, long string) string {
		v := ""
		for i, a := range args {
			switch {
			case a == "--"+long || (short != "" && a == "-"+short):
				if i+1 < len(args) {
					v = args[i+1]
				}
			case strings.HasPrefix(a, "--"+long+"="):
				v = a[len(long)+3:]
			case short != "" && strings.HasPrefix(a, "-"+short) && !strings.HasPrefix(a, "--"):
				v = a[2:]
			}
		}
		return v
	}
	path := val("o", "log-file")
	if path == "" || path == "-" {
		return
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !filepath.IsAbs(path) {
		flags |= syscall.O_NOFOLLOW
		dir := val("W", "work-dir")
		if dir == "" {
			dir = val("D", "images-dir")
		}
		if fi, err := os.Stat(dir); dir == "" || err != nil || !fi.IsDir() {
			return // nothing is made for a command that was refused
		}
		path = filepath.Join(dir, path)
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "Error: %s\n", msg)
	f.Close()
}

// openLog opens -o like criu: a relative name lives in the work directory
// (by default the images directory); without -o, logs go to stderr.
func openLog(p parsed) (*slog.Logger, string, func(), error) {
	level := slog.LevelWarn
	if p.has("verbosity") {
		n, err := verbosity(p.get("verbosity"))
		if err != nil {
			return nil, "", nil, err
		}
		switch n {
		case 4:
			level = slog.LevelDebug
		case 3:
			level = slog.LevelInfo
		case 2:
			level = slog.LevelWarn
		default:
			level = slog.LevelError
		}
	}
	path := p.get("log-file")
	if p.has("log-pid") && path != "" && path != "-" {
		path += "." + strconv.Itoa(os.Getpid())
	}
	if path == "" || path == "-" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), "", func() {}, nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !filepath.IsAbs(path) {
		// The images directory may be writable by others (zdtm.py makes
		// it 0777): never follow a link planted under the log's name.
		flags |= syscall.O_NOFOLLOW
		dir := p.get("work-dir")
		if dir == "" {
			dir = p.get("images-dir")
		}
		if dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, "", nil, err
			}
		}
		path = filepath.Join(dir, path)
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, "", nil, fmt.Errorf("open log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})), path, func() { f.Close() }, nil
}

// parseSize reads 1048576, 1024K, 1M or 1G.
func parseSize(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a size such as 1048576, 1024K or 1M")
	}
	return n * mult, nil
}
