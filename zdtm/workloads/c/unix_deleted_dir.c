/*
 * unix_deleted_dir: sockets whose names were deleted with their directory
 * (zdtm's sk-unix01).
 *
 * In a subdirectory of the test's directory a stream listener is bound
 * and two clients connect (both accepted), and a datagram socket is bound
 * and a second one connects to it; then both socket files are unlinked
 * and the subdirectory removed. A restore must bind the names for a
 * moment to connect again, in a directory it makes and removes.
 *
 * And beside it (zdtm's fifo_upon_unix_socket00), a datagram socket is
 * bound and connected to, its file unlinked, and a FIFO made with the same
 * name and held open: the restore must move the FIFO aside for the time of
 * its bind and put it back.
 *
 * After SIGTERM each pair still carries data both ways, the subdirectory
 * is still gone, and the FIFO is the same file at its name, still carrying
 * bytes through the fd held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "zdtmlib.h"

static void name(struct sockaddr_un *a, const char *dir, const char *base)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, base) >= (int)sizeof(a->sun_path))
		fail("%s/%s is too long for a socket name", dir, base);
}

static void roundtrip(const char *what, int a, int b)
{
	char buf[16];
	if (write(a, "ping", 4) != 4 || read(b, buf, sizeof(buf)) != 4 || memcmp(buf, "ping", 4))
		fail("%s: ping does not arrive: %m", what);
	if (write(b, "pong", 4) != 4 || read(a, buf, sizeof(buf)) != 4 || memcmp(buf, "pong", 4))
		fail("%s: pong does not arrive: %m", what);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *file = test_opt("filename");
	if (!file)
		fail("no --filename");
	char sub[4096];
	if (snprintf(sub, sizeof(sub), "%s.gone", file) >= (int)sizeof(sub))
		fail("name too long");
	if (mkdir(sub, 0755) && errno != EEXIST)
		fail("mkdir %s: %m", sub);
	struct sockaddr_un st, dg;
	name(&st, sub, "st");
	name(&dg, sub, "dg");
	unlink(st.sun_path);
	unlink(dg.sun_path);

	int lsk = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lsk < 0 || bind(lsk, (struct sockaddr *)&st, sizeof(st)) || listen(lsk, 4))
		fail("listener: %m");
	int cli[2], acc[2];
	for (int i = 0; i < 2; i++) {
		cli[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		if (cli[i] < 0 || connect(cli[i], (struct sockaddr *)&st, sizeof(st)))
			fail("connect %d: %m", i);
		if ((acc[i] = accept(lsk, NULL, NULL)) < 0)
			fail("accept %d: %m", i);
	}
	int dsk = socket(AF_UNIX, SOCK_DGRAM, 0), dcl = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (dsk < 0 || dcl < 0 || bind(dsk, (struct sockaddr *)&dg, sizeof(dg)) || connect(dcl, (struct sockaddr *)&dg, sizeof(dg)))
		fail("datagram sockets: %m");
	if (unlink(st.sun_path) || unlink(dg.sun_path) || rmdir(sub))
		fail("remove the names and %s: %m", sub);
	roundtrip("stream 0 before", cli[0], acc[0]);

	/* A FIFO that took a deleted socket's name. */
	struct sockaddr_un ff;
	char fifo[4096];
	if (snprintf(fifo, sizeof(fifo), "%s.fifo", file) >= (int)sizeof(fifo))
		fail("name too long");
	unlink(fifo);
	memset(&ff, 0, sizeof(ff));
	ff.sun_family = AF_UNIX;
	if (snprintf(ff.sun_path, sizeof(ff.sun_path), "%s", fifo) >= (int)sizeof(ff.sun_path))
		fail("%s is too long for a socket name", fifo);
	int fsk = socket(AF_UNIX, SOCK_DGRAM, 0), fcl = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fsk < 0 || fcl < 0 || bind(fsk, (struct sockaddr *)&ff, sizeof(ff)) || connect(fcl, (struct sockaddr *)&ff, sizeof(ff)))
		fail("datagram sockets on %s: %m", fifo);
	if (unlink(fifo) || mkfifo(fifo, 0600))
		fail("replace %s with a FIFO: %m", fifo);
	int ffd = open(fifo, O_RDWR);
	struct stat fst;
	if (ffd < 0 || fstat(ffd, &fst))
		fail("open the FIFO %s: %m", fifo);

	test_daemon();
	test_waitsig();

	roundtrip("stream 0", cli[0], acc[0]);
	roundtrip("stream 1", cli[1], acc[1]);
	char buf[8];
	if (write(dcl, "dgram", 5) != 5 || read(dsk, buf, sizeof(buf)) != 5 || memcmp(buf, "dgram", 5))
		fail("the datagram does not arrive: %m");
	struct stat s;
	if (stat(sub, &s) == 0 || errno != ENOENT)
		fail("%s is back after restore (%m)", sub);

	if (write(fcl, "over", 4) != 4 || read(fsk, buf, sizeof(buf)) != 4 || memcmp(buf, "over", 4))
		fail("the datagram to the socket under the FIFO does not arrive: %m");
	struct sockaddr_un got;
	socklen_t len = sizeof(got);
	if (getsockname(fsk, (struct sockaddr *)&got, &len) || strcmp(got.sun_path, fifo))
		fail("the socket under the FIFO is named %s (%m), want %s", got.sun_path, fifo);
	if (lstat(fifo, &s) || !S_ISFIFO(s.st_mode))
		fail("%s is no FIFO after restore (mode %o, %m)", fifo, s.st_mode);
	struct stat now;
	if (fstat(ffd, &now) || now.st_ino != s.st_ino || now.st_dev != s.st_dev)
		fail("the FIFO held is not the one at %s any more", fifo);
	if (write(ffd, "fifo", 4) != 4 || read(ffd, buf, sizeof(buf)) != 4 || memcmp(buf, "fifo", 4))
		fail("the FIFO does not carry bytes: %m");
	unlink(fifo);
	pass();
}
