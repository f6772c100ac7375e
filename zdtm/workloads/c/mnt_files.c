/*
 * mnt_files: files opened in a second mount namespace. A child makes a
 * namespace of its own (A) with a tmpfs over the test directory, where:
 *  - same.txt is another file than the root's same.txt at the same path;
 *  - hidden/f was opened, then hidden/ overmounted by another tmpfs;
 *  - map.bin is mapped MAP_SHARED;
 *  - the fd of outer.txt was opened before the child unshared: it stays
 *    on the root namespace's mount, the one the root's own fd is on.
 * After restore every process checks the contents behind each fd and the
 * mount each fd is on (its mnt_id's mount point, root and fs type).
 */
#define _GNU_SOURCE
#include "mntlib.h"
#include "zdtmlib.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test directory and paths in it, from mntlib. */
#define dir mnt_dir
#define at mnt_at

static int outer_fd; /* opened by the root before the fork */

static void run_a(void)
{
	static char before[SNAP_MAX], mounts[SNAP_MAX], now[SNAP_MAX];
	must(unshare(CLONE_NEWNS), "unshare");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
	must(mount("zdtm-files-a", dir, "tmpfs", 0, "size=4m,mode=0755"), "mount tmpfs");
	mkfile(at("same.txt"), "child's same.txt");
	int same = open(at("same.txt"), O_RDWR);
	must(same, "open same.txt");
	must(mkdir(at("hidden"), 0755), "mkdir hidden");
	mkfile(at("hidden/f"), "under the overmount");
	int hidden = open(at("hidden/f"), O_RDONLY);
	must(hidden, "open hidden/f");
	must(mount("zdtm-files-over", at("hidden"), "tmpfs", 0, "size=1m"), "overmount hidden");
	mkfile(at("hidden/f"), "on the overmount");
	int over = open(at("hidden/f"), O_RDONLY);
	must(over, "open the overmount's f");
	int mfd = open(at("map.bin"), O_RDWR | O_CREAT, 0644);
	must(mfd, "open map.bin");
	must(ftruncate(mfd, 8192), "ftruncate map.bin");
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (m == MAP_FAILED)
		fail("mmap map.bin: %m");
	close(mfd);
	strcpy(m, "mapped in A");
	fd_snapshot(before, sizeof before);
	mnt_snapshot(mounts, sizeof mounts, dir);
	test_child_ready();

	if (!fd_is(same, "child's same.txt"))
		fail("same.txt of A changed");
	if (!fd_is(hidden, "under the overmount"))
		fail("the overmounted file changed");
	if (!fd_is(over, "on the overmount") || !file_is(at("hidden/f"), "on the overmount"))
		fail("the overmount's file changed");
	if (!fd_is(outer_fd, "root's outer.txt"))
		fail("outer.txt (opened before unshare) changed");
	if (strcmp(m, "mapped in A"))
		fail("the mapping of map.bin changed");
	if (!file_is(at("map.bin"), "mapped in A"))
		fail("map.bin does not show the mapping");
	fd_snapshot(now, sizeof now);
	if (strcmp(now, before))
		fail("fds changed:\n%s---- was\n%s", now, before);
	mnt_snapshot(now, sizeof now, dir);
	if (strcmp(now, mounts))
		fail("mounts changed:\n%s---- was\n%s", now, mounts);
	pass();
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	mnt_init();
	if (mkdir(dir, 0755) < 0)
		fail("mkdir %s: %m", dir);
	mkfile(at("same.txt"), "root's same.txt");
	mkfile(at("outer.txt"), "root's outer.txt");
	int same = open(at("same.txt"), O_RDONLY);
	outer_fd = open(at("outer.txt"), O_RDONLY);
	if (same < 0 || outer_fd < 0)
		fail("open: %m");
	if (test_fork() == 0)
		run_a();
	test_tree_ready(1);
	static char before[SNAP_MAX], after[SNAP_MAX];
	fd_snapshot(before, sizeof before);
	test_daemon();
	test_waitsig();
	fd_snapshot(after, sizeof after);
	test_tree_check(1);
	if (!fd_is(same, "root's same.txt"))
		fail("the root's same.txt changed");
	if (strcmp(before, after))
		fail("the root's fds changed:\n%s---- was\n%s", after, before);
	pass();
}
