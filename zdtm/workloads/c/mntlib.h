/*
 * mntlib: helpers of the mount namespace workloads (mnt_*.c).
 *
 * A workload builds mount namespaces and files in them, records what each
 * process sees (mnt_snapshot, fd_snapshot), and checks after restore that
 * every process sees the same again. Processes other than the root report
 * to it: the root hands each a "go" pipe it closes after SIGTERM, and a
 * report pipe the checker writes its verdict line to (peer_*).
 */
#ifndef MNTLIB_H
#define MNTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SNAP_MAX 16384

/* mnt_snapshot writes into buf one line per mount of the caller's
 * namespace whose mount point is under `under` (all if NULL): mount point,
 * root, fs type, source, per-mount and superblock options, and the kind
 * of propagation (shared, slave, unbindable, private) without the group
 * numbers, sorted. Ids and devices are left out: they change. */
void mnt_snapshot(char *buf, size_t n, const char *under);

/* fd_snapshot writes one line per fd of the caller from 3 up: number,
 * path, and the mount point, root and fs type of the mount behind it (its
 * mnt_id, looked up in the caller's own mountinfo: "other-ns" when the
 * mount belongs to another namespace). */
void fd_snapshot(char *buf, size_t n);

/* mkfile creates path with the given contents (a failure ends the
 * workload before test_daemon, so the launcher reports it). */
void mkfile(const char *path, const char *contents);
/* file_is reports whether path holds exactly contents. */
bool file_is(const char *path, const char *contents);
/* fd_is reports whether fd, read from offset 0, holds exactly contents. */
bool fd_is(int fd, const char *contents);
void must(int ret, const char *what);

/* A checker process: created by peer_fork; its body gets the read end of
 * the go pipe (wait with peer_wait) and returns NULL on success or a
 * message, which peer_fork's child writes to the report pipe. */
struct peer {
	pid_t pid;
	int report; /* read end, in the root */
	const char *name;
};

/* peer_fork forks a child that runs body(arg) and reports. gofd is the
 * read end of the go pipe, shared by every peer. The child dies with its
 * parent (PR_SET_PDEATHSIG). */
struct peer peer_fork(const char *name, int gofd, const char *(*body)(void *arg, int gofd), void *arg);
/* peer_readyfd is the write end of the ready pipe every peer inherits:
 * peer_ready says the caller's state is built; the root waits for all of
 * them with peer_await before test_daemon. */
extern int peer_readyfd;
void peer_ready(void);
void peer_await(int readfd, int n);
/* peer_wait blocks until the root closes the go pipe. */
void peer_wait(int gofd);
/* peer_collect reads a peer's verdict and reaps it; NULL when it passed. */
const char *peer_collect(struct peer *p);

#endif
