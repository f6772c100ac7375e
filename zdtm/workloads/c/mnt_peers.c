/*
 * mnt_peers: peer groups that span mount namespaces. Process S owns a
 * namespace with a private tmpfs over the test directory and, on
 * shared/, a tmpfs made shared (peer group N). Then
 *   L  unshares: its copy of shared/ is a peer of S's, which L makes a
 *      slave (master:N);
 *   P  unshares: its copy of shared/ is a peer of S's (shared:N in both
 *      namespaces), and P mounts shared/pre, which propagates to S as a
 *      peer (group M) and to L as a slave of M.
 * In the ns and uns flavors S is the root, whose namespace is the tree's
 * own; in h the root stays in the host's namespace, so S is a child that
 * unshares first (and makes its copy private, as mnt_nested's A does).
 *
 * After restore, one after the other along a ring of pipes (S, P, L:
 * each first compares what it sees, then tries propagation, so that no
 * mount made for a check shows in another's comparison), every process
 *   - compares its mounts under the test directory and its fds;
 *   - checks that its groups are S's: P shows the shared:N and shared:M of
 *     S's mountinfo, L master:N and master:M;
 *   - mounts a tmpfs under its shared/ and looks for it in the other two
 *     namespaces (through /proc/PID/root): one made by S or P shows in
 *     all three, one made by L in no other; then unmounts it.
 */
#define _GNU_SOURCE
#include "mntlib.h"
#include "zdtmlib.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test directory and paths in it, from mntlib. */
#define dir mnt_dir
#define at mnt_at

/* The ring: S writes sp, P reads it and writes pl, L reads that and
 * writes ls, which S reads. */
static int sp[2], pl[2], ls[2];
static pid_t pid_s, pid_p, pid_l;

/* groups finds the mount at mp in pid's mountinfo (0: the caller's) and
 * gives its peer group and master numbers (0 for none). */
static void groups(pid_t pid, const char *mp, int *shared, int *master)
{
	char p[64], l[2048];
	if (pid)
		snprintf(p, sizeof p, "/proc/%d/mountinfo", pid);
	else
		snprintf(p, sizeof p, "/proc/self/mountinfo");
	FILE *f = fopen(p, "r");
	if (!f)
		fail("open %s: %m", p);
	bool found = false;
	while (fgets(l, sizeof l, f)) {
		char *fl[64];
		int n = 0;
		for (char *s = strtok(l, " \n"); s && n < 64; s = strtok(NULL, " \n"))
			fl[n++] = s;
		if (n < 7 || strcmp(fl[4], mp))
			continue;
		/* The last mount at mp is the one on top. */
		found = true;
		*shared = *master = 0;
		for (int i = 6; i < n && strcmp(fl[i], "-"); i++) {
			if (!strncmp(fl[i], "shared:", 7))
				*shared = atoi(fl[i] + 7);
			else if (!strncmp(fl[i], "master:", 7))
				*master = atoi(fl[i] + 7);
		}
	}
	fclose(f);
	if (!found)
		fail("%s: no mount at %s", p, mp);
}

/* check_groups checks the caller's groups of shared/ and shared/pre
 * against S's (when says when: before the dump or after restore). */
static void check_groups(char who, const char *when)
{
	int sn, sm, pn, pm, n, m, pre_n, pre_m;
	groups(pid_s, at("shared"), &sn, &sm);
	groups(pid_s, at("shared/pre"), &pn, &pm);
	if (!sn || sm || !pn || pm || sn == pn)
		fail("%s, S: shared/ is shared:%d master:%d, shared/pre shared:%d master:%d; want two peer groups and no master",
		     when, sn, sm, pn, pm);
	if (who == 'S')
		return;
	groups(0, at("shared"), &n, &m);
	groups(0, at("shared/pre"), &pre_n, &pre_m);
	if (who == 'P' && (n != sn || m || pre_n != pn || pre_m))
		fail("%s, P: shared/ is shared:%d master:%d, shared/pre shared:%d master:%d; want S's shared:%d and shared:%d",
		     when, n, m, pre_n, pre_m, sn, pn);
	if (who == 'L' && (n || m != sn || pre_n || pre_m != pn))
		fail("%s, L: shared/ is shared:%d master:%d, shared/pre shared:%d master:%d; want slaves of S's %d and %d",
		     when, n, m, pre_n, pre_m, sn, pn);
}

