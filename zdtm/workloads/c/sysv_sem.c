/*
 * sysv_sem: a SysV semaphore set with values set by the root and changed
 * by its child.
 *
 * The root makes a private set of NSEMS semaphores, gives it another
 * owner, sets their values
 * (SETALL) and adds 2 to semaphore 0; the child takes 1 from semaphore 1.
 * After SIGTERM both check the values, the set's size, owner and mode,
 * and that the semaphores still work: the child takes 7 from semaphore 2
 * (which must not block), the root then finds 0 there and cannot take
 * from semaphore 1 without blocking. In the h flavor the set lives in the
 * host's ipc namespace, which outlives the dump: the dump must leave it
 * as it was.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/sem.h>
#include <unistd.h>

#include "zdtmlib.h"

#define NSEMS 5

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static int id;
static unsigned short want[NSEMS] = {3 + 2, 1 - 1, 7, 300, 0};
static struct semid_ds before;

static void check_values(const char *who)
{
	unsigned short got[NSEMS];
	if (semctl(id, 0, GETALL, (union semun){.array = got}))
		fail("%s: GETALL: %m", who);
	for (int i = 0; i < NSEMS; i++)
		if (got[i] != want[i])
			fail("%s: semaphore %d is %d, want %d", who, i, got[i], want[i]);
	struct semid_ds ds;
	if (semctl(id, 0, IPC_STAT, (union semun){.buf = &ds}))
		fail("%s: IPC_STAT: %m", who);
	if (ds.sem_nsems != NSEMS || ds.sem_perm.mode != before.sem_perm.mode || ds.sem_perm.uid != before.sem_perm.uid ||
	    ds.sem_perm.cuid != before.sem_perm.cuid || ds.sem_perm.gid != before.sem_perm.gid)
		fail("%s: set %d: %lu semaphores mode %#o uid %d cuid %d gid %d, want %d %#o %d %d %d", who, id, (unsigned long)ds.sem_nsems,
		     ds.sem_perm.mode, ds.sem_perm.uid, ds.sem_perm.cuid, ds.sem_perm.gid, NSEMS, before.sem_perm.mode,
		     before.sem_perm.uid, before.sem_perm.cuid, before.sem_perm.gid);
}

static void op(const char *who, int sem, int delta)
{
	struct sembuf b = {.sem_num = sem, .sem_op = delta, .sem_flg = IPC_NOWAIT};
	if (semop(id, &b, 1))
		fail("%s: semop %d on semaphore %d: %m", who, delta, sem);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	if ((id = semget(IPC_PRIVATE, NSEMS, 0640 | IPC_CREAT)) < 0)
		fail("semget: %m");
	unsigned short init[NSEMS] = {3, 1, 7, 300, 0};
	if (semctl(id, 0, SETALL, (union semun){.array = init}))
		fail("SETALL: %m");
	op("root", 0, 2);
	if (semctl(id, 0, IPC_STAT, (union semun){.buf = &before}))
		fail("IPC_STAT: %m");
	before.sem_perm.uid = 18943; /* another owner than its creator: zdtm.py's ZDTM_UID, ZDTM_GID */
	before.sem_perm.gid = 58467;
	if (semctl(id, 0, IPC_SET, (union semun){.buf = &before}) || semctl(id, 0, IPC_STAT, (union semun){.buf = &before}))
		fail("IPC_SET: %m");

	if (!test_fork()) {
		op("child", 1, -1);
		test_child_ready();
		check_values("child");
		op("child", 2, -7);
		pass();
	}
	test_tree_ready(1);
	check_values("root");

	test_daemon();
	test_waitsig();

	check_values("root");
	test_tree_check(1);
	want[2] = 0;
	check_values("root (after the child took 7)");
	struct sembuf b = {.sem_num = 1, .sem_op = -1, .sem_flg = IPC_NOWAIT};
	if (semop(id, &b, 1) == 0 || errno != EAGAIN)
		fail("taking from an empty semaphore did not say EAGAIN: %m");
	if (semctl(id, 0, IPC_RMID))
		fail("remove the set: %m");
	pass();
}
