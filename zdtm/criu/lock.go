package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes an exclusive flock on path, waiting (and saying so) while
// another zdtm-criu holds it: two builds of one tree, or two zdtm.py runs
// in its test directory (where tests keep their pid and out files), must
// not overlap. Unlock by closing the file.
func lock(ctx context.Context, path, what string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return f, nil
	}
	logf("waiting for another zdtm-criu to finish %s (lock %s)", what, path)
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	case <-ctx.Done():
		f.Close()
		return nil, ctx.Err()
	}
}