/* mounted_in reports whether rel is a mount point in pid's namespace. */
static bool mounted_in(pid_t pid, const char *rel)
{
	char p[PATH_MAX + 64], parent[PATH_MAX + 80];
	struct stat a, b;
	snprintf(p, sizeof p, "/proc/%d/root%s", pid, at(rel));
	snprintf(parent, sizeof parent, "%s/..", p);
	return stat(p, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* try_propagation mounts a tmpfs on shared/name, checks where it shows
 * (want: in each of the two other namespaces), unmounts it and checks
 * that the unmount propagated as well. */
static void try_propagation(char who, const char *name, pid_t other[2], const bool want[2])
{
	char rel[64], src[64];
	snprintf(rel, sizeof rel, "shared/%s", name);
	snprintf(src, sizeof src, "zdtm-%s", name);
	must(mount(src, at(rel), "tmpfs", 0, "size=1m,mode=0755"), at(rel));
	for (int i = 0; i < 2; i++)
		if (mounted_in(other[i], rel) != want[i])
			fail("%c: a tmpfs mounted on %s %s in the namespace of pid %d", who, rel,
			     want[i] ? "does not show" : "shows", other[i]);
	must(umount2(at(rel), 0), at(rel));
	for (int i = 0; i < 2; i++)
		if (mounted_in(other[i], rel))
			fail("%c: %s unmounted, but still mounted in the namespace of pid %d", who, rel, other[i]);
}

static void await(int fd, const char *what)
{
	char c;
	ssize_t n = read(fd, &c, 1);
	if (n < 0)
		fail("waiting for %s: %m", what);
	if (n == 0)
		fail("waiting for %s: the ring broke (a process before failed)", what);
}

static void pass_on(int fd)
{
	if (write(fd, "t", 1) != 1)
		fail("ring: %m");
}

/* keep closes every end of the ring pipes but the two given. */
static void keep(int in, int out)
{
	int *all[] = {sp, pl, ls};
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
			if (all[i][j] != in && all[i][j] != out && all[i][j] >= 0) {
				close(all[i][j]);
				all[i][j] = -1;
			}
}

static void run_l(void)
{
	static struct mnt_seen s;
	keep(pl[0], ls[1]);
	must(unshare(CLONE_NEWNS), "unshare in L");
	must(mount(NULL, at("shared"), NULL, MS_SLAVE, NULL), "make shared/ a slave in L");
	int fd = open(at("shared/f"), O_RDONLY);
	must(fd, "open shared/f in L");
	pass_on(ls[1]); /* P may mount pre now */
	if (read(pl[0], &pid_p, sizeof pid_p) != sizeof pid_p)
		fail("L: no word from P");
	check_groups('L', "before the dump");
	mnt_record(&s);
	pass_on(ls[1]);
	test_child_ready();

	await(pl[0], "P's checks");
	if (!fd_is(fd, "in the peer group"))
		fail("L: shared/f changed");
	mnt_compare("L", &s);
	check_groups('L', "after restore");
	pass_on(ls[1]);
	await(pl[0], "P's propagation");
	pid_t other[2] = {pid_s, pid_p};
	const bool want[2] = {false, false};
	try_propagation('L', "by-l", other, want);
	pass_on(ls[1]);
	pass();
}

static void run_p(void)
{
	static struct mnt_seen s;
	keep(sp[0], pl[1]);
	must(unshare(CLONE_NEWNS), "unshare in P");
	must(mount("zdtm-pre", at("shared/pre"), "tmpfs", 0, "size=1m,mode=0755"), "mount shared/pre in P");
	int fd = open(at("shared/f"), O_RDONLY);
	must(fd, "open shared/f in P");
	pid_t me = getpid();
	if (write(pl[1], &me, sizeof me) != sizeof me)
		fail("P: tell L: %m");
	check_groups('P', "before the dump");
	mnt_record(&s);
	test_child_ready();

	await(sp[0], "S's checks");
	if (!fd_is(fd, "in the peer group"))
		fail("P: shared/f changed");
	mnt_compare("P", &s);
	check_groups('P', "after restore");
	pass_on(pl[1]);
	await(sp[0], "S's propagation");
	pid_t other[2] = {pid_s, pid_l};
	const bool want[2] = {true, true};
	try_propagation('P', "by-p", other, want);
	pass_on(pl[1]);
	pass();
}

/* run_s builds S's namespace and the two others, and checks its own.
 * In h it is a child of the root, which unshares first; otherwise the
 * root itself, which gathers the verdicts of P and L. */
static void run_s(bool child)
{
	static struct mnt_seen s;
	pid_s = getpid();
	if (child) {
		must(unshare(CLONE_NEWNS), "unshare in S");
		must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private in S");
	}
	must(mount("zdtm-peers-base", dir, "tmpfs", 0, "size=1m,mode=0755"), "mount the base tmpfs");
	must(mkdir(at("shared"), 0755), "mkdir shared");
	must(mount("zdtm-peers", at("shared"), "tmpfs", 0, "size=1m,mode=0755"), "mount shared/");
	must(mount(NULL, at("shared"), NULL, MS_SHARED, NULL), "make shared/ shared");
	const char *dirs[] = {"shared/pre", "shared/by-s", "shared/by-p", "shared/by-l"};
	for (int i = 0; i < 4; i++)
		must(mkdir(at(dirs[i]), 0755), dirs[i]);
	mkfile(at("shared/f"), "in the peer group");
	int fd = open(at("shared/f"), O_RDONLY);
	must(fd, "open shared/f in S");
	if (pipe(sp) || pipe(pl) || pipe(ls))
		fail("pipe: %m");

	if ((pid_l = test_fork()) == 0)
		run_l();
	close(ls[1]); /* L is the only writer: S sees EOF if L dies */
	close(pl[0]);
	ls[1] = pl[0] = -1;
	await(ls[0], "L's slave");
	if ((pid_p = test_fork()) == 0)
		run_p();
	keep(ls[0], sp[1]);
	await(ls[0], "P's pre and L's record");
	check_groups('S', "before the dump");
	mnt_record(&s);
	if (child)
		test_child_ready();
	else {
		test_tree_ready(2);
		test_daemon();
		test_waitsig();
		test_tree_wake();
	}

	if (!fd_is(fd, "in the peer group"))
		fail("S: shared/f changed");
	mnt_compare("S", &s);
	check_groups('S', "after restore");
	pass_on(sp[1]);
	await(ls[0], "the checks of P and L");
	pid_t other[2] = {pid_p, pid_l};
	const bool want[2] = {true, true};
	try_propagation('S', "by-s", other, want);
	pass_on(sp[1]);
	await(ls[0], "the propagation of P and L");
	if (!child)
		test_tree_collect(2);
	pass();
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	mnt_init();
	if (mkdir(dir, 0755) < 0)
		fail("mkdir %s: %m", dir);
	const char *flavor = getenv("ZDTM_FLAVOR");
	if (flavor && *flavor && strcmp(flavor, "h")) {
		run_s(false);
		return 0;
	}
	if (test_fork() == 0)
		run_s(true);
	test_tree_ready(3); /* S, P and L */
	char before[SNAP_MAX], after[SNAP_MAX];
	mnt_snapshot(before, sizeof before, dir);
	test_daemon();
	test_waitsig();
	mnt_snapshot(after, sizeof after, dir);
	test_tree_check(3);
	if (before[0] || after[0])
		fail("mounts of the tree's namespaces show in the root's:\n%s", after);
	pass();
}
