/*
 * seccomp_strict: a process in seccomp strict mode, which may only read,
 * write, exit and sigreturn.
 *
 * The root's child enters strict mode and blocks reading a pipe. The dump
 * injects system calls into it, which strict mode would answer with
 * SIGKILL: gocr must suspend seccomp while it traces the child, and the
 * restore must set strict mode again. A strict process cannot take part
 * in the zdtm protocol itself (SIGTERM's handler could not even call
 * sigprocmask), so the root checks it after restore, as CRIU's
 * seccomp_strict test does: its status says Seccomp: 1, it still answers
 * over the pipes, and a system call outside the four kills it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomplib.h"
#include "zdtmlib.h"

/* strict_child is the child's life after fork: only read, write and exit. */
static void strict_child(int in, int out) __attribute__((noreturn));
static void strict_child(int in, int out)
{
	char c;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
		syscall(SYS_exit, 10);
	if (write(out, "R", 1) != 1)
		syscall(SYS_exit, 11);
	for (;;) {
		if (read(in, &c, 1) != 1)
			syscall(SYS_exit, 12); /* the root is gone */
		switch (c) {
		case 'p':
			if (write(out, "q", 1) != 1)
				syscall(SYS_exit, 13);
			break;
		case 'k':
			syscall(SYS_getppid); /* not one of the four: SIGKILL */
			syscall(SYS_exit, 14);
			break;
		default:
			syscall(SYS_exit, 0);
		}
	}
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int to[2], from[2];
	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		fail("pipe: %m");
	pid_t kid = test_fork(); /* it never gives a verdict: the root checks it */
	if (kid == 0) {
		close(to[1]);
		close(from[0]);
		strict_child(to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	char c;
	if (read(from[0], &c, 1) != 1 || c != 'R')
		fail("the child did not enter strict mode");
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", kid);
	if (status_int(path, "Seccomp") != 1)
		fail("child %d: Seccomp %ld before the dump, want 1", kid, status_int(path, "Seccomp"));

	test_daemon();
	test_waitsig();

	if (status_int("/proc/self/status", "Seccomp") != 0)
		fail("the root is in seccomp mode %ld", status_int("/proc/self/status", "Seccomp"));
	long mode = status_int(path, "Seccomp");
	if (mode != 1)
		fail("child %d: Seccomp %ld after restore, want 1 (strict)", kid, mode);
	if (write(to[1], "p", 1) != 1 || read(from[0], &c, 1) != 1 || c != 'q')
		fail("child %d does not answer over its pipes", kid);
	if (write(to[1], "k", 1) != 1)
		fail("write: %m");
	int st;
	if (waitpid(kid, &st, 0) != kid)
		fail("waitpid: %m");
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail("child %d: a call outside strict mode's four did not kill it (status %#x)", kid, st);
	pass();
}
