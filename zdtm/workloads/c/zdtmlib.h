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
/* test_opt returns the value of --name=value, or NULL. */
const char *test_opt(const char *name);
/* test_daemon tells the launcher the state is built (async-signal-safe). */
void test_daemon(void);
/* test_fork forks a child of the workload's tree. Call it before
 * test_daemon: the child lets go of the launcher's ready pipe, which must
 * see EOF once the daemon is ready. */
pid_t test_fork(void);
/* test_waitsig waits for SIGTERM; test_stopped polls for it. */
void test_waitsig(void);
bool test_stopped(void);
void test_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pass(void) __attribute__((noreturn));
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
