package abi

import "golang.org/x/sys/unix"

// SysV IPC and POSIX message queue structures of x86_64, as the system
// calls take them (include/uapi/asm-generic/ipcbuf.h, shmbuf.h, msgbuf.h,
// arch/x86/include/uapi/asm/sembuf.h, include/uapi/linux/mqueue.h). The
// 64-bit system calls always speak the ipc64 layouts. x/sys/unix has the
// permission block and shmid_ds (SysvIpcPerm, SysvShmDesc); the rest is
// here.

// IpcPerm is struct ipc64_perm.
type IpcPerm = unix.SysvIpcPerm

// ShmidDS is struct shmid64_ds: what shmctl IPC_STAT gives and IPC_SET
// takes (only perm.uid, perm.gid and the low 9 bits of perm.mode are set).
type ShmidDS = unix.SysvShmDesc

// SemidDS is struct semid64_ds (x86_64 has times and padding interleaved).
type SemidDS struct {
	Perm  IpcPerm
	Otime int64 // last semop
	_     uint64
	Ctime int64 // last change
	_     uint64
	Nsems uint64
	_, _  uint64
}

// MsqidDS is struct msqid64_ds.
type MsqidDS struct {
	Perm   IpcPerm
	Stime  int64 // last msgsnd
	Rtime  int64 // last msgrcv
	Ctime  int64 // last change
	Cbytes uint64
	Qnum   uint64
	Qbytes uint64 // the queue's byte limit: IPC_SET sets it too
	Lspid  int32
	Lrpid  int32
	_, _   uint64
}

// MqAttr is struct mq_attr of mq_open and mq_getsetattr.
type MqAttr struct {
	Flags   int64 // O_NONBLOCK of the open file, nothing else
	Maxmsg  int64
	Msgsize int64
	Curmsgs int64
	_       [4]int64
}

// SysV commands and flags x/sys/unix lacks (include/uapi/linux/ipc.h,
// shm.h, sem.h, msg.h).
const (
	IpcInfo    = 3        // IPC_INFO
	ShmLock    = 11       // SHM_LOCK
	ShmStat    = 13       // SHM_STAT: by index, not id
	ShmInfo    = 14       // SHM_INFO
	ShmDest    = 0o1000   // shm_perm.mode: removed, gone with the last detach
	ShmLocked  = 0o2000   // shm_perm.mode: locked in memory
	ShmExec    = 0o100000 // shmat: executable attachment
	SemGetAll  = 13       // GETALL
	SemSetAll  = 17       // SETALL
	MsgNoError = 0o10000  // MSG_NOERROR
	// MsgCopy makes msgrcv copy the message at a position (msgtyp is the
	// index) without taking it off the queue; the kernel needs
	// CONFIG_CHECKPOINT_RESTORE, and IPC_NOWAIT with it.
	MsgCopy = 0o40000

	// IpcModeBits are the permission bits IPC_SET changes.
	IpcModeBits = 0o777

	// MqueueMagic is the f_type of the mqueue filesystem.
	MqueueMagic = 0x19800202
)
