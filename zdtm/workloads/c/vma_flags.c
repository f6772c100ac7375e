/*
 * vma_flags: anonymous VMAs with the flags mmap, mlock and madvise set,
 * each VMA alone between unmapped holes, each holding a pattern.
 *
 *   locked    mlock                     lo
 *   noreserve MAP_NORESERVE             nr
 *   dontfork  MADV_DONTFORK             dc
 *   dontdump  MADV_DONTDUMP             dd
 *   wipe      MADV_WIPEONFORK           wf
 *   huge      MADV_HUGEPAGE             hg   (if the kernel has THP)
 *   nohuge    MADV_NOHUGEPAGE           nh   (if the kernel has THP)
 *   merge     MADV_MERGEABLE            mg   (if the kernel has KSM)
 *   seq       MADV_SEQUENTIAL           sr
 *   random    MADV_RANDOM               rr
 *   droppable MAP_DROPPABLE             dp   (if the kernel has it, 6.11)
 *   mix       mlock + MADV_DONTFORK + MADV_RANDOM, read-only
 *
 * After SIGTERM each VMA is still there with the same VmFlags line in
 * /proc/self/smaps (ac, commit charge, aside) and its pattern; the
 * droppable one, whose pages the kernel may drop at any time, holds the
 * pattern or zeros (gocr keeps its pages, CRIU brings them back zeroed).
 *
 * With -DREFUSED (vma_flags_refused) a VMA locked on fault
 * (mlock2 MLOCK_ONFAULT, VmFlags lf) is added: CRIU's image cannot tell
 * it from mlock, so the dump must refuse it and leave the workload
 * running (crfail), and after SIGTERM it is still locked on fault.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zdtmlib.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

#define SLOT (4 * 1024 * 1024) /* room for a VMA of 2 MiB and a hole */
#define LEN (2 * 1024 * 1024)

struct region {
	const char *name;
	int flags;  /* extra mmap flags */
	int advice; /* madvise, -1 none */
	int lock;   /* 1 mlock, 2 mlock2 MLOCK_ONFAULT */
	int prot;
	char *addr;
	int skip;
	char vmflags[256];
};

static struct region regions[] = {
	{.name = "locked", .flags = 0, .advice = -1, .lock = 1, .prot = PROT_READ | PROT_WRITE},
	{.name = "noreserve", .flags = MAP_NORESERVE, .advice = -1, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "dontfork", .flags = 0, .advice = MADV_DONTFORK, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "dontdump", .flags = 0, .advice = MADV_DONTDUMP, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "wipe", .flags = 0, .advice = MADV_WIPEONFORK, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "huge", .flags = 0, .advice = MADV_HUGEPAGE, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "nohuge", .flags = 0, .advice = MADV_NOHUGEPAGE, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "merge", .flags = 0, .advice = MADV_MERGEABLE, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "seq", .flags = 0, .advice = MADV_SEQUENTIAL, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "random", .flags = 0, .advice = MADV_RANDOM, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "droppable", .flags = MAP_DROPPABLE, .advice = -1, .lock = 0, .prot = PROT_READ | PROT_WRITE},
	{.name = "mix", .flags = 0, .advice = MADV_DONTFORK, .lock = 1, .prot = PROT_READ},
#ifdef REFUSED
	{.name = "onfault", .flags = 0, .advice = -1, .lock = 2, .prot = PROT_READ | PROT_WRITE},
#endif
};
#define NREG (int)(sizeof(regions) / sizeof(regions[0]))

static void vmflags(char *addr, char *buf, size_t n)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		fail("open smaps: %m");
	char line[512];
	int in = 0;
	buf[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start == (unsigned long)addr;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			/* ac (VM_ACCOUNT) is commit charge: a VMA once writable
			 * keeps it, one mapped read-only by the restore has it
			 * again only when made writable. Not compared. */
			char *ac = strstr(line + 8, " ac ");
			if (ac)
				memmove(ac, ac + 3, strlen(ac + 3) + 1);
			strncpy(buf, line + 8, n - 1);
			buf[n - 1] = 0;
			break;
		}
	}
	fclose(f);
	if (!buf[0])
		fail("no VMA at %p in smaps", (void *)addr);
}

