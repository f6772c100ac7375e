package engine

import (
	"log/slog"
	"time"
)

// DumpOptions says what to checkpoint and how.
type DumpOptions struct {
	Pid          int    // root of the tree
	ImagesDir    string // created 0700 if missing; must be empty
	LeaveRunning bool   // resume the tree after the dump instead of killing it
	ShellJob     bool   // the tree may keep a controlling terminal of ours
	Timeout      time.Duration
	GhostLimit   int64  // largest deleted-but-open file whose contents are saved
	Root         string // root directory of the tree ("" or "/")
	Log          *slog.Logger
}

// RestoreOptions says where to restore from and how.
type RestoreOptions struct {
	ImagesDir string
	Detached  bool // return once the tree runs; the caller does not wait
	ShellJob  bool
	Root      string
	Log       *slog.Logger
}
