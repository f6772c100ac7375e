#define _GNU_SOURCE
#include "zdtmlib.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_OPTS 32
#define NS_HOSTNAME "zdtm-ns"

static struct { const char *name, *value; } opts[MAX_OPTS];
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

static void finish(const char *verdict, int code) __attribute__((noreturn));
static void finish(const char *verdict, int code)
{
	char tmp[PATH_MAX];
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

pid_t test_fork(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0 && ready_fd >= 0) {
		close(ready_fd);
		ready_fd = -1;
	}
	return pid;
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

/* enter_root is ns.go's enterRoot: the daemon, pid 1 of its namespaces,
 * builds a tmpfs root holding /proc, a small /dev, /tmp, its binary (and
 * whatever else it maps) and the test directory at their host paths, and
 * pivots into it. */
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
	const char *devs[] = {"null", "zero", "full", "random", "urandom"};
	for (unsigned i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		char src[64];
		pathf(src, "/dev/%s", devs[i]);
		pathf(p, "%s/dev/%s", root, devs[i]);
		bind_mount(src, p, false);
	}
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
