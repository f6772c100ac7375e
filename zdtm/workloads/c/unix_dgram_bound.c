/*
 * unix_dgram_bound: bound datagram sockets with datagrams queued.
 *
 * Three datagram sockets are bound: to a path in the test's directory
 * (its file made mode 0640), to the same directory by a relative name
 * (the daemon's cwd is that directory), and to an abstract name. An
 * unbound socket sends each of them datagrams of several sizes (an empty
 * one, one of 60000 bytes); another socket, connected to the path-bound
 * one, adds two more with send(). Two more (zdtm's sockets_dgram and
 * socket_close_data): a socket bound and connected to its own name, with
 * a datagram it sent itself, and one end of a datagram socketpair whose
 * other end sent a datagram and was closed.
 *
 * After SIGTERM each socket must hold exactly those datagrams, in order
 * and with their boundaries, from unnamed senders; the names must read
 * back with getsockname, the path's file must still be that socket's
 * with its mode; the connected socket must still reach its peer (and
 * getpeername name it), and each name must still be reachable by sendto;
 * the self-connected socket still talks to itself, and the orphaned end
 * still holds its datagram and gets ECONNREFUSED when it sends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "zdtmlib.h"

#define BIG 60000
static const char *const msgs[] = {"one", "", NULL /* BIG bytes */, "four"};
#define NMSGS (int)(sizeof(msgs) / sizeof(msgs[0]))
static const char *const conn_msgs[] = {"connected 1", "connected 2"};
#define NSK 3

static struct sockaddr_un addrs[NSK];
static socklen_t addrlens[NSK];
static char big[BIG];

static void fill_big(void)
{
	for (int i = 0; i < BIG; i++)
		big[i] = 'a' + i % 26;
}

static const char *msg(int i, size_t *n)
{
	if (!msgs[i]) {
		*n = BIG;
		return big;
	}
	*n = strlen(msgs[i]);
	return msgs[i];
}

static int bound(int i)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fd < 0)
		fail("socket: %m");
	if (bind(fd, (struct sockaddr *)&addrs[i], addrlens[i]))
		fail("bind %d (%s): %m", i, addrs[i].sun_path[0] ? addrs[i].sun_path : addrs[i].sun_path + 1);
	return fd;
}

