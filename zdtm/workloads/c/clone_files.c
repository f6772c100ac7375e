/*
 * clone_files: a child made with clone(CLONE_FILES | CLONE_FS) but not
 * CLONE_THREAD shares its parent's fd table and fs info (cwd, umask), as a
 * vfork-style helper does. After restore they must still share them: the
 * parent opens a file and changes directory, and the child finds that fd
 * in its own table and itself in the new directory.
 */
#define _GNU_SOURCE
#include "zdtmlib.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[PATH_MAX / 2];

static bool fd_says(int fd, const char *want)
{
	char b[64] = {0};
	return pread(fd, b, sizeof b - 1, 0) == (ssize_t)strlen(want) && !strcmp(b, want);
}

/* child waits for two fd numbers on cmd: one opened before the dump, one
 * after, both by the parent, and checks it sees both and the parent's
 * cwd. Its exit status is its verdict. */
static int child(int cmd)
{
	int fds[2];
	for (int i = 0; i < 2; i++)
		if (read(cmd, &fds[i], sizeof fds[i]) != sizeof fds[i])
			return 10;
	if (!fd_says(fds[0], "before"))
		return 11;
	if (!fd_says(fds[1], "after"))
		return 12;
	char cwd[PATH_MAX], want[PATH_MAX];
	snprintf(want, sizeof want, "%s/sub", dir);
	if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, want))
		return 13;
	return 0;
}

static int mkfile(const char *name, const char *contents)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, contents, strlen(contents)) != (ssize_t)strlen(contents))
		fail("create %s: %m", p);
	return fd;
}

int main(int argc, char **argv)
{
	test_init(argc, argv, true);
	const char *d = test_opt("dirname");
	if (!d)
		fail("no --dirname");
	snprintf(dir, sizeof dir, "%s", d);
	char sub[PATH_MAX];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	if (mkdir(dir, 0755) < 0 || mkdir(sub, 0755) < 0)
		fail("mkdir %s: %m", sub);
	int cmd[2];
	if (pipe(cmd) < 0)
		fail("pipe: %m");
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = syscall(SYS_clone, CLONE_FILES | CLONE_FS | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		fail("clone: %m");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		_exit(child(cmd[0]));
	}
	int before = mkfile("before.txt", "before");
	test_daemon();
	test_waitsig();
	int after = mkfile("after.txt", "after");
	if (chdir(sub) < 0)
		fail("chdir: %m");
	if (write(cmd[1], &before, sizeof before) != sizeof before || write(cmd[1], &after, sizeof after) != sizeof after)
		fail("tell the child: %m");
	int st;
	if (waitpid(pid, &st, 0) != pid)
		fail("waitpid: %m");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("the child does not share the fd table and fs info any more (status %#x)", st);
	pass();
}
