/*
 * tree: a tree of twelve processes in three levels, two sessions and four
 * process groups, with zombies and an orphan.
 *
 *   R  root: session R, group R; a child subreaper (h) or pid 1 (ns)
 *   ├─ A   session R, group R
 *   ├─ B   session R, group B (its own)
 *   ├─ C   session R, group B (a sibling's)
 *   ├─ S   session S (setsid), group S
 *   │  ├─ S1  session S, group S1: moved out of its parent's group
 *   │  ├─ S2  session S, group S1: moved into its sibling's group
 *   │  └─ S3  session S, group S
 *   ├─ Z   a zombie: exited with ZOMBIE_STATUS, not reaped before SIGTERM
 *   ├─ ZT  a zombie killed by SIGTERM, ZK one killed by SIGKILL
 *   └─ O   an orphan: forked by a child P of R that then exited, so O was
 *          reparented to R; session R, group R (P's, which R leads)
 *
 * Every process but Z records its pid, ppid, pgid and sid as the design
 * above says they must be, checks them before Ready and again after
 * SIGTERM, and reports to the root (zdtmlib's tree helpers). After SIGTERM
 * the root also checks its own ids, that it is still a child subreaper (h),
 * that its children are the same, and that Z, ZT and ZK are still zombies
 * whose waitpid gives the status each ended with.
 *
 * In the ns flavors the root, pid 1, starts in the session of the process
 * that made its namespaces, which is outside the tree: it calls setsid so
 * that every session and group of the tree is led by a process of it.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zdtmlib.h"

#define ZOMBIE_STATUS 42
#define TREE_REPORTS 8 /* A B C S S1 S2 S3 O */

struct ids {
	pid_t pid, ppid, pgid, sid;
};
#define ANY (-1) /* an id not checked */

static void check_ids(const char *who, struct ids want, const char *when)
{
	struct ids got = {getpid(), getppid(), getpgid(0), getsid(0)};
	if (want.ppid == ANY)
		got.ppid = ANY;
	if (got.pid != want.pid || got.ppid != want.ppid || got.pgid != want.pgid || got.sid != want.sid)
		fail("%s %s: pid %d ppid %d pgid %d sid %d, want pid %d ppid %d pgid %d sid %d", who, when, got.pid, got.ppid, got.pgid,
		     got.sid, want.pid, want.ppid, want.pgid, want.sid);
}

/* member is the life of a process of the tree once its ids are set. */
static void member(const char *who, struct ids want) __attribute__((noreturn));
static void member(const char *who, struct ids want)
{
	check_ids(who, want, "before the checkpoint");
	test_child_ready();
	check_ids(who, want, "after SIGTERM");
	pass(); /* S also waits here for S1, S2 and S3 */
}

/* join puts a child into a group from both sides, as shells do, so that
 * the group exists when the parent goes on whichever runs first. */
static void join(const char *who, pid_t pid, pid_t pgid)
{
	if (setpgid(pid, pgid))
		fail("%s: setpgid(%d, %d): %m", who, pid, pgid);
}

static void session_leader(pid_t root) __attribute__((noreturn));
static void session_leader(pid_t root)
{
	pid_t s = setsid();
	if (s < 0)
		fail("S: setsid: %m");
	pid_t s1 = test_fork();
	if (!s1) {
		join("S1", 0, 0);
		member("S1", (struct ids){getpid(), s, getpid(), s});
	}
	join("S", s1, s1);
	pid_t s2 = test_fork();
	if (!s2) {
		join("S2", 0, s1);
		member("S2", (struct ids){getpid(), s, s1, s});
	}
	join("S", s2, s1);
	if (!test_fork())
		member("S3", (struct ids){getpid(), s, s, s});
	member("S", (struct ids){s, root, s, s});
}

/* orphan waits until its parent's exit hands it to the root, then dies
 * with the root instead. It was made by a plain fork: a process made by
 * test_fork would have died with its parent. */
