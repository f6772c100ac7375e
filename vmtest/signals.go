package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext returns a context that the first SIGINT or SIGTERM
// cancels, with the signal as its cause: every VM then stops its QEMU
// and the run ends with what it has. The handler is removed after the
// first signal, so a second one kills vmtest outright (its QEMUs die
// with it: they are started with a parent-death signal).
func SignalContext(parent context.Context, log func(format string, args ...any)) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			if log != nil {
				log("%v: stopping every VM (again to kill vmtest at once)", sig)
			}
			cancel(fmt.Errorf("signal: %v", sig))
		case <-ctx.Done():
			signal.Stop(ch)
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
