#!/bin/sh
# install-crit.sh: make CRIU's image tool `crit` available, for the CRIU
# format compatibility test in engine/image (TestCritDecode).
#
# On Debian 12 crit ships in the `criu` package (3.17.1), as /usr/bin/crit,
# a Python tool using python3-protobuf (pulled in as a dependency).
# Idempotent: does nothing when crit is already on PATH.
set -eu

if command -v crit >/dev/null 2>&1; then
	echo "install-crit: crit already installed at $(command -v crit)"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-crit: no apt-get here; install CRIU's crit by hand (Debian/Ubuntu package: criu)" >&2
	exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# Try the cached package lists first; refresh them only if that fails.
if ! $sudo apt-get install -y -q --no-install-recommends criu; then
	$sudo apt-get update -q
	$sudo apt-get install -y -q --no-install-recommends criu
fi

if ! command -v crit >/dev/null 2>&1; then
	echo "install-crit: criu installed but crit is not on PATH (expected /usr/bin/crit)" >&2
	exit 1
fi
echo "install-crit: installed $(command -v crit) from criu $(dpkg-query -W -f '${Version}' criu)"
