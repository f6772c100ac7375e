#define _GNU_SOURCE
#include "mntlib.h"
#include "zdtmlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char mnt_dir[PATH_MAX / 2];

void mnt_init(void)
{
	const char *d = test_opt("dirname");
	if (!d)
		fail("no --dirname");
	snprintf(mnt_dir, PATH_MAX / 2, "%s", d);
}

const char *mnt_at(const char *rel)
{
	static char path[4][PATH_MAX];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, PATH_MAX, "%s/%s", mnt_dir, rel);
	return p;
}

void must(int ret, const char *what)
{
	if (ret < 0) {
		fprintf(stderr, "%s: %s\n", what, strerror(errno));
		exit(1);
	}
}

struct mline {
	int id;
	char mp[512], root[512], fstype[64], source[256], opts[256], sopts[512], prop[32];
};

/* parse_line fills m from one mountinfo line; false if it is malformed. */
static bool parse_line(char *l, struct mline *m)
{
	char *f[64];
	int n = 0;
	for (char *s = strtok(l, " \n"); s && n < 64; s = strtok(NULL, " \n"))
		f[n++] = s;
	int dash = -1;
	for (int i = 6; i < n; i++)
		if (!strcmp(f[i], "-")) {
			dash = i;
			break;
		}
	if (n < 10 || dash < 0 || dash + 3 >= n)
		return false;
	m->id = atoi(f[0]);
	snprintf(m->root, sizeof m->root, "%s", f[3]);
	snprintf(m->mp, sizeof m->mp, "%s", f[4]);
	snprintf(m->opts, sizeof m->opts, "%s", f[5]);
	m->prop[0] = 0;
	for (int i = 6; i < dash; i++) {
		const char *k = !strncmp(f[i], "shared:", 7) ? "shared" : !strncmp(f[i], "master:", 7) ? "slave" : !strcmp(f[i], "unbindable") ? "unbindable" : NULL;
		if (k) {
			strncat(m->prop, k, sizeof m->prop - strlen(m->prop) - 2);
			strcat(m->prop, ",");
		}
	}
	if (!m->prop[0])
		strcpy(m->prop, "private");
	snprintf(m->fstype, sizeof m->fstype, "%s", f[dash + 1]);
	snprintf(m->source, sizeof m->source, "%s", f[dash + 2]);
	snprintf(m->sopts, sizeof m->sopts, "%s", f[dash + 3]);
	return true;
}

static int read_mounts(struct mline *out, int max)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return 0;
	char l[2048];
	int n = 0;
	while (n < max && fgets(l, sizeof l, f))
		if (parse_line(l, &out[n]))
			n++;
	fclose(f);
	return n;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(p, dir, n) && (p[n] == 0 || p[n] == '/');
}

void mnt_snapshot(char *buf, size_t n, const char *under)
{
	static struct mline ms[512];
	static char lines[512][1600];
	char *sorted[512];
	int cnt = read_mounts(ms, 512), k = 0;
	for (int i = 0; i < cnt; i++) {
		if (under && !is_under(ms[i].mp, under))
			continue;
		snprintf(lines[k], sizeof lines[k], "%s %s %s %s %s %s %s", ms[i].mp, ms[i].root, ms[i].fstype,
			 ms[i].source, ms[i].opts, ms[i].sopts, ms[i].prop);
		sorted[k] = lines[k];
		k++;
	}
	qsort(sorted, k, sizeof sorted[0], cmpstr);
	buf[0] = 0;
	for (int i = 0; i < k; i++) {
		strncat(buf, sorted[i], n - strlen(buf) - 2);
		strcat(buf, "\n");
	}
}

void fd_snapshot(char *buf, size_t n)
{
	static struct mline ms[512];
	int cnt = read_mounts(ms, 512);
	buf[0] = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int fds[1024], nfd = 0, dfd = dirfd(d);
	for (struct dirent *e; (e = readdir(d)) && nfd < 1024;) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd >= 3 && fd != dfd)
			fds[nfd++] = fd;
	}
	closedir(d);
	for (int i = 0; i < nfd; i++)
		for (int j = i + 1; j < nfd; j++)
			if (fds[j] < fds[i]) {
				int t = fds[i];
				fds[i] = fds[j];
				fds[j] = t;
			}
	for (int i = 0; i < nfd; i++) {
		char p[64], target[512] = "", info[512], line[2200];
		snprintf(p, sizeof p, "/proc/self/fd/%d", fds[i]);
		ssize_t l = readlink(p, target, sizeof target - 1);
		if (l < 0)
			continue;
		target[l] = 0;
		if (strncmp(target, "/", 1))
			continue; /* pipes, sockets: no mount to speak of */
		snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fds[i]);
		int mnt = -1;
		FILE *f = fopen(p, "r");
		if (f) {
			while (fgets(info, sizeof info, f))
				sscanf(info, "mnt_id: %d", &mnt);
			fclose(f);
		}
		const char *where = "other-ns";
		static char w[1600];
		for (int k = 0; k < cnt; k++)
			if (ms[k].id == mnt) {
				snprintf(w, sizeof w, "%s %s %s", ms[k].mp, ms[k].root, ms[k].fstype);
				where = w;
			}
		snprintf(line, sizeof line, "%d %s on %s\n", fds[i], target, where);
		strncat(buf, line, n - strlen(buf) - 1);
	}
}

void mkfile(const char *path, const char *contents)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	must(fd, path);
	must(write(fd, contents, strlen(contents)), path);
	close(fd);
}

bool fd_is(int fd, const char *contents)
{
	char b[4096];
	ssize_t n = pread(fd, b, sizeof b - 1, 0);
	if (n < 0)
		return false;
	b[n] = 0;
	return !strcmp(b, contents);
}

bool file_is(const char *path, const char *contents)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	bool ok = fd_is(fd, contents);
	close(fd);
	return ok;
}

void mnt_record(struct mnt_seen *s)
{
	mnt_snapshot(s->mounts, sizeof s->mounts, mnt_dir);
	fd_snapshot(s->fds, sizeof s->fds);
}

void mnt_compare(const char *who, const struct mnt_seen *before)
{
	static struct mnt_seen now;
	mnt_record(&now);
	if (strcmp(now.mounts, before->mounts))
		fail("%s: mounts changed:\n%s---- was\n%s", who, now.mounts, before->mounts);
	if (strcmp(now.fds, before->fds))
		fail("%s: fds changed:\n%s---- was\n%s", who, now.fds, before->fds);
}
