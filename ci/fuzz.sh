#!/usr/bin/env bash
# fuzz.sh DURATION: runs every Go fuzz target of the module for DURATION
# each (e.g. 3s as a smoke in `make test`, 60s in `make fuzz`) and prints the
# executions each one made. A crash fails the run and leaves its input under
# the package's testdata/fuzz for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
fail=0
while IFS=: read -r file _ decl; do
	pkg=./$(dirname "$file")
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$decl")
	out=$(go test -run='^$' -fuzz="^${name}\$" -fuzztime="$dur" -fuzzminimizetime=1s "$pkg" 2>&1) || {
		echo "FAIL $pkg $name"; echo "$out" | tail -20; fail=1; continue; }
	execs=$(grep -oE 'execs: [0-9]+' <<<"$out" | tail -1 | grep -oE '[0-9]+' || echo '?')
	printf 'fuzz %-28s %-22s %10s execs, no crash\n' "$pkg" "$name" "$execs"
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' engine zdtm cmd 2>/dev/null | sort)
exit $fail
