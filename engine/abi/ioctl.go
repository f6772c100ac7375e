package abi

// ioctls of the fd kinds the engine restores that golang.org/x/sys/unix
// does not carry. Both exist only with CONFIG_CHECKPOINT_RESTORE: they let a
// restorer put back state no other call can set. Spelled as the kernel's
// _IOW(type, nr, size): direction write (1<<30), size, type, number.
const (
	// TFD_IOC_SET_TICKS (3.17) sets a timerfd's count of expirations not
	// yet read: _IOW('T', 0, __u64). timerfd_settime zeroes it.
	TFD_IOC_SET_TICKS = 1<<30 | 8<<16 | 'T'<<8 | 0
	// INOTIFY_IOC_SETNEXTWD (4.16) makes the next inotify_add_watch hand
	// out the given watch descriptor: _IOW('I', 0, __s32).
	INOTIFY_IOC_SETNEXTWD = 1<<30 | 4<<16 | 'I'<<8 | 0
)
