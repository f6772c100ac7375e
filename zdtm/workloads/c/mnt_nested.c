/*
 * mnt_nested: a tree whose processes live in three mount namespaces — the
 * root's, a child namespace A made by one child, and a grandchild
 * namespace C made inside A — each with its own tmpfs and bind mounts,
 * and two processes (A and B) sharing namespace A. Every process checks
 * after restore that it sees the same mounts and files as before, and the
 * root that nothing mounted in the nested namespaces shows in its own.
 */
#define _GNU_SOURCE
#include "mntlib.h"
#include "zdtmlib.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[PATH_MAX / 2];
static char path[PATH_MAX];

static const char *at(const char *rel)
{
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	return path;
}

/* checker compares what the process sees after restore with before. */
struct seen {
	char mounts[SNAP_MAX], fds[SNAP_MAX];
};

static void record(struct seen *s)
{
	mnt_snapshot(s->mounts, sizeof s->mounts, dir);
	fd_snapshot(s->fds, sizeof s->fds);
}

static const char *compare(const struct seen *before)
{
	static char msg[2 * SNAP_MAX + 64];
	struct seen now;
	record(&now);
	if (strcmp(now.mounts, before->mounts)) {
		snprintf(msg, sizeof msg, "mounts changed:\n%s---- was\n%s", now.mounts, before->mounts);
		return msg;
	}
	if (strcmp(now.fds, before->fds)) {
		snprintf(msg, sizeof msg, "fds changed:\n%s---- was\n%s", now.fds, before->fds);
		return msg;
	}
	return NULL;
}

static const char *body_b(void *arg, int gofd)
{
	(void)arg;
	static struct seen s;
	int fd = open(at("a.txt"), O_RDWR);
	must(fd, "open a.txt in B");
	record(&s);
	peer_ready();
	peer_wait(gofd);
	if (!fd_is(fd, "in A") || !file_is(at("bind/x"), "x in A"))
		return "B: files of namespace A changed";
	return compare(&s);
}

static const char *body_c(void *arg, int gofd)
{
	(void)arg;
	static struct seen s;
	if (unshare(CLONE_NEWNS) < 0)
		return "C: unshare";
	must(mount("zdtm-c", at("sub"), "tmpfs", MS_NOSUID, "size=1m,mode=0755"), "mount tmpfs in C");
	mkfile(at("sub/c.txt"), "in C");
	int fd = open(at("sub/c.txt"), O_RDONLY);
	must(fd, "open c.txt");
	record(&s);
	peer_ready();
	peer_wait(gofd);
	if (!fd_is(fd, "in C") || !file_is(at("a.txt"), "in A"))
		return "C: files changed";
	return compare(&s);
}

static const char *body_a(void *arg, int gofd)
{
	(void)arg;
	static struct seen s;
	static char msg[4 * SNAP_MAX];
	if (unshare(CLONE_NEWNS) < 0)
		return "A: unshare";
	/* As systemd does for a service: nothing goes back to the parent. */
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private in A");
	must(mount("zdtm-a", dir, "tmpfs", 0, "size=1m,mode=0755"), "mount tmpfs in A");
	mkfile(at("a.txt"), "in A");
	must(mkdir(at("sub"), 0755), "mkdir sub");
	must(mkdir(at("dir"), 0755), "mkdir dir");
	must(mkdir(at("bind"), 0755), "mkdir bind");
	mkfile(at("dir/x"), "x in A");
	must(mount(at("dir"), at("bind"), NULL, MS_BIND, NULL), "bind dir in A");
	int fd = open(at("dir/x"), O_RDONLY);
	must(fd, "open x");
	/* B shares this namespace; C makes its own inside it. */
	int go[2];
	must(pipe(go), "pipe");
	struct peer kids[2] = {
		peer_fork("B", go[0], body_b, NULL),
		peer_fork("C", go[0], body_c, NULL),
	};
	close(go[0]);
	record(&s);
	peer_ready();
	peer_wait(gofd);
	close(go[1]);
	const char *bad = compare(&s);
	if (!bad && !fd_is(fd, "x in A"))
		bad = "A: x changed";
	msg[0] = 0;
	for (int i = 0; i < 2; i++) {
		const char *m = peer_collect(&kids[i]);
		if (m && !msg[0])
			snprintf(msg, sizeof msg, "%s", m);
	}
	if (bad)
		return bad;
	return msg[0] ? msg : NULL;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	const char *d = test_opt("dirname");
	if (!d)
		fail("no --dirname");
	snprintf(dir, sizeof dir, "%s", d);
	if (mkdir(dir, 0755) < 0)
		fail("mkdir %s", dir);
	int ready[2], go[2];
	must(pipe(ready), "pipe");
	must(pipe(go), "pipe");
	peer_readyfd = ready[1];
	struct peer a = peer_fork("A", go[0], body_a, NULL);
	close(go[0]);
	close(ready[1]); /* a peer that dies before it is ready ends the wait */
	peer_await(ready[0], 3); /* A, B and C */
	char before[SNAP_MAX];
	mnt_snapshot(before, sizeof before, dir);
	test_daemon();
	test_waitsig();
	char after[SNAP_MAX];
	mnt_snapshot(after, sizeof after, dir);
	close(go[1]);
	const char *m = peer_collect(&a);
	if (m)
		fail("%s", m);
	if (before[0] || after[0])
		fail("mounts of the nested namespaces show in the root's:\n%s", after);
	pass();
}
