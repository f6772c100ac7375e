/*
 * posix_mq: a POSIX message queue holding messages of several
 * priorities, open in the root and its child with other flags.
 *
 * The root makes a queue (mq_open O_CREAT, mode 0640, its own maxmsg and
 * msgsize), gives it another owner, opens it a second time read-only and non-blocking, and sends
 * five messages of priorities 1, 5 and 9; the child opens it write-only
 * and non-blocking and sends one more. In the ns and uns flavors the root
 * also makes a queue it unlinks at once, keeping it open with one message
 * in it. In the h flavor the queues live in the host's ipc namespace,
 * which outlives the dump: the dump must leave every message there, and
 * an unlinked queue would die with the tree.
 *
 * After SIGTERM the root checks the attributes of both its fds, the
 * queue's owner and mode, wakes the child, which checks its fd is still
 * write-only and non-blocking and that the queue is full, then the root
 * takes every message: highest priority first, in the order sent within a
 * priority.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmlib.h"

#define MAXMSG 6
#define MSGSIZE 200
#define OWNER_UID 18943 /* zdtm.py's ZDTM_UID and ZDTM_GID */
#define OWNER_GID 58467

struct msg {
	const char *text;
	unsigned prio;
};

/* Sent in this order: the root's five, the child's last. */
static const struct msg sent[] = {{"a", 1}, {"b", 5}, {"c", 1}, {"the highest", 9}, {"", 5}, {"from the child", 5}};
/* Taken in this order. */
static const int order[] = {3, 1, 4, 5, 0, 2};
#define NMSGS (int)(sizeof(sent) / sizeof(sent[0]))

static char name[64];
static mqd_t q, ro, unlinked = -1;

static void check_attr(const char *who, mqd_t fd, long flags, long cur)
{
	struct mq_attr a;
	if (mq_getattr(fd, &a))
		fail("%s: mq_getattr: %m", who);
	if (a.mq_flags != flags || a.mq_maxmsg != MAXMSG || a.mq_msgsize != MSGSIZE || a.mq_curmsgs != cur)
		fail("%s: flags %#lx maxmsg %ld msgsize %ld curmsgs %ld, want %#lx %d %d %ld", who, a.mq_flags, a.mq_maxmsg, a.mq_msgsize,
		     a.mq_curmsgs, flags, MAXMSG, MSGSIZE, cur);
}

static void check_owner(const char *who, mqd_t fd)
{
	struct stat st;
	if (fstat(fd, &st))
		fail("%s: fstat: %m", who);
	if ((st.st_mode & 07777) != 0640 || st.st_uid != OWNER_UID || st.st_gid != OWNER_GID)
		fail("%s: mode %#o owner %d:%d, want 0640 and %d:%d", who, st.st_mode & 07777, st.st_uid, st.st_gid, OWNER_UID, OWNER_GID);
}

static void send_msg(const char *who, mqd_t fd, int i)
{
	if (mq_send(fd, sent[i].text, strlen(sent[i].text), sent[i].prio))
		fail("%s: send message %d: %m", who, i);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *flavor = getenv("ZDTM_FLAVOR");
	bool own_ns = flavor && strcmp(flavor, "h");
	snprintf(name, sizeof(name), "/zdtm-posix_mq-%d", getpid());
	struct mq_attr attr = {.mq_maxmsg = MAXMSG, .mq_msgsize = MSGSIZE};
	if ((q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0640, &attr)) < 0)
		fail("mq_open %s: %m", name);
	if ((ro = mq_open(name, O_RDONLY | O_NONBLOCK)) < 0)
		fail("mq_open %s read-only: %m", name);
	if (fchown(q, OWNER_UID, OWNER_GID))
		fail("fchown the queue: %m");
	for (int i = 0; i < NMSGS - 1; i++)
		send_msg("root", q, i);
	if (own_ns) {
		char gone[80];
		snprintf(gone, sizeof(gone), "%s-unlinked", name);
		if ((unlinked = mq_open(gone, O_RDWR | O_CREAT | O_EXCL, 0600, &attr)) < 0)
			fail("mq_open %s: %m", gone);
		if (mq_send(unlinked, "still here", 10, 3) || mq_unlink(gone))
			fail("fill and unlink %s: %m", gone);
	}

	if (!test_fork()) {
		mqd_t wo = mq_open(name, O_WRONLY | O_NONBLOCK);
		if (wo < 0)
			fail("child: mq_open write-only: %m");
		send_msg("child", wo, NMSGS - 1);
		test_child_ready();
		check_attr("child", wo, O_NONBLOCK, NMSGS);
		char buf[MSGSIZE];
		if (mq_receive(wo, buf, sizeof(buf), NULL) >= 0 || errno != EBADF)
			fail("child: a write-only fd could receive: %m");
		if (mq_send(wo, "too many", 8, 0) == 0 || errno != EAGAIN)
			fail("child: sending to the full queue did not say EAGAIN: %m");
		pass();
	}
	test_tree_ready(1);
	check_attr("root", q, 0, NMSGS);

	test_daemon();
	test_waitsig();

	check_attr("root", q, 0, NMSGS);
	check_attr("root, second fd", ro, O_NONBLOCK, NMSGS);
	check_owner("root", q);
	test_tree_check(1);
	for (int i = 0; i < NMSGS; i++) {
		const struct msg *m = &sent[order[i]];
		char buf[MSGSIZE];
		unsigned prio;
		ssize_t n = mq_receive(i % 2 ? q : ro, buf, sizeof(buf), &prio);
		if (n < 0)
			fail("take message %d: %m", i);
		if ((size_t)n != strlen(m->text) || memcmp(buf, m->text, n) || prio != m->prio)
			fail("message %d: %.*s (priority %u), want %s (priority %u)", i, (int)n, buf, prio, m->text, m->prio);
	}
	check_attr("root, emptied", q, 0, 0);
	if (unlinked >= 0) {
		char buf[MSGSIZE];
		unsigned prio;
		ssize_t n = mq_receive(unlinked, buf, sizeof(buf), &prio);
		if (n != 10 || memcmp(buf, "still here", 10) || prio != 3)
			fail("unlinked queue: %zd bytes, priority %u: %m", n, prio);
	}
	if (mq_unlink(name))
		fail("mq_unlink %s: %m", name);
	pass();
}