/* expect reads one datagram of n bytes equal to want, from an unnamed sender. */
static void expect(int fd, int sk, const char *want, size_t n)
{
	static char got[BIG + 1];
	struct sockaddr_un from;
	socklen_t fl = sizeof(from);
	ssize_t r = recvfrom(fd, got, sizeof(got), MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
	if (r != (ssize_t)n || memcmp(got, want, n))
		fail("socket %d: got %zd bytes (%m) \"%.*s\", want %zu \"%.*s\"", sk, r, r > 0 && r < 80 ? (int)r : 0, got, n,
		     n < 80 ? (int)n : 0, want);
	if (fl != 0 && fl != sizeof(sa_family_t))
		fail("socket %d: sender has a name (%u bytes), want unnamed", sk, fl);
}

static void same_name(int fd, int i)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l))
		fail("getsockname %d: %m", i);
	size_t cmp = addrs[i].sun_path[0] ? strlen(addrs[i].sun_path) : addrlens[i] - offsetof(struct sockaddr_un, sun_path);
	if (l < offsetof(struct sockaddr_un, sun_path) + cmp || memcmp(a.sun_path, addrs[i].sun_path, cmp))
		fail("socket %d: getsockname gives another name", i);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	fill_big();
	const char *file = test_opt("filename");
	if (!file)
		fail("no --filename");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", file);
	*strrchr(dir, '/') = 0;
	if (chdir(dir))
		fail("chdir %s: %m", dir);
	for (int i = 0; i < NSK; i++)
		addrs[i].sun_family = AF_UNIX;
	if (snprintf(addrs[0].sun_path, sizeof(addrs[0].sun_path), "%s/dgram.sock", dir) >= (int)sizeof(addrs[0].sun_path))
		fail("test directory %s too long for a socket name", dir);
	strcpy(addrs[1].sun_path, "rel.sock");
	int an = snprintf(addrs[2].sun_path + 1, sizeof(addrs[2].sun_path) - 1, "gocr-zdtm-dgram-%d-%s", getpid(), dir);
	if (an >= (int)sizeof(addrs[2].sun_path) - 1)
		an = sizeof(addrs[2].sun_path) - 2;
	addrlens[0] = addrlens[1] = sizeof(struct sockaddr_un);
	addrlens[2] = offsetof(struct sockaddr_un, sun_path) + 1 + an;
	unlink(addrs[0].sun_path);
	unlink(addrs[1].sun_path);

	int sk[NSK];
	for (int i = 0; i < NSK; i++)
		sk[i] = bound(i);
	if (chmod(addrs[0].sun_path, 0640))
		fail("chmod: %m");
	struct stat st0;
	if (stat(addrs[0].sun_path, &st0))
		fail("stat: %m");
	int snd = socket(AF_UNIX, SOCK_DGRAM, 0), conn = socket(AF_UNIX, SOCK_DGRAM, 0);
	int big_buf = 4 * BIG;
	if (snd < 0 || conn < 0 || setsockopt(snd, SOL_SOCKET, SO_SNDBUF, &big_buf, sizeof(big_buf)))
		fail("socket: %m");
	for (int i = 0; i < NSK; i++)
		for (int m = 0; m < NMSGS; m++) {
			size_t n;
			const char *p = msg(m, &n);
			if (sendto(snd, p, n, MSG_DONTWAIT, (struct sockaddr *)&addrs[i], addrlens[i]) != (ssize_t)n)
				fail("sendto %d message %d: %m", i, m);
		}
	if (connect(conn, (struct sockaddr *)&addrs[0], addrlens[0]))
		fail("connect: %m");
	for (int m = 0; m < 2; m++)
		if (send(conn, conn_msgs[m], strlen(conn_msgs[m]), MSG_DONTWAIT) != (ssize_t)strlen(conn_msgs[m]))
			fail("send on the connected socket: %m");

	struct sockaddr_un self = {.sun_family = AF_UNIX};
	if (snprintf(self.sun_path, sizeof(self.sun_path), "%s/self.sock", dir) >= (int)sizeof(self.sun_path))
		fail("test directory %s too long for a socket name", dir);
	unlink(self.sun_path);
	int selfsk = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (selfsk < 0 || bind(selfsk, (struct sockaddr *)&self, sizeof(self)) ||
	    connect(selfsk, (struct sockaddr *)&self, sizeof(self)) || send(selfsk, "me", 2, 0) != 2)
		fail("self-connected socket: %m");
	int orphan[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, orphan) || send(orphan[1], "left", 4, 0) != 4 || close(orphan[1]))
		fail("orphaned datagram pair: %m");

	test_daemon();
	test_waitsig();

	char got[8];
	if (recv(selfsk, got, sizeof(got), MSG_DONTWAIT) != 2 || memcmp(got, "me", 2))
		fail("self-connected socket: its datagram is lost: %m");
	if (send(selfsk, "again", 5, 0) != 5 || recv(selfsk, got, sizeof(got), MSG_DONTWAIT) != 5 || memcmp(got, "again", 5))
		fail("self-connected socket: no talking to itself after restore: %m");
	expect(orphan[0], 11, "left", 4);
	if (send(orphan[0], "x", 1, MSG_DONTWAIT) != -1 || errno != ECONNREFUSED)
		fail("orphaned end: send after restore: %m, want ECONNREFUSED");

	for (int i = 0; i < NSK; i++) {
		for (int m = 0; m < NMSGS; m++) {
			size_t n;
			const char *p = msg(m, &n);
			expect(sk[i], i, p, n);
		}
		if (i == 0)
			for (int m = 0; m < 2; m++)
				expect(sk[i], i, conn_msgs[m], strlen(conn_msgs[m]));
		char c;
		ssize_t r = recv(sk[i], &c, 1, MSG_DONTWAIT);
		if (r >= 0 || errno != EAGAIN)
			fail("socket %d: more queued (%zd, %m)", i, r);
		same_name(sk[i], i);
	}
	struct stat st;
	if (stat(addrs[0].sun_path, &st))
		fail("stat %s after restore: %m", addrs[0].sun_path);
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0640 || st.st_uid != st0.st_uid || st.st_gid != st0.st_gid)
		fail("%s: mode %o owner %d:%d, want socket 0640 %d:%d", addrs[0].sun_path, st.st_mode, st.st_uid, st.st_gid,
		     st0.st_uid, st0.st_gid);
	struct sockaddr_un peer;
	socklen_t pl = sizeof(peer);
	if (getpeername(conn, (struct sockaddr *)&peer, &pl) || strcmp(peer.sun_path, addrs[0].sun_path))
		fail("getpeername of the connected socket: %m");
	if (send(conn, "again", 5, 0) != 5)
		fail("send on the connected socket after restore: %m");
	expect(sk[0], 0, "again", 5);
	for (int i = 1; i < NSK; i++) {
		if (sendto(snd, "hi", 2, 0, (struct sockaddr *)&addrs[i], addrlens[i]) != 2)
			fail("sendto %d after restore: %m", i);
		expect(sk[i], i, "hi", 2);
	}
	pass();
}
