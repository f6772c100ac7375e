package mount

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/ns"
)

// onThrowawayThread runs fn on a thread that may change namespaces and is
// destroyed afterwards (see ns.OnThrowawayThread).
func onThrowawayThread(fn func() error) error { return ns.OnThrowawayThread(fn) }

// setns joins the namespace behind fd (of type nstype) on the calling
// thread, which must be one onThrowawayThread made.
func setns(fd int, nstype int, what string) error {
	if err := unix.Setns(fd, nstype); err != nil {
		return fmt.Errorf("setns into %s: %w", what, err)
	}
	return nil
}
