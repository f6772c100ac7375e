// Package fault is gocr's fault injection, in the manner of CRIU's: a
// spec such as "dump:memory:kill" makes the engine SIGKILL itself, stop
// itself, or fail as if the step had failed, at one named step of the dump
// or restore checklist. Tests walk every step (DumpSteps, RestoreSteps) to
// prove that an interrupted dump leaves the process running unharmed and
// an interrupted restore leaves nothing behind.
//
// The engine never reads the environment: the gocr command parses
// GOCR_FAULT with Parse and passes the result in the options.
package fault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Env is the environment variable the gocr command reads.
const Env = "GOCR_FAULT"

// Action is what happens at the chosen step.
type Action string

const (
	// Kill: gocr SIGKILLs itself; nothing of gocr's clean-up runs.
	Kill Action = "kill"
	// Stop: gocr stops itself with SIGSTOP, so that a test can look at
	// the state at that step and then SIGKILL it, or send it SIGINT or
	// SIGTERM and SIGCONT (the step then fails with the cancellation).
	Stop Action = "stop"
	// Error: the step fails with ErrInjected, through the ordinary error
	// path.
	Error Action = "error"
)

// The phases.
const (
	Dump    = "dump"
	Restore = "restore"
)

// DumpSteps are the named points of the dump checklist, in the order a
// dump reaches them.
var DumpSteps = []string{
	"freeze",      // every thread seized and stopped
	"group-stop",  // the process is in group stop (so a dead gocr leaves it stopped, not running)
	"namespaces",  // namespace images written
	"registers",   // registers, FPU state and masks read; the pages being copied meanwhile, until "memory"
	"inject",      // the leader's injection session open (mask changed), nothing mapped
	"scratch",     // the scratch mapping made in the task
	"syscalls",    // some injected calls done: rip points at the injected syscall
	"thread",      // a second thread's session open too (multi-threaded tasks only)
	"inject-done", // every session ended, scratch unmapped
	"files",       // the fd table read
	"images",      // the process's images written, all but its pages
	"memory",      // its pages written: the copy is over
	"resume",      // about to let the task go (or kill it)
}

// RestoreSteps are the named points of the restore checklist.
var RestoreSteps = []string{
	"read",         // images read and checked; nothing created yet
	"spawn",        // the stub runs, with the image's pid
	"namespaces",   // its namespaces rebuilt
	"prepare",      // scratch area mapped in the stub
	"tree",         // every process forked from its parent, sessions, groups and zombies made
	"memory",       // address space replaced
	"files",        // fd table restored
	"process",      // process-wide state set
	"threads",      // every thread created
	"thread-state", // per-thread state set, credentials last
	"resume",       // registers set on every thread, none let go yet
	"detach",       // the other threads let go, the leader still held
}

// ErrInjected is the error of an Error point.
var ErrInjected = errors.New("fault injected")

// Point is one fault: at Phase:Step, do Action.
type Point struct {
	Phase, Step string
	Action      Action
}

func (p Point) String() string { return p.Phase + ":" + p.Step + ":" + string(p.Action) }

// Spec is a set of points; the zero Spec injects nothing.
type Spec []Point

// Parse reads "PHASE:STEP:ACTION[,PHASE:STEP:ACTION...]", e.g.
// "dump:memory:kill" or "restore:threads:error". The empty string is no
// fault. Unknown phases, steps or actions are errors, so a typo in a test
// cannot silently walk nothing.
func Parse(s string) (Spec, error) {
	var out Spec
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		f := strings.Split(item, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("%s=%q: want PHASE:STEP:ACTION, e.g. dump:memory:kill", Env, item)
		}
		p := Point{Phase: f[0], Step: f[1], Action: Action(f[2])}
		var steps []string
		switch p.Phase {
		case Dump:
			steps = DumpSteps
		case Restore:
			steps = RestoreSteps
		default:
			return nil, fmt.Errorf("%s=%q: phase %q: want dump or restore", Env, item, p.Phase)
		}
		if !slices.Contains(steps, p.Step) {
			return nil, fmt.Errorf("%s=%q: %s has no step %q (steps: %s)", Env, item, p.Phase, p.Step, strings.Join(steps, " "))
		}
		switch p.Action {
		case Kill, Stop, Error:
		default:
			return nil, fmt.Errorf("%s=%q: action %q: want kill, stop or error", Env, item, p.Action)
		}
		out = append(out, p)
	}
	return out, nil
}

// At is called by the engine at each named step. It does what the spec
// says for that step, if anything, and returns ctx's error otherwise, so
// that every named step is also a place where SIGINT/SIGTERM take effect.
func (s Spec) At(ctx context.Context, phase, step string) error {
	for _, p := range s {
		if p.Phase != phase || p.Step != step {
			continue
		}
		switch p.Action {
		case Kill:
			unix.Kill(os.Getpid(), unix.SIGKILL) //nolint:errcheck // we are dead
			select {}                            // never reached
		case Stop:
			unix.Kill(os.Getpid(), unix.SIGSTOP) //nolint:errcheck
			// Continued: a SIGINT/SIGTERM sent while stopped reaches the
			// context through os/signal's goroutine; give it a moment.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		case Error:
			return fmt.Errorf("%s:%s: %w", phase, step, ErrInjected)
		}
	}
	return ctx.Err()
}
