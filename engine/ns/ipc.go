package ns

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-var"
	"golang.org/x/sys/unix"
)

// ipcSysctls are the per-ipc-namespace limits under /proc/sys (as seen from
// a thread inside the namespace), in ipc_var_entry's terms.
var ipcSysctls = []struct {
	path string
	set  func(e *ipc_var.IpcVarEntry, v uint64)
	get  func(e *ipc_var.IpcVarEntry) (uint64, bool)
}{
	{"kernel/msgmax", func(e *ipc_var.IpcVarEntry, v uint64) { e.MsgCtlmax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMsgCtlmax()), e.MsgCtlmax != nil }},
	{"kernel/msgmnb", func(e *ipc_var.IpcVarEntry, v uint64) { e.MsgCtlmnb = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMsgCtlmnb()), e.MsgCtlmnb != nil }},
	{"kernel/msgmni", func(e *ipc_var.IpcVarEntry, v uint64) { e.MsgCtlmni = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMsgCtlmni()), e.MsgCtlmni != nil }},
	{"kernel/shmmax", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmCtlmax = ptr(v) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return e.GetShmCtlmax(), e.ShmCtlmax != nil }},
	{"kernel/shmall", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmCtlall = ptr(v) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return e.GetShmCtlall(), e.ShmCtlall != nil }},
	{"kernel/shmmni", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmCtlmni = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetShmCtlmni()), e.ShmCtlmni != nil }},
	{"kernel/shm_rmid_forced", func(e *ipc_var.IpcVarEntry, v uint64) { e.ShmRmidForced = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) {
		return uint64(e.GetShmRmidForced()), e.ShmRmidForced != nil
	}},
	{"fs/mqueue/queues_max", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqQueuesMax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqQueuesMax()), e.MqQueuesMax != nil }},
	{"fs/mqueue/msg_max", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqMsgMax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqMsgMax()), e.MqMsgMax != nil }},
	{"fs/mqueue/msgsize_max", func(e *ipc_var.IpcVarEntry, v uint64) { e.MqMsgsizeMax = ptr(uint32(v)) }, func(e *ipc_var.IpcVarEntry) (uint64, bool) { return uint64(e.GetMqMsgsizeMax()), e.MqMsgsizeMax != nil }},
}

// DumpIPC reads the limits of pid's ipc namespace. SysV objects in it are
// not supported yet and are refused, naming what is there.
func DumpIPC(pid int) (*ipc_var.IpcVarEntry, error) {
	e := &ipc_var.IpcVarEntry{AutoMsgmni: ptr(uint32(0))}
	err := Enter(pid, "ipc", func() error {
		for _, kind := range []string{"shm", "sem", "msg"} {
			b, err := os.ReadFile("/proc/sysvipc/" + kind)
			if err != nil {
				return err
			}
			if lines := strings.Count(strings.TrimSpace(string(b)), "\n"); lines > 0 {
				return fmt.Errorf("%d SysV %s objects: SysV IPC is not supported yet", lines, kind)
			}
		}
		for _, s := range ipcSysctls {
			v, err := readSysctl(s.path)
			if err != nil {
				return err
			}
			s.set(e, v)
		}
		b, err := os.ReadFile("/proc/sys/kernel/sem")
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return fmt.Errorf("/proc/sys/kernel/sem: %w", err)
			}
			e.SemCtls = append(e.SemCtls, uint32(n))
		}
		return nil
	})
	return e, err
}

// RestoreIPC sets the limits in pid's fresh ipc namespace.
func RestoreIPC(pid int, e *ipc_var.IpcVarEntry) error {
	return Enter(pid, "ipc", func() error {
		if err := actAsSysctlOwner("/proc/sys/kernel/msgmax"); err != nil {
			return err
		}
		for _, s := range ipcSysctls {
			if v, ok := s.get(e); ok {
				if err := os.WriteFile("/proc/sys/"+s.path, []byte(strconv.FormatUint(v, 10)), 0); err != nil {
					return fmt.Errorf("set %s=%d: %w", s.path, v, err)
				}
			}
		}
		if len(e.SemCtls) == 4 {
			v := fmt.Sprintf("%d %d %d %d", e.SemCtls[0], e.SemCtls[1], e.SemCtls[2], e.SemCtls[3])
			if err := os.WriteFile("/proc/sys/kernel/sem", []byte(v), 0); err != nil {
				return fmt.Errorf("set kernel/sem=%s: %w", v, err)
			}
		}
		return nil
	})
}

func readSysctl(path string) (uint64, error) {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/sys/%s: %w", path, err)
	}
	return v, nil
}

// actAsSysctlOwner gives the calling thread, a throwaway one, the
// effective ids that own the sysctl file p. The ipc sysctls of a
// namespace that belongs to another user namespace are writable only by
// that namespace's root (ipc_permissions: no capability overrides it), and
// gocr's root is not that root. Only this thread changes (a raw system
// call, not Go's all-threads Setuid), and it dies with Enter.
func actAsSysctlOwner(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if int(st.Uid) == unix.Geteuid() {
		return nil
	}
	keep := ^uintptr(0) // -1: leave that id as it is
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, keep, uintptr(st.Gid), keep); e != 0 {
		return fmt.Errorf("act as the owner of %s: setresgid %d: %w", p, st.Gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(st.Uid), keep); e != 0 {
		return fmt.Errorf("act as the owner of %s: setresuid %d: %w", p, st.Uid, e)
	}
	return nil
}
