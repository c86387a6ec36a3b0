#!/usr/bin/env bash
# The shipped unit files pass systemd-analyze verify.
set -euo pipefail
: "${FLT_SRC:?}" "${FLT_BIN:?}"
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; exit 77; }

T=$(mktemp -d /tmp/flotilla-units.XXXXXX)
trap 'rm -rf "$T"' EXIT
# A broken unit must be reported, or this check would prove nothing here.
printf '[Service]\nType=notifyx\nExecStart=/bin/true\n' >"$T/broken.service"
[ -n "$(systemd-analyze verify "$T/broken.service" 2>&1)" ] || {
	echo "SKIP: systemd-analyze verify reports nothing on this machine"; exit 77; }
# verify checks that ExecStart= binaries exist: point them at the build.
for u in flotilla-coordinator flotilla-agent; do
	sed -e "s|/usr/sbin/$u|$FLT_BIN/${u#flotilla-}/$u|" \
		"$FLT_SRC/deploy/systemd/$u.service" >"$T/$u.service"
	out=$(systemd-analyze verify "$T/$u.service" 2>&1) || {
		echo "FAIL: $u.service: $out"; exit 1; }
	# verify only warns on unknown keys; treat any output as a failure.
	if [ -n "$out" ]; then echo "FAIL: $u.service: $out"; exit 1; fi
	grep -q '^Type=notify' "$T/$u.service" || { echo "FAIL: $u not Type=notify"; exit 1; }
	grep -q '^WatchdogSec=' "$T/$u.service" || { echo "FAIL: $u has no watchdog"; exit 1; }
	echo "ok - $u.service verifies"
done
