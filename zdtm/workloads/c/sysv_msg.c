/*
 * sysv_msg: a SysV message queue holding messages of several types and
 * sizes, sent by the root and its child.
 *
 * The root makes a private queue, gives it another owner, lowers its byte
 * limit (qbytes) and
 * sends NMSGS-1 messages; the child sends the last one. After SIGTERM the
 * root checks the queue's owner, mode, limit and message count, wakes the
 * child, which takes the one message of type TYPE_CHILD (the only one of
 * that type) and reports; the root then takes all the others in the order
 * they were sent, each with its type and bytes. In the h flavor the queue
 * lives in the host's ipc namespace, which outlives the dump: the dump
 * must leave every message in it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/msg.h>
#include <unistd.h>

#include "zdtmlib.h"

#define QBYTES 12000
#define TYPE_CHILD 9
#define NMSGS 6

struct msg {
	long mtype;
	char text[5000];
};

static int id;
static struct msqid_ds before;

/* want gives message i: its type and bytes (sizes 0, small and large). */
static size_t want(int i, struct msg *m)
{
	static const size_t sizes[NMSGS] = {5, 0, 100, 4000, 1, 17};
	static const long types[NMSGS] = {1, 2, 1, 3, 2, TYPE_CHILD};
	m->mtype = types[i];
	for (size_t k = 0; k < sizes[i]; k++)
		m->text[k] = (char)('a' + (i * 7 + k) % 26);
	return sizes[i];
}

static void send_msg(const char *who, int i)
{
	struct msg m;
	size_t n = want(i, &m);
	if (msgsnd(id, &m, n, IPC_NOWAIT))
		fail("%s: send message %d: %m", who, i);
}

static void take_msg(const char *who, int i, long type)
{
	struct msg m, w;
	size_t n = want(i, &w);
	ssize_t got = msgrcv(id, &m, sizeof(m.text), type, IPC_NOWAIT);
	if (got < 0)
		fail("%s: take message %d (type %ld): %m", who, i, type);
	if ((size_t)got != n || m.mtype != w.mtype || memcmp(m.text, w.text, n))
		fail("%s: message %d: type %ld, %zd bytes; want type %ld, %zu bytes, or other bytes", who, i, m.mtype, got, w.mtype, n);
}

static void check_queue(int qnum)
{
	struct msqid_ds ds;
	if (msgctl(id, IPC_STAT, &ds))
		fail("IPC_STAT: %m");
	if (ds.msg_qnum != (msgqnum_t)qnum || ds.msg_qbytes != QBYTES || ds.msg_perm.mode != before.msg_perm.mode ||
	    ds.msg_perm.uid != before.msg_perm.uid || ds.msg_perm.cuid != before.msg_perm.cuid || ds.msg_cbytes != before.msg_cbytes)
		fail("queue %d: %lu messages, %lu bytes, qbytes %lu, mode %#o, uid %d, cuid %d; want %d, %lu, %d, %#o, %d, %d", id,
		     (unsigned long)ds.msg_qnum, (unsigned long)ds.msg_cbytes, (unsigned long)ds.msg_qbytes, ds.msg_perm.mode,
		     ds.msg_perm.uid, ds.msg_perm.cuid, qnum, (unsigned long)before.msg_cbytes, QBYTES, before.msg_perm.mode,
		     before.msg_perm.uid, before.msg_perm.cuid);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	if ((id = msgget(IPC_PRIVATE, 0620 | IPC_CREAT)) < 0)
		fail("msgget: %m");
	struct msqid_ds ds;
	if (msgctl(id, IPC_STAT, &ds))
		fail("IPC_STAT: %m");
	ds.msg_qbytes = QBYTES;
	ds.msg_perm.uid = 18943; /* another owner than its creator: zdtm.py's ZDTM_UID, ZDTM_GID */
	ds.msg_perm.gid = 58467;
	if (msgctl(id, IPC_SET, &ds))
		fail("IPC_SET qbytes %d: %m", QBYTES);
	for (int i = 0; i < NMSGS - 1; i++)
		send_msg("root", i);

	if (!test_fork()) {
		send_msg("child", NMSGS - 1);
		test_child_ready();
		take_msg("child", NMSGS - 1, TYPE_CHILD);
		pass();
	}
	test_tree_ready(1);
	if (msgctl(id, IPC_STAT, &before))
		fail("IPC_STAT: %m");
	check_queue(NMSGS);

	test_daemon();
	test_waitsig();

	check_queue(NMSGS);
	test_tree_check(1);
	for (int i = 0; i < NMSGS - 1; i++)
		take_msg("root", i, 0);
	struct msg m;
	if (msgrcv(id, &m, sizeof(m.text), 0, IPC_NOWAIT) >= 0 || errno != ENOMSG)
		fail("the queue holds more messages than were sent: %m");
	if (msgctl(id, IPC_RMID, NULL))
		fail("remove the queue: %m");
	pass();
}
