/*
 * prctl_state: process and thread state set by prctl and membarrier.
 *
 *   PR_SET_THP_DISABLE 1          the process (its mm)
 *   PR_SET_CHILD_SUBREAPER 1      the process
 *   PR_SET_DUMPABLE 0             the process
 *   PR_SET_NAME                   each thread its own
 *   PR_SET_PDEATHSIG              each thread its own (signals ignored by
 *                                 default, so a parent's exit harms nothing)
 *   membarrier REGISTER_PRIVATE_EXPEDITED, REGISTER_GLOBAL_EXPEDITED,
 *   REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (where the kernel has each)
 *
 * After SIGTERM each thread reads its own back with the PR_GET_ calls;
 * the membarrier registrations are read with MEMBARRIER_CMD_GET_REGISTRATIONS
 * (6.3) where the kernel has it, and a private expedited barrier must work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmlib.h"

#define GET_REGISTRATIONS (1 << 9)

static int membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

struct thread_state {
	const char *name;
	int pdeathsig;
};

static const struct thread_state main_state = {"prctl-main", SIGWINCH};
static const struct thread_state worker_state = {"prctl-worker", SIGURG};

static volatile int worker_ready, worker_check, worker_verdict;
static char worker_err[256];

static void set_thread(const struct thread_state *s)
{
	if (prctl(PR_SET_NAME, s->name, 0, 0, 0) || prctl(PR_SET_PDEATHSIG, s->pdeathsig, 0, 0, 0))
		fail("%s: prctl: %m", s->name);
}

/* check_thread returns NULL or what is wrong, in buf. */
static const char *check_thread(const struct thread_state *s, char *buf, size_t n)
{
	char name[17] = {0};
	int sig = -1;
	if (prctl(PR_GET_NAME, name, 0, 0, 0) || prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0)) {
		snprintf(buf, n, "%s: prctl get: %s", s->name, strerror(errno));
		return buf;
	}
	if (strcmp(name, s->name) || sig != s->pdeathsig) {
		snprintf(buf, n, "thread %s: name %s, parent-death signal %d (want %d)", s->name, name, sig, s->pdeathsig);
		return buf;
	}
	return NULL;
}

static void *worker(void *arg)
{
	(void)arg;
	set_thread(&worker_state);
	worker_ready = 1;
	while (!worker_check)
		usleep(10000);
	worker_verdict = check_thread(&worker_state, worker_err, sizeof(worker_err)) ? 2 : 1;
	return NULL;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	set_thread(&main_state);
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		fail("pthread_create");
	while (!worker_ready)
		usleep(1000);
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		fail("PR_SET_THP_DISABLE: %m");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		fail("PR_SET_CHILD_SUBREAPER: %m");
	int want = 0;
	int regs[] = {MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
		      MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE};
	for (unsigned i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		if (membarrier(regs[i]) == 0)
			want |= regs[i];
		else if (errno != EINVAL && errno != ENOSYS)
			fail("membarrier register %#x: %m", regs[i]);
	}
	int have = membarrier(GET_REGISTRATIONS);
	if (have >= 0 && have != want)
		fail("membarrier registrations %#x before the dump, want %#x", have, want);
	test_msg("membarrier registrations %#x\n", want);
	/* Last: a process that is not dumpable makes its /proc root's. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		fail("PR_SET_DUMPABLE: %m");

	test_daemon();
	test_waitsig();

	char buf[256];
	const char *bad = check_thread(&main_state, buf, sizeof(buf));
	if (bad)
		fail("%s", bad);
	worker_check = 1;
	pthread_join(th, NULL);
	if (worker_verdict != 1)
		fail("%s", worker_err);
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
		fail("THP disable: %d, want 1", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	int sub = -1;
	if (prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) || sub != 1)
		fail("child subreaper: %d, want 1", sub);
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		fail("dumpable: %d, want 0", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	if (have >= 0 && (have = membarrier(GET_REGISTRATIONS)) != want)
		fail("membarrier registrations %#x, want %#x", have, want);
	if ((want & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		fail("membarrier private expedited: %m (registration lost)");
	pass();
}
