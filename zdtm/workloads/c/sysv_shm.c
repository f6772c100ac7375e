/*
 * sysv_shm: a SysV shared memory segment attached in the root and its
 * child, one attachment read-only, one cut in pieces.
 *
 * The root makes a private segment of PAGES pages and a tail, gives it
 * another owner, attaches it
 * read-write (shm), fills page 0 and the tail, and attaches it a second
 * time (cut) only to unmap that attachment's page 1 and make its page 0
 * read-only. The child inherits both attachments, attaches the segment
 * once more read-only (SHM_RDONLY, ro) and writes page 1; the root writes
 * page 2. In the ns and uns flavors the root also makes a second segment
 * (gone) that it removes (IPC_RMID) while attached: it must stay
 * attached, and stay removed. In the h flavor the segments live in the
 * host's ipc namespace, which outlives the dump, so the dump leaves them
 * there and restore attaches them again by id; a removed segment would
 * die with the tree there.
 *
 * After SIGTERM both check what both wrote, through every attachment, the
 * segment's owner, mode, size and attachment count, and that ro still
 * refuses to become writable; then the child writes page 3 through shm,
 * which the root must find in its own attachment: the memory is still
 * the segment, shared.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "zdtmlib.h"

#define PAGES 4
#define OWNER_UID 18943 /* zdtm.py's ZDTM_UID and ZDTM_GID */
#define OWNER_GID 58467
#define TAIL "the last bytes of the segment, past its last whole page"

static long page;
static size_t size;
static int id, gone_id = -1;
static char *shm, *cut, *gone;
static struct shmid_ds before; /* as made, before the fork */
static unsigned long nattch;   /* the root's count once the child attached */

enum { ROOT_FIRST = 0x11000001, CHILD = 0x11000002, ROOT = 0x11000003, CHILD_AFTER = 0x11000004, GONE = 0x11000005 };

static void fill_page(char *mem, int i, uint32_t tag)
{
	uint32_t *p = (uint32_t *)(mem + i * page);
	for (size_t k = 0; k < page / sizeof(*p); k++)
		p[k] = tag ^ (uint32_t)(k * 2654435761u);
}

static void check_page(const char *who, const char *what, const char *mem, int i, uint32_t tag)
{
	const uint32_t *p = (const uint32_t *)(mem + i * page);
	for (size_t k = 0; k < page / sizeof(*p); k++) {
		uint32_t want = tag ? tag ^ (uint32_t)(k * 2654435761u) : 0;
		if (p[k] != want)
			fail("%s: %s page %d word %zu is %#x, want %#x", who, what, i, k, p[k], want);
	}
}

/* check_both checks what the root and the child wrote before the dump,
 * through attachment mem (cut lacks page 1). */
static void check_both(const char *who, const char *what, const char *mem, bool has_page1)
{
	check_page(who, what, mem, 0, ROOT_FIRST);
	if (has_page1)
		check_page(who, what, mem, 1, CHILD);
	check_page(who, what, mem, 2, ROOT);
	if (memcmp(mem + PAGES * page, TAIL, sizeof(TAIL)))
		fail("%s: %s: the tail is %.20s", who, what, mem + PAGES * page);
}

/* check_segment compares what the kernel says of the segment now with
 * what it said before the dump (the root knows the attachment count). */
static void check_segment(const char *who)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds))
		fail("%s: shmctl IPC_STAT %d: %m", who, id);
	if (ds.shm_segsz != size || ds.shm_perm.mode != before.shm_perm.mode || ds.shm_perm.uid != before.shm_perm.uid ||
	    ds.shm_perm.cuid != before.shm_perm.cuid || ds.shm_perm.gid != before.shm_perm.gid || ds.shm_perm.__key != IPC_PRIVATE ||
	    (nattch && ds.shm_nattch != nattch))
		fail("%s: segment %d: size %zu mode %#o uid %d cuid %d gid %d key %#x nattch %lu, want %zu %#o %d %d %d 0 %lu", who, id,
		     ds.shm_segsz, ds.shm_perm.mode, ds.shm_perm.uid, ds.shm_perm.cuid, ds.shm_perm.gid, ds.shm_perm.__key,
		     (unsigned long)ds.shm_nattch, size, before.shm_perm.mode, before.shm_perm.uid, before.shm_perm.cuid,
		     before.shm_perm.gid, nattch);
}

