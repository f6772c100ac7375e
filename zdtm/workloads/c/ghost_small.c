/*
 * ghost_small: a small file deleted while two processes have it open.
 *
 * The parent writes a known text to --filename, opens it O_RDWR and seeks
 * into it, then forks a child that keeps that fd (one open file
 * description, shared) and opens the file once more itself (O_RDONLY,
 * another description, its own offset); then the name is unlinked: the
 * processes hold one inode with no name left. After SIGTERM the parent
 * checks its offset and flags, that fstat shows nlink 0 with the size and
 * mode it had, that /proc/self/fd shows "NAME (deleted)", and the
 * contents; it writes a marker through its fd and wakes the child, which
 * must read the marker through its own fd — one file after the restore,
 * not two copies — and find both its offsets as they were (the shared one
 * moved by the parent's write). The child's exit status is its verdict.
 * No ghost may be left next to the old name.
 *
 * Beside it the parent holds a FIFO deleted with bytes in flight (zdtm's
 * unlink_fifo, fifo-ghost): after SIGTERM it is still a FIFO with no name
 * (nlink 0, "NAME.fifo (deleted)") and gives the bytes back.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdtmlib.h"

static const char text[] = "A ghost: deleted, still open, in two processes.\n";
#define PARENT_POS 7
#define CHILD_POS 19
static const char marker[] = "MARK";
#define MARK_AT 30

/* close_except closes every fd from 3 up but a and b (a < b): the child
 * must not hold the launcher's ready pipe, or the launcher waits for it. */
static void close_except(int a, int b)
{
	if (a > 3)
		close_range(3, a - 1, 0);
	if (b > a + 1)
		close_range(a + 1, b - 1, 0);
	close_range(b + 1, ~0U, 0);
}

static int child_main(int shared, int own)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	int sig;
	while ((sig = sigwaitinfo(&set, NULL)) < 0 && errno == EINTR)
		;
	if (sig != SIGUSR1)
		return 10;
	char buf[sizeof(text)] = "";
	if (pread(own, buf, sizeof(text) - 1, 0) != (ssize_t)sizeof(text) - 1)
		return 11;
	if (memcmp(buf + MARK_AT, marker, strlen(marker)))
		return 12; /* the parent's write is not in our file */
	if (lseek(own, 0, SEEK_CUR) != CHILD_POS)
		return 13;
	if (lseek(shared, 0, SEEK_CUR) != MARK_AT + (off_t)strlen(marker))
		return 14; /* the shared description is not shared */
	struct stat st;
	if (fstat(own, &st) || st.st_nlink != 0)
		return 15;
	return 0;
}

/* leftover names a file a checkpoint engine may have left in dir: a
 * criu-style ghost ("NAME.cr.ID.ghost"), stand-in link or link remap. */
