/*
 * pty_pair: a pseudo-terminal inside the tree, with a controlling terminal.
 *
 *   R  root: holds the master (/dev/ptmx, packet mode), sets the window size
 *   └─ S   setsid, opens the slave without O_NOCTTY: it becomes the session's
 *      │   controlling terminal; puts it in raw mode with VMIN=4, VTIME=0
 *      └─ F   a group of its own, made the terminal's foreground group
 *
 * Before the checkpoint and again after SIGTERM each checks its side: R the
 * index of its master (TIOCGPTN), packet mode, the window size, and that
 * the terminal is S's session's (TIOCGSID) with F in the foreground
 * (TIOCGPGRP); S and F that the terminal is their controlling terminal
 * (tty_nr of /proc/self/stat, TIOCGSID, tcgetpgrp), S the termios and the
 * window size on its slave, F that /dev/tty opens. Then data goes both ways:
 * R writes "ping" on the master, which F, in the foreground, reads whole at
 * once on the slave (VMIN=4), and F answers "pong", which R reads after
 * packet mode's status byte. Nothing is in flight at the checkpoint (see
 * pty_queued for bytes queued in a pty).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "zdtmlib.h"

#define ROWS 41
#define COLS 133
#define VMIN_WANT 4

static int index_; /* the pty's index: /dev/pts/N */

/* ctty_of reads tty_nr of /proc/self/stat: the controlling terminal. */
static dev_t ctty_of(const char *who)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		fail("%s: read /proc/self/stat: %m", who);
	fclose(f);
	char *p = strrchr(buf, ')');
	int tty_nr = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr) != 1)
		fail("%s: parse /proc/self/stat: %s", who, buf);
	/* The kernel's new_encode_dev. */
	return makedev((tty_nr >> 8) & 0xfff, (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00));
}

static void check_ctty(const char *who, int fd, pid_t sid, pid_t fg, const char *when)
{
	dev_t d = ctty_of(who);
	if (major(d) != 136 || (int)minor(d) != index_)
		fail("%s %s: controlling terminal %u:%u, want pty %d (136:%d)", who, when, major(d), minor(d), index_, index_);
	pid_t got = -1;
	if (ioctl(fd, TIOCGSID, &got) || got != sid)
		fail("%s %s: TIOCGSID gives %d (%m), want %d", who, when, got, sid);
	if ((got = tcgetpgrp(fd)) != fg)
		fail("%s %s: foreground group %d (%m), want %d", who, when, got, fg);
}

static void check_winsize(const char *who, int fd, const char *when)
{
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) || ws.ws_row != ROWS || ws.ws_col != COLS)
		fail("%s %s: window %dx%d (%m), want %dx%d", who, when, ws.ws_row, ws.ws_col, ROWS, COLS);
}

static void check_termios(int fd, const char *when)
{
	struct termios t;
	if (tcgetattr(fd, &t))
		fail("S %s: tcgetattr: %m", when);
	if (t.c_lflag & (ICANON | ECHO) || t.c_oflag & OPOST || t.c_cc[VMIN] != VMIN_WANT || t.c_cc[VTIME] != 0)
		fail("S %s: lflag %#o oflag %#o VMIN %d VTIME %d: not the raw mode set", when, t.c_lflag, t.c_oflag, t.c_cc[VMIN],
		     t.c_cc[VTIME]);
}

/* exchange reads "ping" from the master on the slave, whole at once
 * (VMIN), and answers "pong": in the foreground, as a terminal wants. */
static void exchange(int fd)
{
	char buf[8] = {0};
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n != 4 || memcmp(buf, "ping", 4))
		fail("F: read %zd bytes %.*s (%m), want ping", n, (int)(n > 0 ? n : 0), buf);
	if (write(fd, "pong", 4) != 4)
		fail("F: write pong: %m");
}

static void foreground(pid_t s, int fd) __attribute__((noreturn));
static void foreground(pid_t s, int fd)
{
	pid_t me = getpid();
	/* S makes F's group the foreground one. */
	for (int i = 0; tcgetpgrp(fd) != me; i++) {
		if (i == 5000)
			fail("F: never made the foreground group: %d is", tcgetpgrp(fd));
		usleep(1000);
	}
	int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (tty < 0)
		fail("F: open /dev/tty: %m");
	check_ctty("F", tty, s, me, "before the checkpoint");
	close(tty);
	test_child_ready();
	if ((tty = open("/dev/tty", O_RDWR | O_CLOEXEC)) < 0)
		fail("F after SIGTERM: open /dev/tty: %m");
	check_ctty("F", tty, s, me, "after SIGTERM");
	close(tty);
	exchange(fd);
	pass();
}

