/*
 * signalfd: signalfds reading blocked signals that are pending.
 *
 * With SIGUSR1, SIGUSR2 and SIGRTMIN+1 blocked, it opens two signalfds: A
 * (non-blocking, close-on-exec) reads SIGUSR1 and SIGRTMIN+1, B (blocking)
 * reads SIGUSR2. It sends itself SIGUSR1 with kill, queues SIGRTMIN+1
 * twice with sigqueue and sends SIGUSR2. After SIGTERM both fds must have
 * the sigmask and flags they had (fdinfo, F_GETFL, F_GETFD), and reading A
 * must give SIGUSR1 (SI_USER from this pid), then the two SIGRTMIN+1 in
 * order with their values, then EAGAIN; B must give SIGUSR2 and then
 * nothing more. The signals stay pending on the task across the restore;
 * the signalfds only read them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "zdtmlib.h"

static const int values[] = {0x5f1, 0x5f2};

/* sigmask_line copies the "sigmask:" line of fd's fdinfo into buf. */
static void sigmask_line(int fd, char *buf, size_t n)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		fail("open %s: %m", path);
	buf[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "sigmask:", 8))
			snprintf(buf, n, "%s", line);
	fclose(f);
	if (!buf[0])
		fail("%s has no sigmask line", path);
}

static void expect(int fd, int signo, int code, int value, const char *what)
{
	struct signalfd_siginfo si;
	ssize_t n = read(fd, &si, sizeof(si));
	if (n != sizeof(si))
		fail("%s: read %zd bytes (%m), want one siginfo", what, n);
	if ((int)si.ssi_signo != signo || si.ssi_code != code || (pid_t)si.ssi_pid != getpid())
		fail("%s: signal %u code %d pid %u, want %d code %d pid %d", what, si.ssi_signo, si.ssi_code, si.ssi_pid, signo, code,
		     getpid());
	if (code == SI_QUEUE && si.ssi_int != value)
		fail("%s: value %#x, want %#x", what, si.ssi_int, value);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int rt = SIGRTMIN + 1;
	sigset_t blocked, ma, mb;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGUSR1);
	sigaddset(&blocked, SIGUSR2);
	sigaddset(&blocked, rt);
	if (sigprocmask(SIG_BLOCK, &blocked, NULL))
		fail("sigprocmask: %m");
	sigemptyset(&ma);
	sigaddset(&ma, SIGUSR1);
	sigaddset(&ma, rt);
	sigemptyset(&mb);
	sigaddset(&mb, SIGUSR2);
	int a = signalfd(-1, &ma, SFD_NONBLOCK | SFD_CLOEXEC);
	int b = signalfd(-1, &mb, 0);
	if (a < 0 || b < 0)
		fail("signalfd: %m");
	pid_t pid = getpid();
	if (kill(pid, SIGUSR1))
		fail("kill SIGUSR1: %m");
	for (int i = 0; i < 2; i++)
		if (sigqueue(pid, rt, (union sigval){.sival_int = values[i]}))
			fail("sigqueue: %m");
	if (kill(pid, SIGUSR2))
		fail("kill SIGUSR2: %m");
	char ma0[256], mb0[256];
	sigmask_line(a, ma0, sizeof(ma0));
	sigmask_line(b, mb0, sizeof(mb0));
	int fla = fcntl(a, F_GETFL), flb = fcntl(b, F_GETFL);
	int fda = fcntl(a, F_GETFD), fdb = fcntl(b, F_GETFD);

	test_daemon();
	test_waitsig();

	char ma1[256], mb1[256];
	sigmask_line(a, ma1, sizeof(ma1));
	sigmask_line(b, mb1, sizeof(mb1));
	if (strcmp(ma0, ma1) || strcmp(mb0, mb1))
		fail("sigmask lines %s/%s, were %s/%s", ma1, mb1, ma0, mb0);
	if (fcntl(a, F_GETFL) != fla || fcntl(b, F_GETFL) != flb)
		fail("file flags %#o/%#o, were %#o/%#o", fcntl(a, F_GETFL), fcntl(b, F_GETFL), fla, flb);
	if (fcntl(a, F_GETFD) != fda || fcntl(b, F_GETFD) != fdb)
		fail("fd flags %d/%d, were %d/%d", fcntl(a, F_GETFD), fcntl(b, F_GETFD), fda, fdb);
	expect(a, SIGUSR1, SI_USER, 0, "A first");
	expect(a, rt, SI_QUEUE, values[0], "A second");
	expect(a, rt, SI_QUEUE, values[1], "A third");
	struct signalfd_siginfo si;
	if (read(a, &si, sizeof(si)) != -1 || errno != EAGAIN)
		fail("A: a fourth signal %u, or no EAGAIN (%m)", si.ssi_signo);
	struct pollfd p = {.fd = b, .events = POLLIN};
	if (poll(&p, 1, 1000) != 1)
		fail("B: not readable (%m)");
	expect(b, SIGUSR2, SI_USER, 0, "B");
	if (poll(&p, 1, 0) != 0)
		fail("B: readable after its only signal");
	pass();
}