static const char *leftover(const char *dir)
{
	static char found[NAME_MAX + 1];
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		fail("opendir %s: %m", dir);
	found[0] = 0;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".cr.") || strstr(e->d_name, ".cr_link") || !strncmp(e->d_name, "link_remap.", 11))
			snprintf(found, sizeof(found), "%s", e->d_name);
	closedir(d);
	return found[0] ? found : NULL;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	const char *name = test_opt("filename");
	if (!name)
		fail("--filename is required");
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		fail("open %s: %m", name);
	if (write(fd, text, sizeof(text) - 1) != (ssize_t)sizeof(text) - 1)
		fail("write %s: %m", name);
	if (lseek(fd, PARENT_POS, SEEK_SET) != PARENT_POS)
		fail("lseek: %m");
	struct stat want;
	if (fstat(fd, &want))
		fail("fstat: %m");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		fail("sigprocmask: %m");
	int sync[2];
	if (pipe2(sync, O_CLOEXEC))
		fail("pipe: %m");
	pid_t child = fork();
	if (child < 0)
		fail("fork: %m");
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int own = open(name, O_RDONLY | O_CLOEXEC);
		if (own < 0 || lseek(own, CHILD_POS, SEEK_SET) != CHILD_POS)
			_exit(20);
		if (write(sync[1], "o", 1) != 1)
			_exit(21);
		if (own < fd)
			close_except(own, fd);
		else
			close_except(fd, own);
		_exit(child_main(fd, own));
	}
	/* The child has its own open before the name goes. */
	char c;
	close(sync[1]);
	if (read(sync[0], &c, 1) != 1)
		fail("the child died before it opened %s", name);
	close(sync[0]);
	if (unlink(name))
		fail("unlink %s: %m", name);
	char fifo[PATH_MAX];
	snprintf(fifo, sizeof(fifo), "%s.fifo", name);
	unlink(fifo);
	if (mkfifo(fifo, 0600))
		fail("mkfifo %s: %m", fifo);
	int ff = open(fifo, O_RDWR | O_CLOEXEC);
	if (ff < 0 || write(ff, "in flight", 9) != 9)
		fail("FIFO %s: %m", fifo);
	if (unlink(fifo))
		fail("unlink %s: %m", fifo);

	test_daemon();
	test_waitsig();

	int queued = -1;
	struct stat fst;
	if (fstat(ff, &fst) || !S_ISFIFO(fst.st_mode) || fst.st_nlink != 0)
		fail("the deleted FIFO: mode %#o nlink %lu (%m), want a FIFO with no name", fst.st_mode, (unsigned long)fst.st_nlink);
	if (ioctl(ff, FIONREAD, &queued) || queued != 9)
		fail("the deleted FIFO holds %d bytes (%m), want 9", queued);
	char fb[16] = "";
	if (read(ff, fb, sizeof(fb)) != 9 || memcmp(fb, "in flight", 9))
		fail("the deleted FIFO gave %s", fb);
	char fp[64], fl2[PATH_MAX], fwant[PATH_MAX + 16];
	snprintf(fp, sizeof(fp), "/proc/self/fd/%d", ff);
	ssize_t fk = readlink(fp, fl2, sizeof(fl2) - 1);
	fl2[fk > 0 ? fk : 0] = 0;
	snprintf(fwant, sizeof(fwant), "%s (deleted)", fifo);
	if (strcmp(fl2, fwant))
		fail("%s -> %s, want %s", fp, fl2, fwant);

	if (lseek(fd, 0, SEEK_CUR) != PARENT_POS)
		fail("offset %ld, want %d", (long)lseek(fd, 0, SEEK_CUR), PARENT_POS);
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	if ((fl & O_ACCMODE) != O_RDWR || fdfl != FD_CLOEXEC)
		fail("F_GETFL %#o F_GETFD %#o, want O_RDWR and FD_CLOEXEC", fl, fdfl);
	struct stat st;
	if (fstat(fd, &st))
		fail("fstat: %m");
	if (st.st_nlink != 0 || st.st_size != want.st_size || st.st_mode != want.st_mode || st.st_uid != want.st_uid ||
	    st.st_gid != want.st_gid)
		fail("fstat: nlink %lu size %ld mode %#o owner %d:%d, want nlink 0 size %ld mode %#o owner %d:%d",
		     (unsigned long)st.st_nlink, (long)st.st_size, st.st_mode, st.st_uid, st.st_gid, (long)want.st_size,
		     want.st_mode, want.st_uid, want.st_gid);
	char p[64], l[PATH_MAX], wantl[PATH_MAX + 16];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t k = readlink(p, l, sizeof(l) - 1);
	l[k > 0 ? k : 0] = 0;
	snprintf(wantl, sizeof(wantl), "%s (deleted)", name);
	if (strcmp(l, wantl))
		fail("%s -> %s, want %s", p, l, wantl);
	char buf[sizeof(text)] = "";
	if (pread(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(text) - 1 || memcmp(buf, text, sizeof(text) - 1))
		fail("contents changed: %s", buf);
	if (lseek(fd, MARK_AT, SEEK_SET) != MARK_AT || write(fd, marker, strlen(marker)) != (ssize_t)strlen(marker))
		fail("write marker: %m");
	if (kill(child, SIGUSR1))
		fail("kill child %d: %m", child);
	int status;
	if (waitpid(child, &status, 0) != child)
		fail("waitpid %d: %m", child);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("child: status %#x (exit code %d: see child_main)", status, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", name);
	const char *left = leftover(dirname(dir));
	if (left)
		fail("left next to the ghost: %s", left);
	pass();
}