static void session(void) __attribute__((noreturn));
static void session(void)
{
	pid_t s = setsid();
	if (s < 0)
		fail("S: setsid: %m");
	char path[64];
	snprintf(path, sizeof(path), "/dev/pts/%d", index_);
	/* A session leader without a terminal takes the first it opens. */
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail("S: open %s: %m", path);
	struct termios t;
	if (tcgetattr(fd, &t))
		fail("S: tcgetattr: %m");
	cfmakeraw(&t);
	t.c_cc[VMIN] = VMIN_WANT;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t))
		fail("S: tcsetattr: %m");
	pid_t f = test_fork();
	if (!f) {
		if (setpgid(0, 0))
			fail("F: setpgid: %m");
		foreground(s, fd);
	}
	if (setpgid(f, f) && getpgid(f) != f)
		fail("S: setpgid(%d): %m", f);
	/* From here on S is in the background: it reads nothing more from
	 * its terminal (SIGTTIN) and changes nothing on it (SIGTTOU). */
	if (tcsetpgrp(fd, f))
		fail("S: tcsetpgrp(%d): %m", f);
	check_ctty("S", fd, s, f, "before the checkpoint");
	check_termios(fd, "before the checkpoint");
	check_winsize("S", fd, "before the checkpoint");
	test_child_ready();
	check_ctty("S", fd, s, f, "after SIGTERM");
	check_termios(fd, "after SIGTERM");
	check_winsize("S", fd, "after SIGTERM");
	pass(); /* after F */
}

/* read_pong reads "pong" from the master, after packet mode's status bytes. */
static void read_pong(int m)
{
	char buf[16], got[8];
	size_t have = 0;
	while (have < 4) {
		ssize_t n = read(m, buf, sizeof(buf));
		if (n <= 0)
			fail("R: read master: %zd (%m) after %zu bytes", n, have);
		if (buf[0] != TIOCPKT_DATA)
			continue; /* a status change, not data */
		for (ssize_t i = 1; i < n && have < sizeof(got); i++)
			got[have++] = buf[i];
	}
	if (have != 4 || memcmp(got, "pong", 4))
		fail("R: read %.*s from the master, want pong", (int)have, got);
}

static void check_master(int m, pid_t s, pid_t f, const char *when)
{
	int n = -1, pkt = -1;
	if (ioctl(m, TIOCGPTN, &n) || n != index_)
		fail("R %s: TIOCGPTN gives %d (%m), want %d", when, n, index_);
	if (ioctl(m, TIOCGPKT, &pkt) || pkt != 1)
		fail("R %s: packet mode %d (%m), want 1", when, pkt);
	check_winsize("R", m, when);
	pid_t got = -1;
	if (ioctl(m, TIOCGSID, &got) || got != s)
		fail("R %s: the terminal is session %d's (%m), want %d's", when, got, s);
	if (ioctl(m, TIOCGPGRP, &got) || got != f)
		fail("R %s: foreground group %d (%m), want %d", when, got, f);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	if (getsid(0) != getpid() && setsid() < 0)
		fail("setsid: %m");
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		fail("open /dev/ptmx: %m");
	int unlock = 0, one = 1;
	if (ioctl(m, TIOCSPTLCK, &unlock) || ioctl(m, TIOCGPTN, &index_))
		fail("unlock the pty: %m");
	if (ioctl(m, TIOCPKT, &one))
		fail("packet mode: %m");
	struct winsize ws = {.ws_row = ROWS, .ws_col = COLS};
	if (ioctl(m, TIOCSWINSZ, &ws))
		fail("set the window size: %m");

	pid_t s = test_fork();
	if (!s) {
		close(m);
		session();
	}
	test_tree_ready(2);
	/* F is S's only child; its pid is its group's. */
	pid_t f = -1;
	if (ioctl(m, TIOCGPGRP, &f))
		fail("R: TIOCGPGRP: %m");
	check_master(m, s, f, "before the checkpoint");

	test_daemon();
	test_waitsig();

	check_master(m, s, f, "after SIGTERM");
	test_tree_wake();
	if (write(m, "ping", 4) != 4)
		fail("R: write ping: %m");
	read_pong(m);
	test_tree_collect(2);
	pass();
}
