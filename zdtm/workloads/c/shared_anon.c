/*
 * shared_anon: anonymous memory shared between the root and its child.
 *
 * Before forking, the root maps PAGES pages MAP_SHARED|MAP_ANONYMOUS and
 * one page MAP_PRIVATE|MAP_ANONYMOUS, and fills page 0 of the shared
 * mapping and the private page. Then, before Ready, the child writes page
 * 1 and its copy of the private page, and the root page 2 (each sees the
 * other's shared page, and only its own private page).
 *
 * After SIGTERM the root checks pages 0-2, that page 3 is still zero, and
 * its private page; it wakes the child, which checks the same from its
 * side, writes page 3 and reports; the root then finds the child's page 3
 * in its own mapping, which it can only if the memory is still shared.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdtmlib.h"

#define PAGES 4

static long page;

/* fill_page writes a pattern made of tag into page i of mem. */
static void fill_page(char *mem, int i, uint32_t tag)
{
	uint32_t *p = (uint32_t *)(mem + i * page);
	for (size_t k = 0; k < page / sizeof(*p); k++)
		p[k] = tag ^ (uint32_t)(k * 2654435761u);
}

static void check_page(const char *who, const char *what, char *mem, int i, uint32_t tag)
{
	uint32_t *p = (uint32_t *)(mem + i * page);
	for (size_t k = 0; k < page / sizeof(*p); k++) {
		uint32_t want = tag ? tag ^ (uint32_t)(k * 2654435761u) : 0;
		if (p[k] != want)
			fail("%s: %s page %d word %zu is %#x, want %#x", who, what, i, k, p[k], want);
	}
}

enum { ROOT_BEFORE_FORK = 0x5a000001, CHILD = 0x5a000002, ROOT = 0x5a000003, CHILD_AFTER = 0x5a000004, PRIV_ROOT = 0x7e000001,
       PRIV_CHILD = 0x7e000002 };

/* check_shared checks what both must see after SIGTERM. */
static void check_shared(const char *who, char *shm)
{
	check_page(who, "shared", shm, 0, ROOT_BEFORE_FORK);
	check_page(who, "shared", shm, 1, CHILD);
	check_page(who, "shared", shm, 2, ROOT);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	page = sysconf(_SC_PAGESIZE);
	char *shm = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *priv = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED || priv == MAP_FAILED)
		fail("mmap: %m");
	fill_page(shm, 0, ROOT_BEFORE_FORK);
	fill_page(priv, 0, PRIV_ROOT);

	if (!test_fork()) {
		fill_page(shm, 1, CHILD);
		fill_page(priv, 0, PRIV_CHILD);
		check_page("child", "shared", shm, 0, ROOT_BEFORE_FORK);
		test_child_ready(); /* the root writes page 2 meanwhile */

		check_shared("child", shm);
		check_page("child", "shared", shm, 3, 0);
		check_page("child", "private", priv, 0, PRIV_CHILD);
		fill_page(shm, 3, CHILD_AFTER);
		pass();
	}
	fill_page(shm, 2, ROOT);
	test_tree_ready(1);
	check_shared("root", shm);
	check_page("root", "private", priv, 0, PRIV_ROOT);

	test_daemon();
	test_waitsig();

	check_shared("root", shm);
	check_page("root", "shared", shm, 3, 0);
	check_page("root", "private", priv, 0, PRIV_ROOT);
	test_tree_check(1);
	check_page("root", "shared (written by the child after SIGTERM)", shm, 3, CHILD_AFTER);
	pass();
}
