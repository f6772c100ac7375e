#define _GNU_SOURCE
#include "zdtmlib.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_OPTS 32
#define NS_HOSTNAME "zdtm-ns"
/* How long the root waits for the words of its tree. */
#define TREE_TIMEOUT_MS 30000

static struct { const char *name, *value; } opts[MAX_OPTS];
static struct {
	bool set;
	long monotonic, boottime;
} timens;
static int nopts;
static const char *outfile;
static int ready_fd = -1;
static volatile sig_atomic_t got_sigterm;

const char *test_opt(const char *name)
{
	for (int i = 0; i < nopts; i++)
		if (!strcmp(opts[i].name, name))
			return opts[i].value;
	return NULL;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* pathf formats a path of at most PATH_MAX bytes into buf. */
static void pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pathf(char *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		die("path too long: %s...", buf);
}

void test_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/*
 * The tree's state (see zdtmlib.h). go: the root keeps the only write end
 * and closes it to wake the tree, which reads EOF. report: every process
 * writes records of REPORT_SIZE bytes (at most PIPE_BUF, so each arrives
 * whole), the root alone reads them.
 */
#define REPORT_SIZE 256
struct report {
	int32_t pid;
	char kind; /* 'R' ready, 'P' pass, 'F' fail */
	char msg[REPORT_SIZE - sizeof(int32_t) - 1];
};
_Static_assert(sizeof(struct report) == REPORT_SIZE, "a report is one atomic pipe write");

static bool tree_child; /* made by test_fork: pass and fail report to the root */
static int go[2] = {-1, -1}, report[2] = {-1, -1};

static void send_report(char kind, const char *msg)
{
	struct report r = {.pid = getpid(), .kind = kind};
	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	if (write(report[1], &r, sizeof(r)) != sizeof(r))
		_exit(3);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* reap_children waits for every child of this process, until the deadline
 * (in now_ms's clock) when it is not 0. It returns the first child that did
 * not exit 0 and its status, or -1 if some child was still running at the
 * deadline, or 0. */
static pid_t reap_children(int *bad, long deadline)
{
	pid_t first = 0, pid;
	int st;
	for (;;) {
		pid = waitpid(-1, &st, deadline ? WNOHANG : 0);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			return first; /* ECHILD: all reaped */
		if (pid > 0) {
			if (!first && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
				first = pid, *bad = st;
			continue;
		}
		if (now_ms() > deadline)
			return -1;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

static void describe_status(char *buf, size_t size, int st)
{
	if (WIFEXITED(st))
		snprintf(buf, size, "exited %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, size, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, size, "status %#x", st);
}

/* child_finish is pass and fail in a process made by test_fork. */
static void child_finish(const char *msg) __attribute__((noreturn));
static void child_finish(const char *msg)
{
	if (msg) {
		test_msg("pid %d: FAIL: %s\n", getpid(), msg);
		send_report('F', msg);
		_exit(1); /* its children die with it */
	}
	/* Its children are checking their own state: wait for them. */
	int st = 0;
	pid_t bad = reap_children(&st, 0);
	if (bad) {
		char buf[REPORT_SIZE], how[64];
		describe_status(how, sizeof(how), st);
		snprintf(buf, sizeof(buf), "child %d %s", bad, how);
		child_finish(buf);
	}
	send_report('P', "");
	_exit(0);
}

static void finish(const char *verdict, int code) __attribute__((noreturn));
static void finish(const char *verdict, int code)
{
	char tmp[PATH_MAX];
	if (tree_child)
		child_finish(code ? verdict + strlen("FAIL: ") : NULL);
	printf("%s\n", verdict);
	fflush(stdout);
	fsync(1);
	pathf(tmp, "%s.inprogress", outfile);
	rename(tmp, outfile);
	_exit(code);
}

void pass(void) { finish("PASS", 0); }

void fail(const char *fmt, ...)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "FAIL: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	finish(buf, 1);
}

void test_daemon(void)
{
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			_exit(3);
		close(ready_fd);
		ready_fd = -1;
	}
}

static void on_sigterm(int sig) { (void)sig; got_sigterm = 1; }

bool test_stopped(void) { return got_sigterm; }

void test_waitsig(void)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigset_t wait = old;
	sigdelset(&wait, SIGTERM);
	while (!got_sigterm)
		sigsuspend(&wait);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* mkdir_p creates path and its parents. */
static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	pathf(buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -1;
	return 0;
}

/* bind_mount bind-mounts src onto a new file or directory dst of the same kind. */
static void bind_mount(const char *src, const char *dst, bool ro)
{
	struct stat st;
	if (stat(src, &st))
		die("stat %s: %m", src);
	if (S_ISDIR(st.st_mode)) {
		if (mkdir_p(dst, 0755))
			die("mkdir %s: %m", dst);
	} else {
		char dir[PATH_MAX];
		pathf(dir, "%s", dst);
		*strrchr(dir, '/') = 0;
		if (mkdir_p(dir, 0755))
			die("mkdir %s: %m", dir);
		int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			die("create %s: %m", dst);
		close(fd);
	}
	if (mount(src, dst, NULL, MS_BIND, NULL))
		die("bind %s on %s: %m", src, dst);
	if (ro && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL))
		die("remount %s read-only: %m", dst);
}

/* bind_mapped_files binds every file the process maps (the dynamic loader
 * and libraries of a dynamic binary) into the new root at its path, so
 * that a restore finds them there. */
static void bind_mapped_files(const char *root, const char *workdir, const char *exe)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[PATH_MAX + 256], done[64][PATH_MAX];
	int ndone = 0;
	if (!f)
		die("open /proc/self/maps: %m");
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');
		if (!path)
			continue;
		path[strcspn(path, "\n")] = 0;
		if (strstr(path, " (deleted)") || !strncmp(path, workdir, strlen(workdir)) || !strcmp(path, exe))
			continue;
		bool seen = false;
		for (int i = 0; i < ndone; i++)
			seen |= !strcmp(done[i], path);
		if (seen || ndone == 64)
			continue;
		snprintf(done[ndone++], PATH_MAX, "%s", path);
		char dst[PATH_MAX];
		pathf(dst, "%s%s", root, path);
		bind_mount(path, dst, false);
	}
	fclose(f);
}

static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	if (fd < 0)
		die("socket for lo: %m");
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr))
		die("get lo flags: %m");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		die("set lo up: %m");
	close(fd);
}

