/*
 * timens: a time namespace. Built twice from this file:
 *
 *   timens        the root makes it for its children, as a program can by
 *                 itself: it unshares CLONE_NEWTIME, so it stays in the
 *                 time namespace it started in while the processes it
 *                 forks afterwards are born in the new one, whose clocks
 *                 it sets MONO_OFF and BOOT_OFF ahead of its own.
 *   timens_outer  (TIMENS_OUTER) the whole tree is in it, as in a
 *                 container: zdtmlib's launcher made it (test_timens)
 *                 before it started the root.
 *   timens_nested (TIMENS_NESTED) as timens, but A unshares another time
 *                 namespace before it forks G, which is born there (with
 *                 the offsets it inherited from A's): two time namespaces
 *                 besides gocr's, which gocr refuses (crfail) and must
 *                 leave running.
 *
 *   R  root
 *   ├─ A
 *   │  └─ G
 *   └─ B
 *
 * Before ready and again after SIGTERM, the root samples its monotonic
 * and boot-time clocks and sends a sample to each of A, B and G through a
 * pipe; each reads one and then its own clocks, which must be ahead of the
 * root's sample by the distance the namespaces put between them (the
 * offsets for timens, none for timens_outer) plus the moments in between.
 * Each process also checks the namespace's offsets in
 * /proc/self/timens_offsets (which shows the time_for_children), and
 * whether its time namespace is its time_for_children.
 *
 * A restore keeps the distance between the root's clocks and its
 * children's for timens: the offsets come back exactly. For timens_outer
 * the clocks of the tree carry on from where the dump left them, as CRIU
 * does: the offsets come back smaller by the time the tree spent dumped,
 * and the root checks that its clocks never went back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zdtmlib.h"

#define NSEC 1000000000LL
#define MONO_OFF (10LL * 24 * 3600) /* seconds */
#define BOOT_OFF (20LL * 24 * 3600)
#define CHILDREN 3 /* A, B and G */
/* How late a child may read its clocks after the root's sample. */
#define LATE (60 * NSEC)
/* How much smaller the offsets of timens_outer may come back: the time
 * the tree spent dumped, over all iterations. */
#define DUMPED (600 * NSEC)

#ifdef TIMENS_OUTER
static const int64_t distance[2] = {0, 0};
#else
static const int64_t distance[2] = {MONO_OFF * NSEC, BOOT_OFF * NSEC};
#endif
static const char *clock_names[2] = {"monotonic", "boottime"};

struct sample {
	int64_t ns[2]; /* CLOCK_MONOTONIC, CLOCK_BOOTTIME */
};

static int clk[2] = {-1, -1}; /* root -> A, B, G: one sample each */
static bool made_ns;          /* this process unshared a time namespace for its children */

static struct sample now(void)
{
	static const clockid_t ids[2] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME};
	struct sample s;
	for (int i = 0; i < 2; i++) {
		struct timespec ts;
		if (clock_gettime(ids[i], &ts))
			fail("clock_gettime %s: %m", clock_names[i]);
		s.ns[i] = ts.tv_sec * NSEC + ts.tv_nsec;
	}
	return s;
}

/* offsets reads /proc/self/timens_offsets: those of the namespace this
 * process's children are born in. */
static struct sample offsets(void)
{
	char buf[256];
	struct sample s = {{-1, -1}};
	int fd = open("/proc/self/timens_offsets", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open /proc/self/timens_offsets: %m");
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		fail("read /proc/self/timens_offsets: %zd (%m)", n);
	buf[n] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char name[16];
		long long sec;
		long nsec;
		if (sscanf(line, "%15s %lld %ld", name, &sec, &nsec) != 3)
			fail("timens_offsets: bad line %s", line);
		for (int i = 0; i < 2; i++)
			if (!strcmp(name, clock_names[i]))
				s.ns[i] = sec * NSEC + nsec;
	}
	return s;
}

/* same_ns reports whether the time namespace of this process is the one
 * its children are born in. */
static bool same_ns(void)
{
	char a[64], b[64];
	ssize_t n = readlink("/proc/self/ns/time", a, sizeof(a) - 1);
	ssize_t m = readlink("/proc/self/ns/time_for_children", b, sizeof(b) - 1);
	if (n < 0 || m < 0)
		fail("readlink /proc/self/ns/time%s: %m", n < 0 ? "" : "_for_children");
	a[n] = b[m] = 0;
	return !strcmp(a, b);
}

/* check_offsets checks the namespace's offsets: exactly those set, or for
 * timens_outer after a restore, up to DUMPED less. */