static char pattern(int i, size_t off) { return (char)(i * 31 + off / 4096 * 7 + 1); }

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	/* A PROT_NONE reservation of our own, aligned to SLOT inside; each
	 * slot is unmapped just before its VMA is mapped, so no unmap ever
	 * reaches beyond what this process reserved. */
	size_t total = (size_t)SLOT * (NREG + 1);
	char *resv = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (resv == MAP_FAILED)
		fail("reserve: %m");
	char *base = (char *)(((unsigned long)resv + SLOT - 1) & ~(unsigned long)(SLOT - 1));
	if (base > resv && munmap(resv, (size_t)(base - resv)))
		fail("unmap below the slots: %m");
	if (munmap(base + (size_t)SLOT * NREG, (size_t)(resv + total - (base + (size_t)SLOT * NREG))))
		fail("unmap above the slots: %m");
	for (int i = 0; i < NREG; i++) {
		struct region *r = &regions[i];
		char *want = base + (size_t)i * SLOT;
		if (munmap(want, SLOT))
			fail("%s: unmap slot %p: %m", r->name, (void *)want);
		/* MAP_DROPPABLE is a mapping type of its own, in place of MAP_PRIVATE */
		int type = r->flags == MAP_DROPPABLE ? 0 : MAP_PRIVATE;
		r->addr = mmap(want, LEN, PROT_READ | PROT_WRITE, type | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | r->flags, -1, 0);
		if (r->addr == MAP_FAILED && r->flags == MAP_DROPPABLE && errno == EINVAL) {
			test_msg("%s: no MAP_DROPPABLE here, skipped\n", r->name);
			r->skip = 1;
			continue;
		}
		if (r->addr != want)
			fail("%s: mmap at %p: %m", r->name, (void *)want);
		for (size_t off = 0; off < LEN; off += 4096)
			r->addr[off] = pattern(i, off);
		if (r->advice >= 0 && madvise(r->addr, LEN, r->advice)) {
			if (errno == EINVAL && (r->advice == MADV_HUGEPAGE || r->advice == MADV_NOHUGEPAGE || r->advice == MADV_MERGEABLE)) {
				test_msg("%s: madvise %d: %m, skipped\n", r->name, r->advice);
				munmap(r->addr, LEN);
				r->skip = 1;
				continue;
			}
			fail("%s: madvise %d: %m", r->name, r->advice);
		}
		if (r->advice == MADV_DONTFORK && !strcmp(r->name, "mix") && madvise(r->addr, LEN, MADV_RANDOM))
			fail("mix: madvise random: %m");
		if (r->lock == 1 && mlock(r->addr, LEN)) {
			struct rlimit rl;
			/* Root of a user namespace of its own locks no more than
			 * RLIMIT_MEMLOCK: 64 KiB by default before Linux 5.16. */
			if (errno == ENOMEM && !getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur < 2 * LEN) {
				test_msg("%s: RLIMIT_MEMLOCK is %lu bytes, too small to lock it: skipped\n", r->name,
					 (unsigned long)rl.rlim_cur);
				r->skip = 1;
				continue;
			}
			fail("%s: mlock: %m", r->name);
		}
		if (r->lock == 2 && syscall(SYS_mlock2, r->addr, LEN, MLOCK_ONFAULT))
			fail("%s: mlock2 MLOCK_ONFAULT: %m", r->name);
		if (r->prot != (PROT_READ | PROT_WRITE) && mprotect(r->addr, LEN, r->prot))
			fail("%s: mprotect: %m", r->name);
		vmflags(r->addr, r->vmflags, sizeof(r->vmflags));
		test_msg("%s at %p: VmFlags:%s", r->name, (void *)r->addr, r->vmflags);
	}

	test_daemon();
	test_waitsig();

	for (int i = 0; i < NREG; i++) {
		struct region *r = &regions[i];
		if (r->skip)
			continue;
		char now[256];
		vmflags(r->addr, now, sizeof(now));
		if (strcmp(now, r->vmflags))
			fail("%s at %p: VmFlags:%s  was:%s", r->name, (void *)r->addr, now, r->vmflags);
		for (size_t off = 0; off < LEN; off += 4096)
			if (r->flags == MAP_DROPPABLE && r->addr[off] != 0 && r->addr[off] != pattern(i, off))
				fail("%s: byte at +%#zx is %d, want %d or 0 (dropped)", r->name, off, r->addr[off], pattern(i, off));
			else if (r->flags != MAP_DROPPABLE && r->addr[off] != pattern(i, off))
				fail("%s: byte at +%#zx is %d, want %d", r->name, off, r->addr[off], pattern(i, off));
	}
	pass();
}
