/*
 * unix_listen: a listening stream socket with connections in every stage.
 *
 * A stream socket bound to a path in the test's directory listens with a
 * backlog of 5. One connection is accepted, with data in flight both
 * ways; two more are left pending (not accepted), each client having
 * sent data already; the clients of all three live in the daemon.
 *
 * After SIGTERM the accepted connection must hold its data both ways and
 * carry the listener's name on its server end; accept must return the
 * pending connections in the order they were made, each with the data
 * its client sent, and then nothing more; every connection must carry
 * data both ways, and the listener must still take new connections.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "zdtmlib.h"

#define NPENDING 2

static struct sockaddr_un addr = {.sun_family = AF_UNIX};

static int connected(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		fail("connect to %s: %m", addr.sun_path);
	return fd;
}

static void put(int fd, const char *m)
{
	if (send(fd, m, strlen(m), MSG_DONTWAIT) != (ssize_t)strlen(m))
		fail("send \"%s\": %m", m);
}

/* take reads exactly m from fd, which must then hold nothing more. */
static void take(int fd, const char *what, const char *m)
{
	char got[256];
	size_t n = 0, want = strlen(m);
	while (n < want) {
		ssize_t r = recv(fd, got + n, want - n, MSG_DONTWAIT);
		if (r <= 0)
			fail("%s: got %zu of \"%s\", then %zd (%m)", what, n, m, r);
		n += r;
	}
	if (memcmp(got, m, want))
		fail("%s: got \"%.*s\", want \"%s\"", what, (int)want, got, m);
	ssize_t r = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	if (r >= 0 || errno != EAGAIN)
		fail("%s: %zd more bytes after \"%s\" (%m)", what, r, m);
}

static void both_ways(int a, int b, const char *what)
{
	put(a, "ping");
	take(b, what, "ping");
	put(b, "pong");
	take(a, what, "pong");
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *file = test_opt("filename");
	if (!file)
		fail("no --filename");
	if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", file) >= (int)sizeof(addr.sun_path) - 8)
		fail("%s: too long for a socket name", file);
	strcpy(strrchr(addr.sun_path, '/'), "/listen.sock");
	unlink(addr.sun_path);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof(addr)) || listen(l, 5))
		fail("listen on %s: %m", addr.sun_path);

	int c0 = connected();
	int a0 = accept(l, NULL, NULL);
	if (a0 < 0)
		fail("accept: %m");
	put(c0, "client 0 to server");
	put(a0, "server to client 0");
	int c[NPENDING];
	char sent[NPENDING][64];
	for (int i = 0; i < NPENDING; i++) {
		c[i] = connected();
		snprintf(sent[i], sizeof(sent[i]), "pending client %d says hello", i + 1);
		put(c[i], sent[i]);
	}

	test_daemon();
	test_waitsig();

	take(a0, "accepted server end", "client 0 to server");
	take(c0, "accepted client end", "server to client 0");
	struct sockaddr_un name;
	socklen_t nl = sizeof(name);
	if (getsockname(a0, (struct sockaddr *)&name, &nl) || strcmp(name.sun_path, addr.sun_path))
		fail("the accepted socket's name is not the listener's: %m");
	both_ways(c0, a0, "accepted connection");
	for (int i = 0; i < NPENDING; i++) {
		int a = accept(l, NULL, NULL);
		if (a < 0)
			fail("accept pending connection %d: %m", i + 1);
		char what[64];
		snprintf(what, sizeof(what), "pending connection %d", i + 1);
		take(a, what, sent[i]);
		both_ways(c[i], a, what);
		nl = sizeof(name);
		if (getpeername(c[i], (struct sockaddr *)&name, &nl) || strcmp(name.sun_path, addr.sun_path))
			fail("pending client %d: its peer is not named %s: %m", i + 1, addr.sun_path);
	}
	struct pollfd pfd = {.fd = l, .events = POLLIN};
	int more = poll(&pfd, 1, 0);
	if (more != 0)
		fail("a connection more than was made is waiting (poll %d, %m)", more);
	int cn = connected(), an = accept(l, NULL, NULL);
	if (an < 0)
		fail("accept a new connection: %m");
	both_ways(cn, an, "new connection");
	pass();
}
