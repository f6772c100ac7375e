#!/usr/bin/env bash
# fuzz.sh BUDGET: runs every Go fuzz target of the module for BUDGET each and
# prints the executions each one made. BUDGET is go test's -fuzztime: a count
# (2000x, the smoke in `make test`) or a duration (60s, `make fuzz`).
#
# A crash fails the run and leaves its input under the package's
# testdata/fuzz for `go test` to replay. A duration budget can also end in a
# bare "context deadline exceeded" with no input written: that is a race in
# Go's fuzz coordinator at the deadline (go.dev/issue/75804, fixed in Go
# 1.27), not a finding, so it is reported and not failed. Count budgets have
# no deadline and cannot hit it.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-2000x}
fail=0
while IFS=: read -r file _ decl; do
	pkg=./$(dirname "$file")
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$decl")
	corpus=$(dirname "$file")/testdata/fuzz/$name
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	if out=$(go test -run='^$' -fuzz="^${name}\$" -fuzztime="$budget" -fuzzminimizetime=1s "$pkg" 2>&1); then
		execs=$(grep -oE 'execs: [0-9]+' <<<"$out" | tail -1 | grep -oE '[0-9]+' || echo '?')
		printf 'fuzz %-28s %-22s %10s execs, no crash\n' "$pkg" "$name" "$execs"
		continue
	fi
	after=$(ls "$corpus" 2>/dev/null | sort || true)
	if [[ "$before" == "$after" ]] && grep -q '^    context deadline exceeded$' <<<"$out" &&
		! grep -qE 'panic:|Failing input written' <<<"$out"; then
		printf 'fuzz %-28s %-22s stopped by Go'\''s deadline race (go.dev/issue/75804), no crasher\n' "$pkg" "$name"
		continue
	fi
	echo "FAIL $pkg $name"
	echo "$out" | tail -20
	fail=1
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' engine zdtm cmd 2>/dev/null | sort)
exit $fail
