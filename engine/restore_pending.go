package engine

import (
	"context"
	"errors"
)

var errPending = errors.New("restore is not implemented yet")

type Restored struct{ Pid int }

func (r *Restored) Wait(ctx context.Context) (int, error) { return 0, errPending }

func Restore(ctx context.Context, o RestoreOptions) (*Restored, error) { return nil, errPending }

func IsStub(args []string) bool { return false }
func RunStub(args []string) int { return 2 }
