#!/usr/bin/env bash
# The CLI's own checks, before anything is sent: --help of every command,
# usage errors (exit 2), durations, job files. Nothing listens at
# FLOTILLA_ADDR, so a command line that passes its checks fails (exit 1)
# with "cannot reach coordinator".
. "$(dirname "$0")/lib.sh"

# run EXPECTED_RC CMD...: runs the CLI, keeps its output in $out.
run() {
	local want=$1; shift
	rc=0
	out=$(timeout 20 "$CLI" "$@" 2>&1) || rc=$?
	[ "$rc" = "$want" ] || fail "flotilla $* exited $rc, not $want: $out"
}

# Every command in the top-level help answers --help with its usage.
cmds=$("$CLI" --help | awk '/^Commands:/ {on=1; next} /^$/ {on=0} on {print $1, $2}')
[ "$(wc -l <<<"$cmds")" -ge 15 ] || fail "too few commands listed: $cmds"
while read -r group name; do
	run 0 "$group" "$name" --help
	grep -q "^Usage: flotilla $group $name" <<<"$out" || fail "$group $name --help: $out"
	grep -q -- "--help" <<<"$out" || fail "$group $name --help lists no options: $out"
done <<<"$cmds"
pass "--help of every command ($(wc -l <<<"$cmds") commands)"

# usage_error WHAT CMD...: exit 2, one line naming the usage.
usage_error() {
	local what=$1; shift
	run 2 "$@"
	[ "$(wc -l <<<"$out")" = 1 ] || fail "$*: error is not one line: $out"
	grep -q -- "$what" <<<"$out" || fail "$*: no \"$what\" in: $out"
	grep -q "(usage: flotilla $1 $2 " <<<"$out" || fail "$*: no usage in: $out"
}
usage_error "missing FILE" job run
usage_error "missing NAME" job status
usage_error "missing NAME" job stop
usage_error "missing NAME" job history
usage_error "missing ID" alloc status
usage_error "missing ID" alloc logs
usage_error "missing ID" deployment promote
usage_error "missing on|off" node eligibility n1
usage_error 'unexpected argument "b"' job run a.json b
usage_error 'unexpected argument "x"' job list x
usage_error "--bogus: unknown flag" job status web --bogus
usage_error "--wait: \"soon\" is not a whole number" job run a.json --wait soon
usage_error "--wait: must be between 1 and 86400" deployment status web --watch --wait 0
usage_error "--tail: needs a value" alloc logs a1 --tail
usage_error '"maybe": expected on or off' node eligibility n1 maybe
usage_error "--watch and --json do not mix" deployment status web --watch --json
usage_error "--deadline: not with --disable" node drain n1 --deadline 5m --disable
run 2 job frobnicate
grep -q 'unknown command "job frobnicate"' <<<"$out" || fail "unknown command: $out"
pass "usage errors exit 2 with one line"

for d in 5x 5 "" -5s 1.5h 0s s 1h- 99999999h 50d; do
	run 2 node drain n1 --deadline "$d"
	grep -q -- "--deadline: " <<<"$out" || fail "duration \"$d\": $out"
done
run 2 node drain n1 --deadline 5x
grep -q '"5x": unknown unit (units: ms, s, m, h, d)' <<<"$out" || fail "5x: $out"
run 2 node drain n1 --deadline 90
grep -q '"90": missing unit' <<<"$out" || fail "90: $out"
run 2 node drain n1 --deadline 0s
grep -q '"0s": must be more than 0' <<<"$out" || fail "0s: $out"
for d in 30s 5m 1h 1h30m 250ms 2d; do
	run 1 node drain n1 --deadline "$d"
	grep -q "cannot reach coordinator" <<<"$out" || fail "duration \"$d\" refused: $out"
done
pass "drain deadlines: garbage refused, 30s/5m/1h/1h30m/250ms/2d accepted"

# Flags may come before or after operands, and checked command lines get
# as far as the network.
for args in "job status web --json" "job status --json web" "job list --json" \
	"job history web" "alloc status a1b2 --json" "deployment status web" \
	"node eligibility n1 on" "node drain n1 --disable" "job stop web --detach"; do
	# shellcheck disable=SC2086
	run 1 $args
	grep -q "^flotilla: cannot reach coordinator" <<<"$out" || fail "$args: $out"
done
pass "valid command lines reach the network"

run 1 job run "$T/missing.json"
grep -qx "flotilla: $T/missing.json: No such file or directory" <<<"$out" || fail "missing file: $out"
echo '{"name": "web", "groups": [{"name": "web", "count": 2, "tasks": [{"name": "srv"}]}]}' >"$T/bad.json"
run 1 job run "$T/bad.json"
grep -q "^flotilla: $T/bad.json: groups\[0\].tasks\[0\].command: " <<<"$out" || fail "bad job: $out"
echo '{"name": "web", "groups": [' >"$T/syntax.json"
run 1 job run "$T/syntax.json" --detach
grep -q "^flotilla: $T/syntax.json: line [0-9]* column [0-9]*: " <<<"$out" || fail "bad JSON: $out"
pass "job files are checked before anything is sent"
