/*
 * posix_timers: POSIX timers (timer_create) of several clocks and kinds of
 * notification, with holes between their ids.
 *
 *   real     CLOCK_REALTIME, SIGEV_SIGNAL SIGRTMIN+1 with a pointer, every 10 ms
 *   mono     CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+2 with an int, every 20 ms
 *   cpu      CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL SIGRTMIN+3, every 5 ms of CPU
 *   thread   CLOCK_MONOTONIC, SIGEV_THREAD_ID to a second thread, SIGRTMIN+4, every 15 ms
 *   boot     CLOCK_BOOTTIME, SIGEV_SIGNAL SIGALRM, once, in an hour
 *   none     CLOCK_MONOTONIC, SIGEV_NONE, once in half an hour, then every 7 s
 *   idle     CLOCK_REALTIME, never armed
 *
 * Timers made and deleted between them leave holes in the ids, which the
 * restore must keep.
 *
 * After SIGTERM: /proc/self/timers is as it was (ids, signals, values,
 * notification targets, clocks); timer_gettime gives each its interval
 * and no more time left than it was set for (no less than that minus the
 * time since, for the one-shot ones), and the idle one is still disarmed;
 * each periodic timer keeps sending its signal, with its si_value and
 * si_timerid, the thread timer's to that thread alone; a new timer gets a
 * fresh id whatever its timer_t held (the restore left no id-choosing mode
 * on), and deleting a timer works.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zdtmlib.h"

enum { REAL, MONO, CPU, THREAD, BOOT, NONE, IDLE, NTIMERS };

static const char *names[NTIMERS] = {"real", "mono", "cpu", "thread", "boot", "none", "idle"};

struct tinfo {
	int id;
	int sig;
	clockid_t clock;
	int notify;
	long long value, interval; /* ns */
	uintptr_t sival;
	volatile int count;
	volatile int bad; /* signals with the wrong si_value, si_timerid or thread */
};

static struct tinfo timers[NTIMERS];
static volatile pid_t worker_tid;
static char sival_target[1];

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return ns(t);
}

static volatile int stray; /* timer signals of no timer here */

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (si->si_code != SI_TIMER) {
		stray++;
		return;
	}
	for (int i = 0; i < NTIMERS; i++) {
		struct tinfo *t = &timers[i];
		if (t->id != si->si_timerid || t->notify == SIGEV_NONE)
			continue;
		if (t->sig != sig || (uintptr_t)si->si_value.sival_ptr != t->sival)
			t->bad++;
		if (i == THREAD && syscall(SYS_gettid) != worker_tid)
			t->bad++;
		t->count++;
		return;
	}
	stray++;
}

static int make(int i, clockid_t clock, int notify, int sig, uintptr_t sival)
{
	struct tinfo *t = &timers[i];
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = notify;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_ptr = (void *)sival;
	if (notify == SIGEV_THREAD_ID)
		sev._sigev_un._tid = worker_tid;
	int id = -1;
	if (syscall(SYS_timer_create, clock, &sev, &id))
		fail("timer_create %s: %m", names[i]);
	t->id = id, t->sig = sig, t->clock = clock, t->notify = notify, t->sival = sival;
	return id;
}

static void arm(int i, long long value, long long interval)
{
	struct itimerspec its = {
		.it_value = {value / 1000000000LL, value % 1000000000LL},
		.it_interval = {interval / 1000000000LL, interval % 1000000000LL},
	};
	timers[i].value = value, timers[i].interval = interval;
	if (syscall(SYS_timer_settime, timers[i].id, 0, &its, NULL))
		fail("timer_settime %s: %m", names[i]);
}

/* hole makes and deletes n timers, leaving n ids unused. */
static void hole(int n)
{
	for (int k = 0; k < n; k++) {
		struct sigevent sev = {.sigev_notify = SIGEV_NONE};
		int id;
		if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id) || syscall(SYS_timer_delete, id))
			fail("hole timer: %m");
	}
}

static void read_timers(char *buf, size_t n)
{
	FILE *f = fopen("/proc/self/timers", "re");
	if (!f)
		fail("open /proc/self/timers: %m");
	size_t got = fread(buf, 1, n - 1, f);
	buf[got] = 0;
	fclose(f);
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = syscall(SYS_gettid);
	sigset_t all;
	sigemptyset(&all);
	for (;;)
		sigsuspend(&all);
	return NULL;
}

