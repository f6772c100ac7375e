/*
 * pipe_tree: a pipe between two children, full of data at the checkpoint.
 *
 * The root makes a pipe, sets its size to PIPE_SIZE (twice the default)
 * with F_SETPIPE_SZ, and forks a producer that keeps the write end, made
 * O_NONBLOCK, and a consumer that keeps the blocking read end; the root
 * closes both. Before Ready the producer fills the pipe: its writes succeed
 * until exactly PIPE_SIZE bytes are in flight, then fail with EAGAIN. No
 * one reads before SIGTERM.
 *
 * After SIGTERM the producer checks its end: O_WRONLY|O_NONBLOCK, the pipe
 * size, PIPE_SIZE bytes waiting (FIONREAD) and a write failing with EAGAIN.
 * Only then does it let the consumer read (by closing a second pipe, sync,
 * on which the consumer waits for EOF), writes TAIL more bytes and closes
 * its end. The consumer checks its end (O_RDONLY, blocking, same size) and
 * reads until EOF, which comes only if no other process holds the write
 * end: PIPE_SIZE + TAIL bytes of the pattern, in order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "zdtmlib.h"

#define PIPE_SIZE (128 << 10)
#define TAIL (16 << 10)
#define CHUNK 4096

/* pattern is the byte at offset i of the stream. */
static unsigned char pattern(size_t i) { return (unsigned char)(i * 131 + (i >> 12) * 7 + 1); }

static void fill(unsigned char *buf, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pattern(off + i);
}

/* check_end checks the access mode and O_NONBLOCK of fd and the pipe's size. */
static void check_end(const char *who, int fd, int want_flags)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		fail("%s: F_GETFL: %m", who);
	if ((fl & (O_ACCMODE | O_NONBLOCK)) != want_flags)
		fail("%s: flags %#o, want %#o", who, fl & (O_ACCMODE | O_NONBLOCK), want_flags);
	int sz = fcntl(fd, F_GETPIPE_SZ);
	if (sz != PIPE_SIZE)
		fail("%s: pipe size %d (%m), want %d", who, sz, PIPE_SIZE);
}

static void check_full(int fd, const char *when)
{
	int queued = -1;
	if (ioctl(fd, FIONREAD, &queued) || queued != PIPE_SIZE)
		fail("producer %s: %d bytes in the pipe (%m), want %d", when, queued, PIPE_SIZE);
	char c = 0;
	ssize_t n = write(fd, &c, 1);
	if (n != -1 || errno != EAGAIN)
		fail("producer %s: a write to the full pipe returned %zd (%m), want EAGAIN", when, n);
}

static void producer(int wr, int sync) __attribute__((noreturn));
static void producer(int wr, int sync)
{
	unsigned char buf[CHUNK];
	size_t off = 0;
	if (fcntl(wr, F_SETFL, O_NONBLOCK))
		fail("producer: set O_NONBLOCK: %m");
	for (;;) {
		fill(buf, off, CHUNK);
		ssize_t n = write(wr, buf, CHUNK);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n != CHUNK)
			fail("producer: write at %zu returned %zd (%m)", off, n);
		off += n;
	}
	if (off != PIPE_SIZE)
		fail("producer: the pipe took %zu bytes, want %d", off, PIPE_SIZE);
	check_full(wr, "before the checkpoint");
	test_child_ready();

	check_end("producer", wr, O_WRONLY | O_NONBLOCK);
	check_full(wr, "after SIGTERM");
	close(sync); /* the consumer may read now */
	for (size_t done = 0; done < TAIL;) {
		size_t len = TAIL - done < CHUNK ? TAIL - done : CHUNK;
		fill(buf, off, len);
		ssize_t n = write(wr, buf, len);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = wr, .events = POLLOUT};
			if (poll(&p, 1, 10000) != 1)
				fail("producer: the pipe never drained (%m)");
			continue;
		}
		if (n <= 0)
			fail("producer: write of the tail at %zu returned %zd (%m)", off, n);
		off += n, done += n;
	}
	close(wr);
	pass();
}

static void consumer(int rd, int sync) __attribute__((noreturn));
static void consumer(int rd, int sync)
{
	check_end("consumer", rd, O_RDONLY);
	test_child_ready();

	check_end("consumer", rd, O_RDONLY);
	char c;
	ssize_t n = read(sync, &c, 1);
	if (n != 0)
		fail("consumer: waiting for the producer's word: read returned %zd (%m), want EOF", n);
	unsigned char buf[CHUNK];
	size_t off = 0;
	while ((n = read(rd, buf, sizeof(buf))) != 0) {
		if (n < 0)
			fail("consumer: read at %zu: %m", off);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(off + i))
				fail("consumer: byte %zu is %#x, want %#x", off + i, buf[i], pattern(off + i));
		off += n;
	}
	if (off != PIPE_SIZE + TAIL)
		fail("consumer: read %zu bytes before EOF, want %d", off, PIPE_SIZE + TAIL);
	pass();
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int p[2], sync[2];
	if (pipe(p) || pipe(sync))
		fail("pipe: %m");
	if (fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE) != PIPE_SIZE)
		fail("F_SETPIPE_SZ %d: %m", PIPE_SIZE);
	if (!test_fork()) {
		close(p[0]), close(sync[0]);
		producer(p[1], sync[1]);
	}
	if (!test_fork()) {
		close(p[1]), close(sync[1]);
		consumer(p[0], sync[0]);
	}
	close(p[0]), close(p[1]), close(sync[0]), close(sync[1]);
	test_tree_ready(2);

	test_daemon();
	test_waitsig();

	test_tree_check(2);
	pass();
}