/* mount_pts is ns.go's mountPts: the small /dev gets its own
 * pseudo-terminals, as a container's has: a fresh devpts instance on
 * dev/pts, reached through dev/ptmx, a symlink to its ptmx node. */
static void mount_pts(const char *root)
{
	char p[PATH_MAX];
	pathf(p, "%s/dev/pts", root);
	if (mkdir_p(p, 0755))
		die("mkdir %s: %m", p);
	if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"))
		die("mount devpts on %s: %m", p);
	pathf(p, "%s/dev/ptmx", root);
	if (symlink("pts/ptmx", p))
		die("symlink %s: %m", p);
}

/* enter_root is ns.go's enterRoot: the daemon, pid 1 of its namespaces,
 * builds a tmpfs root holding /proc, a small /dev (with its own devpts),
 * /tmp, its binary (and whatever else it maps) and the test directory at
 * their host paths, and pivots into it. */
static void enter_root(const char *workdir)
{
	char root[PATH_MAX], p[PATH_MAX], exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		die("readlink /proc/self/exe: %m");
	exe[n] = 0;
	if (mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die("make / private: %m");
	pathf(root, "%s/root", workdir);
	if (mkdir_p(root, 0755))
		die("mkdir %s: %m", root);
	if (mount("zdtm-root", root, "tmpfs", 0, "mode=0755"))
		die("mount tmpfs on %s: %m", root);
	const char *dirs[] = {"proc", "dev", "tmp", ".oldroot"};
	for (unsigned i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		pathf(p, "%s/%s", root, dirs[i]);
		if (mkdir_p(p, 0755))
			die("mkdir %s: %m", p);
	}
	pathf(p, "%s/tmp", root);
	if (mount("zdtm-tmp", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"))
		die("mount /tmp: %m");
	pathf(p, "%s%s", root, workdir);
	bind_mount(workdir, p, false);
	pathf(p, "%s%s", root, exe);
	bind_mount(exe, p, true);
	bind_mapped_files(root, workdir, exe);
	pathf(p, "%s/dev", root);
	if (mount("zdtm-dev", p, "tmpfs", MS_NOSUID, "mode=0755"))
		die("mount /dev: %m");
	const char *devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
	for (unsigned i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		char src[64];
		pathf(src, "/dev/%s", devs[i]);
		pathf(p, "%s/dev/%s", root, devs[i]);
		bind_mount(src, p, false);
	}
	mount_pts(root);
	pathf(p, "%s/proc", root);
	if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		die("mount /proc: %m");
	pathf(p, "%s/.oldroot", root);
	if (syscall(SYS_pivot_root, root, p))
		die("pivot_root %s: %m", root);
	if (chdir("/"))
		die("chdir /: %m");
	if (umount2("/.oldroot", MNT_DETACH))
		die("detach old root: %m");
	if (rmdir("/.oldroot"))
		die("remove old root mount point: %m");
	if (sethostname(NS_HOSTNAME, strlen(NS_HOSTNAME)))
		die("sethostname: %m");
	loopback_up();
	if (chdir(workdir))
		die("chdir %s: %m", workdir);
}

static void switch_ids(void)
{
	const char *uid = getenv("ZDTM_UID"), *gid = getenv("ZDTM_GID"), *groups = getenv("ZDTM_GROUPS");
	gid_t list[64];
	int n = 0;
	if (!uid && !gid)
		return;
	if (groups) {
		char buf[1024], *save, *tok;
		pathf(buf, "%s", groups);
		for (tok = strtok_r(buf, " ,", &save); tok && n < 64; tok = strtok_r(NULL, " ,", &save))
			list[n++] = atoi(tok);
	}
	if (setgroups(n, list))
		die("setgroups: %m");
	if (gid && setresgid(atoi(gid), atoi(gid), atoi(gid)))
		die("setresgid %s: %m", gid);
	if (uid && setresuid(atoi(uid), atoi(uid), atoi(uid)))
		die("setresuid %s: %m", uid);
	/* A change of credentials clears dumpable on older kernels (5.10),
	 * and then the process can't even read its own /proc/self/fdinfo. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		die("PR_SET_DUMPABLE: %m");
}

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		die("write %s: %m", path);
	close(fd);
}

static void write_pidfile(const char *pidfile, pid_t pid)
{
	char tmp[PATH_MAX], buf[32];
	pathf(tmp, "%s.%d.tmp", pidfile, getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(buf, sizeof(buf), "%d\n", pid);
	if (fd < 0 || write(fd, buf, n) != n || close(fd) || rename(tmp, pidfile))
		die("write %s: %m", pidfile);
}

void test_timens(long monotonic, long boottime)
{
	timens.set = true;
	timens.monotonic = monotonic;
	timens.boottime = boottime;
}

void test_init(int argc, char **argv, bool suid)
{
	for (int i = 1; i < argc; i++) {
		char *a = argv[i], *eq;
		if (strncmp(a, "--", 2) || !a[2] || nopts == MAX_OPTS) {
			fprintf(stderr, "%s: unexpected argument %s: options are --name=value\n", argv[0], a);
			exit(2);
		}
		opts[nopts].name = a + 2;
		if ((eq = strchr(a, '='))) {
			*eq = 0;
			opts[nopts].value = eq + 1;
		} else if (i + 1 < argc) {
			opts[nopts].value = argv[++i];
		} else {
			fprintf(stderr, "%s: option %s needs a value\n", argv[0], a);
			exit(2);
		}
		nopts++;
	}
	const char *pidfile = test_opt("pidfile");
	outfile = test_opt("outfile");
	if (!pidfile || !outfile) {
		fprintf(stderr, "%s: --pidfile and --outfile are required\n", argv[0]);
		exit(2);
	}
	const char *flavor = getenv("ZDTM_FLAVOR");
	bool ns = false, uns = false;
	if (!flavor || !*flavor || !strcmp(flavor, "h"))
		;
	else if (!strcmp(flavor, "ns"))
		ns = true;
	else if (!strcmp(flavor, "uns"))
		ns = uns = true;
	else
		die("unknown flavor %s", flavor);
	int uidbase = 0;
	if (uns) {
		const char *b = getenv("ZDTM_UNS_UIDMAP");
		if (!b || !*b)
			die("uns flavor needs ZDTM_UNS_UIDMAP=<host id of root inside>");
		uidbase = atoi(b);
	}

	char out[PATH_MAX], workdir[PATH_MAX];
	pathf(out, "%s.inprogress", outfile);
	int outfd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (outfd < 0)
		die("open %s: %m", out);
	if (!realpath(outfile, workdir) && !(realpath(out, workdir)))
		die("realpath %s: %m", out);
	*strrchr(workdir, '/') = 0;
	if (!*workdir)
		strcpy(workdir, "/");

	/* ready: daemon -> launcher; pidp: the middle process reports the
	 * daemon's pid (ns); sync: launcher -> child once the id maps are in. */
	int ready[2], pidp[2], sync[2];
	if (pipe2(ready, O_CLOEXEC) || pipe2(pidp, O_CLOEXEC) || pipe2(sync, O_CLOEXEC))
		die("pipe: %m");
	if (timens.set) {
		/* Children born from here on are in it; its offsets can be
		 * written until the first one is. */
		char off[128];
		if (unshare(CLONE_NEWTIME))
			die("unshare time namespace: %m");
		pathf(off, "monotonic %ld 0\nboottime %ld 0\n", timens.monotonic, timens.boottime);
		write_file("/proc/self/timens_offsets", off);
	}
	fflush(NULL);
	pid_t child = fork();
	if (child < 0)
		die("fork: %m");
	if (child > 0) {
		/* The launcher. */
		char c;
		pid_t daemon = child;
		close(ready[1]);
		close(pidp[1]);
		close(sync[0]);
		if (uns) {
			char path[64], map[64];
			if (read(pidp[0], &c, 1) != 1)
				die("launch: child died before its user namespace was made");
			pathf(map, "0 %d 65536\n", uidbase);
			pathf(path, "/proc/%d/uid_map", child);
			write_file(path, map);
			pathf(path, "/proc/%d/gid_map", child);
			write_file(path, map);
		}
		if (write(sync[1], "M", 1) != 1)
			die("launch: sync: %m");
		close(sync[1]);
		if (ns && read(pidp[0], &daemon, sizeof(daemon)) != sizeof(daemon)) {
			waitpid(child, NULL, 0);
			die("launch: the daemon was not started (see %s)", out);
		}
		/* The middle process exits once it has said the daemon's pid:
		 * reap it rather than leave a zombie to whoever adopts it. */
		if (ns)
			waitpid(child, NULL, 0);
		/* 'R' and then EOF: the pidfile must not appear while the daemon
		 * still holds its end of the pipe (the harness looks at its fds). */
		if (read(ready[0], &c, 1) != 1 || c != 'R' || read(ready[0], &c, 1) != 0) {
			int st = 0;
			waitpid(child, &st, 0);
			if (ns)
				waitpid(daemon, &st, WNOHANG);
			die("launch: daemon %d died before it was ready (see %s)", daemon, out);
		}
		write_pidfile(pidfile, daemon);
		exit(0);
	}

	/* The daemon, or for ns the middle process that makes the namespaces. */
	close(ready[0]);
	close(pidp[0]);
	close(sync[1]);
	if (setsid() < 0)
		die("setsid: %m");
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
		die("redirect stdio: %m");
	close(null);
	close(outfd);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (uns) {
		if (unshare(CLONE_NEWUSER))
			die("unshare user namespace: %m");
		if (write(pidp[1], "U", 1) != 1)
			die("sync: %m");
	}
	char c;
	if (read(sync[0], &c, 1) != 1)
		die("launcher died");
	close(sync[0]);
	if (uns && (setresgid(0, 0, 0) || setresuid(0, 0, 0)))
		die("become root in the user namespace: %m");
	if (uns && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		die("PR_SET_DUMPABLE: %m");
	if (ns) {
		if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET))
			die("unshare namespaces: %m");
		pid_t daemon = fork();
		if (daemon < 0)
			die("fork pid 1: %m");
		if (daemon > 0) {
			if (write(pidp[1], &daemon, sizeof(daemon)) != sizeof(daemon))
				die("report pid: %m");
			_exit(0);
		}
		enter_root(workdir);
	}
	close(pidp[1]);
	ready_fd = ready[1];
	struct sigaction sa = {.sa_handler = on_sigterm, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		die("sigaction SIGTERM: %m");
	if (!suid)
		switch_ids();
}

pid_t test_fork(void)
{
	if (!tree_child && go[1] < 0 && (pipe2(go, O_CLOEXEC) || pipe2(report, O_CLOEXEC)))
		fail("pipe for the tree: %m");
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %m");
	if (pid > 0)
		return pid;
	tree_child = true;
	/* The launcher waits for EOF on the ready pipe, the tree for EOF on
	 * go, and only the root reads reports. */
	if (ready_fd >= 0)
		close(ready_fd), ready_fd = -1;
	if (go[1] >= 0)
		close(go[1]), go[1] = -1;
	if (report[0] >= 0)
		close(report[0]), report[0] = -1;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		fail("PR_SET_PDEATHSIG: %m");
	if (getppid() != parent)
		_exit(1); /* the parent died before the line above */
	return 0;
}

void test_child_ready(void)
{
	char c;
	ssize_t n;
	if (!tree_child)
		fail("test_child_ready in the root");
	send_report('R', "");
	while ((n = read(go[0], &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 0)
		fail("waiting for the root's word: read returned %zd (%m), want EOF", n);
}

/* read_report reads the next record or fails the root after the deadline. */
static void read_report(struct report *r, long deadline, const char *waiting)
{
	size_t got = 0;
	while (got < sizeof(*r)) {
		struct pollfd p = {.fd = report[0], .events = POLLIN};
		long left = deadline - now_ms();
		int n = left > 0 ? poll(&p, 1, left) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("poll the tree's reports: %m");
		if (n == 0)
			fail("%s: none came within %d s", waiting, TREE_TIMEOUT_MS / 1000);
		ssize_t k = read(report[0], (char *)r + got, sizeof(*r) - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fail("read the tree's reports: %zd (%m)", k);
		got += k;
	}
	r->msg[sizeof(r->msg) - 1] = 0;
}

void test_tree_ready(int n)
{
	long deadline = now_ms() + TREE_TIMEOUT_MS;
	for (int i = 0; i < n; i++) {
		char waiting[64];
		struct report r;
		snprintf(waiting, sizeof(waiting), "waiting for %d more processes of the tree to be ready", n - i);
		read_report(&r, deadline, waiting);
		if (r.kind == 'F')
			fail("process %d of the tree, before ready: %s", r.pid, r.msg);
		if (r.kind != 'R')
			fail("process %d of the tree gave its verdict before ready", r.pid);
	}
}

void test_tree_wake(void)
{
	if (go[1] < 0)
		fail("test_tree_wake: no tree, or woken already");
	close(go[1]);
	go[1] = -1;
}

void test_tree_collect(int n)
{
	long deadline = now_ms() + TREE_TIMEOUT_MS;
	for (int i = 0; i < n; i++) {
		char waiting[64];
		struct report r;
		snprintf(waiting, sizeof(waiting), "waiting for %d more verdicts of the tree", n - i);
		read_report(&r, deadline, waiting);
		if (r.kind == 'F')
			fail("process %d of the tree: %s", r.pid, r.msg);
		if (r.kind != 'P')
			fail("process %d of the tree said '%c' when a verdict was due", r.pid, r.kind);
	}
	/* Every process gave its verdict and is exiting: reap the children. */
	int st = 0;
	pid_t bad = reap_children(&st, now_ms() + TREE_TIMEOUT_MS);
	if (bad < 0)
		fail("children still running %d s after every verdict came", TREE_TIMEOUT_MS / 1000);
	if (bad) {
		char how[64];
		describe_status(how, sizeof(how), st);
		fail("child %d %s after its verdict", bad, how);
	}
}

void test_tree_check(int n)
{
	test_tree_wake();
	test_tree_collect(n);
}