static void burn(long long ns_cpu)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	do
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	while (ns(t) - ns(t0) < ns_cpu);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	int sigs[] = {SIGRTMIN + 1, SIGRTMIN + 2, SIGRTMIN + 3, SIGRTMIN + 4, SIGALRM};
	for (unsigned k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
		if (sigaction(sigs[k], &sa, NULL))
			fail("sigaction: %m");
	/* The main thread leaves the thread timer's signal to the worker. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGRTMIN + 4);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL))
		fail("pthread_create");
	while (!worker_tid)
		usleep(1000);

	hole(3);
	make(REAL, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 1, (uintptr_t)sival_target);
	make(MONO, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 2, 42);
	hole(5);
	make(CPU, CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, SIGRTMIN + 3, 0x1234);
	make(THREAD, CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 4, 7);
	hole(2);
	make(BOOT, CLOCK_BOOTTIME, SIGEV_SIGNAL, SIGALRM, 99);
	make(NONE, CLOCK_MONOTONIC, SIGEV_NONE, 0, 0);
	make(IDLE, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 1, 5);
	long long t0 = now_ns();
	arm(REAL, 10000000, 10000000);
	arm(MONO, 20000000, 20000000);
	arm(CPU, 5000000, 5000000);
	arm(THREAD, 15000000, 15000000);
	arm(BOOT, 3600 * 1000000000LL, 0);
	arm(NONE, 1800 * 1000000000LL, 7 * 1000000000LL);
	burn(20000000);
	usleep(50000);

	static char before[8192], after[8192];
	read_timers(before, sizeof(before));
	for (int i = 0; i < NTIMERS; i++)
		test_msg("%s: id %d\n", names[i], timers[i].id);

	test_daemon();
	test_waitsig();

	long long elapsed = now_ns() - t0;
	read_timers(after, sizeof(after));
	if (strcmp(before, after))
		fail("/proc/self/timers:\n%swas\n%s", after, before);

	for (int i = 0; i < NTIMERS; i++) {
		struct tinfo *t = &timers[i];
		struct itimerspec its;
		if (syscall(SYS_timer_gettime, t->id, &its))
			fail("%s: timer_gettime %d: %m", names[i], t->id);
		long long left = ns(its.it_value), iv = ns(its.it_interval);
		if (iv != t->interval)
			fail("%s: interval %lld ns, want %lld", names[i], iv, t->interval);
		if (i == IDLE) {
			if (left)
				fail("idle: armed, %lld ns left", left);
			continue;
		}
		if (t->interval && t->value == t->interval && (left <= 0 || left > t->interval))
			fail("%s: %lld ns left, want within its period %lld", names[i], left, t->interval);
		if (t->value != t->interval && (left > t->value || left < t->value - elapsed - 1000000000LL))
			fail("%s: %lld ns left, want %lld minus at most %lld", names[i], left, t->value, elapsed);
	}
	/* The periodic timers go on, each with its own si_value and id. */
	int start[NTIMERS];
	for (int i = 0; i < NTIMERS; i++)
		start[i] = timers[i].count;
	long long deadline = now_ns() + 5000000000LL;
	for (;;) {
		burn(2000000);
		int done = 1;
		for (int i = REAL; i <= THREAD; i++)
			if (timers[i].count < start[i] + 3)
				done = 0;
		if (done)
			break;
		if (now_ns() > deadline) {
			for (int i = REAL; i <= THREAD; i++)
				if (timers[i].count < start[i] + 3)
					fail("%s: %d signals in 5 s after restore", names[i], timers[i].count - start[i]);
		}
	}
	for (int i = 0; i < NTIMERS; i++)
		if (timers[i].bad)
			fail("%s: %d signals with a wrong si_value, si_timerid or thread", names[i], timers[i].bad);
	if (stray)
		fail("%d timer signals of no timer", stray);
	if (timers[BOOT].count || timers[IDLE].count)
		fail("boot or idle fired (%d, %d)", timers[BOOT].count, timers[IDLE].count);

	/* A new timer: its id is the kernel's choice, not what id held. */
	struct sigevent sev = {.sigev_notify = SIGEV_NONE};
	int id = timers[REAL].id;
	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id))
		fail("timer_create after restore (id %d asked by accident): %m", timers[REAL].id);
	for (int i = 0; i < NTIMERS; i++)
		if (id == timers[i].id)
			fail("new timer got the id %d of %s", id, names[i]);
	if (syscall(SYS_timer_delete, id) || syscall(SYS_timer_delete, timers[IDLE].id))
		fail("timer_delete: %m");
	pass();
}