static void orphan(pid_t root, pid_t parent) __attribute__((noreturn));
static void orphan(pid_t root, pid_t parent)
{
	pid_t pp;
	while ((pp = getppid()) != root) {
		if (pp != parent)
			fail("O: reparented to %d, want the root %d", pp, root);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		fail("O: PR_SET_PDEATHSIG: %m");
	if (getppid() != root)
		_exit(1); /* the root died meanwhile */
	member("O", (struct ids){getpid(), root, root, root});
}

/* children reads the root's children from /proc: their pids, sorted by
 * the kernel's order, and how many. */
static int children(pid_t *pids, int max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	FILE *f = fopen(path, "re");
	if (!f)
		fail("open %s: %m", path);
	int n = 0, pid;
	while (fscanf(f, "%d", &pid) == 1)
		if (n < max)
			pids[n++] = pid;
	fclose(f);
	return n;
}

static bool has(const pid_t *pids, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* zombie_by forks a child that dies by sig, unreaped: a zombie. */
static pid_t zombie_by(int sig)
{
	pid_t k = test_fork();
	if (!k) {
		signal(sig, SIG_DFL);
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, sig);
		sigprocmask(SIG_UNBLOCK, &m, NULL);
		raise(sig);
		_exit(1);
	}
	return k;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	pid_t root = getpid();
	if (getsid(0) != root && setsid() < 0)
		fail("setsid: %m");
	/* pid 1 inherits the orphans of its namespace anyway. */
	bool subreaper = root != 1;
	if (subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		fail("PR_SET_CHILD_SUBREAPER: %m");

	pid_t a = test_fork();
	if (!a)
		member("A", (struct ids){getpid(), root, root, root});
	pid_t b = test_fork();
	if (!b) {
		join("B", 0, 0);
		member("B", (struct ids){getpid(), root, getpid(), root});
	}
	join("root", b, b);
	pid_t c = test_fork();
	if (!c) {
		join("C", 0, b);
		member("C", (struct ids){getpid(), root, b, root});
	}
	join("root", c, b);
	pid_t s = test_fork();
	if (!s)
		session_leader(root);
	pid_t z = test_fork();
	if (!z)
		_exit(ZOMBIE_STATUS);
	pid_t zt = zombie_by(SIGTERM), zk = zombie_by(SIGKILL);
	pid_t p = test_fork();
	if (!p) {
		pid_t parent = getpid(), o = fork();
		if (!o)
			orphan(root, parent);
		_exit(o < 0 ? 1 : 0);
	}
	int st;
	if (waitpid(p, &st, 0) != p)
		fail("waitpid P %d: %m", p);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("P %d, the orphan's parent, ended with status %#x", p, st);
	test_tree_ready(TREE_REPORTS);
	/* Z must be dead before Ready, so that it is a zombie at the checkpoint. */
	siginfo_t si = {0};
	if (waitid(P_PID, z, &si, WEXITED | WNOWAIT))
		fail("waitid Z %d: %m", z);
	if (si.si_code != CLD_EXITED || si.si_status != ZOMBIE_STATUS)
		fail("Z %d ended with code %d status %d, want exit %d", z, si.si_code, si.si_status, ZOMBIE_STATUS);
	for (int i = 0; i < 2; i++) {
		pid_t k = i ? zk : zt;
		int sig = i ? SIGKILL : SIGTERM;
		siginfo_t ki = {0};
		if (waitid(P_PID, k, &ki, WEXITED | WNOWAIT))
			fail("waitid %d: %m", k);
		if (ki.si_code != CLD_KILLED || ki.si_status != sig)
			fail("%d ended with code %d status %d, want killed by %d", k, ki.si_code, ki.si_status, sig);
	}
	struct ids want = {root, ANY, root, root}; /* its parent is outside the tree */
	check_ids("root", want, "before the checkpoint");
	pid_t kids[16], mine[] = {a, b, c, s, z, zt, zk};
	int nkids = children(kids, 16);
	for (unsigned i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		if (!has(kids, nkids, mine[i]))
			fail("the root's children lack %d", mine[i]);
	if (nkids != 8)
		fail("the root has %d children, want A B C S Z ZT ZK and O", nkids);
	test_msg("root %d: A %d B %d C %d S %d Z %d\n", root, a, b, c, s, z);

	test_daemon();
	test_waitsig();

	check_ids("root", want, "after SIGTERM");
	int sr = 0;
	if (subreaper && (prctl(PR_GET_CHILD_SUBREAPER, &sr, 0, 0, 0) || sr != 1))
		fail("the root is no longer a child subreaper (%d, %m)", sr);
	pid_t after[16];
	if (children(after, 16) != nkids)
		fail("the root has %d children, had %d", children(after, 16), nkids);
	for (int i = 0; i < nkids; i++)
		if (!has(after, nkids, kids[i]))
			fail("the root's child %d is gone", kids[i]);
	pid_t w = waitpid(z, &st, WNOHANG);
	if (w != z)
		fail("waitpid on the zombie %d returned %d (%m): it is no longer a zombie", z, w);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != ZOMBIE_STATUS)
		fail("the zombie %d has status %#x, want exit %d", z, st, ZOMBIE_STATUS);
	for (int i = 0; i < 2; i++) {
		pid_t k = i ? zk : zt;
		int sig = i ? SIGKILL : SIGTERM;
		if ((w = waitpid(k, &st, WNOHANG)) != k)
			fail("waitpid on the zombie %d returned %d (%m): it is no longer a zombie", k, w);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != sig || WCOREDUMP(st))
			fail("the zombie %d has status %#x, want killed by signal %d", k, st, sig);
	}
	test_tree_check(TREE_REPORTS);
	pass();
}
