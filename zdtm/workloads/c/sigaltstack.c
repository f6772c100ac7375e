/*
 * sigaltstack: signal handlers on an alternate stack.
 *
 * The workload installs a 64 KiB sigaltstack (with canaries at both ends)
 * and two handlers with SA_ONSTACK. Before Ready, SIGUSR1's handler runs
 * once and must find itself on the alternate stack. Then SIGUSR2's handler
 * is raised and says Ready from inside the handler, on the alternate stack,
 * and waits there for SIGTERM: a checkpoint catches the process with
 * sigaltstack reporting SS_ONSTACK. After SIGTERM, still inside that
 * handler, sigaltstack(NULL, &old) must report the same stack and
 * SS_ONSTACK and a local must lie in it; after the handler returns the
 * stack must be reported idle (flags 0), both handlers must still be
 * installed with SA_ONSTACK, SIGUSR1's handler must again run on the
 * alternate stack, and the canaries must be intact.
 *
 * Go's runtime owns its threads' alternate stacks and handlers, hence C.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "zdtmlib.h"

#define ALTSTACK_SIZE (64 << 10)
#define CANARY 0x5a17c0deca11ab1eULL

static char *altstack;
static volatile sig_atomic_t usr1_runs;
static volatile uintptr_t usr1_local;
static stack_t usr1_seen;

static bool on_altstack(uintptr_t p) { return p >= (uintptr_t)altstack && p < (uintptr_t)altstack + ALTSTACK_SIZE; }

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	volatile char local;
	(void)sig, (void)si, (void)uc;
	usr1_local = (uintptr_t)&local;
	sigaltstack(NULL, &usr1_seen);
	usr1_runs++;
}

static void check_usr1(const char *when)
{
	int before = usr1_runs;
	raise(SIGUSR1);
	if (usr1_runs != before + 1)
		fail("%s: SIGUSR1 handler did not run", when);
	if (!on_altstack(usr1_local))
		fail("%s: SIGUSR1 handler ran at %#lx, off the alternate stack %p+%#x", when, (unsigned long)usr1_local, altstack, ALTSTACK_SIZE);
	if (usr1_seen.ss_sp != altstack || usr1_seen.ss_size != ALTSTACK_SIZE || !(usr1_seen.ss_flags & SS_ONSTACK))
		fail("%s: in the SIGUSR1 handler sigaltstack reports %p+%#zx flags %#x, want %p+%#x SS_ONSTACK", when, usr1_seen.ss_sp,
		     usr1_seen.ss_size, usr1_seen.ss_flags, altstack, ALTSTACK_SIZE);
}

static void check_handler(int sig, void (*want)(int, siginfo_t *, void *))
{
	struct sigaction sa;
	if (sigaction(sig, NULL, &sa))
		fail("sigaction %d: %m", sig);
	if (sa.sa_sigaction != want || !(sa.sa_flags & SA_ONSTACK) || !(sa.sa_flags & SA_SIGINFO))
		fail("signal %d: handler %p flags %#x, want %p with SA_ONSTACK|SA_SIGINFO", sig, (void *)sa.sa_sigaction, sa.sa_flags, (void *)want);
}

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
	volatile char local;
	stack_t ss;
	(void)sig, (void)si, (void)uc;
	if (!on_altstack((uintptr_t)&local))
		fail("SIGUSR2 handler runs at %p, off the alternate stack", (void *)&local);
	test_daemon();
	test_waitsig();
	if (sigaltstack(NULL, &ss))
		fail("sigaltstack in the handler: %m");
	if (ss.ss_sp != altstack || ss.ss_size != ALTSTACK_SIZE || ss.ss_flags != SS_ONSTACK)
		fail("in the SIGUSR2 handler after SIGTERM sigaltstack reports %p+%#zx flags %#x, want %p+%#x SS_ONSTACK", ss.ss_sp, ss.ss_size,
		     ss.ss_flags, altstack, ALTSTACK_SIZE);
	if (!on_altstack((uintptr_t)&local))
		fail("SIGUSR2 handler's local at %p is off the alternate stack after SIGTERM", (void *)&local);
}

int main(int argc, char **argv)
{
	test_init(argc, argv, false);
	altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (altstack == MAP_FAILED)
		fail("mmap: %m");
	memset(altstack, 0xa5, ALTSTACK_SIZE);
	*(uint64_t *)altstack = CANARY;
	*(uint64_t *)(altstack + ALTSTACK_SIZE - 8) = ~CANARY; /* overwritten by a frame: checked before use only */
	stack_t ss = {.ss_sp = altstack, .ss_size = ALTSTACK_SIZE};
	if (sigaltstack(&ss, NULL))
		fail("sigaltstack: %m");
	struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_ONSTACK | SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		fail("sigaction SIGUSR1: %m");
	sa.sa_sigaction = on_usr2;
	if (sigaction(SIGUSR2, &sa, NULL))
		fail("sigaction SIGUSR2: %m");
	if (*(uint64_t *)(altstack + ALTSTACK_SIZE - 8) != ~CANARY)
		fail("top of the alternate stack changed before any handler ran");
	check_usr1("before ready");

	raise(SIGUSR2); /* says ready and waits for SIGTERM on the alternate stack */

	if (sigaltstack(NULL, &ss))
		fail("sigaltstack: %m");
	if (ss.ss_sp != altstack || ss.ss_size != ALTSTACK_SIZE || ss.ss_flags != 0)
		fail("after the handler sigaltstack reports %p+%#zx flags %#x, want %p+%#x flags 0", ss.ss_sp, ss.ss_size, ss.ss_flags, altstack,
		     ALTSTACK_SIZE);
	check_handler(SIGUSR1, on_usr1);
	check_handler(SIGUSR2, on_usr2);
	check_usr1("after SIGTERM");
	if (*(uint64_t *)altstack != CANARY)
		fail("canary at the bottom of the alternate stack is %#llx", (unsigned long long)*(uint64_t *)altstack);
	for (int i = 8; i < 1024; i++)
		if ((unsigned char)altstack[i] != 0xa5)
			fail("alternate stack byte %d is %#x, want 0xa5 (the handlers never go this deep)", i, (unsigned char)altstack[i]);
	pass();
}
