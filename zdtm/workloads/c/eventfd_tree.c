/*
 * eventfd_tree: eventfds shared by a parent and its child.
 *
 * The parent makes a counting eventfd holding 7 and a semaphore eventfd
 * holding 3 (non-blocking), and a pipe; then it forks a child, which
 * inherits all three and waits on the pipe. After SIGTERM the parent
 * checks through fdinfo that the counter still holds 7 and its flags are
 * unchanged, then writes to the pipe: the child adds 35 to the counter,
 * takes one from the semaphore and exits 0. The parent then reads 42 from
 * the counter and 1, 1, then EAGAIN from the semaphore: each eventfd is
 * one open file for both processes, as before the dump.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmlib.h"

static void child(int counter, int sem, int go)
{
	char c;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (read(go, &c, 1) != 1)
		_exit(10);
	uint64_t v = 35;
	if (write(counter, &v, sizeof(v)) != sizeof(v))
		_exit(11);
	if (read(sem, &v, sizeof(v)) != sizeof(v) || v != 1)
		_exit(12);
	_exit(0);
}

/* count reads the eventfd-count line of fd's fdinfo. */
static unsigned long long count(int fd)
{
	char path[64], line[256];
	unsigned long long v = ~0ULL;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		fail("open %s: %m", path);
	while (fgets(line, sizeof(line), f))
		sscanf(line, "eventfd-count: %llx", &v);
	fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int counter = eventfd(7, EFD_CLOEXEC);
	int sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	int p[2];
	if (counter < 0 || sem < 0 || pipe(p))
		fail("eventfd or pipe: %m");
	pid_t pid = test_fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		close(p[1]);
		child(counter, sem, p[0]);
	}
	close(p[0]);
	int flc = fcntl(counter, F_GETFL), fls = fcntl(sem, F_GETFL);

	test_daemon();
	test_waitsig();

	if (count(counter) != 7 || count(sem) != 3)
		fail("counts %llu and %llu, want 7 and 3", count(counter), count(sem));
	if (fcntl(counter, F_GETFL) != flc || fcntl(sem, F_GETFL) != fls || fcntl(counter, F_GETFD) != FD_CLOEXEC)
		fail("flags %#o/%#o, were %#o/%#o", fcntl(counter, F_GETFL), fcntl(sem, F_GETFL), flc, fls);
	if (write(p[1], "g", 1) != 1)
		fail("wake the child: %m");
	int st;
	if (waitpid(pid, &st, 0) != pid)
		fail("waitpid %d: %m", pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("child status %#x", st);
	uint64_t v;
	if (read(counter, &v, sizeof(v)) != sizeof(v) || v != 42)
		fail("counter %llu (%m), want 42", (unsigned long long)v);
	for (int i = 0; i < 2; i++)
		if (read(sem, &v, sizeof(v)) != sizeof(v) || v != 1)
			fail("semaphore read %d: %llu (%m), want 1", i, (unsigned long long)v);
	if (read(sem, &v, sizeof(v)) != -1 || errno != EAGAIN)
		fail("semaphore not empty after three takes (%m)");
	pass();
}
