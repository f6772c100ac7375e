/*
 * unix_scm_refused: a file descriptor in flight in a unix socket's queue.
 *
 * One end of a socketpair has sent the other a pipe's read end with
 * SCM_RIGHTS, with a byte of data, and nobody has received it. gocr does
 * not dump fds in flight: the dump must fail with a clear error and leave
 * the workload running (the descriptor says crfail).
 *
 * After SIGTERM the message must still be there, with the pipe's fd, and
 * the pipe must carry what was written into it.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zdtmlib.h"

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	int sk[2], p[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sk) || pipe(p))
		fail("socketpair/pipe: %m");
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
	if (sendmsg(sk[0], &mh, 0) != 1)
		fail("sendmsg SCM_RIGHTS: %m");
	close(p[0]);
	if (write(p[1], "through the passed pipe", 23) != 23)
		fail("write: %m");

	test_daemon();
	test_waitsig();

	char c, rbuf[CMSG_SPACE(sizeof(int))];
	iov = (struct iovec){.iov_base = &c, .iov_len = 1};
	mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = rbuf, .msg_controllen = sizeof(rbuf)};
	if (recvmsg(sk[1], &mh, MSG_DONTWAIT) != 1 || c != 'x')
		fail("recvmsg: %m");
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		fail("the fd in flight is gone");
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	char got[32];
	if (read(fd, got, sizeof(got)) != 23 || memcmp(got, "through the passed pipe", 23))
		fail("the passed pipe lost its data");
	pass();
}
