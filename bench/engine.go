package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/gocr/gocr/engine/image"
)

// engine is one checkpoint/restore program. gocr takes CRIU's options, so
// both are driven with the same command lines:
//
//	dump -t PID -D IMG -o dump.log -v4
//	restore -D IMG -d -o restore.log -v4
//
// (-d, --restore-detached: the engine exits once the tree runs, and the
// tree comes to the bench, its subreaper).
type engine struct {
	name    string
	bin     string
	missing string // why the engine is not run; "" when it is
}

func newEngines(gocr, criu string) ([]*engine, error) {
	g, err := filepath.Abs(gocr)
	if err != nil {
		return nil, fmt.Errorf("gocr binary: %w", err)
	}
	if _, err := os.Stat(g); err != nil {
		return nil, fmt.Errorf("gocr binary: %w (make build first)", err)
	}
	c := &engine{name: "criu"}
	switch {
	case criu == "":
		c.missing = "no -criu binary (make bench builds one with go run ./zdtm/criu -print-criu)"
	default:
		if c.bin, err = filepath.Abs(criu); err == nil {
			_, err = os.Stat(c.bin)
		}
		if err != nil {
			c.missing = fmt.Sprintf("criu binary: %v", err)
		}
	}
	return []*engine{{name: "gocr", bin: g}, c}, nil
}

// result is one invocation of an engine: wall time and peak RSS.
type result struct {
	wall time.Duration
	rss  int64 // bytes, the engine's own process (ru_maxrss)
	err  error
	out  string
}

func (e *engine) run(ctx context.Context, args ...string) result {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	// A restored process that kept the engine's output pipe open must not
	// keep the bench waiting.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := result{wall: time.Since(start), out: string(out)}
	if err != nil {
		r.err = fmt.Errorf("%s %s: %w", e.name, args[0], err)
	}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.rss = ru.Maxrss << 10
		}
	}
	return r
}

// failure is what to print for a failed invocation: the first error line
// of the engine's log (CRIU writes everything there with -o), else the
// last line the engine printed (gocr's error), else the exit status.
func (e *engine) failure(r result, log string) string {
	if l := firstLogError(log); l != "" {
		return l
	}
	if out := strings.TrimSpace(r.out); out != "" {
		lines := strings.Split(out, "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return r.err.Error()
}

// logStamp is the "(00.046186) " a CRIU log line starts with.
var logStamp = regexp.MustCompile(`^\(\s*[0-9.]+\)\s*`)

// firstLogError is the first line of log that reports an error, without
// its time stamp; "" when there is none or no log.
func firstLogError(log string) string {
	f, err := os.Open(log)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := logStamp.ReplaceAllString(sc.Text(), "")
		if !strings.HasPrefix(l, "Error") {
			continue
		}
		// CRIU logs this on every run of a root without
		// CAP_SYS_RESOURCE (this project's machines) and goes on.
		if strings.Contains(l, "Can't setup RLIMIT_NOFILE for self") {
			continue
		}
		return l
	}
	return ""
}

// frozenTime is the frozen time the dump wrote to stats-dump; both
// engines write it, in CRIU's format.
func frozenTime(img string) (time.Duration, bool) {
	d, err := image.Open(img)
	if err != nil {
		return 0, false
	}
	defer d.Close()
	st, err := d.ReadStats(image.StatsDumpFile)
	if err != nil || st.GetDump() == nil || st.GetDump().FrozenTime == nil {
		return 0, false
	}
	return time.Duration(st.GetDump().GetFrozenTime()) * time.Microsecond, true
}

// imageSize is the size of the images the dump wrote, its log aside.
func imageSize(img string) int64 {
	ents, err := os.ReadDir(img)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}
