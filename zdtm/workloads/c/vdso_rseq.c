/*
 * vdso_rseq: a dynamically linked program living on the vDSO and rseq.
 *
 * It calls clock_gettime(CLOCK_MONOTONIC) (served by the vDSO) and
 * sched_getcpu() (which glibc >= 2.35 answers from the rseq area it
 * registered for the thread) in a loop, before and after Ready, checking
 * each time that the clock never goes back, that the CPU is a valid one and
 * that the rseq area's cpu_id agrees with the getcpu system call. Before
 * Ready and after SIGTERM it checks that the auxiliary vector's vDSO address
 * still holds an ELF image, that /proc/self/maps has a [vdso], and that
 * rseq is still registered with glibc's area: registering the same area
 * again must fail with EBUSY.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zdtmlib.h"

static struct timespec last;
static long loops;
static int ncpus;

static struct rseq *rseq_area(void) { return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset); }

static void check_rseq_registered(const char *when)
{
	if (__rseq_size == 0)
		fail("%s: glibc did not register rseq (__rseq_size 0)", when);
	struct rseq *rs = rseq_area();
	/* glibc registers 32 bytes; __rseq_size may name only the used part. */
	unsigned lens[] = {32, __rseq_size};
	for (unsigned i = 0; i < 2; i++) {
		long r = syscall(SYS_rseq, rs, lens[i], 0, RSEQ_SIG);
		if (r == 0)
			fail("%s: rseq was not registered: registering %p+%u succeeded", when, (void *)rs, lens[i]);
		if (errno == EBUSY)
			return;
		if (errno != EINVAL)
			fail("%s: rseq(%p, %u): %m", when, (void *)rs, lens[i]);
	}
	fail("%s: rseq is registered, but not with glibc's area %p (EINVAL)", when, (void *)rs);
}

static void check_vdso(const char *when)
{
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	if (!base)
		fail("%s: no AT_SYSINFO_EHDR in the auxiliary vector", when);
	if (memcmp((void *)base, ELFMAG, SELFMAG))
		fail("%s: no ELF image at the vDSO address %#lx", when, base);
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	bool found = false;
	if (!f)
		fail("open /proc/self/maps: %m");
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, "[vdso]") != NULL;
	fclose(f);
	if (!found)
		fail("%s: no [vdso] in /proc/self/maps", when);
}

static void step(void)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now))
		fail("clock_gettime: %m");
	if (now.tv_sec < last.tv_sec || (now.tv_sec == last.tv_sec && now.tv_nsec < last.tv_nsec))
		fail("CLOCK_MONOTONIC went back from %lld.%09ld to %lld.%09ld after %ld loops", (long long)last.tv_sec, last.tv_nsec,
		     (long long)now.tv_sec, now.tv_nsec, loops);
	last = now;
	int cpu = sched_getcpu();
	if (cpu < 0 || cpu >= ncpus)
		fail("sched_getcpu returned %d (%m), want 0..%d", cpu, ncpus - 1);
	/* The thread may move between the two reads: retry a few times. */
	for (int i = 0;; i++) {
		unsigned sys;
		if (syscall(SYS_getcpu, &sys, NULL, NULL))
			fail("getcpu: %m");
		int32_t rs = (int32_t)__atomic_load_n(&rseq_area()->cpu_id, __ATOMIC_RELAXED);
		if (rs == (int32_t)sys)
			break;
		if (i == 100)
			fail("rseq cpu_id is %d, getcpu says %u", rs, sys);
	}
	loops++;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	ncpus = sysconf(_SC_NPROCESSORS_CONF);
	check_vdso("before ready");
	check_rseq_registered("before ready");
	for (int i = 0; i < 1000; i++)
		step();
	test_daemon();
	struct timespec ms = {0, 1000000};
	while (!test_stopped()) {
		step();
		nanosleep(&ms, NULL);
	}
	long at_term = loops;
	check_vdso("after SIGTERM");
	check_rseq_registered("after SIGTERM");
	for (int i = 0; i < 1000; i++)
		step();
	test_msg("%ld loops, %ld after SIGTERM\n", loops, loops - at_term);
	pass();
}
