package mount

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/ptrace"
	"github.com/gocr/gocr/engine/remote"
)

// DigoutHelperArg is argv[1] of the helper process digOut drives: gocr
// re-executed and held at the exit of its execve, before it runs an
// instruction of its own; every system call it makes is injected.
const DigoutHelperArg = "__digout"

// IsDigoutHelper reports whether the command line is the dig-out helper's.
func IsDigoutHelper(args []string) bool { return len(args) > 0 && args[0] == DigoutHelperArg }

// RunDigoutHelper is what the helper does if its own code ever runs:
// nothing. Its code runs only when no dumping gocr started it.
func RunDigoutHelper([]string) int { return 125 }

// digOut reaches the tmpfs mounts list[hidden] of pid's mount namespace,
// hidden under other mounts (a tmpfs over a tmpfs, a mount point covered
// later), and puts gocr's fd on a read-only clone of each in clones.
//
// A helper process joins the namespace and unshares a private copy of it,
// makes every mount of the copy private so nothing it does propagates
// back, then detaches, in the copy only, whatever covers each hidden
// mount, deepest mount points first, until the path shows the hidden
// superblock, and clones it (open_tree). gocr takes the clones
// (pidfd_getfd) and kills the helper; the copy dies with it. The victim's
// namespace is not touched.
//
// The copy is made from inside the user namespace that owns the victim's
// mount namespace: a copy made from any other (gocr's, when the tree has
// a user namespace of its own) has every mount locked (MNT_LOCKED), and
// nothing can be detached from it. Joining a user namespace takes a
// single-threaded process, which a Go program never is once its runtime
// runs, hence a process held before its runtime starts and driven by
// injection rather than a gocr thread.
//
// Paths are taken from the namespace's root, so a victim chrooted inside
// its namespace is not supported here.
func digOut(pid int, list []tmpfsDump, hidden []int, clones []int) error {
	sort.SliceStable(hidden, func(a, b int) bool {
		return strings.Count(list[hidden[a]].mount.m.MountPoint, "/") > strings.Count(list[hidden[b]].mount.m.MountPoint, "/")
	})
	first := list[hidden[0]].mount
	joinUser, err := foreignOwner(pid)
	if err != nil {
		return first.err("reach hidden tmpfs", err)
	}
	tr := ptrace.NewTracer()
	defer tr.Close()
	h, err := startDigger(tr)
	if err != nil {
		return first.err("reach hidden tmpfs", err)
	}
	defer h.stop()
	if err := h.enter(pid, joinUser); err != nil {
		return first.err("reach hidden tmpfs", err)
	}
	for _, i := range hidden {
		fd, err := h.dig(list[i].mount.m)
		if err != nil {
			return list[i].mount.err("dump hidden tmpfs", err)
		}
		clones[i] = cloneForReading(fd)
	}
	return nil
}

// foreignOwner reports whether pid's mount namespace is owned by a user
// namespace other than gocr's, which the helper must then join first.
func foreignOwner(pid int) (bool, error) {
	p := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	if err != nil {
		return false, fmt.Errorf("owner of %s (NS_GET_USERNS): %w", p, err)
	}
	defer unix.Close(owner)
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(owner, &theirs); err != nil {
		return false, fmt.Errorf("owner of %s: %w", p, err)
	}
	if err := unix.Stat("/proc/self/ns/user", &ours); err != nil {
		return false, fmt.Errorf("gocr's user namespace: %w", err)
	}
	return theirs.Dev != ours.Dev || theirs.Ino != ours.Ino, nil
}

// digger is the helper process, stopped and driven by injected calls.
type digger struct {
	tr    *ptrace.Tracer
	pid   int
	pidfd int          // gocr's pidfd on it, to take its fds
	t     *remote.Task // the injection session, with scratch memory
	slash int          // its fd on the root of its namespace
}

// The helper's scratch memory: kernel structs at 0, a path at digPathOff.
const (
	digPathOff  = 256
	digScratch  = 2 * 4096
	maxDigTries = 64 // mounts stacked on one path that dig detaches
)

// startDigger starts the helper, gocr itself held at the exit of its
// execve; PTRACE_O_EXITKILL takes it down with gocr.
func startDigger(tr *ptrace.Tracer) (*digger, error) {
	pid, err := tr.SpawnStub(ptrace.StubSpec{
		Path: "/proc/self/exe", Argv: []string{"gocr", DigoutHelperArg},
		Options: unix.PTRACE_O_EXITKILL,
	})
	if err != nil {
		return nil, fmt.Errorf("start a helper: %w", err)
	}
	h := &digger{tr: tr, pid: pid, pidfd: -1, slash: -1}
	fail := func(err error) (*digger, error) {
		h.stop()
		return nil, fmt.Errorf("helper pid %d: %w", pid, err)
	}
	if h.pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
		return fail(fmt.Errorf("pidfd_open: %w", err))
	}
	insn, err := ptrace.FindSyscallInsn(pid)
	if err != nil {
		return fail(err)
	}
	r, err := tr.BeginInject(pid, insn)
	if err != nil {
		return fail(err)
	}
	if h.t, err = remote.MapScratch(r, pid, 0, digScratch, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return fail(err)
	}
	return h, nil
}

// stop kills the helper: its copy of the namespace, and what was detached
// there, go with it.
func (h *digger) stop() {
	if h.pidfd >= 0 {
		unix.Close(h.pidfd)
	}
	h.tr.KillAndReap(h.pid) //nolint:errcheck // nothing of the victim's depends on it
}

