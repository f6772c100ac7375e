/*
 * stopped: processes in job-control stop stay stopped.
 *
 * The root makes two children, the second in a process group of its own,
 * stops the first with SIGSTOP and the second with SIGTSTP, and sees them
 * stop (waitid WSTOPPED|WNOWAIT, which leaves the report pending). SIGTSTP
 * would not stop the first: the kernel discards it for a process in an
 * orphaned process group, which the root's is; the second's group is not
 * orphaned, as its parent, the root, is in another group of its session.
 * After restore both must still be stopped (state T in their stat), with
 * a stop report of the same signal for the root's waitid, and SIGCONT
 * must set them going again: each then checks in and passes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zdtmlib.h"

/* state returns the state letter of pid's stat, or '?'. */
static char state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int sigs[2] = {SIGSTOP, SIGTSTP};
	pid_t kids[2];
	for (int i = 0; i < 2; i++) {
		kids[i] = test_fork();
		if (kids[i] == 0) {
			if (i == 1 && setpgid(0, 0))
				fail("setpgid: %m");
			test_child_ready();
			pass();
		}
	}
	test_tree_ready(2);
	for (int i = 0; i < 2; i++) {
		siginfo_t si = {0};
		if (kill(kids[i], sigs[i]))
			fail("kill %d: %m", kids[i]);
		if (waitid(P_PID, kids[i], &si, WSTOPPED | WNOWAIT) || si.si_code != CLD_STOPPED || si.si_status != sigs[i])
			fail("child %d did not stop with signal %d (code %d status %d): %m", kids[i], sigs[i], si.si_code, si.si_status);
	}

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 2; i++) {
		siginfo_t si = {0};
		if (state(kids[i]) != 'T')
			fail("child %d (stopped by signal %d) is in state %c after restore, not T", kids[i], sigs[i], state(kids[i]));
		if (waitid(P_PID, kids[i], &si, WSTOPPED | WNOWAIT | WNOHANG) || si.si_pid != kids[i] ||
		    si.si_code != CLD_STOPPED || si.si_status != sigs[i])
			fail("child %d: after restore waitid reports pid %d code %d status %d, want a stop by signal %d: %m",
			     kids[i], si.si_pid, si.si_code, si.si_status, sigs[i]);
	}
	for (int i = 0; i < 2; i++) {
		if (kill(kids[i], SIGCONT))
			fail("SIGCONT %d: %m", kids[i]);
		for (int n = 0; state(kids[i]) == 'T'; n++) {
			if (n > 500)
				fail("child %d still stopped after SIGCONT", kids[i]);
			nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
		}
	}
	test_tree_check(2);
	pass();
}
