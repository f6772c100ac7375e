/*
 * mnt_nested: a tree whose processes live in three mount namespaces — the
 * root's, a child namespace made by process A, and a grandchild namespace
 * made by C inside A's — each with its own tmpfs and bind mounts, and two
 * processes (A and B) sharing A's namespace. Every process checks after
 * restore that it sees the same mounts and files as before, and the root
 * that nothing mounted in the nested namespaces shows in its own.
 */
#define _GNU_SOURCE
#include "mntlib.h"
#include "zdtmlib.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test directory and paths in it, from mntlib. */
#define dir mnt_dir
#define at mnt_at

/* B shares A's namespace. */
static void run_b(void)
{
	static struct mnt_seen s;
	int fd = open(at("a.txt"), O_RDWR);
	must(fd, "open a.txt in B");
	mnt_record(&s);
	test_child_ready();
	if (!fd_is(fd, "in A"))
		fail("B: a.txt of namespace A changed");
	if (!file_is(at("bind/x"), "x in A"))
		fail("B: bind/x of namespace A changed");
	mnt_compare("B", &s);
	pass();
}

/* C makes a namespace inside A's, with a tmpfs of its own. */
static void run_c(void)
{
	static struct mnt_seen s;
	must(unshare(CLONE_NEWNS), "unshare in C");
	must(mount("zdtm-c", at("sub"), "tmpfs", MS_NOSUID, "size=1m,mode=0755"), "mount tmpfs in C");
	mkfile(at("sub/c.txt"), "in C");
	int fd = open(at("sub/c.txt"), O_RDONLY);
	must(fd, "open c.txt");
	mnt_record(&s);
	test_child_ready();
	if (!fd_is(fd, "in C"))
		fail("C: sub/c.txt changed");
	if (!file_is(at("a.txt"), "in A"))
		fail("C: a.txt of namespace A changed");
	mnt_compare("C", &s);
	pass();
}

static void run_a(void)
{
	static struct mnt_seen s;
	must(unshare(CLONE_NEWNS), "unshare in A");
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
	if (test_fork() == 0)
		run_b();
	if (test_fork() == 0)
		run_c();
	mnt_record(&s);
	test_child_ready();
	if (!fd_is(fd, "x in A"))
		fail("A: x changed");
	mnt_compare("A", &s);
	pass();
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	mnt_init();
	if (mkdir(dir, 0755) < 0)
		fail("mkdir %s: %m", dir);
	if (test_fork() == 0)
		run_a();
	test_tree_ready(3); /* A, B and C */
	char before[SNAP_MAX], after[SNAP_MAX];
	mnt_snapshot(before, sizeof before, dir);
	test_daemon();
	test_waitsig();
	mnt_snapshot(after, sizeof after, dir);
	test_tree_check(3);
	if (before[0] || after[0])
		fail("mounts of the nested namespaces show in the root's:\n%s", after);
	pass();
}
