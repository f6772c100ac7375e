/*
 * memfd: memfds with contents, seals, offsets, and shared mappings.
 *
 *   sealed   3 pages and 100 bytes of data, offset 1234, sealed with
 *            F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE; also dup'ed (same
 *            offset) and reopened read-only through /proc (an offset of
 *            its own, same inode)
 *   sparse   no MFD_ALLOW_SEALING (so F_SEAL_SEAL), close-on-exec, 1 MiB
 *            with data only at 512 KiB
 *   mapped   2 pages mapped MAP_SHARED read-write, one page written
 *            through the mapping, one through the fd, then sealed with
 *            F_SEAL_FUTURE_WRITE (the mapping stays writable, the fd not)
 *   orphan   1 page mapped MAP_SHARED, its fd closed: only the mapping
 *            holds it
 *   noexec   MFD_NOEXEC_SEAL (6.3+): mode 0666 and F_SEAL_EXEC
 *   exec     a copy of this very program, its first page also mapped
 *            MAP_SHARED read-write (zdtm's memfd04, memfd05): it must
 *            still run with execveat(AT_EMPTY_PATH) after restore, which
 *            needs the inode to have no writer but memfd_create's own
 *            file (ETXTBSY otherwise)
 *
 * After SIGTERM every fd must show the same name, size, inode sharing,
 * seals, mode, offset and contents; the seals must still be enforced; and
 * the mappings must show what was written, take new writes and, for the
 * mapped memfd, show them through its fd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmlib.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define PAGE 4096
#define SEALED_SIZE (3 * PAGE + 100)
#define SPARSE_SIZE (1 << 20)
#define SPARSE_AT (512 << 10)

static char sealed_data[SEALED_SIZE];

struct state {
	struct stat st;
	int seals;
	off_t pos;
	char link[256];
};

static int make(const char *name, unsigned flags)
{
	int fd = memfd_create(name, flags);
	if (fd < 0)
		fail("memfd_create %s: %m", name);
	return fd;
}

static void pwrite_all(int fd, const void *b, size_t n, off_t at)
{
	if (pwrite(fd, b, n, at) != (ssize_t)n)
		fail("pwrite %zu bytes at %ld: %m", n, (long)at);
}

static struct state state(int fd)
{
	struct state s;
	char path[64];
	memset(&s, 0, sizeof(s));
	if (fstat(fd, &s.st))
		fail("fstat %d: %m", fd);
	s.seals = fcntl(fd, F_GET_SEALS);
	s.pos = lseek(fd, 0, SEEK_CUR);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (readlink(path, s.link, sizeof(s.link) - 1) < 0)
		fail("readlink %s: %m", path);
	return s;
}

static void same(int fd, const struct state *was, const char *what)
{
	struct state s = state(fd);
	if (strcmp(s.link, was->link))
		fail("%s: link %s, was %s", what, s.link, was->link);
	if (s.st.st_size != was->st.st_size || s.st.st_mode != was->st.st_mode || s.st.st_uid != was->st.st_uid ||
	    s.st.st_gid != was->st.st_gid)
		fail("%s: size %ld mode %o owner %d:%d, were %ld %o %d:%d", what, (long)s.st.st_size, s.st.st_mode, s.st.st_uid,
		     s.st.st_gid, (long)was->st.st_size, was->st.st_mode, was->st.st_uid, was->st.st_gid);
	if (s.seals != was->seals || s.pos != was->pos)
		fail("%s: seals %#x offset %ld, were %#x %ld", what, s.seals, (long)s.pos, was->seals, (long)was->pos);
}

static void contents(int fd, off_t at, const void *want, size_t n, const char *what)
{
	char buf[SEALED_SIZE];
	if (n > sizeof(buf) || pread(fd, buf, n, at) != (ssize_t)n || memcmp(buf, want, n))
		fail("%s: contents at %ld differ (%m)", what, (long)at);
}

/* run_memfd runs the program in fd with --exec-exit and says whether it
 * exited 0. */
