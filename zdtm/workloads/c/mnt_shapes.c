/*
 * mnt_shapes: mount trees of many shapes, in a namespace child A makes
 * (private from the root's), on a tmpfs over the test directory:
 *   bsub     a bind of a subdirectory        bfile  a bind of a single file
 *   ro       a read-only bind                deep   a mount point 6 levels down
 *   shared   a shared tmpfs, with peer a bind of it in the same group and
 *            slave a slave of it, and a child mounted after the split
 *            (propagated to both)
 *   priv     a private tmpfs                 unb    an unbindable tmpfs
 * (a tmpfs over a tmpfs is mnt_stack's) and process B, which makes a namespace of its own and pivot_roots into a
 * tmpfs. After restore each process compares its mount table and fds with
 * before, reads its files, and A checks that propagation still works: a
 * mount made now under shared shows under peer and slave, one made under
 * slave does not show under shared.
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
#include <sys/syscall.h>
#include <unistd.h>

/* The test directory and paths in it, from mntlib. */
#define dir mnt_dir
#define at mnt_at

static void mkdirs(const char *rel)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s", at(rel));
	for (char *s = p + strlen(dir) + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	must(mkdir(p, 0755), p);
}

static void tmpfs(const char *rel, const char *name)
{
	must(mount(name, at(rel), "tmpfs", 0, "size=1m,mode=0755"), at(rel));
}

static void bind(const char *from, const char *to, unsigned long extra)
{
	must(mount(at(from), at(to), NULL, MS_BIND | extra, NULL), at(to));
}

static bool mounted(const char *rel)
{
	struct stat a, b;
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s/..", at(rel));
	return stat(at(rel), &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static void run_a(void)
{
	static char mounts[SNAP_MAX], fds[SNAP_MAX], now[SNAP_MAX];
	must(unshare(CLONE_NEWNS), "unshare");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private");
	tmpfs("", "zdtm-shapes");
	mkdirs("src/sub");
	mkfile(at("src/sub/s"), "in sub");
	mkfile(at("src/file"), "a single file");
	mkdirs("bsub");
	bind("src/sub", "bsub", 0);
	mkfile(at("bfile"), "");
	bind("src/file", "bfile", 0);
	mkdirs("ro");
	bind("src", "ro", 0);
	must(mount(NULL, at("ro"), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL), "remount ro read-only");
	mkdirs("a/b/c/d/e/deep");
	tmpfs("a/b/c/d/e/deep", "zdtm-deep");
	mkfile(at("a/b/c/d/e/deep/f"), "deep");

	mkdirs("shared");
	tmpfs("shared", "zdtm-shared");
	must(mount(NULL, at("shared"), NULL, MS_SHARED, NULL), "make shared shared");
	mkdirs("peer");
	bind("shared", "peer", 0);
	mkdirs("slave");
	bind("shared", "slave", 0);
	must(mount(NULL, at("slave"), NULL, MS_SLAVE, NULL), "make slave a slave");
	mkdirs("shared/child");
	tmpfs("shared/child", "zdtm-after-split");
	mkfile(at("shared/child/c"), "mounted after the split");

	mkdirs("priv");
	tmpfs("priv", "zdtm-priv");
	must(mount(NULL, at("priv"), NULL, MS_PRIVATE, NULL), "make priv private");
	mkdirs("unb");
	tmpfs("unb", "zdtm-unb");
	must(mount(NULL, at("unb"), NULL, MS_UNBINDABLE, NULL), "make unb unbindable");

	mnt_snapshot(mounts, sizeof mounts, dir);
	fd_snapshot(fds, sizeof fds);
	test_child_ready();

	if (!file_is(at("bsub/s"), "in sub") || !file_is(at("bfile"), "a single file") ||
	    !file_is(at("a/b/c/d/e/deep/f"), "deep") || !file_is(at("ro/file"), "a single file"))
		fail("files behind the binds changed");
	if (!file_is(at("peer/child/c"), "mounted after the split") || !file_is(at("slave/child/c"), "mounted after the split"))
		fail("the mount made after the split is not in peer and slave");
	if (open(at("ro/new"), O_WRONLY | O_CREAT, 0644) >= 0)
		fail("ro is writable");
	mnt_snapshot(now, sizeof now, dir);
	if (strcmp(now, mounts))
		fail("mounts changed:\n%s---- was\n%s", now, mounts);
	fd_snapshot(now, sizeof now);
	if (strcmp(now, fds))
		fail("fds changed:\n%s---- was\n%s", now, fds);
	/* Propagation still works both ways it should, and not the other. */
	mkdirs("shared/later");
	tmpfs("shared/later", "zdtm-later");
	if (!mounted("peer/later") || !mounted("slave/later"))
		fail("a mount under shared made after restore does not propagate to peer and slave");
	mkdirs("slave/own");
	tmpfs("slave/own", "zdtm-own");
	if (mounted("shared/own"))
		fail("a mount under the slave propagated back to its master");
	if (mount(at("unb"), at("src"), NULL, MS_BIND, NULL) == 0)
		fail("unb can be bind-mounted: it lost unbindable");
	pass();
}

/* B makes a namespace and moves its root to a tmpfs with pivot_root. */
static void run_b(void)
{
	static char mounts[SNAP_MAX], now[SNAP_MAX];
	char newroot[PATH_MAX], old[PATH_MAX + 8];
	must(unshare(CLONE_NEWNS), "unshare in B");
	must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private in B");
	snprintf(newroot, sizeof newroot, "%s", at("newroot"));
	must(mount("zdtm-newroot", newroot, "tmpfs", 0, "size=1m,mode=0755"), "mount the new root");
	snprintf(old, sizeof old, "%s/old", newroot);
	must(mkdir(old, 0755), "mkdir old");
	snprintf(old, sizeof old, "%s/f", newroot);
	mkfile(old, "in the new root");
	snprintf(old, sizeof old, "%s/old", newroot);
	must(syscall(SYS_pivot_root, newroot, old), "pivot_root");
	must(chdir("/"), "chdir /");
	must(umount2("/old", MNT_DETACH), "detach the old root");
	int fd = open("/f", O_RDONLY);
	must(fd, "open /f");
	mnt_snapshot(mounts, sizeof mounts, NULL);
	test_child_ready();
	if (!fd_is(fd, "in the new root") || !file_is("/f", "in the new root"))
		fail("B: the file in its new root changed");
	mnt_snapshot(now, sizeof now, NULL);
	if (strcmp(now, mounts))
		fail("B: mounts changed:\n%s---- was\n%s", now, mounts);
	pass();
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	mnt_init();
	if (mkdir(dir, 0755) < 0 || mkdir(at("newroot"), 0755) < 0)
		fail("mkdir in %s: %m", dir);
	if (test_fork() == 0)
		run_a();
	if (test_fork() == 0)
		run_b();
	test_tree_ready(2);
	test_daemon();
	test_waitsig();
	test_tree_check(2);
	pass();
}
