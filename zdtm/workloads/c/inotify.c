/*
 * inotify: watches on a directory and a file of the test's own directory.
 *
 * Instance A (non-blocking) watches --dirname for IN_CREATE|IN_DELETE and
 * the file watched.file in it for IN_MODIFY|IN_CLOSE_WRITE; in between a
 * watch was added and removed, so A's watch descriptors are 1 and 3, not
 * 1 and 2. Instance B (blocking, close-on-exec) watches the directory for
 * one IN_CREATE (IN_ONESHOT). Both are drained before Ready.
 *
 * After SIGTERM the watches shown in fdinfo (wd, inode, device, mask,
 * handle) must be as before. Then it writes the file and creates and
 * removes a file in the directory: A must report exactly IN_MODIFY and
 * IN_CLOSE_WRITE on wd 3, IN_CREATE and IN_DELETE of "new.file" on wd 1;
 * B exactly one IN_CREATE of "new.file" (then its one-shot watch is gone:
 * IN_IGNORED).
 *
 * Events queued but not read when the tree is dumped would be lost: the
 * kernel has no way to read an inotify queue without consuming it, nor to
 * refill one, and CRIU does not keep them either. So the test reads its
 * queues empty before it is ready, and makes its events after.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmlib.h"

#define EVBUF (16 * (sizeof(struct inotify_event) + NAME_MAX + 1))

static char dir[PATH_MAX], file[PATH_MAX + 16];

/* watch_lines copies fd's "inotify " lines, sorted, into buf. */
static void watch_lines(int fd, char *buf, size_t n)
{
	char path[64], lines[8][512];
	int count = 0;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		fail("open %s: %m", path);
	while (count < 8 && fgets(lines[count], sizeof(lines[count]), f))
		if (!strncmp(lines[count], "inotify ", 8))
			count++;
	fclose(f);
	qsort(lines, count, sizeof(lines[0]), (int (*)(const void *, const void *))strcmp);
	buf[0] = 0;
	for (int i = 0; i < count; i++)
		strncat(buf, lines[i], n - strlen(buf) - 1);
}

static void drain(int fd)
{
	char buf[EVBUF];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (poll(&p, 1, 0) == 1)
		if (read(fd, buf, sizeof(buf)) <= 0)
			break;
}

struct want {
	int wd;
	unsigned mask;
	const char *name;
};

/* expect reads fd's queue and checks it holds exactly the events in w. */
static void expect(int fd, const char *what, const struct want *w, int n)
{
	char buf[EVBUF] __attribute__((aligned(8)));
	int got = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (poll(&p, 1, got < n ? 1000 : 100) == 1) {
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len <= 0)
			fail("%s: read: %m", what);
		for (char *q = buf; q < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)q;
			const char *name = ev->len ? ev->name : "";
			if (got >= n)
				fail("%s: unexpected event wd %d mask %#x name %s", what, ev->wd, ev->mask, name);
			if (ev->wd != w[got].wd || ev->mask != w[got].mask || strcmp(name, w[got].name))
				fail("%s: event %d is wd %d mask %#x name '%s', want wd %d mask %#x name '%s'", what, got, ev->wd, ev->mask,
				     name, w[got].wd, w[got].mask, w[got].name);
			got++;
			q += sizeof(*ev) + ev->len;
		}
	}
	if (got != n)
		fail("%s: %d events, want %d", what, got, n);
}

static int add(int fd, const char *path, unsigned mask, int want)
{
	int wd = inotify_add_watch(fd, path, mask);
	if (wd < 0)
		fail("inotify_add_watch %s: %m", path);
	if (want && wd != want)
		fail("inotify_add_watch %s: wd %d, want %d", path, wd, want);
	return wd;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *d = test_opt("dirname");
	snprintf(dir, sizeof(dir), "%s", d ? d : "inotify.dir");
	if (mkdir(dir, 0755) && errno != EEXIST)
		fail("mkdir %s: %m", dir);
	snprintf(file, sizeof(file), "%s/watched.file", dir);
	int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("create %s: %m", file);
	close(fd);

	int a = inotify_init1(IN_NONBLOCK);
	int b = inotify_init1(IN_CLOEXEC);
	if (a < 0 || b < 0)
		fail("inotify_init1: %m");
	add(a, dir, IN_CREATE | IN_DELETE, 1);
	int gone = add(a, ".", IN_ATTRIB, 2);
	if (inotify_rm_watch(a, gone))
		fail("inotify_rm_watch: %m");
	add(a, file, IN_MODIFY | IN_CLOSE_WRITE, 3);
	add(b, dir, IN_CREATE | IN_ONESHOT, 1);
	drain(a);
	drain(b);
	char wa[2048], wb[2048], now[2048];
	watch_lines(a, wa, sizeof(wa));
	watch_lines(b, wb, sizeof(wb));

	test_daemon();
	test_waitsig();

	watch_lines(a, now, sizeof(now));
	if (strcmp(wa, now))
		fail("A's watches\n%swere\n%s", now, wa);
	watch_lines(b, now, sizeof(now));
	if (strcmp(wb, now))
		fail("B's watches\n%swere\n%s", now, wb);

	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "x", 1) != 1 || close(fd))
		fail("write %s: %m", file);
	char newfile[PATH_MAX + 16];
	snprintf(newfile, sizeof(newfile), "%s/new.file", dir);
	fd = open(newfile, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0 || close(fd) || unlink(newfile))
		fail("create and remove %s: %m", newfile);

	const struct want wa_ev[] = {
		{3, IN_MODIFY, ""},
		{3, IN_CLOSE_WRITE, ""},
		{1, IN_CREATE, "new.file"},
		{1, IN_DELETE, "new.file"},
	};
	expect(a, "A", wa_ev, 4);
	const struct want wb_ev[] = {
		{1, IN_CREATE, "new.file"},
		{1, IN_IGNORED, ""},
	};
	expect(b, "B", wb_ev, 2);
	pass();
}
