/*
 * seccomp_filter: a process under two seccomp filters.
 *
 * The older filter makes getpgid fail with ERRNO_PGID, the newer one
 * (installed with SECCOMP_FILTER_FLAG_LOG) getsid with ERRNO_SID. The dump
 * injects system calls into the process, which the filters would judge:
 * gocr must suspend seccomp while tracing it, read the filters and install
 * them again. After restore both must still act, in filter mode (Seccomp:
 * 2, Seccomp_filters: 2), and getpriority, which no filter names, must
 * work.
 *
 * Built as seccomp_filter the process sets no_new_privs first, as an
 * unprivileged process must, and it must be set after restore. Built as
 * seccomp_filter_suid (FILTER_SUID) it keeps root, installs the filters
 * with CAP_SYS_ADMIN instead, and only then drops that capability from
 * all its sets: it has no no_new_privs, and its restored credentials could
 * install no filter.
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "seccomplib.h"
#include "zdtmlib.h"

#ifdef FILTER_SUID
#define SUID true
#define NNP 0
#else
#define SUID false
#define NNP 1
#endif

#ifdef FILTER_SUID
static bool has_sys_admin(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data))
		fail("capget: %m");
	return (data[0].effective | data[0].permitted) & (1u << CAP_SYS_ADMIN);
}

/* drop_sys_admin takes CAP_SYS_ADMIN out of the bounding, effective,
 * permitted and inheritable sets. */
static void drop_sys_admin(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0))
		fail("drop CAP_SYS_ADMIN from the bounding set: %m");
	if (syscall(SYS_capget, &hdr, data))
		fail("capget: %m");
	data[0].effective &= ~(1u << CAP_SYS_ADMIN);
	data[0].permitted &= ~(1u << CAP_SYS_ADMIN);
	data[0].inheritable &= ~(1u << CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &hdr, data))
		fail("capset: %m");
	if (has_sys_admin())
		fail("CAP_SYS_ADMIN still there");
}
#endif

static void check(const char *when)
{
	if (!filtered(SYS_getpgid, ERRNO_PGID))
		fail("%s: getpgid is not filtered with errno %d", when, ERRNO_PGID);
	if (!filtered(SYS_getsid, ERRNO_SID))
		fail("%s: getsid is not filtered with errno %d", when, ERRNO_SID);
	errno = 0;
	if (syscall(SYS_getpriority, PRIO_PROCESS, 0) < 0)
		fail("%s: getpriority, which no filter names, fails: %m", when);
	long mode = status_int("/proc/self/status", "Seccomp");
	long n = status_int("/proc/self/status", "Seccomp_filters");
	long nnp = status_int("/proc/self/status", "NoNewPrivs");
	if (mode != 2 || (n != -1 && n != 2))
		fail("%s: Seccomp %ld with %ld filters, want 2 with 2", when, mode, n);
	if (nnp != NNP)
		fail("%s: NoNewPrivs %ld, want %d", when, nnp, NNP);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, SUID);
	if (NNP && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		fail("PR_SET_NO_NEW_PRIVS: %m");
	if (errno_filter(SYS_getpgid, ERRNO_PGID, 0))
		fail("install the getpgid filter: %m");
	if (errno_filter(SYS_getsid, ERRNO_SID, SECCOMP_FILTER_FLAG_LOG))
		fail("install the getsid filter: %m");
#ifdef FILTER_SUID
	drop_sys_admin();
	if (errno_filter(SYS_getpriority, ERRNO_PRIO, 0) != -1 || errno != EACCES)
		fail("without no_new_privs or CAP_SYS_ADMIN a filter went in");
#endif
	check("before the dump");

	test_daemon();
	test_waitsig();

	check("after restore");
#ifdef FILTER_SUID
	if (has_sys_admin())
		fail("CAP_SYS_ADMIN is back after restore");
#endif
	pass();
}
