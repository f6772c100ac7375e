/*
 * sigpending_shared: signals pending for the whole process (ShdPnd).
 *
 * A process-wide signal stays pending only while every thread blocks it,
 * which a Go program cannot promise (the runtime starts threads with its
 * own mask), hence this single-threaded C workload, the complement of the
 * Go workload sigpending (thread-private pending signals).
 *
 * With SIGUSR2 and SIGRTMIN+2 blocked, it sends itself SIGUSR2 with kill
 * and queues SIGRTMIN+2 three times with sigqueue, each with its own
 * si_value. After SIGTERM ShdPnd, SigPnd and SigBlk in /proc/self/status
 * must be as before Ready, and sigtimedwait must return SIGUSR2 (from
 * kill, SI_USER; the kernel hands out the lowest signal first), then the
 * three SIGRTMIN+2 in order with their values and SI_QUEUE from this pid,
 * and nothing more.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zdtmlib.h"

static const int values[] = {0x5a1, 0x5a2, 0xdead};

static void status(char *shd, char *pnd, char *blk)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	if (!f)
		fail("open /proc/self/status: %m");
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "ShdPnd: %16s", shd);
		sscanf(line, "SigPnd: %16s", pnd);
		sscanf(line, "SigBlk: %16s", blk);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int rt = SIGRTMIN + 2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, rt);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		fail("sigprocmask: %m");
	pid_t pid = getpid();
	if (kill(pid, SIGUSR2))
		fail("kill: %m");
	for (int i = 0; i < 3; i++)
		if (sigqueue(pid, rt, (union sigval){.sival_int = values[i]}))
			fail("sigqueue: %m");
	char shd[17] = "", pnd[17] = "", blk[17] = "";
	status(shd, pnd, blk);
	unsigned long long want = 1ULL << (SIGUSR2 - 1) | 1ULL << (rt - 1), v;
	if (sscanf(shd, "%llx", &v) != 1 || (v & want) != want)
		fail("ShdPnd %s lacks %016llx", shd, want);
	test_daemon();
	test_waitsig();

	char shd2[17] = "", pnd2[17] = "", blk2[17] = "";
	status(shd2, pnd2, blk2);
	if (strcmp(shd, shd2) || strcmp(pnd, pnd2) || strcmp(blk, blk2))
		fail("ShdPnd/SigPnd/SigBlk %s/%s/%s, were %s/%s/%s", shd2, pnd2, blk2, shd, pnd, blk);
	struct timespec zero = {0, 0};
	siginfo_t si;
	int s = sigtimedwait(&set, &si, &zero);
	if (s != SIGUSR2 || si.si_code != SI_USER || si.si_pid != pid)
		fail("signal %d (%m) code %d pid %d, want SIGUSR2 SI_USER pid %d", s, si.si_code, si.si_pid, pid);
	for (int i = 0; i < 3; i++) {
		s = sigtimedwait(&set, &si, &zero);
		if (s != rt || si.si_code != SI_QUEUE || si.si_pid != pid || si.si_value.sival_int != values[i])
			fail("instance %d: signal %d (%m) code %d pid %d value %#x, want %d SI_QUEUE pid %d value %#x", i, s, si.si_code, si.si_pid,
			     si.si_value.sival_int, rt, pid, values[i]);
	}
	if ((s = sigtimedwait(&set, &si, &zero)) != -1)
		fail("signal %d still pending after all were taken", s);
	pass();
}
