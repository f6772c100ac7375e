// Package engine checkpoints a live Linux process tree to a directory of
// CRIU-format image files and restores it, without a parasite or restorer
// blob: everything is done from outside the tasks with ptrace, /proc,
// process_vm_readv/writev and system calls injected into stopped tasks.
//
// The two entry points are Dump and Restore. They are checklists that call
// the per-object packages (mem, files, sig, creds, ...); those packages never
// call back into the drivers.
package engine