static void check_offsets(const char *who, const char *when, bool restored)
{
	struct sample o = offsets();
	int64_t want[2] = {MONO_OFF * NSEC, BOOT_OFF * NSEC};
	for (int i = 0; i < 2; i++) {
		int64_t short_by = want[i] - o.ns[i];
#ifdef TIMENS_OUTER
		bool ok = short_by >= 0 && (short_by == 0 || (restored && short_by < DUMPED));
#else
		bool ok = short_by == 0;
		(void)restored;
#endif
		if (!ok)
			fail("%s %s: %s offset %" PRId64 " ns, want %" PRId64, who, when, clock_names[i], o.ns[i], want[i]);
	}
}

/* send_samples gives each of A, B and G a sample of the root's clocks. */
static void send_samples(void)
{
	struct sample s = now();
	for (int i = 0; i < CHILDREN; i++)
		if (write(clk[1], &s, sizeof(s)) != sizeof(s))
			fail("send a clock sample: %m");
}

/* check_clocks reads one of the root's samples, then this process's
 * clocks, which must be ahead by the distance between the namespaces
 * plus at most LATE. */
static void check_clocks(const char *who, const char *when)
{
	struct sample root;
	ssize_t n;
	while ((n = read(clk[0], &root, sizeof(root))) < 0 && errno == EINTR)
		;
	if (n != sizeof(root))
		fail("%s %s: read the root's clock sample: %zd (%m)", who, when, n);
	struct sample mine = now();
	for (int i = 0; i < 2; i++) {
		int64_t ahead = mine.ns[i] - root.ns[i];
		if (ahead < distance[i] || ahead > distance[i] + LATE)
			fail("%s %s: %s clock %" PRId64 " ns ahead of the root's, want %" PRId64 " and at most %lld s more", who, when,
			     clock_names[i], ahead, distance[i], LATE / NSEC);
	}
	if (same_ns() == made_ns)
		fail("%s %s: its children are%s born in its own time namespace", who, when, made_ns ? "" : " not");
	check_offsets(who, when, strcmp(when, "after SIGTERM") == 0);
}

static void member(const char *who) __attribute__((noreturn));
static void member(const char *who)
{
	check_clocks(who, "before the checkpoint");
	test_child_ready();
	check_clocks(who, "after SIGTERM");
	pass(); /* A also waits here for G */
}

static void check_root(const char *when, bool restored)
{
#ifdef TIMENS_OUTER
	if (!same_ns())
		fail("root %s: its time namespace is not the one its children are born in", when);
#else
	if (same_ns())
		fail("root %s: its children are born in its own time namespace, not the one it made", when);
#endif
	check_offsets("root", when, restored);
}

int main(int argc, char **argv)
{
#ifdef TIMENS_OUTER
	test_timens(MONO_OFF, BOOT_OFF);
	test_init(argc, argv, false);
#else
	test_init(argc, argv, true);
	char off[64];
	snprintf(off, sizeof(off), "monotonic %lld 0\nboottime %lld 0\n", MONO_OFF, BOOT_OFF);
	if (unshare(CLONE_NEWTIME))
		fail("unshare(CLONE_NEWTIME): %m");
	int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, off, strlen(off)) != (ssize_t)strlen(off))
		fail("write %s to /proc/self/timens_offsets: %m", off);
	close(fd);
#endif
	if (pipe2(clk, O_CLOEXEC))
		fail("pipe: %m");
	if (test_fork() == 0) {
#ifdef TIMENS_NESTED
		if (unshare(CLONE_NEWTIME))
			fail("A: unshare(CLONE_NEWTIME): %m");
		made_ns = true;
#endif
		if (test_fork() == 0) {
			made_ns = false; /* A's, not G's */
			member("G");
		}
		member("A");
	}
	if (test_fork() == 0)
		member("B");
	send_samples();
	test_tree_ready(CHILDREN);
	check_root("before the checkpoint", false);
	struct sample before = now();
	test_daemon();
	test_waitsig();

	struct sample after = now();
#ifdef TIMENS_OUTER
	/* The tree's clocks carry on: never back, and never by days. */
	for (int i = 0; i < 2; i++)
		if (after.ns[i] < before.ns[i] || after.ns[i] - before.ns[i] > 24 * 3600 * NSEC)
			fail("root: %s clock went from %" PRId64 " to %" PRId64 " ns across the checkpoint", clock_names[i], before.ns[i],
			     after.ns[i]);
#else
	(void)before;
	(void)after;
#endif
	check_root("after SIGTERM", true);
	send_samples();
	test_tree_check(CHILDREN);
	pass();
}
