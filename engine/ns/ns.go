// Package ns dumps and restores the namespaces a task lives in when they
// are not gocr's own: uts (uts.go), ipc (ipc.go: limits; ipc_shm.go,
// ipc_sem.go, ipc_msg.go: SysV objects; mqueue.go: POSIX message queues
// and their open files), net (net.go), pid (pid.go), user (user.go:
// uid/gid maps, written by gocr into the restore stub's fresh namespace
// before it executes) and time (time.go: clock offsets, written before any
// process is in the namespace). The mount namespace has a package of its
// own, engine/mount.
//
// A namespace the task shares with gocr is left alone on restore; one it
// does not share gets an image and is created afresh, as CRIU does.
package ns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
)

// cloneFlag is the CLONE_NEW* flag of each kind this package restores.
var cloneFlag = map[string]uintptr{
	"uts": unix.CLONE_NEWUTS, "ipc": unix.CLONE_NEWIPC, "net": unix.CLONE_NEWNET,
	"pid": unix.CLONE_NEWPID, "mnt": unix.CLONE_NEWNS, "user": unix.CLONE_NEWUSER,
	"cgroup": unix.CLONE_NEWCGROUP, "time": unix.CLONE_NEWTIME,
}

// Own lists the namespaces of pid that are not the caller's, by kind, with
// their inode numbers.
func Own(pid int) (map[string]uint64, error) {
	theirs, err := procfs.Namespaces(pid)
	if err != nil {
		return nil, err
	}
	mine, err := procfs.Namespaces(os.Getpid())
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for kind, ino := range theirs {
		if _, ok := cloneFlag[kind]; ok && mine[kind] != ino {
			out[kind] = ino
		}
	}
	return out, nil
}

// Enter runs fn on an OS thread of its own that has joined pid's namespace
// of the given kind. The thread is thrown away afterwards (the goroutine
// ends still locked to it), so no other goroutine ever runs in that
// namespace: gocr is multi-threaded and setns changes only one thread.
//
// The thread-group leader is never used: the runtime cannot end it (it
// parks it for good instead) and /proc/self shows the leader's
// namespaces, which Own and the rest of gocr rely on. A goroutine that
// lands on the leader holds it until fn is done, so the next try runs
// elsewhere.
func Enter(pid int, kind string, fn func() error) error {
	flag, ok := cloneFlag[kind]
	if !ok {
		return fmt.Errorf("enter %s namespace of pid %d: unknown kind", kind, pid)
	}
	if err := OnThrowawayThread(func() error { return enterAndRun(pid, kind, flag, fn) }); err != nil {
		return fmt.Errorf("in %s namespace of pid %d: %w", kind, pid, err)
	}
	return nil
}

// OnThrowawayThread runs fn on an OS thread of its own that may change its
// namespaces freely: the thread is locked, its filesystem context (root,
// cwd, umask) is unshared from the rest of the process, and it is never
// unlocked, so the Go runtime destroys it when fn returns instead of
// handing a thread in someone else's namespace to other goroutines.
//
// The thread-group leader is never used: the runtime cannot destroy it
// (it would park it for good instead) and /proc/PID and /proc/self show
// its view, which the rest of gocr relies on. A goroutine that lands on
// the leader keeps it busy until fn is done, so the next attempt starts
// elsewhere. Go never creates threads from a locked thread (it uses its
// template thread), so nothing inherits the namespaces.
func OnThrowawayThread(fn func() error) error {
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

// enterAndRun joins the namespace on the calling (throwaway) thread and
// runs fn there.
func enterAndRun(pid int, kind string, flag uintptr, fn func() error) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), int(flag)); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	return fn()
}

// CloneFlags gives the CLONE_NEW* flags that create the namespaces named.
func CloneFlags(kinds ...string) uint64 {
	var f uint64
	for _, k := range kinds {
		f |= uint64(cloneFlag[k])
	}
	return f
}
