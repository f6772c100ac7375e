/*
 * mnt_external: a host directory bind-mounted into a mount namespace of the
 * tree, saved as an external mount by key (--external mnt[PATH]:KEY at
 * dump, see mnt_external.desc) and bound again from the host at restore
 * (--external mnt[KEY]:HOSTPATH). A child makes the namespace; it checks
 * after restore that the bind shows the host directory (a file written
 * there before, one it writes now seen from the root, outside the
 * namespace) and that its mounts are as before.
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
	static char mounts[SNAP_MAX], now[SNAP_MAX];
	must(unshare(CLONE_NEWNS), "unshare");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
	/* The bind the dump names external: a directory of the host. */
	must(mount(at("host"), at("ext"), NULL, MS_BIND, NULL), "bind the host directory");
	int fd = open(at("ext/x"), O_RDONLY);
	must(fd, "open ext/x");
	mnt_snapshot(mounts, sizeof mounts, dir);
	test_child_ready();
	if (!fd_is(fd, "from the host"))
		fail("ext/x opened before the dump changed");
	if (!file_is(at("ext/x"), "from the host"))
		fail("ext/x does not show the host's file");
	mkfile(at("ext/y"), "written in the namespace");
	mnt_snapshot(now, sizeof now, dir);
	if (strcmp(now, mounts))
		fail("mounts changed:\n%s---- was\n%s", now, mounts);
	pass();
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	mnt_init();
	if (mkdir(dir, 0755) < 0 || mkdir(at("host"), 0755) < 0 || mkdir(at("ext"), 0755) < 0)
		fail("mkdir in %s: %m", dir);
	mkfile(at("host/x"), "from the host");
	if (test_fork() == 0)
		run_a();
	test_tree_ready(1);
	test_daemon();
	test_waitsig();
	test_tree_check(1);
	if (!file_is(at("host/y"), "written in the namespace"))
		fail("what the namespace wrote through the bind is not in the host directory");
	pass();
}
