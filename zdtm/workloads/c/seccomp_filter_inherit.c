/*
 * seccomp_filter_inherit: filters inherited across fork.
 *
 * With no_new_privs set, the root installs a getpgid filter and forks two
 * children, which inherit it: the first adds a getsid filter of its own,
 * the second nothing (its chain is the root's, which the dump keeps once).
 * After restore each process checks its chain by what it does and by its
 * status, and so does the root.
 */
#define _GNU_SOURCE
#include <sys/prctl.h>
#include <unistd.h>

#include "seccomplib.h"
#include "zdtmlib.h"

static void check(const char *when, int nfilters, int sid)
{
	long mode = status_int("/proc/self/status", "Seccomp");
	long n = status_int("/proc/self/status", "Seccomp_filters");
	if (mode != 2 || (n != -1 && n != nfilters))
		fail("%s: Seccomp %ld with %ld filters, want 2 with %d", when, mode, n, nfilters);
	if (status_int("/proc/self/status", "NoNewPrivs") != 1)
		fail("%s: NoNewPrivs is not 1", when);
	if (!filtered(SYS_getpgid, ERRNO_PGID))
		fail("%s: getpgid is not filtered", when);
	if (filtered(SYS_getsid, ERRNO_SID) != sid)
		fail("%s: getsid is %sfiltered", when, sid ? "not " : "");
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		fail("PR_SET_NO_NEW_PRIVS: %m");
	if (errno_filter(SYS_getpgid, ERRNO_PGID, 0))
		fail("install the getpgid filter: %m");
	for (int i = 0; i < 2; i++) {
		if (test_fork() == 0) {
			if (i == 0 && errno_filter(SYS_getsid, ERRNO_SID, 0))
				fail("install the getsid filter: %m");
			check("before the dump", i == 0 ? 2 : 1, i == 0);
			test_child_ready();
			check("after restore", i == 0 ? 2 : 1, i == 0);
			pass();
		}
	}
	test_tree_ready(2);
	check("before the dump", 1, 0);

	test_daemon();
	test_waitsig();

	check("after restore", 1, 0);
	test_tree_check(2);
	pass();
}
