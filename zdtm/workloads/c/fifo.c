/*
 * fifo: a named pipe between the root and a child, with data in flight.
 *
 * The root makes the FIFO --dirname/fifo and opens its read end (with
 * O_NONBLOCK, so that it does not wait for a writer, then clears it); its
 * child opens the write end and writes IN_FLIGHT bytes before Ready. No one
 * reads before SIGTERM.
 *
 * After SIGTERM both check that their fd is still the FIFO at its path
 * (fstat against stat, /proc/self/fd) with the right access mode. The root
 * finds IN_FLIGHT bytes waiting (FIONREAD) and reads them; then it wakes
 * the child, which writes TAIL more bytes and closes its end, and reads
 * them up to EOF, which comes only if no other process holds a write end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmlib.h"

#define IN_FLIGHT 20000 /* less than a pipe holds by default, not page-aligned */
#define TAIL 3000

static char path[PATH_MAX];

static unsigned char pattern(size_t i) { return (unsigned char)(i * 37 + (i >> 8) + 5); }

/* check_fd checks that fd is the FIFO at path, open with access mode acc. */
static void check_fd(const char *who, int fd, int acc)
{
	struct stat fs, ps;
	if (fstat(fd, &fs))
		fail("%s: fstat: %m", who);
	if (stat(path, &ps))
		fail("%s: stat %s: %m", who, path);
	if (!S_ISFIFO(fs.st_mode) || fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino)
		fail("%s: fd %d is %#o %lu:%lu, %s is %#o %lu:%lu", who, fd, fs.st_mode, (unsigned long)fs.st_dev, (unsigned long)fs.st_ino,
		     path, ps.st_mode, (unsigned long)ps.st_dev, (unsigned long)ps.st_ino);
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		fail("%s: readlink %s: %m", who, link);
	target[n] = 0;
	if (strcmp(target, path))
		fail("%s: %s is %s, want %s", who, link, target, path);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & (O_ACCMODE | O_NONBLOCK)) != acc)
		fail("%s: flags %#o (%m), want %#o", who, fl & (O_ACCMODE | O_NONBLOCK), acc);
}

static void write_stream(int fd, size_t off, size_t n)
{
	unsigned char buf[IN_FLIGHT];
	for (size_t i = 0; i < n; i++)
		buf[i] = pattern(off + i);
	ssize_t w = write(fd, buf, n);
	if (w != (ssize_t)n)
		fail("writer: write %zu bytes at %zu returned %zd (%m)", n, off, w);
}

/* read_stream reads n bytes (up to EOF when eof) and checks them. */
static void read_stream(int fd, size_t off, size_t n, bool eof)
{
	unsigned char buf[4096];
	size_t got = 0;
	for (;;) {
		size_t want = eof ? sizeof(buf) : n - got < sizeof(buf) ? n - got : sizeof(buf);
		if (!want)
			return;
		ssize_t k = read(fd, buf, want);
		if (k < 0)
			fail("reader: read at %zu: %m", off + got);
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != pattern(off + got + i))
				fail("reader: byte %zu is %#x, want %#x", off + got + i, buf[i], pattern(off + got + i));
		got += k;
	}
	if (got != n)
		fail("reader: %zu bytes before EOF at %zu, want %zu", got, off, n);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *dir = test_opt("dirname");
	if (!dir)
		fail("--dirname is required");
	if (mkdir(dir, 0700) && errno != EEXIST)
		fail("mkdir %s: %m", dir);
	if (!realpath(dir, path))
		fail("realpath %s: %m", dir);
	if (strlen(path) + sizeof("/fifo") > sizeof(path))
		fail("%s: path too long", dir);
	strcat(path, "/fifo");
	if (mkfifo(path, 0600))
		fail("mkfifo %s: %m", path);
	int rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0)
		fail("open %s for reading: %m", path);
	if (fcntl(rd, F_SETFL, 0))
		fail("clear O_NONBLOCK: %m");

	if (!test_fork()) {
		close(rd);
		int wr = open(path, O_WRONLY | O_CLOEXEC);
		if (wr < 0)
			fail("writer: open %s: %m", path);
		write_stream(wr, 0, IN_FLIGHT);
		check_fd("writer", wr, O_WRONLY);
		test_child_ready();
		check_fd("writer", wr, O_WRONLY);
		write_stream(wr, IN_FLIGHT, TAIL);
		close(wr);
		pass();
	}
	test_tree_ready(1);
	int queued = -1;
	if (ioctl(rd, FIONREAD, &queued) || queued != IN_FLIGHT)
		fail("reader: %d bytes in the FIFO (%m), want %d", queued, IN_FLIGHT);

	test_daemon();
	test_waitsig();

	check_fd("reader", rd, O_RDONLY);
	if (ioctl(rd, FIONREAD, &queued) || queued != IN_FLIGHT)
		fail("reader: %d bytes in the FIFO after SIGTERM (%m), want %d", queued, IN_FLIGHT);
	read_stream(rd, 0, IN_FLIGHT, false);
	test_tree_wake();
	read_stream(rd, IN_FLIGHT, TAIL, true);
	test_tree_collect(1);
	close(rd);
	if (unlink(path))
		fail("unlink %s: %m", path);
	pass();
}
