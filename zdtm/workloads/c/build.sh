#!/bin/sh
# build.sh OUTDIR: builds gocr's C zdtm workloads into OUTDIR, each a
# separate zdtm-protocol binary (the harness runs OUTDIR/NAME for a workload
# NAME that the Go multi-call binary lacks).
#   sigaltstack  static
#   sigpending_shared static
#   vdso_rseq    dynamic: it is about the vDSO and glibc's rseq registration
#   tree pipe_tree fifo shared_anon shared_file pty_pair   static: process trees
#   pty_queued   static: bytes queued in a pty both ways, /dev/tty held
#   mnt_*        static, with mntlib.c: the mount namespace workloads
#   ghost_small  static
#   signalfd timerfd inotify memfd eventfd_tree  static: fd kinds
#   stopped      static: children in job-control stop
#   posix_timers static, with a thread: POSIX timers of every kind
#   vma_flags vma_flags_refused  static, one source: mlock and madvise
#                flags of VMAs, and a VMA locked on fault (refused)
#   prctl_state  static, with a thread: prctl and membarrier state
#   unix_*       static: unix sockets (pairs, bound datagrams, a listener,
#                names deleted with their directory,
#                an fd in flight that the dump must refuse)
#   sysv_shm sysv_sem sysv_msg posix_mq   static: SysV IPC and POSIX message queues
#   timens timens_outer timens_nested  static, one source: a time namespace
#                the root made for its children, one the whole tree is in,
#                and two (refused)
#   seccomp_*    static, with seccomplib.h: strict mode, filters (and as
#                seccomp_filter_suid without no_new_privs), per-thread
#                chains, inherited chains, a refused dump of both modes
set -eu
out=${1:?usage: build.sh OUTDIR}
src=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-O2 -g -Wall -Wextra -Werror"}
mkdir -p "$out"
$CC $CFLAGS -static -o "$out/sigaltstack" "$src/sigaltstack.c" "$src/zdtmlib.c"
$CC $CFLAGS -static -o "$out/sigpending_shared" "$src/sigpending_shared.c" "$src/zdtmlib.c"
$CC $CFLAGS -o "$out/vdso_rseq" "$src/vdso_rseq.c" "$src/zdtmlib.c"
for t in tree pipe_tree fifo shared_anon shared_file pty_pair pty_queued; do
	$CC $CFLAGS -static -o "$out/$t" "$src/$t.c" "$src/zdtmlib.c"
done
for t in sysv_shm sysv_sem sysv_msg posix_mq; do
	$CC $CFLAGS -static -o "$out/$t" "$src/$t.c" "$src/zdtmlib.c"
done
for w in mnt_nested mnt_files mnt_external mnt_shapes mnt_stack mnt_ghost mnt_peers; do
	$CC $CFLAGS -static -o "$out/$w" "$src/$w.c" "$src/mntlib.c" "$src/zdtmlib.c"
done
$CC $CFLAGS -static -o "$out/ghost_small" "$src/ghost_small.c" "$src/zdtmlib.c"
for w in signalfd timerfd inotify memfd eventfd_tree clone_files stopped; do
	$CC $CFLAGS -static -o "$out/$w" "$src/$w.c" "$src/zdtmlib.c"
done
for t in unix_pair unix_dgram_bound unix_listen unix_scm_refused unix_deleted_dir; do
	$CC $CFLAGS -static -o "$out/$t" "$src/$t.c" "$src/zdtmlib.c"
done
$CC $CFLAGS -static -o "$out/timens" "$src/timens.c" "$src/zdtmlib.c"
$CC $CFLAGS -DTIMENS_OUTER -static -o "$out/timens_outer" "$src/timens.c" "$src/zdtmlib.c"
$CC $CFLAGS -DTIMENS_NESTED -static -o "$out/timens_nested" "$src/timens.c" "$src/zdtmlib.c"
for t in seccomp_strict seccomp_filter seccomp_filter_inherit seccomp_refused; do
	$CC $CFLAGS -static -o "$out/$t" "$src/$t.c" "$src/zdtmlib.c"
done
$CC $CFLAGS -DFILTER_SUID -static -o "$out/seccomp_filter_suid" "$src/seccomp_filter.c" "$src/zdtmlib.c"
$CC $CFLAGS -static -pthread -o "$out/seccomp_filter_threads" "$src/seccomp_filter_threads.c" "$src/zdtmlib.c"
$CC $CFLAGS -static -pthread -o "$out/posix_timers" "$src/posix_timers.c" "$src/zdtmlib.c"
$CC $CFLAGS -static -o "$out/vma_flags" "$src/vma_flags.c" "$src/zdtmlib.c"
$CC $CFLAGS -DREFUSED -static -o "$out/vma_flags_refused" "$src/vma_flags.c" "$src/zdtmlib.c"
$CC $CFLAGS -static -pthread -o "$out/prctl_state" "$src/prctl_state.c" "$src/zdtmlib.c"
