/*
 * shared_file: one open file, and so one offset, shared by two processes.
 *
 * The root opens --filename once (O_RDWR, created empty) and writes HEAD,
 * then forks. Before Ready the child writes MID through the shared fd, and
 * the root must see the offset move to HEAD+MID; the child also opens the
 * file a second time, on its own, and reads SKIP bytes from it: that open
 * file has an offset of its own.
 *
 * After SIGTERM both find the shared offset at HEAD+MID; the child finds
 * its own file's offset at SKIP. The root wakes the child, which writes
 * TAIL; the root then finds the shared offset at HEAD+MID+TAIL (the
 * child's write moved it) and the file holding exactly the three parts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmlib.h"

static const char head[] = "shared_file: written by the root before fork\n";
static const char mid[] = "shared_file: written by the child before the checkpoint\n";
static const char tail[] = "shared_file: written by the child after SIGTERM\n";
#define HEAD (sizeof(head) - 1)
#define MID (sizeof(mid) - 1)
#define TAIL (sizeof(tail) - 1)
#define SKIP 10

static void put(const char *who, int fd, const char *s, size_t n)
{
	if (write(fd, s, n) != (ssize_t)n)
		fail("%s: write: %m", who);
}

static void check_offset(const char *who, const char *what, int fd, off_t want)
{
	off_t at = lseek(fd, 0, SEEK_CUR);
	if (at != want)
		fail("%s: %s offset %lld (%m), want %lld", who, what, (long long)at, (long long)want);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *name = test_opt("filename");
	if (!name)
		fail("--filename is required");
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %m", name);
	put("root", fd, head, HEAD);

	if (!test_fork()) {
		put("child", fd, mid, MID);
		int own = open(name, O_RDONLY | O_CLOEXEC);
		char buf[SKIP];
		if (own < 0 || read(own, buf, SKIP) != SKIP || memcmp(buf, head, SKIP))
			fail("child: open and read %s on its own: %m", name);
		test_child_ready();

		check_offset("child", "shared", fd, HEAD + MID);
		check_offset("child", "its own file's", own, SKIP);
		put("child", fd, tail, TAIL);
		pass();
	}
	test_tree_ready(1);
	check_offset("root", "shared", fd, HEAD + MID);

	test_daemon();
	test_waitsig();

	check_offset("root", "shared", fd, HEAD + MID);
	test_tree_check(1);
	check_offset("root", "shared (after the child's write)", fd, HEAD + MID + TAIL);
	char want[HEAD + MID + TAIL + 1], got[sizeof(want) + 1];
	snprintf(want, sizeof(want), "%s%s%s", head, mid, tail);
	struct stat st;
	if (fstat(fd, &st) || st.st_size != (off_t)(sizeof(want) - 1))
		fail("root: %s is %lld bytes (%m), want %zu", name, (long long)st.st_size, sizeof(want) - 1);
	ssize_t n = pread(fd, got, sizeof(got), 0);
	if (n != (ssize_t)sizeof(want) - 1 || memcmp(got, want, n))
		fail("root: %s holds %zd bytes \"%.*s\", want \"%s\"", name, n, (int)(n > 0 ? n : 0), got, want);
	pass();
}
