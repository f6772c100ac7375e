/*
 * unix_pair: unix socket pairs with data in flight both ways.
 *
 * Three socketpairs in the daemon — stream, datagram and seqpacket — each
 * with messages queued in both directions (the datagram and seqpacket
 * ones of several sizes, an empty one among them, whose boundaries must
 * survive), a grown receive buffer, SO_PASSCRED on one end and O_NONBLOCK
 * on another. A fourth pair, a stream, is split between the daemon and a
 * child it forks: each has written to the other before Ready and nothing
 * was read.
 *
 * After SIGTERM every queue must hold exactly what was sent, in order and
 * with its boundaries, the options and flags must be as set, and each
 * pair must still carry data both ways. The child, woken through a pipe
 * (a signal wait would change its blocked mask under the harness's eyes),
 * checks what the daemon sent it and answers; it exits 0 if all was well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmlib.h"

static const char *const msgs[] = {"first", "", "a somewhat longer third message", "4"};
#define NMSGS (int)(sizeof(msgs) / sizeof(msgs[0]))
static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
static const char *const names[] = {"stream", "dgram", "seqpacket"};
#define RCVBUF 300000

static const char to_child[] = "from the daemon to its child";
static const char to_daemon[] = "from the child to the daemon";

/* message i sent by end `from` of pair kind k, distinct per direction. */
static void message(char *buf, size_t n, int k, int from, int i)
{
	snprintf(buf, n, "%s %d->%d #%d %s", names[k], from, !from, i, msgs[i]);
	if (!*msgs[i] && types[k] != SOCK_STREAM)
		buf[0] = 0; /* the empty datagram stays empty */
}

static void send_all(int k, int fd, int from)
{
	for (int i = 0; i < NMSGS; i++) {
		char m[128];
		message(m, sizeof(m), k, from, i);
		if (send(fd, m, strlen(m), 0) != (ssize_t)strlen(m))
			fail("%s: send %d from end %d: %m", names[k], i, from);
	}
}

/* check_queue reads what end !from of kind k holds: the messages of
 * send_all, and then nothing. */
static void check_queue(int k, int fd, int from)
{
	char want[4096] = "", got[4096];
	if (types[k] == SOCK_STREAM) {
		for (int i = 0; i < NMSGS; i++) {
			char m[128];
			message(m, sizeof(m), k, from, i);
			strcat(want, m);
		}
		size_t n = 0;
		while (n < strlen(want)) {
			ssize_t r = recv(fd, got + n, sizeof(got) - n, MSG_DONTWAIT);
			if (r <= 0)
				fail("%s: end %d: read %zu of %zu bytes, then %zd (%m)", names[k], !from, n, strlen(want), r);
			n += r;
		}
		if (n != strlen(want) || memcmp(got, want, n))
			fail("%s: end %d: got %.*s, want %s", names[k], !from, (int)n, got, want);
	} else {
		for (int i = 0; i < NMSGS; i++) {
			message(want, sizeof(want), k, from, i);
			ssize_t r = recv(fd, got, sizeof(got), MSG_DONTWAIT);
			if (r != (ssize_t)strlen(want) || memcmp(got, want, r))
				fail("%s: end %d: message %d is %zd bytes \"%.*s\" (%m), want \"%s\"", names[k], !from, i, r,
				     r > 0 ? (int)r : 0, got, want);
		}
	}
	ssize_t r = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	if (r >= 0 || errno != EAGAIN)
		fail("%s: end %d: %zd more bytes queued (%m)", names[k], !from, r);
}

/* still_works sends one message each way. */
static void still_works(int k, int p[2])
{
	for (int from = 0; from < 2; from++) {
		char got[64];
		if (send(p[from], "ping", 4, 0) != 4)
			fail("%s: send after restore from end %d: %m", names[k], from);
		if (recv(p[!from], got, sizeof(got), 0) != 4 || memcmp(got, "ping", 4))
			fail("%s: receive after restore on end %d: %m", names[k], !from);
	}
}

