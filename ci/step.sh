#!/usr/bin/env bash
# step.sh NAME LIMIT COMMAND...: runs one step of `make test` with a
# deadline of its own (LIMIT as timeout(1) takes it: 90s, 15m), so no step
# can run unbounded and eat CI's 90 minutes. A step that hits it is
# stopped (SIGTERM to its whole process group, SIGKILL 20 s later) and
# fails with a line naming it; otherwise the step's exit status is kept.
set -uo pipefail
if [[ $# -lt 3 ]]; then
	echo "usage: step.sh NAME LIMIT COMMAND..." >&2
	exit 2
fi
name=$1 limit=$2
shift 2
start=$SECONDS
# timeout(1) runs COMMAND in a process group of its own and signals the
# whole group, so the step's children go with it. Being in a group of its
# own, it does not get a terminal's Ctrl-C: pass SIGINT and SIGTERM on.
timeout --kill-after=20s "$limit" "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null' INT TERM
while :; do
	wait $child
	rc=$?
	kill -0 $child 2>/dev/null || break # wait was cut short by a signal: wait again
done
trap - INT TERM
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
	echo "make test: step '$name' hit its deadline of $limit after $((SECONDS - start))s and was stopped" >&2
	exit 124
fi
exit $rc
