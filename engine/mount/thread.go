package mount

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// onThrowawayThread runs fn on an OS thread of its own that may change its
// namespaces freely: the thread is locked, its filesystem context (root,
// cwd, umask) is unshared from the rest of the process, and it is never
// unlocked, so the Go runtime destroys it when fn returns instead of
// handing a thread in someone else's mount namespace to other goroutines.
//
// The thread-group leader is never used: the runtime cannot destroy it
// (it would park it for good instead) and /proc/PID and /proc/self show
// its view, which the rest of gocr relies on. A goroutine that lands on
// the leader keeps it busy until fn is done, so the next attempt starts
// elsewhere. Go never creates threads from a locked thread (it uses its
// template thread), so nothing inherits the namespaces.
func onThrowawayThread(fn func() error) error {
	hold := make(chan struct{})
	defer close(hold)
	for try := 0; try < 4; try++ {
		onLeader := make(chan bool, 1)
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if unix.Gettid() == unix.Getpid() {
				onLeader <- true
				<-hold
				runtime.UnlockOSThread()
				return
			}
			onLeader <- false
			// Deliberately no UnlockOSThread: the thread dies with the
			// goroutine.
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				done <- fmt.Errorf("unshare(CLONE_FS): %w", err)
				return
			}
			done <- fn()
		}()
		if <-onLeader {
			continue
		}
		return <-done
	}
	return errors.New("no thread other than the thread-group leader to work on")
}

// setns joins the namespace behind fd (of type nstype) on the calling
// thread, which must be one onThrowawayThread made.
func setns(fd int, nstype int, what string) error {
	if err := unix.Setns(fd, nstype); err != nil {
		return fmt.Errorf("setns into %s: %w", what, err)
	}
	return nil
}
