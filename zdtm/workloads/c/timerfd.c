/*
 * timerfd: timerfds armed, expired and periodic.
 *
 *   periodic  CLOCK_MONOTONIC, every 50 ms, non-blocking
 *   oneshot   CLOCK_REALTIME, fires in an hour
 *   absolute  CLOCK_MONOTONIC, TFD_TIMER_ABSTIME, fires in half an hour
 *   expired   CLOCK_BOOTTIME, fired once 1 ms after it was set, not read
 *
 * After SIGTERM: the expired timer still has its one unread expiration
 * and is disarmed; the periodic one has its period, fires again within a
 * few periods, and has not counted more expirations than time has passed;
 * the one-shot and absolute ones have their time left no longer than they
 * were set for and no shorter than that minus the time since (a restore
 * starts the time left anew: the time the tree spent dumped does not
 * count, as with CRIU); fdinfo shows the same clocks and settime flags.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "zdtmlib.h"

#define PERIOD_NS 50000000LL
#define ONESHOT_S 3600
#define ABS_S 1800

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long now_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return ns(t);
}

static int timer(clockid_t clock, int flags, int setflags, long long value, long long interval)
{
	int fd = timerfd_create(clock, flags);
	if (fd < 0)
		fail("timerfd_create %d: %m", clock);
	struct itimerspec its = {
		.it_value = {value / 1000000000LL, value % 1000000000LL},
		.it_interval = {interval / 1000000000LL, interval % 1000000000LL},
	};
	if (timerfd_settime(fd, setflags, &its, NULL))
		fail("timerfd_settime: %m");
	return fd;
}

/* fdinfo_lines copies fd's "clockid:" and "settime flags:" lines into buf. */
static void fdinfo_lines(int fd, char *buf, size_t n)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		fail("open %s: %m", path);
	buf[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "clockid:", 8) || !strncmp(line, "settime flags:", 14))
			strncat(buf, line, n - strlen(buf) - 1);
	fclose(f);
}

static struct itimerspec get(int fd, const char *what)
{
	struct itimerspec its;
	if (timerfd_gettime(fd, &its))
		fail("%s: timerfd_gettime: %m", what);
	return its;
}

static void check_left(int fd, const char *what, long long set, long long elapsed)
{
	struct itimerspec its = get(fd, what);
	long long left = ns(its.it_value);
	if (ns(its.it_interval) != 0)
		fail("%s: interval %lld ns, want none", what, ns(its.it_interval));
	if (left > set || left < set - elapsed - 1000000000LL)
		fail("%s: %lld ns left, want %lld minus at most %lld", what, left, set, elapsed);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) != 0)
		fail("%s: readable before it is due", what);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	long long t0 = now_ns(CLOCK_MONOTONIC);
	int periodic = timer(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC, 0, PERIOD_NS, PERIOD_NS);
	int oneshot = timer(CLOCK_REALTIME, 0, 0, ONESHOT_S * 1000000000LL, 0);
	int absolute = timer(CLOCK_MONOTONIC, 0, TFD_TIMER_ABSTIME, t0 + ABS_S * 1000000000LL, 0);
	int expired = timer(CLOCK_BOOTTIME, 0, 0, 1000000, 0);
	usleep(20000);
	int fds[] = {periodic, oneshot, absolute, expired};
	char before[4][512], after[512];
	for (int i = 0; i < 4; i++)
		fdinfo_lines(fds[i], before[i], sizeof(before[i]));

	test_daemon();
	test_waitsig();

	long long elapsed = now_ns(CLOCK_MONOTONIC) - t0;
	for (int i = 0; i < 4; i++) {
		fdinfo_lines(fds[i], after, sizeof(after));
		if (strcmp(before[i], after))
			fail("timer %d: fdinfo\n%swas\n%s", i, after, before[i]);
	}

	uint64_t ticks;
	struct pollfd p = {.fd = expired, .events = POLLIN};
	if (poll(&p, 1, 0) != 1 || read(expired, &ticks, sizeof(ticks)) != sizeof(ticks) || ticks != 1)
		fail("expired: want 1 unread expiration (%m)");
	struct itimerspec its = get(expired, "expired");
	if (ns(its.it_value) || ns(its.it_interval))
		fail("expired: still armed (%lld, %lld)", ns(its.it_value), ns(its.it_interval));

	its = get(periodic, "periodic");
	if (ns(its.it_interval) != PERIOD_NS || ns(its.it_value) <= 0 || ns(its.it_value) > PERIOD_NS)
		fail("periodic: value %lld interval %lld", ns(its.it_value), ns(its.it_interval));
	uint64_t total = 0;
	if (read(periodic, &ticks, sizeof(ticks)) == sizeof(ticks))
		total = ticks;
	else if (errno != EAGAIN)
		fail("periodic: read: %m");
	p.fd = periodic;
	if (poll(&p, 1, 20 * PERIOD_NS / 1000000) != 1)
		fail("periodic: no expiration within 20 periods");
	if (read(periodic, &ticks, sizeof(ticks)) != sizeof(ticks) || ticks == 0)
		fail("periodic: read after poll: %m");
	total += ticks;
	elapsed = now_ns(CLOCK_MONOTONIC) - t0;
	if (total > (uint64_t)(elapsed / PERIOD_NS) + 2)
		fail("periodic: %llu expirations unread in %lld ns", (unsigned long long)total, elapsed);

	check_left(oneshot, "oneshot", ONESHOT_S * 1000000000LL, elapsed);
	check_left(absolute, "absolute", ABS_S * 1000000000LL, elapsed);
	pass();
}
