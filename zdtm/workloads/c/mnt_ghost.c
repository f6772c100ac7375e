/*
 * mnt_ghost: files deleted while open inside a tmpfs of a child mount
 * namespace, which the root's namespace does not see: the ghost must be
 * made again on that tmpfs, in that namespace, and opened there. One is
 * also mapped. After restore the child checks contents, that the files
 * are still deleted (st_nlink 0), and the mount behind each fd.
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

static int deleted_file(const char *rel, const char *contents)
{
	mkfile(at(rel), contents);
	int fd = open(at(rel), O_RDWR);
	must(fd, at(rel));
	must(unlink(at(rel)), "unlink");
	return fd;
}

static bool gone(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && st.st_nlink == 0;
}

static void run_a(void)
{
	static char fds[SNAP_MAX], now[SNAP_MAX];
	must(unshare(CLONE_NEWNS), "unshare");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
	must(mount("zdtm-ghost", dir, "tmpfs", 0, "size=4m,mode=0755"), "mount tmpfs");
	must(mkdir(at("sub"), 0755), "mkdir sub");
	int a = deleted_file("a", "ghost in a child namespace");
	int b = deleted_file("sub/b", "ghost in a subdirectory");
	int m = deleted_file("m", "");
	must(ftruncate(m, 4096), "ftruncate m");
	char *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	if (map == MAP_FAILED)
		fail("mmap: %m");
	strcpy(map, "mapped ghost");
	mkfile(at("b"), "a live file next to the ghosts");
	fd_snapshot(fds, sizeof fds);
	test_child_ready();
	if (!fd_is(a, "ghost in a child namespace") || !fd_is(b, "ghost in a subdirectory"))
		fail("the ghosts' contents changed");
	if (strcmp(map, "mapped ghost") || !fd_is(m, "mapped ghost"))
		fail("the mapped ghost changed");
	if (!gone(a) || !gone(b) || !gone(m))
		fail("a ghost has a name again");
	if (!file_is(at("b"), "a live file next to the ghosts"))
		fail("the live file next to the ghosts changed");
	fd_snapshot(now, sizeof now);
	if (strcmp(now, fds))
		fail("fds changed:\n%s---- was\n%s", now, fds);
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
