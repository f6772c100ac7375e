package engine

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocr/gocr/engine/fault"
)

// DumpOptions says what to checkpoint and how.
type DumpOptions struct {
	Pid          int    // root of the tree
	ImagesDir    string // created 0700 if missing; must be empty
	LeaveRunning bool   // resume the tree after the dump instead of killing it
	ShellJob     bool   // accept a controlling terminal outside the tree (a shell's) and fds on it
	Timeout      time.Duration
	// GhostLimit is the most data (holes not counted) a file deleted while
	// in use may hold for its contents to be saved; above it the dump is
	// refused. 0 means files.DefaultGhostLimit (1 MiB, as criu's);
	// below 0, only empty ones are saved.
	GhostLimit int64
	// FileLocks saves the file locks the tree holds (POSIX, OFD, flock)
	// and takes them again on restore, as criu's --file-locks. Without
	// it a tree holding a lock is refused: it would run on unlocked.
	FileLocks bool
	// TCPEstablished dumps established TCP connections, in TCP repair
	// mode (criu's --tcp-established); without it a tree holding one is
	// refused.
	TCPEstablished bool
	// TCPClose dumps established TCP connections without their state,
	// to be restored closed (criu's --tcp-close); TCPEstablished wins.
	TCPClose bool
	// SkipInFlight leaves out connections not accepted yet (criu's
	// --skip-in-flight) instead of refusing the dump.
	SkipInFlight bool
	// NoNetworkLock leaves the network unlocked while connections are
	// dumped (criu's --network-lock skip): a peer may then see a reset,
	// and a segment in flight may be lost.
	NoNetworkLock bool
	Root          string // root directory of the tree ("" or "/")
	// External names resources outside the tree, as criu's --external
	// does: "mnt[PATH]:KEY" makes the mount at PATH (inside the tree's
	// mount namespaces) external, saved by KEY alone, for restore to bind
	// whatever host path is given for KEY.
	External []string
	Log      *slog.Logger
	// Fault injects a failure, a stop or a SIGKILL of gocr itself at a
	// named step (tests; the gocr command reads GOCR_FAULT).
	Fault fault.Spec
	// NoWatchdog dumps without the watchdog process that puts the task
	// back if gocr dies mid-dump (see watchdog.go). Only for programs
	// embedding the engine that cannot call RunWatchdog: a SIGKILLed
	// dump then leaves the task stopped, and a thread caught in an
	// injected call needs its registers put back by hand.
	NoWatchdog bool
}

// RestoreOptions says where to restore from and how.
type RestoreOptions struct {
	ImagesDir string
	Detached  bool // return once the tree runs; the caller does not wait
	// FileLocks takes again the file locks the images hold; a restore of
	// images with locks needs it, as criu's --file-locks.
	FileLocks bool
	ShellJob  bool // give fds on a terminal outside the tree gocr's own (files.OwnTerminal)
	Root      string
	// External gives the host side of external resources, as criu's
	// --external does: "mnt[KEY]:HOSTPATH" binds HOSTPATH where the dump
	// recorded the external mount KEY.
	External []string
	Log      *slog.Logger
	Fault    fault.Spec // see DumpOptions.Fault
	// NoNetworkLock leaves the network lock of the dump in place (criu's
	// --network-lock skip).
	NoNetworkLock bool
	// TCPClose restores established TCP connections closed (criu's
	// --tcp-close), with or without their state in the images.
	TCPClose bool
	// JoinNetNS is the file of an existing network namespace the tree is
	// restored into instead of a new one (criu's --join-ns net:PATH):
	// its devices and addresses are its own, and the lock the dump put
	// on it (netlock.LockAll) comes off once the tree runs.
	JoinNetNS string
}

// parseExternalMounts reads the mnt[A]:B items of --external into a map
// A → B; other kinds of external resources are refused by name. A
// restore's B is a host path; a relative one is taken from /.
func parseExternalMounts(items []string, restore bool) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		if strings.HasPrefix(it, "mnt[]") {
			return nil, fmt.Errorf("--external %q: mounts found external automatically (criu's mnt[]) are not supported yet: name each with mnt[PATH]:KEY", it)
		}
		rest, ok := strings.CutPrefix(it, "mnt[")
		a, b, ok2 := strings.Cut(rest, "]:")
		if !ok || !ok2 || a == "" || b == "" {
			return nil, fmt.Errorf("--external %q: want mnt[A]:B (other external resources are not supported yet)", it)
		}
		if restore && !filepath.IsAbs(b) {
			// Relative to /, as criu's restore finds it (it makes the
			// mounts from the root).
			b = filepath.Join("/", b)
		}
		out[a] = b
	}
	return out, nil
}
