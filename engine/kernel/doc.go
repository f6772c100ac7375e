// Package kernel is the one place that knows what the running kernel can
// do. Probe tries every feature the engine relies on (the system call,
// ioctl, ptrace request or /proc file itself, never a version check) and
// returns a Features value that `gocr check`, the engine and the zdtm suite
// all consult; Require turns a missing feature into a NotSupportedError
// that names it and the kernel version that added it.
package kernel