static int run_memfd(int fd)
{
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid == 0) {
		char *const args[] = {"memfd", "--exec-exit", NULL}, *const env[] = {NULL};
		syscall(SYS_execveat, fd, "", args, env, AT_EMPTY_PATH);
		_exit(errno);
	}
	int st;
	while (waitpid(pid, &st, 0) != pid)
		if (errno != EINTR)
			fail("waitpid: %m");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		errno = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--exec-exit"))
		return 0; /* the exec memfd's run */
	test_init(argc, argv, false);
	for (int i = 0; i < SEALED_SIZE; i++)
		sealed_data[i] = 'a' + i % 23;

	int sealed = make("zdtm-sealed", MFD_ALLOW_SEALING);
	pwrite_all(sealed, sealed_data, SEALED_SIZE, 0);
	if (lseek(sealed, 1234, SEEK_SET) != 1234)
		fail("lseek: %m");
	if (fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE))
		fail("seal: %m");
	int dupped = dup(sealed);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", sealed);
	int reopened = open(path, O_RDONLY);
	if (dupped < 0 || reopened < 0)
		fail("dup or reopen: %m");

	int sparse = make("zdtm-sparse", MFD_CLOEXEC);
	if (ftruncate(sparse, SPARSE_SIZE))
		fail("ftruncate: %m");
	pwrite_all(sparse, "middle", 6, SPARSE_AT);

	int mapped = make("zdtm-mapped", MFD_ALLOW_SEALING);
	if (ftruncate(mapped, 2 * PAGE))
		fail("ftruncate: %m");
	char *map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mapped, 0);
	if (map == MAP_FAILED)
		fail("mmap: %m");
	strcpy(map, "written through the mapping");
	pwrite_all(mapped, "written through the fd", 23, PAGE);
	if (fcntl(mapped, F_ADD_SEALS, F_SEAL_FUTURE_WRITE))
		fail("seal future write: %m");

	int orphan_fd = make("zdtm-orphan", 0);
	if (ftruncate(orphan_fd, PAGE))
		fail("ftruncate: %m");
	char *orphan = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, orphan_fd, 0);
	if (orphan == MAP_FAILED)
		fail("mmap orphan: %m");
	close(orphan_fd);
	strcpy(orphan, "only the mapping holds me");

	int noexec = memfd_create("zdtm-noexec", MFD_NOEXEC_SEAL);
	if (noexec < 0 && errno != EINVAL)
		fail("memfd_create noexec: %m");
	if (noexec >= 0)
		pwrite_all(noexec, "noexec", 6, 0);

	int exec = make("zdtm-exec", 0), self = open("/proc/self/exe", O_RDONLY);
	if (self < 0)
		fail("open /proc/self/exe: %m");
	char chunk[65536];
	ssize_t n;
	off_t at = 0;
	while ((n = read(self, chunk, sizeof(chunk))) > 0) {
		pwrite_all(exec, chunk, n, at);
		at += n;
	}
	close(self);
	char *exec_map = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, exec, 0);
	if (exec_map == MAP_FAILED)
		fail("mmap exec: %m");
	if (!run_memfd(exec))
		fail("exec: execveat before the dump: %m");

	int fds[] = {sealed, dupped, reopened, sparse, mapped, noexec};
	const char *names[] = {"sealed", "dup", "reopened", "sparse", "mapped", "noexec"};
	struct state was[6];
	for (int i = 0; i < 6; i++)
		if (fds[i] >= 0)
			was[i] = state(fds[i]);

	test_daemon();
	test_waitsig();

	for (int i = 0; i < 6; i++)
		if (fds[i] >= 0)
			same(fds[i], &was[i], names[i]);
	if (state(reopened).st.st_ino != state(sealed).st.st_ino)
		fail("the reopened fd has another inode than the sealed memfd");
	if (fcntl(sealed, F_GETFD) != 0 || fcntl(sparse, F_GETFD) != FD_CLOEXEC)
		fail("close-on-exec flags %d/%d", fcntl(sealed, F_GETFD), fcntl(sparse, F_GETFD));

	contents(sealed, 0, sealed_data, SEALED_SIZE, "sealed");
	if (lseek(dupped, 10, SEEK_SET) != 10 || lseek(sealed, 0, SEEK_CUR) != 10)
		fail("the dup'ed fd does not share the offset any more");
	if (lseek(reopened, 0, SEEK_CUR) != 0)
		fail("the reopened fd's offset moved with the others");
	if (write(sealed, "x", 1) != -1 || errno != EPERM)
		fail("write to a write-sealed memfd: %m, want EPERM");
	if (ftruncate(sealed, 1) != -1 || errno != EPERM)
		fail("shrink a shrink-sealed memfd: %m, want EPERM");
	if (ftruncate(sealed, 1 << 20) != -1 || errno != EPERM)
		fail("grow a grow-sealed memfd: %m, want EPERM");

	char zero[PAGE];
	memset(zero, 0, sizeof(zero));
	contents(sparse, SPARSE_AT, "middle", 6, "sparse");
	contents(sparse, 0, zero, sizeof(zero), "sparse start");
	contents(sparse, SPARSE_SIZE - PAGE, zero, sizeof(zero), "sparse end");
	if (fcntl(sparse, F_ADD_SEALS, F_SEAL_WRITE) != -1 || errno != EPERM)
		fail("seal a memfd made without MFD_ALLOW_SEALING: %m, want EPERM");

	if (strcmp(map, "written through the mapping") || strcmp(map + PAGE, "written through the fd"))
		fail("mapped: the mapping shows '%.30s' and '%.30s'", map, map + PAGE);
	contents(mapped, 0, "written through the mapping", 27, "mapped through the fd");
	strcpy(map + 100, "after restore");
	contents(mapped, 100, "after restore", 13, "a write through the mapping, seen through the fd");
	if (pwrite(mapped, "x", 1, 0) != -1 || errno != EPERM)
		fail("write to a future-write-sealed memfd: %m, want EPERM");

	if (strcmp(orphan, "only the mapping holds me"))
		fail("orphan: the mapping shows '%.30s'", orphan);
	strcpy(orphan, "written after restore");

	if (exec_map[1] != 'E' || !run_memfd(exec))
		fail("exec: execveat after restore: %m");

	if (noexec >= 0) {
		contents(noexec, 0, "noexec", 6, "noexec");
		if ((was[5].st.st_mode & 0777) != 0666 || !(was[5].seals & F_SEAL_EXEC))
			fail("noexec: mode %o seals %#x before the dump already", was[5].st.st_mode, was[5].seals);
	}
	pass();
}
