package kernel

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// msgCopy is MSG_COPY (include/uapi/linux/msg.h).
const msgCopy = 0o40000

// probeIPCMsgCopy asks msgrcv to copy, not take, the first message of an
// empty private queue of its own: a kernel with MSG_COPY
// (CONFIG_CHECKPOINT_RESTORE) says ENOMSG, one without ENOSYS. The queue
// is removed again.
func probeIPCMsgCopy(*probeEnv) (bool, string) {
	id, _, errno := unix.Syscall(unix.SYS_MSGGET, unix.IPC_PRIVATE, 0o600|unix.IPC_CREAT, 0)
	if errno != 0 {
		return false, fmt.Sprintf("msgget: %v", errno)
	}
	defer unix.Syscall(unix.SYS_MSGCTL, id, unix.IPC_RMID, 0)
	var buf [16]byte
	_, _, errno = unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&buf[0])), 8, 0, unix.IPC_NOWAIT|msgCopy, 0)
	switch errno {
	case unix.ENOMSG:
		return true, "msgrcv MSG_COPY of an empty queue: ENOMSG"
	case 0:
		return false, "msgrcv MSG_COPY of an empty queue found a message"
	}
	return false, fmt.Sprintf("msgrcv MSG_COPY: %v", errno)
}

// probeIPCNextID looks for the sysctls that give a new SysV object its id.
func probeIPCNextID(*probeEnv) (bool, string) {
	for _, name := range []string{"msg_next_id", "sem_next_id", "shm_next_id"} {
		if _, err := os.Stat("/proc/sys/kernel/" + name); err != nil {
			return false, err.Error()
		}
	}
	return true, "/proc/sys/kernel/{msg,sem,shm}_next_id exist"
}
