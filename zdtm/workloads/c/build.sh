#!/bin/sh
# build.sh OUTDIR: builds gocr's C zdtm workloads into OUTDIR, each a
# separate zdtm-protocol binary (the harness runs OUTDIR/NAME for a workload
# NAME that the Go multi-call binary lacks).
#   sigaltstack  static
#   sigpending_shared static
#   vdso_rseq    dynamic: it is about the vDSO and glibc's rseq registration
#   unix_*       static: unix sockets (pairs, bound datagrams, a listener,
#                an fd in flight that the dump must refuse)
set -eu
out=${1:?usage: build.sh OUTDIR}
src=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-O2 -g -Wall -Wextra -Werror"}
mkdir -p "$out"
$CC $CFLAGS -static -o "$out/sigaltstack" "$src/sigaltstack.c" "$src/zdtmlib.c"
$CC $CFLAGS -static -o "$out/sigpending_shared" "$src/sigpending_shared.c" "$src/zdtmlib.c"
$CC $CFLAGS -o "$out/vdso_rseq" "$src/vdso_rseq.c" "$src/zdtmlib.c"
for t in unix_pair unix_dgram_bound unix_listen unix_scm_refused; do
	$CC $CFLAGS -static -o "$out/$t" "$src/$t.c" "$src/zdtmlib.c"
done
