#!/usr/bin/env bash
# ci/matrix.sh [KERNELS]: gocr's zdtm suite inside QEMU on Debian's kernels.
#
#   ci/matrix.sh               every kernel of the matrix (5.10 6.1 6.12 7.2)
#   ci/matrix.sh 6.12          one kernel (what each job of the GitHub workflow runs)
#   ENGINE=none ci/matrix.sh   the workloads without checkpoints
#
# Runs as root (the suite makes namespaces and mounts). Installs QEMU and
# the unpack tools through apt when missing; kernels come from Debian's
# archive through a private apt configuration and are cached in $KCACHE
# (default $XDG_CACHE_HOME/gocr/kernels). Prints the matrix table and
# "vmtest: N passed, N failed, N skipped"; exits non-zero when any kernel
# fails. Per-kernel JUnit reports: $VMRESULTS/<kernel>/junit.xml.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
kernels=${1:-all}
make --no-print-directory vmtest KERNEL="$kernels" ENGINE="${ENGINE:-gocr}" \
	VMRESULTS="${VMRESULTS:-/tmp/gocr-vmtest}" VMFLAGS="-q ${VMFLAGS:-}"
