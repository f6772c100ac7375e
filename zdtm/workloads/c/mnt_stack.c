/*
 * mnt_stack: a tmpfs mounted over another tmpfs, in a mount namespace a
 * child makes, with a file open in each: the lower one is hidden, and its
 * contents must still be saved and its file reopened on it. In the uns
 * flavor the dump must detach the upper tmpfs in a copy of the namespace
 * made from inside the tree's user namespace: a copy made from outside it
 * has every mount locked.
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

static void run_a(void)
{
	static char mounts[SNAP_MAX], fds[SNAP_MAX], now[SNAP_MAX];
	must(unshare(CLONE_NEWNS), "unshare");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
	must(mount("zdtm-lower", dir, "tmpfs", 0, "size=1m,mode=0755"), "mount the lower tmpfs");
	mkfile(at("f"), "lower");
	mkfile(at("only-below"), "hidden");
	int lower = open(at("f"), O_RDONLY);
	must(lower, "open the lower f");
	must(mount("zdtm-upper", dir, "tmpfs", 0, "size=1m,mode=0755"), "mount the upper tmpfs");
	mkfile(at("f"), "upper");
	int upper = open(at("f"), O_RDONLY);
	must(upper, "open the upper f");
	mnt_snapshot(mounts, sizeof mounts, dir);
	fd_snapshot(fds, sizeof fds);
	test_child_ready();
	if (!fd_is(lower, "lower") || !fd_is(upper, "upper") || !file_is(at("f"), "upper"))
		fail("the stacked tmpfs files changed");
	mnt_snapshot(now, sizeof now, dir);
	if (strcmp(now, mounts))
		fail("mounts changed:\n%s---- was\n%s", now, mounts);
	fd_snapshot(now, sizeof now);
	if (strcmp(now, fds))
		fail("fds changed:\n%s---- was\n%s", now, fds);
	/* The lower tmpfs kept what only it has. */
	must(umount2(dir, MNT_DETACH), "detach the upper tmpfs");
	if (!file_is(at("only-below"), "hidden"))
		fail("the lower tmpfs lost its hidden file");
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
	test_tree_ready(1);
	test_daemon();
	test_waitsig();
	test_tree_check(1);
	pass();
}
