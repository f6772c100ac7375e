package abi

// CloneArgs is struct clone_args (include/uapi/linux/sched.h) for clone3,
// up to CLONE_ARGS_SIZE_VER2 (cgroup). Pointers are carried as uint64
// because the struct is often built for, and written into, another task's
// address space.
type CloneArgs struct {
	Flags      uint64
	Pidfd      uint64
	ChildTid   uint64
	ParentTid  uint64
	ExitSignal uint64
	Stack      uint64 // lowest address of the stack; the kernel adds StackSize
	StackSize  uint64
	TLS        uint64
	SetTid     uint64 // address of a pid_t array, innermost pid namespace first
	SetTidSize uint64 // entries in SetTid, at most the namespace nesting depth + 1
	Cgroup     uint64 // cgroup2 fd, with CLONE_INTO_CGROUP
}

// CloneArgsSize is sizeof(struct clone_args) as passed to clone3.
const CloneArgsSize = 88
