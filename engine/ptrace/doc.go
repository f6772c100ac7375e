// Package ptrace is everything the engine does to a stopped task: seizing
// and interrupting threads, reading and writing their registers, xstate,
// signal mask, queued signals and rseq registration, running system calls
// inside them without writing any code into them, and spawning restore
// stubs and threads with exact pids.
//
// ptrace is per OS thread, so every ptrace, wait4 and clone goes through one
// Tracer, which owns a goroutine locked to its own OS thread. Tasks are
// identified by tid in the tracer's pid namespace.
package ptrace
