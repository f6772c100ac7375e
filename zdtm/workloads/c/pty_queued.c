/*
 * pty_queued: bytes queued in a pty across the checkpoint, both ways, and
 * /dev/tty held open.
 *
 * One process, a session leader: it opens a pty's master and then its
 * slave without O_NOCTTY (it becomes the controlling terminal), and
 * /dev/tty. The slave stays in canonical mode with echo on, as a shell's
 * terminal is. Before the checkpoint the master "types" two whole lines
 * and a third without its newline, and reads their echo; the slave writes
 * a line that nobody reads from the master.
 *
 * After SIGTERM: the master reads exactly the slave's line (OPOST made
 * "\n" "\r\n"), and nothing else, so the restore echoed nothing again;
 * the slave reads the two lines one read each (canonical mode cuts them
 * where they were), then the third once the master sends its newline;
 * /dev/tty is still /dev/tty (its link and TIOCGSID) and writes to the
 * same terminal: the master reads the newline's echo and that line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "zdtmlib.h"

static void write_all(int fd, const char *s, const char *what)
{
	size_t n = strlen(s);
	if (write(fd, s, n) != (ssize_t)n)
		fail("write %s: %m", what);
}

/* read_exact reads want from fd, which may come in pieces. */
static void read_exact(int fd, const char *want, const char *what)
{
	char got[256];
	size_t n = strlen(want), have = 0;
	while (have < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10000) != 1)
			fail("%s: nothing to read after %zu bytes of %zu (%.*s)", what, have, n, (int)have, got);
		ssize_t r = read(fd, got + have, n - have);
		if (r <= 0)
			fail("%s: read: %zd (%m)", what, r);
		have += r;
	}
	if (memcmp(got, want, n))
		fail("%s: read %.*s, want %s", what, (int)n, got, want);
}

/* read_line reads one canonical line from the slave: one read, one line. */
static void read_line(int fd, const char *want, const char *when)
{
	char got[256];
	ssize_t r = read(fd, got, sizeof(got));
	if (r != (ssize_t)strlen(want) || memcmp(got, want, r))
		fail("slave %s: read %zd bytes %.*s (%m), want %s", when, r, (int)(r > 0 ? r : 0), got, want);
}

/* nothing_more says the master has no byte left to read. */
static void nothing_more(int m, const char *when)
{
	int n = -1;
	if (ioctl(m, FIONREAD, &n) || n != 0) {
		char got[256] = {0};
		int fl = fcntl(m, F_GETFL);
		fcntl(m, F_SETFL, fl | O_NONBLOCK);
		ssize_t r = read(m, got, sizeof(got) - 1);
		fail("master %s: %d more bytes queued: %.*s", when, n, (int)(r > 0 ? r : 0), got);
	}
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	if (getsid(0) != getpid() && setsid() < 0)
		fail("setsid: %m");
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		fail("open /dev/ptmx: %m");
	if (grantpt(m) || unlockpt(m))
		fail("unlock the pty: %m");
	const char *name = ptsname(m);
	if (!name)
		fail("ptsname: %m");
	int s = open(name, O_RDWR | O_CLOEXEC); /* the first terminal a leader opens is its own */
	if (s < 0)
		fail("open %s: %m", name);
	int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (tty < 0)
		fail("open /dev/tty: %m");
	struct termios t;
	if (tcgetattr(s, &t))
		fail("tcgetattr: %m");
	if (!(t.c_lflag & ICANON) || !(t.c_lflag & ECHO))
		fail("the slave is not canonical with echo: lflag %#o", t.c_lflag);

	write_all(m, "line one\nline two\npartial", "typed lines");
	read_exact(m, "line one\r\nline two\r\npartial", "the echo before the checkpoint");
	write_all(s, "to master\n", "the slave's line");
	/* Let the line discipline take it all before the checkpoint. */
	for (int i = 0, n = 0; !ioctl(m, FIONREAD, &n) && n < 11; i++) {
		if (i == 5000)
			fail("the slave's line never reached the master: %d bytes", n);
		usleep(1000);
	}

	test_daemon();
	test_waitsig();

	read_exact(m, "to master\r\n", "master after SIGTERM");
	nothing_more(m, "after SIGTERM");
	read_line(s, "line one\n", "after SIGTERM");
	read_line(s, "line two\n", "after SIGTERM");
	write_all(m, "\n", "the third line's newline");
	read_line(s, "partial\n", "after SIGTERM");

	char link[64];
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", tty);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0 || (link[n] = 0, strcmp(link, "/dev/tty")))
		fail("fd %d links to %s (%m), want /dev/tty", tty, n < 0 ? "?" : link);
	pid_t sid = -1;
	if (ioctl(tty, TIOCGSID, &sid) || sid != getsid(0))
		fail("/dev/tty: TIOCGSID gives %d (%m), want %d", sid, getsid(0));
	write_all(tty, "via tty\n", "/dev/tty");
	read_exact(m, "\r\nvia tty\r\n", "master: the echo and /dev/tty's line");
	pass();
}
