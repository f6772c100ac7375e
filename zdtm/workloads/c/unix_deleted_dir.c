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
 * After SIGTERM each pair still carries data both ways, and the
 * subdirectory is still gone.
 */
#define _GNU_SOURCE
#include <errno.h>
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
	pass();
}
