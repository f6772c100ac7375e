// Command gocr checkpoints and restores live Linux process trees. Its
// options are spelled as criu's, so scripts written for criu drive it:
//
//	gocr dump -t PID -D DIR [--leave-running] [--shell-job] [-o LOG] [-v4]
//	gocr restore -D DIR [-d] [--pidfile F] [--shell-job] [-o LOG] [-v4]
//	gocr check [--all] [--feature NAME]
//	gocr show DIR
//	gocr version
//
// The command only parses flags and calls the engine.
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
	{"o", "log-file", true, "log file; relative to the images directory like criu's"},
	{"v", "verbosity", true, "log level 0-4 (-v, -v4, --verbosity=4)"},
	{"", "no-default-config", false, "accepted for criu compatibility (gocr reads no config file)"},
	{"D", "images-dir", true, "directory of image files"},
	{"W", "work-dir", true, "directory for logs (default: the images directory)"},
	{"", "shell-job", false, "the tree was started from a shell: keep its controlling terminal"},
	{"", "root", true, "root of the tree: a directory of the host that is the root of its mount namespace"},
	{"", "external", true, "external resource: dump mnt[PATH]:KEY, restore mnt[KEY]:HOSTPATH (repeatable)"},
}

var dumpOpts = append([]option{
	{"t", "tree", true, "pid of the tree's root"},
	{"R", "leave-running", false, "let the tree run on after the dump"},
	{"", "timeout", true, "seconds to wait for the tree to stop (default 10)"},
	{"", "track-mem", false, "accepted for criu compatibility"},
	{"", "ghost-limit", true, "most data a deleted file in use may hold to be saved (bytes; K/M/G suffix; default 1M)"},
	{"l", "file-locks", false, "save the file locks the tree holds (without it a tree holding one is refused)"},
}, commonOpts...)

var restoreOpts = append([]option{
	{"d", "restore-detached", false, "exit once the tree runs; do not wait for it"},
	{"", "pidfile", true, "write the pid of the restored root here"},
	{"l", "file-locks", false, "take again the file locks the images hold (needed when they hold any)"},
}, commonOpts...)

var checkOpts = append([]option{
	{"", "all", false, "also list features gocr can live without"},
	{"", "feature", true, "check one feature; exit 0 only if the kernel has it"},
}, commonOpts...)

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
	}
	p, err := parseOpts(cmd, args, opts)
	if err != nil {
		fmt.Fprintf(stderr, "gocr: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "gocr %s\n", Version)
		return 0
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
			log.Error(cmd+" failed", "err", err) // stderr gets the line below
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
			FileLocks: p.has("file-locks"),
			Fault:     faults, External: p.vals["external"],
		})
		if err != nil {
			return fail(err)
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
		res, err := engine.Restore(ctx, engine.RestoreOptions{
			ImagesDir: p.get("images-dir"), Detached: p.has("restore-detached"),
			ShellJob: p.has("shell-job"), Root: p.get("root"), Log: log, Fault: faults, FileLocks: p.has("file-locks"),
			External: p.vals["external"],
		})
		if err != nil {
			return fail(err)
		}
		if f := p.get("pidfile"); f != "" {
			if err := os.WriteFile(f, []byte(strconv.Itoa(res.Pid)+"\n"), 0o644); err != nil {
				return fail(fmt.Errorf("write pidfile: %w", err))
			}
		}
		if p.has("restore-detached") {
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

// openLog opens -o like criu: a relative name lives in the work directory
// (by default the images directory); without -o, logs go to stderr.
func openLog(p parsed) (*slog.Logger, string, func(), error) {
	level := slog.LevelWarn
	if p.has("verbosity") {
		switch v := p.get("verbosity"); v {
		case "", "4", "3":
			level = slog.LevelDebug
			if v == "3" {
				level = slog.LevelInfo
			}
		case "0", "1", "2":
			level = slog.LevelError
			if v == "2" {
				level = slog.LevelWarn
			}
		default:
			return nil, "", nil, fmt.Errorf("-v%s: want a level 0-4", v)
		}
	}
	path := p.get("log-file")
	if path == "" || path == "-" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), "", func() {}, nil
	}
	if !filepath.IsAbs(path) {
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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
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
