/*
 * mntlib: helpers of the mount namespace workloads (mnt_*.c).
 *
 * A workload builds mount namespaces and files in them, records what each
 * process sees (mnt_snapshot, fd_snapshot), and checks after restore that
 * every process sees the same again; the processes of the tree report to
 * the root with zdtmlib's test_fork/test_child_ready/test_tree_* protocol.
 */
#ifndef MNTLIB_H
#define MNTLIB_H

#include <stdbool.h>
#include <stddef.h>

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

/* mnt_seen is what a process sees of the test directory's mounts and of
 * its own fds; mnt_record takes it, mnt_compare fails the workload, naming
 * who, when it differs from what was recorded before the dump. */
struct mnt_seen {
	char mounts[SNAP_MAX], fds[SNAP_MAX];
};
void mnt_record(struct mnt_seen *s);
void mnt_compare(const char *who, const struct mnt_seen *before);

/* mnt_dir is the workload's test directory (--dirname), set by
 * mnt_init; mnt_at gives mnt_dir/rel in one of a few buffers, so that two
 * can be arguments of one call. */
extern char mnt_dir[];
void mnt_init(void);
const char *mnt_at(const char *rel);

/* mkfile creates path with the given contents (a failure ends the
 * workload before test_daemon, so the launcher reports it). */
void mkfile(const char *path, const char *contents);
/* file_is reports whether path holds exactly contents. */
bool file_is(const char *path, const char *contents);
/* fd_is reports whether fd, read from offset 0, holds exactly contents. */
bool fd_is(int fd, const char *contents);
void must(int ret, const char *what);

#endif
