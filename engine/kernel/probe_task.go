package kernel

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
)

// probeClone3SetTid asks clone3 to create a child with this process's own
// pid as its set_tid. That pid is taken, so a kernel that knows set_tid
// fails with EEXIST and creates nothing; one with clone3 but no set_tid
// (5.3, 5.4) rejects the larger struct with E2BIG; no clone3 is ENOSYS.
func probeClone3SetTid(*probeEnv) (bool, string) {
	tid := int32(os.Getpid())
	args := cloneArgs{
		ExitSignal: uint64(unix.SIGCHLD),
		SetTid:     uint64(uintptr(unsafe.Pointer(&tid))),
		SetTidSize: 1,
	}
	r, _, errno := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
	switch {
	case errno == 0 && r == 0:
		// Cannot happen (our pid is ours), but never run Go in a raw child.
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	case errno == 0:
		unix.Kill(int(r), unix.SIGKILL)
		unix.Wait4(int(r), nil, unix.WALL, nil)
		return false, fmt.Sprintf("clone3 set_tid=%d created pid %d instead of failing", tid, r)
	case errno == unix.EEXIST:
		return true, fmt.Sprintf("clone3 set_tid=%d (taken): EEXIST", tid)
	case errno == unix.EPERM:
		return true, "clone3 set_tid: EPERM (supported; needs CAP_CHECKPOINT_RESTORE)"
	}
	return false, fmt.Sprintf("clone3 set_tid: %v", errno)
}

// capEff reads this process's effective capabilities and the highest
// capability the kernel knows.
func capEff() (eff uint64, last int, err error) {
	st, err := procfs.Status(os.Getpid())
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	last, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, 0, fmt.Errorf("parse cap_last_cap: %w", err)
	}
	return st.CapEff, last, nil
}

func probeCap(bit int, name string) (bool, string) {
	eff, last, err := capEff()
	if err != nil {
		return false, err.Error()
	}
	if bit > last {
		return false, fmt.Sprintf("kernel knows capabilities up to %d, not %s (%d)", last, name, bit)
	}
	if eff&(1<<bit) == 0 {
		return false, fmt.Sprintf("%s is not in this process's effective set", name)
	}
	return true, fmt.Sprintf("%s is effective", name)
}

func probeCapCheckpointRestore(*probeEnv) (bool, string) {
	return probeCap(capCheckpointRestore, "CAP_CHECKPOINT_RESTORE")
}

func probeCapSysResource(*probeEnv) (bool, string) {
	return probeCap(capSysResource, "CAP_SYS_RESOURCE")
}

// probeFdinfoMntID opens / and looks for mnt_id in its fdinfo.
func probeFdinfoMntID(*probeEnv) (bool, string) {
	f, err := os.Open("/")
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	fi, err := procfs.FdInfo(os.Getpid(), int(f.Fd()))
	if err != nil {
		return false, err.Error()
	}
	if fi.MntID < 0 {
		return false, "no mnt_id line in fdinfo"
	}
	return true, fmt.Sprintf("fdinfo of / has mnt_id %d", fi.MntID)
}

// probeKcmp compares an fd with its dup: the same open file.
func probeKcmp(*probeEnv) (bool, string) {
	f, err := os.Open("/")
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	fd2, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return false, fmt.Sprintf("dup: %v", err)
	}
	defer unix.Close(fd2)
	pid := uintptr(os.Getpid())
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, pid, pid, kcmpFile, f.Fd(), uintptr(fd2), 0)
	if errno != 0 {
		return false, fmt.Sprintf("kcmp: %v", errno)
	}
	if r != 0 {
		return false, fmt.Sprintf("kcmp says an fd and its dup differ (%d)", r)
	}
	return true, "kcmp KCMP_FILE matched an fd with its dup"
}

// errNoEntry says a directory that should list something was empty.
var errNoEntry = errors.New("no entry")

// probeMapFiles reads one link of /proc/self/map_files.
func probeMapFiles(*probeEnv) (bool, string) {
	d, err := os.Open("/proc/self/map_files")
	if err != nil {
		return false, err.Error()
	}
	names, err := d.Readdirnames(1)
	d.Close()
	if err != nil || len(names) == 0 {
		return false, fmt.Sprintf("list /proc/self/map_files: %v", errors.Join(err, errNoEntry))
	}
	t, err := os.Readlink("/proc/self/map_files/" + names[0])
	if err != nil {
		return false, err.Error()
	}
	return true, fmt.Sprintf("map_files/%s -> %s", names[0], t)
}

// probeTaskChildren reads this thread's children file.
func probeTaskChildren(*probeEnv) (bool, string) {
	p := fmt.Sprintf("/proc/self/task/%d/children", os.Getpid())
	if _, err := os.ReadFile(p); err != nil {
		return false, err.Error()
	}
	return true, "readable"
}

// probeNsLastPid reads ns_last_pid (never writes it).
func probeNsLastPid(*probeEnv) (bool, string) {
	b, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		return false, err.Error()
	}
	if _, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return false, fmt.Sprintf("ns_last_pid holds %q", b)
	}
	if err := unix.Access("/proc/sys/kernel/ns_last_pid", unix.W_OK); err != nil {
		return false, fmt.Sprintf("ns_last_pid not writable: %v", err)
	}
	return true, "ns_last_pid = " + strings.TrimSpace(string(b))
}

func probeTimeNS(*probeEnv) (bool, string) {
	ino, err := procfs.NamespaceInode(os.Getpid(), "time")
	if err != nil {
		return false, err.Error()
	}
	return true, fmt.Sprintf("time namespace %d", ino)
}

func probePidfd(*probeEnv) (bool, string) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false, fmt.Sprintf("pidfd_open: %v", err)
	}
	unix.Close(fd)
	return true, "pidfd_open works"
}

// probePidfs looks at the filesystem of a pidfd: pidfs (6.9) gives each
// process an inode of its own.
func probePidfs(*probeEnv) (bool, string) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false, fmt.Sprintf("pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return false, fmt.Sprintf("fstatfs of a pidfd: %v", err)
	}
	if fs.Type != 0x50494446 { // PID_FS_MAGIC
		return false, fmt.Sprintf("pidfds are on filesystem %#x, not pidfs", fs.Type)
	}
	return true, "pidfds are on pidfs"
}

// probePidfdGetfd takes a copy of one of our own fds through a pidfd.
func probePidfdGetfd(*probeEnv) (bool, string) {
	pfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false, fmt.Sprintf("pidfd_open: %v", err)
	}
	defer unix.Close(pfd)
	fd, err := unix.PidfdGetfd(pfd, pfd, 0)
	if err != nil {
		return false, fmt.Sprintf("pidfd_getfd: %v", err)
	}
	unix.Close(fd)
	return true, "pidfd_getfd works"
}

// probeTimerRestoreIDs asks prctl(PR_TIMER_CREATE_RESTORE_IDS, GET) for
// this process's mode: a kernel that knows the prctl answers 0 or 1, one
// that does not EINVAL. In that mode timer_create takes the id in
// *created_timer_id instead of choosing one.
func probeTimerRestoreIDs(*probeEnv) (bool, string) {
	r, err := unix.PrctlRetInt(unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0)
	if err != nil {
		return false, fmt.Sprintf("prctl PR_TIMER_CREATE_RESTORE_IDS GET: %v", err)
	}
	return true, fmt.Sprintf("prctl PR_TIMER_CREATE_RESTORE_IDS GET: %d", r)
}