static void check_gone(const char *who)
{
	if (!gone)
		return;
	struct shmid_ds ds;
	if (shmctl(gone_id, IPC_STAT, &ds))
		fail("%s: removed segment %d: IPC_STAT: %m", who, gone_id);
	if (!(ds.shm_perm.mode & SHM_DEST))
		fail("%s: removed segment %d is no longer marked removed (mode %#o)", who, gone_id, ds.shm_perm.mode);
	check_page(who, "removed segment", gone, 0, GONE);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	page = sysconf(_SC_PAGESIZE);
	size = PAGES * page + sizeof(TAIL);
	const char *flavor = getenv("ZDTM_FLAVOR");
	bool own_ns = flavor && strcmp(flavor, "h");

	if ((id = shmget(IPC_PRIVATE, size, 0640 | IPC_CREAT)) < 0)
		fail("shmget: %m");
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds))
		fail("shmctl IPC_STAT: %m");
	ds.shm_perm.uid = OWNER_UID; /* another owner than its creator */
	ds.shm_perm.gid = OWNER_GID;
	if (shmctl(id, IPC_SET, &ds))
		fail("shmctl IPC_SET: %m");
	if ((shm = shmat(id, NULL, 0)) == (void *)-1)
		fail("shmat: %m");
	fill_page(shm, 0, ROOT_FIRST);
	memcpy(shm + PAGES * page, TAIL, sizeof(TAIL));
	if ((cut = shmat(id, NULL, 0)) == (void *)-1)
		fail("shmat again: %m");
	if (munmap(cut + page, page) || mprotect(cut, page, PROT_READ))
		fail("cut the second attachment: %m");
	if (own_ns) {
		if ((gone_id = shmget(IPC_PRIVATE, page, 0600 | IPC_CREAT)) < 0)
			fail("shmget the segment to remove: %m");
		if ((gone = shmat(gone_id, NULL, 0)) == (void *)-1)
			fail("shmat the segment to remove: %m");
		fill_page(gone, 0, GONE);
		if (shmctl(gone_id, IPC_RMID, NULL))
			fail("remove the attached segment: %m");
	}

	if (shmctl(id, IPC_STAT, &before))
		fail("shmctl IPC_STAT: %m");

	if (!test_fork()) {
		char *ro = shmat(id, NULL, SHM_RDONLY);
		if (ro == (void *)-1)
			fail("child: shmat read-only: %m");
		fill_page(shm, 1, CHILD);
		check_page("child", "read-only attachment", ro, 1, CHILD);
		test_child_ready(); /* the root writes page 2 meanwhile */

		check_both("child", "attachment", shm, true);
		check_both("child", "read-only attachment", ro, true);
		check_both("child", "cut attachment", cut, false);
		check_page("child", "attachment", shm, 3, 0);
		check_segment("child");
		check_gone("child");
		if (mprotect(ro, page, PROT_READ | PROT_WRITE) == 0 || errno != EACCES)
			fail("child: the read-only attachment can be made writable (mprotect: %m)");
		fill_page(shm, 3, CHILD_AFTER);
		pass();
	}
	fill_page(shm, 2, ROOT);
	test_tree_ready(1);
	check_both("root", "attachment", shm, true);
	struct shmid_ds now;
	if (shmctl(id, IPC_STAT, &now))
		fail("shmctl IPC_STAT: %m");
	nattch = now.shm_nattch;

	test_daemon();
	test_waitsig();

	check_both("root", "attachment", shm, true);
	check_both("root", "cut attachment", cut, false);
	check_page("root", "attachment", shm, 3, 0);
	check_segment("root");
	check_gone("root");
	if (mprotect(cut, page, PROT_READ | PROT_WRITE))
		fail("the cut attachment's read-only page cannot be made writable again: %m");
	test_tree_check(1);
	check_page("root", "attachment (written by the child after SIGTERM)", shm, 3, CHILD_AFTER);
	if (shmctl(id, IPC_RMID, NULL))
		fail("remove the segment: %m");
	pass();
}
