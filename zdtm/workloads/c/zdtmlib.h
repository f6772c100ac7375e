/*
 * zdtmlib: the zdtm protocol for gocr's C workloads, the counterpart of the
 * Go library zdtm/lib (see its package comment; the flavors and
 * environment variables are the same).
 *
 *   NAME --pidfile=F --outfile=O [--filename=P] [--dirname=D] [--name=value]
 *
 * test_init forks the daemon (in fresh pid/mnt/uts/ipc/net namespaces, and
 * a user namespace for uns, inside its own tmpfs root, when ZDTM_FLAVOR is
 * ns or uns) and returns in it; the launcher waits until the daemon calls
 * test_daemon, writes F atomically and exits 0, or exits 1 if the daemon
 * died first. The daemon's stdout and stderr go to O.inprogress; pass and
 * fail write the verdict line and rename it to O.
 */
#ifndef ZDTMLIB_H
#define ZDTMLIB_H

#include <stdbool.h>
#include <sys/types.h>

/* test_init parses the options and starts the daemon: it returns only in
 * the daemon. suid workloads keep root; others switch to ZDTM_UID etc. */
void test_init(int argc, char **argv, bool suid);
/* test_timens, called before test_init, makes test_init start the daemon
 * in a fresh time namespace with these clock offsets (seconds), as a
 * container runtime would: the launcher unshares CLONE_NEWTIME and writes
 * /proc/self/timens_offsets before it forks, so the whole tree is in it. */
void test_timens(long monotonic, long boottime);
/* test_opt returns the value of --name=value, or NULL. */
const char *test_opt(const char *name);
/* test_daemon tells the launcher the state is built (async-signal-safe). */
void test_daemon(void);
/* test_waitsig waits for SIGTERM; test_stopped polls for it. */
void test_waitsig(void);
bool test_stopped(void);
void test_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* pass and fail give the verdict in the root; in a process made by
 * test_fork they report to the root instead (see below) and exit. */
void pass(void) __attribute__((noreturn));
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Process trees. The root (the daemon) makes the other processes of its
 * tree with test_fork. Each of them builds its state, says so with
 * test_child_ready, which then blocks until the root's word; the root waits
 * for those words with test_tree_ready before its own test_daemon. After
 * SIGTERM the root wakes them all with test_tree_wake; each checks its state
 * and ends with pass or fail, which send its verdict to the root (through a
 * pipe the whole tree shares) and exit: pass after reaping the process's
 * own children, fail at once. test_tree_collect gathers the verdicts and
 * reaps the root's children.
 *
 * A process made by test_fork dies with its parent (PR_SET_PDEATHSIG), so
 * a root that fails takes its tree along; one that must outlive its parent
 * clears that itself.
 */
/* test_fork is fork(2) for a process of the tree; it fails the test on error. */
pid_t test_fork(void);
/* test_child_ready reports the state built and waits for test_tree_wake. */
void test_child_ready(void);
/* test_tree_ready waits until n processes of the tree are ready; a verdict
 * of fail from any of them fails the root. */
void test_tree_ready(int n);
/* test_tree_wake lets every process of the tree check its state. */
void test_tree_wake(void);
/* test_tree_collect waits for n verdicts, failing on the first fail or when
 * some never come, then reaps the root's children, failing on a child that
 * did not exit 0. */
void test_tree_collect(int n);
/* test_tree_check is test_tree_wake and test_tree_collect. */
void test_tree_check(int n);

#endif
