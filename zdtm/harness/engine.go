package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Engine checkpoints and restores a process tree for the harness.
type Engine interface {
	Name() string
	// Checkpoints reports whether Dump really dumps: the none engine does
	// not, so the harness neither expects the tree to vanish nor a restore.
	Checkpoints() bool
	Dump(ctx context.Context, pid int, d DumpSpec) error
	// Restore brings the tree back and returns the pid of its root.
	Restore(ctx context.Context, r RestoreSpec) (int, error)
	// HasFeature asks the engine whether this kernel gives it a feature
	// (criu and gocr: `check --feature NAME`); the string says why not.
	HasFeature(ctx context.Context, name string) (bool, string)
}

// DumpSpec says where and how to dump.
type DumpSpec struct {
	ImagesDir    string
	LogFile      string
	LeaveRunning bool
	Opts         []string // from the descriptor
}

// RestoreSpec says where to restore from.
type RestoreSpec struct {
	ImagesDir string
	LogFile   string
	PidFile   string
	Opts      []string
}

// ParseEngine turns ENGINE= into an Engine: "gocr" (the binary at gocrBin),
// "none", or "external:CMD [ARGS...]" for any tool that speaks criu's
// command line (criu itself, or another build of gocr).
func ParseEngine(spec, gocrBin string) (Engine, error) {
	switch {
	case spec == "" || spec == "gocr":
		return &CLIEngine{Label: "gocr", Command: []string{gocrBin}}, nil
	case spec == "none":
		return NoEngine{}, nil
	case strings.HasPrefix(spec, "external:"):
		cmd := strings.Fields(strings.TrimPrefix(spec, "external:"))
		if len(cmd) == 0 {
			return nil, fmt.Errorf("ENGINE=%q: external needs a command, e.g. external:/usr/sbin/criu", spec)
		}
		return &CLIEngine{Label: "external:" + filepath.Base(cmd[0]), Command: cmd}, nil
	}
	return nil, fmt.Errorf("ENGINE=%q: want gocr, none or external:CMD", spec)
}

// NoEngine checkpoints nothing: the spec only proves the workload is sound.
type NoEngine struct{}

func (NoEngine) Name() string                              { return "none" }
func (NoEngine) Checkpoints() bool                         { return false }
func (NoEngine) Dump(context.Context, int, DumpSpec) error { return nil }
func (NoEngine) Restore(context.Context, RestoreSpec) (int, error) {
	return 0, fmt.Errorf("the none engine restores nothing")
}
func (NoEngine) HasFeature(context.Context, string) (bool, string) { return true, "" }

// CLIEngine drives a binary with criu's command line, as CRIU's zdtm.py
// does with --criu-bin.
type CLIEngine struct {
	Label   string
	Command []string
}

func (e *CLIEngine) Name() string      { return e.Label }
func (e *CLIEngine) Checkpoints() bool { return true }

func (e *CLIEngine) Dump(ctx context.Context, pid int, d DumpSpec) error {
	args := []string{"dump", "--no-default-config", "-t", strconv.Itoa(pid), "-D", d.ImagesDir,
		"-o", d.LogFile, "-v4", "--timeout", "10"}
	if d.LeaveRunning {
		args = append(args, "--leave-running")
	}
	_, err := e.run(ctx, append(args, d.Opts...), d.LogFile)
	return err
}

func (e *CLIEngine) Restore(ctx context.Context, r RestoreSpec) (int, error) {
	args := []string{"restore", "--no-default-config", "-D", r.ImagesDir, "-o", r.LogFile, "-v4",
		"--restore-detached", "--pidfile", r.PidFile}
	if _, err := e.run(ctx, append(args, r.Opts...), r.LogFile); err != nil {
		return 0, err
	}
	return readPidFile(r.PidFile)
}

func (e *CLIEngine) HasFeature(ctx context.Context, name string) (bool, string) {
	out, err := e.run(ctx, []string{"check", "--no-default-config", "--feature", name}, "")
	if err != nil {
		return false, strings.TrimSpace(out + " " + err.Error())
	}
	return true, ""
}

// run runs the engine; a failure carries its stderr and the log's tail.
func (e *CLIEngine) run(ctx context.Context, args []string, logFile string) (string, error) {
	cmd := exec.CommandContext(ctx, e.Command[0], append(e.Command[1:], args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	if err := cmd.Run(); err != nil {
		msg := fmt.Sprintf("%s %s: %v", e.Label, args[0], err)
		if s := strings.TrimSpace(out.String()); s != "" {
			msg += "\n" + s
		}
		if logFile != "" {
			msg += "\nlog " + logFile + ":\n" + tail(logFile, 20)
		}
		return out.String(), fmt.Errorf("%s", msg)
	}
	return out.String(), nil
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s holds %q, not a pid", path, b)
	}
	return pid, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
