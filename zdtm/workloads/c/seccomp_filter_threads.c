/*
 * seccomp_filter_threads: threads with different filter chains, sharing
 * what they share.
 *
 * With no_new_privs set, the main thread starts threads 0 and 1, then
 * installs a getpgid filter with SECCOMP_FILTER_FLAG_TSYNC, which puts it
 * on every thread; thread 2, started after, inherits it; thread 1 adds a
 * getsid filter of its own. So the main thread and threads 0 and 2 have
 * one filter, thread 1 two, and the first is the same for all of them.
 *
 * After restore each thread checks its own chain by what it does and by
 * /proc/thread-self/status. Then thread 1 installs a third filter with
 * TSYNC: the kernel takes it only if every other thread's chain is still
 * an ancestor of thread 1's — the first filter shared, not a copy per
 * thread — and then every thread has thread 1's three filters.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "seccomplib.h"
#include "zdtmlib.h"

#define NT 3

struct thread {
	pthread_t t;
	int n;
	pid_t tid;
	char err[200];
};

static struct thread ths[NT];
static int go[2];
static pthread_barrier_t started, installed, checked, synced;

static void thread_fail(struct thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void thread_fail(struct thread *t, const char *fmt, ...)
{
	if (t->err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
}

/* check_self checks the calling thread: nfilters filters, getsid filtered
 * or not, getpriority filtered or not. */
static void check_self(struct thread *t, const char *when, int nfilters, int sid, int prio)
{
	long n = status_int("/proc/thread-self/status", "Seccomp_filters");
	if (status_int("/proc/thread-self/status", "Seccomp") != 2 || (n != -1 && n != nfilters))
		thread_fail(t, "%s: Seccomp %ld with %ld filters, want 2 with %d", when,
			    status_int("/proc/thread-self/status", "Seccomp"), n, nfilters);
	if (status_int("/proc/thread-self/status", "NoNewPrivs") != 1)
		thread_fail(t, "%s: NoNewPrivs is not 1", when);
	if (!filtered(SYS_getpgid, ERRNO_PGID))
		thread_fail(t, "%s: getpgid is not filtered", when);
	if (filtered(SYS_getsid, ERRNO_SID) != sid)
		thread_fail(t, "%s: getsid is %sfiltered", when, sid ? "not " : "");
	if (filtered(SYS_getpriority, ERRNO_PRIO) != prio)
		thread_fail(t, "%s: getpriority is %sfiltered", when, prio ? "not " : "");
}

static void *run(void *arg)
{
	struct thread *t = arg;
	char c;
	t->tid = gettid();
	if (t->n < 2)
		pthread_barrier_wait(&started);
	pthread_barrier_wait(&installed);
	if (t->n == 1 && errno_filter(SYS_getsid, ERRNO_SID, 0))
		thread_fail(t, "install the getsid filter: %m");
	pthread_barrier_wait(&checked);
	/* Blocked here through the dump. */
	if (read(go[0], &c, 1) != 1)
		thread_fail(t, "read: %m");
	check_self(t, "after restore", t->n == 1 ? 2 : 1, t->n == 1, 0);
	pthread_barrier_wait(&checked);
	if (t->n == 1) {
		long r = errno_filter(SYS_getpriority, ERRNO_PRIO, SECCOMP_FILTER_FLAG_TSYNC);
		if (r)
			thread_fail(t, "TSYNC after restore: %ld (%m): the threads do not share their first filter", r);
	}
	pthread_barrier_wait(&synced);
	check_self(t, "after thread 1's TSYNC", 3, 1, 1);
	return NULL;
}

static void check_counts(const char *when)
{
	char path[64];
	for (int i = 0; i < NT; i++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/status", ths[i].tid);
		long n = status_int(path, "Seccomp_filters"), want = i == 1 ? 2 : 1;
		if (status_int(path, "Seccomp") != 2 || (n != -1 && n != want))
			fail("%s: thread %d (tid %d): Seccomp %ld with %ld filters, want 2 with %ld", when, i, ths[i].tid,
			     status_int(path, "Seccomp"), n, want);
	}
	long n = status_int("/proc/thread-self/status", "Seccomp_filters");
	if (n != -1 && n != 1)
		fail("%s: the main thread has %ld filters, want 1", when, n);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	if (pipe2(go, O_CLOEXEC))
		fail("pipe: %m");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		fail("PR_SET_NO_NEW_PRIVS: %m");
	pthread_barrier_init(&started, NULL, 3);
	pthread_barrier_init(&installed, NULL, NT + 1);
	pthread_barrier_init(&checked, NULL, NT + 1);
	pthread_barrier_init(&synced, NULL, NT + 1);
	for (int i = 0; i < NT; i++) {
		ths[i].n = i;
		if (i == 2) {
			pthread_barrier_wait(&started);
			long r = errno_filter(SYS_getpgid, ERRNO_PGID, SECCOMP_FILTER_FLAG_TSYNC);
			if (r)
				fail("install the getpgid filter with TSYNC: %ld (%m)", r);
		}
		if (pthread_create(&ths[i].t, NULL, run, &ths[i]))
			fail("pthread_create: %m");
	}
	pthread_barrier_wait(&installed);
	pthread_barrier_wait(&checked);
	check_counts("before the dump");

	test_daemon();
	test_waitsig();

	check_counts("after restore");
	if (write(go[1], "ggg", NT) != NT)
		fail("wake the threads: %m");
	struct thread self = {.n = -1};
	check_self(&self, "after restore", 1, 0, 0);
	pthread_barrier_wait(&checked);
	pthread_barrier_wait(&synced);
	check_self(&self, "after thread 1's TSYNC", 3, 1, 1);
	for (int i = 0; i < NT; i++) {
		pthread_join(ths[i].t, NULL);
		if (ths[i].err[0])
			fail("thread %d: %s", i, ths[i].err);
	}
	if (self.err[0])
		fail("main thread: %s", self.err);
	pass();
}