// call injects one system call, saying what it was for when it fails.
// A refusal by the kernel wraps just its errno (see failed).
func (h *digger) call(what string, nr uintptr, args ...uint64) (int, error) {
	ret, err := h.t.Syscall(uint64(nr), args...)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			err = errno // the rest says only that it was injected
		}
		return -1, fmt.Errorf("helper pid %d: %s: %w", h.pid, what, err)
	}
	return int(ret), nil
}

// failed reports whether err is the kernel refusing an injected call (an
// errno), not the helper or the injection going wrong.
func failed(err error) bool {
	var errno unix.Errno
	return errors.As(err, &errno)
}

// str writes s NUL-terminated to the helper's scratch memory and returns
// its address there.
func (h *digger) str(s string) (uint64, error) {
	if len(s) >= unix.PathMax {
		return 0, fmt.Errorf("%.64s...: %w", s, unix.ENAMETOOLONG)
	}
	if err := h.t.Write(digPathOff, append([]byte(s), 0)); err != nil {
		return 0, err
	}
	return h.t.Scratch + digPathOff, nil
}

// enter moves the helper into a private copy of pid's mount namespace,
// after the user namespace that owns it if joinUser.
func (h *digger) enter(pid int, joinUser bool) error {
	nsPath := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	p, err := h.str(nsPath)
	if err != nil {
		return err
	}
	cwd := unix.AT_FDCWD
	atCwd := uint64(cwd) // what -100 is in a register
	nsFd, err := h.call("open "+nsPath, unix.SYS_OPENAT, atCwd, p, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	if joinUser {
		owner, err := h.call("owner of "+nsPath+" (NS_GET_USERNS)", unix.SYS_IOCTL, uint64(nsFd), unix.NS_GET_USERNS)
		if err != nil {
			return err
		}
		if _, err := h.call("join the user namespace that owns "+nsPath, unix.SYS_SETNS, uint64(owner), unix.CLONE_NEWUSER); err != nil {
			return err
		}
	}
	if _, err := h.call("join "+nsPath, unix.SYS_SETNS, uint64(nsFd), unix.CLONE_NEWNS); err != nil {
		return err
	}
	if _, err := h.call("unshare a private copy of the namespace", unix.SYS_UNSHARE, unix.CLONE_NEWNS); err != nil {
		return err
	}
	if p, err = h.str("/"); err != nil {
		return err
	}
	if _, err := h.call("make the private copy private", unix.SYS_MOUNT, 0, p, 0, unix.MS_REC|unix.MS_PRIVATE, 0); err != nil {
		return err
	}
	h.slash, err = h.call("open /", unix.SYS_OPENAT, atCwd, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	return err
}

// dig returns gocr's fd on a clone of the hidden mount m: it detaches what
// covers m's mount point in the copy until the path shows m's superblock.
func (h *digger) dig(m procfs.Mount) (int, error) {
	want := unix.Mkdev(m.Major, m.Minor)
	for try := 0; try < maxDigTries; try++ {
		fd, err := h.openIfDev(m.MountPoint, want)
		if err != nil {
			return -1, err
		}
		if fd >= 0 {
			return h.cloneMount(fd)
		}
		uncovered, err := h.uncover(m.MountPoint)
		if err != nil {
			return -1, err
		}
		if !uncovered {
			break
		}
	}
	return -1, fmt.Errorf("hidden under other mounts and could not be uncovered in a private copy of the namespace: %w", ErrUnsupported)
}

// openIfDev opens mount point mp in the helper as openPath does and
// returns the helper's fd if the path shows device dev, -1 if it shows
// another or does not resolve.
func (h *digger) openIfDev(mp string, dev uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	if err := remote.WriteStruct(h.t, 0, &how); err != nil {
		return -1, err
	}
	p, err := h.str(rel(path.Clean(mp), "/"))
	if err != nil {
		return -1, err
	}
	fd, err := h.call("open "+mp, unix.SYS_OPENAT2, uint64(h.slash), p, h.t.Scratch, uint64(unsafe.Sizeof(how)))
	if failed(err) {
		return -1, nil // not there in the copy now: uncover what is in the way
	} else if err != nil {
		return -1, err
	}
	if _, err := h.call("stat "+mp, unix.SYS_FSTAT, uint64(fd), h.t.Scratch); err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := remote.ReadStruct(h.t, 0, &st); err != nil {
		return -1, err
	}
	if st.Dev != dev {
		_, err := h.call("close", unix.SYS_CLOSE, uint64(fd))
		return -1, err
	}
	return fd, nil
}

// cloneMount clones the mount under the helper's fd and takes the clone
// into gocr.
func (h *digger) cloneMount(fd int) (int, error) {
	empty, err := h.str("")
	if err != nil {
		return -1, err
	}
	c, err := h.call("clone for reading (open_tree)", unix.SYS_OPEN_TREE, uint64(fd), empty, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return -1, err
	}
	local, err := unix.PidfdGetfd(h.pidfd, c, 0)
	if err != nil {
		return -1, fmt.Errorf("take the clone from helper pid %d (pidfd_getfd): %w", h.pid, err)
	}
	return local, nil
}

// uncover detaches, in the copy, what covers mount point mp: the mount on
// mp itself, else the nearest covering mount above (a locked one cannot
// be detached). It reports whether anything was detached.
func (h *digger) uncover(mp string) (bool, error) {
	for q := path.Clean(mp); q != "/"; q = path.Dir(q) {
		p, err := h.str(q)
		if err != nil {
			return false, err
		}
		_, err = h.call("detach "+q, unix.SYS_UMOUNT2, p, unix.MNT_DETACH)
		if err == nil {
			return true, nil
		}
		if !failed(err) {
			return false, err
		}
	}
	return false, nil
}
