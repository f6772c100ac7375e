/*
 * seccomplib: what the seccomp workloads share: a filter that makes one
 * system call fail with a chosen errno, and a reader of /proc status lines.
 *
 * The filtered calls are ones neither zdtmlib nor glibc makes on the way
 * to a verdict (test_fork calls getppid, so that one is never filtered).
 */
#ifndef SECCOMPLIB_H
#define SECCOMPLIB_H

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The errnos of the workloads' filters: getpgid, getsid, getpriority. */
#define ERRNO_PGID 1001
#define ERRNO_SID 1002
#define ERRNO_PRIO 1003

/* errno_filter installs a filter returning errno for nr, allowing the rest;
 * it returns seccomp(2)'s result (with TSYNC, 0 or the tid that could not
 * be synchronised), -1 with errno on error. */
static inline long errno_filter(long nr, int err, unsigned int flags)
{
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* filtered says whether the call nr (one argument, 0) now fails with err. */
static inline int filtered(long nr, int err)
{
	errno = 0;
	long r = nr == SYS_getpriority ? syscall(nr, 0, 0) : syscall(nr, 0);
	return r == -1 && errno == err;
}

/* status_int reads the number after "key:" in a status file, -1 if absent. */
static inline long status_int(const char *path, const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			sscanf(line + n + 1, "%ld", &v);
			break;
		}
	fclose(f);
	return v;
}

#endif
