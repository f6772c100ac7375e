/*
 * seccomp_refused: a dump that fails leaves tasks in seccomp mode as they
 * were.
 *
 * The root, under a getpgid filter, holds a file descriptor in flight in a
 * unix socket's queue, which gocr refuses to dump (the descriptor says
 * crfail); its child is in strict mode, blocked reading a pipe. The dump
 * seizes and injects into both before it gives up: after it, the child
 * must still be alive, in strict mode, answering, and killed by a call
 * outside strict mode's four; the root's filter must still act and the
 * message must still be queued.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomplib.h"
#include "zdtmlib.h"

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int to[2], from[2], sk[2];
	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC) || socketpair(AF_UNIX, SOCK_DGRAM, 0, sk))
		fail("pipe/socketpair: %m");
	pid_t kid = test_fork(); /* it never gives a verdict: the root checks it */
	if (kid == 0) {
		char c;
		close(to[1]);
		close(from[0]);
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
			syscall(SYS_exit, 10);
		if (write(from[1], "R", 1) != 1)
			syscall(SYS_exit, 11);
		for (;;) {
			if (read(to[0], &c, 1) != 1)
				syscall(SYS_exit, 12);
			if (c == 'k')
				syscall(SYS_getppid);
			if (write(from[1], "q", 1) != 1)
				syscall(SYS_exit, 13);
		}
	}
	close(to[0]);
	close(from[1]);
	char c;
	if (read(from[0], &c, 1) != 1 || c != 'R')
		fail("the child did not enter strict mode");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || errno_filter(SYS_getpgid, ERRNO_PGID, 0))
		fail("install the getpgid filter: %m");
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &to[1], sizeof(int));
	if (sendmsg(sk[0], &mh, 0) != 1)
		fail("sendmsg SCM_RIGHTS: %m");

	test_daemon();
	test_waitsig();

	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", kid);
	if (status_int(path, "Seccomp") != 1)
		fail("child %d: Seccomp %ld after the failed dump, want 1", kid, status_int(path, "Seccomp"));
	if (status_int(path, "TracerPid") != 0)
		fail("child %d is still traced", kid);
	if (write(to[1], "p", 1) != 1 || read(from[0], &c, 1) != 1 || c != 'q')
		fail("child %d does not answer over its pipes", kid);
	if (write(to[1], "k", 1) != 1)
		fail("write: %m");
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail("child %d: a call outside strict mode's four did not kill it (status %#x)", kid, st);
	if (!filtered(SYS_getpgid, ERRNO_PGID) || status_int("/proc/self/status", "Seccomp") != 2)
		fail("the root's filter is gone");
	char rbuf[CMSG_SPACE(sizeof(int))];
	iov = (struct iovec){.iov_base = &c, .iov_len = 1};
	mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = rbuf, .msg_controllen = sizeof(rbuf)};
	if (recvmsg(sk[1], &mh, MSG_DONTWAIT) != 1 || c != 'x' || !CMSG_FIRSTHDR(&mh))
		fail("the message in flight is gone: %m");
	pass();
}