static int getint(int fd, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l))
		fail("getsockopt %d: %m", opt);
	return v;
}

static void child(int sk, int sync, int wake)
{
	/* Keep nothing of the daemon's but our ends and stdio: the launcher
	 * waits for the end of the daemon's ready pipe. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != sk && fd != sync && fd != wake)
			close(fd);
	if (send(sk, to_daemon, sizeof(to_daemon), 0) != sizeof(to_daemon))
		_exit(2);
	if (write(sync, "R", 1) != 1)
		_exit(3);
	close(sync);
	char c;
	if (read(wake, &c, 1) != 1)
		_exit(4);
	char got[128];
	ssize_t n = recv(sk, got, sizeof(got), MSG_DONTWAIT);
	int ok = n == sizeof(to_child) && !memcmp(got, to_child, n);
	if (send(sk, ok ? "child ok" : "child bad", ok ? 8 : 9, 0) < 0)
		_exit(5);
	_exit(ok ? 0 : 6);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int p[3][2], split[2], sync[2], wake[2];
	for (int k = 0; k < 3; k++) {
		if (socketpair(AF_UNIX, types[k], 0, p[k]))
			fail("socketpair %s: %m", names[k]);
		send_all(k, p[k][0], 0);
		send_all(k, p[k][1], 1);
	}
	int one = 1, rcvbuf = RCVBUF;
	if (setsockopt(p[1][1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) ||
	    setsockopt(p[2][0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		fail("setsockopt: %m");
	int wantbuf = getint(p[1][1], SO_RCVBUF);
	if (fcntl(p[0][1], F_SETFL, O_NONBLOCK))
		fail("fcntl: %m");

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, split) || pipe(sync) || pipe(wake))
		fail("socketpair/pipe: %m");
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		close(split[0]);
		close(sync[0]);
		close(wake[1]);
		child(split[1], sync[1], wake[0]);
	}
	close(split[1]);
	close(sync[1]);
	close(wake[0]);
	if (send(split[0], to_child, sizeof(to_child), 0) != sizeof(to_child))
		fail("send to the child: %m");
	char c;
	if (read(sync[0], &c, 1) != 1)
		fail("the child died before it was ready");
	close(sync[0]);

	test_daemon();
	test_waitsig();

	for (int k = 0; k < 3; k++) {
		check_queue(k, p[k][1], 0);
		check_queue(k, p[k][0], 1);
	}
	if (getint(p[1][1], SO_RCVBUF) != wantbuf)
		fail("SO_RCVBUF %d, want %d", getint(p[1][1], SO_RCVBUF), wantbuf);
	if (!getint(p[2][0], SO_PASSCRED) || getint(p[2][1], SO_PASSCRED))
		fail("SO_PASSCRED is %d/%d, want 1/0", getint(p[2][0], SO_PASSCRED), getint(p[2][1], SO_PASSCRED));
	if (!(fcntl(p[0][1], F_GETFL) & O_NONBLOCK) || (fcntl(p[0][0], F_GETFL) & O_NONBLOCK))
		fail("O_NONBLOCK lost or gained");
	for (int k = 0; k < 3; k++)
		still_works(k, p[k]);

	char got[128];
	ssize_t n = recv(split[0], got, sizeof(got), MSG_DONTWAIT);
	if (n != sizeof(to_daemon) || memcmp(got, to_daemon, n))
		fail("from the child: %zd bytes (%m), want \"%s\"", n, to_daemon);
	if (write(wake[1], "W", 1) != 1)
		fail("wake the child: %m");
	n = recv(split[0], got, sizeof(got), 0);
	if (n != 8 || memcmp(got, "child ok", 8))
		fail("the child says %.*s", n > 0 ? (int)n : 0, got);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the child ended with status %#x", st);
	pass();
}
