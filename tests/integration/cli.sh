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

# ---- Packages, inventory, campaigns ----------------------------------------

usage_error "missing PUBLIC_FILE" package keygen
usage_error "missing SECRET_FILE" package keygen "$T/k.pub"
usage_error "missing NAME" package push
usage_error "missing PATH" package push app 1.0
usage_error "missing NAME" package show
usage_error 'unexpected argument "x"' package show app 1.0 x
usage_error "missing QUERY" inventory query
usage_error "missing NODE" inventory show
for cmd in status watch pause resume abort report; do
	usage_error "missing ID" campaign "$cmd"
done
usage_error 'unexpected argument "x"' campaign list x
usage_error "--limit: must be between 1 and 1000000" inventory query 'log4j-core < 2.17.1' --limit 0
usage_error '--kind: "rpm": expected managed, dpkg or java' inventory show n1 --kind rpm
usage_error "--json and --csv do not mix" campaign report c1 --json --csv
pass "package, inventory and campaign usage errors"

echo "payload" >"$T/payload.bin"
long=$(printf 'a%.0s' $(seq 1 65))
for n in .app "a b" a/b x@y "$long"; do
	usage_error "not a package name" package push "$n" 1.0 "$T/payload.bin"
done
long=$(printf '1%.0s' $(seq 1 129))
for v in .1 "1 0" 1/0 1@2 "$long"; do
	usage_error "not a package version" package push app "$v" "$T/payload.bin"
done
usage_error '--format: "zip": expected archive or file' package push app 1.0 "$T/payload.bin" --format zip
pass "push: bad names, versions and formats are usage errors"

run 1 package push app 1.0 "$T"
grep -qx "flotilla: $T: is a directory (.*)" <<<"$out" || fail "directory: $out"
run 1 package push app 1.0 /dev/null
grep -qx "flotilla: /dev/null: not a regular file" <<<"$out" || fail "device: $out"
run 1 package push app 1.0 "$T/missing.tar.gz"
grep -qx "flotilla: $T/missing.tar.gz: No such file or directory" <<<"$out" || fail "missing: $out"
: >"$T/empty.bin"
run 1 package push app 1.0 "$T/empty.bin"
grep -qx "flotilla: $T/empty.bin: empty file" <<<"$out" || fail "empty: $out"
run 1 package push app 1.0 "$T/payload.bin" --sign "$T/nokey"
grep -q "$T/nokey" <<<"$out" || fail "missing key: $out"
! grep -q "cannot reach" <<<"$out" || fail "a missing key was not caught before sending: $out"
for args in "app 1.0 $T/payload.bin" "app 1.0+deb12~1:x_y $T/payload.bin --format archive" \
	"A.b_c-9 1 $T/payload.bin --format file --json"; do
	# shellcheck disable=SC2086
	run 1 package push $args
	grep -q "^flotilla: cannot reach coordinator" <<<"$out" || fail "push $args: $out"
done
pass "push: directories, devices, missing and empty files and keys refused before sending"

run 0 package keygen "$T/k.pub" "$T/k.sec"
grep -q "^key [0-9a-f]\{16\}: public key in $T/k.pub, secret key in $T/k.sec" <<<"$out" || fail "keygen: $out"
[ "$(stat -c %a "$T/k.sec")" = 600 ] || fail "secret key mode $(stat -c %a "$T/k.sec")"
grep -q "^flotilla-ed25519-public " "$T/k.pub" || fail "public key file: $(cat "$T/k.pub")"
grep -q "^flotilla-ed25519-secret " "$T/k.sec" || fail "secret key file is not one"
cp "$T/k.sec" "$T/k.sec.orig"
run 1 package keygen "$T/k2.pub" "$T/k.sec"
grep -q "already exists" <<<"$out" || fail "keygen over a key: $out"
cmp -s "$T/k.sec" "$T/k.sec.orig" || fail "keygen replaced an existing secret key"
[ ! -e "$T/k2.pub" ] || fail "keygen left a public key without its secret"
run 0 package keygen "$T/j.pub" "$T/j.sec" --json
[ "$(jq -r '.key_id | length' <<<"$out")" = 16 ] || fail "keygen --json: $out"
run 1 package push app 1.0 "$T/payload.bin" --sign "$T/k.pub"
grep -q "0600" <<<"$out" || fail "a public key file used to sign: $out"
run 1 package push app 1.0 "$T/payload.bin" --sign "$T/k.sec"
grep -q "^flotilla: cannot reach coordinator" <<<"$out" || fail "signed push: $out"
pass "keygen: secret key 0600, never replaced; push signs before sending"

# create_error WHAT FLAGS...: campaign create with a valid target and
# package unless FLAGS give them.
create_error() {
	local what=$1; shift
	usage_error "$what" campaign create --target 'log4j-core < 2.17.1' "$@"
}
usage_error "missing --target QUERY" campaign create --install fix@1
usage_error "missing --install NAME@VERSION" campaign create --target 'log4j-core < 2.17.1'
for i in fix fix@ @1 fix@.1 -fix@1 "a b@1" "fix@1 0"; do
	create_error "--install: \"$i\": " --install "$i"
done
for b in 0 0% 101% 5x -1 1.5 2000000 "5 %"; do
	create_error "--batch: \"$b\": " --install fix@1 --batch "$b"
done
for m in 101% x -1 1.5; do
	create_error "--max-failures: \"$m\": " --install fix@1 --max-failures "$m"
done
create_error '--on-failure: "retry": expected pause or abort' --install fix@1 --on-failure retry
for d in 10 5x 0s -1s 1.5s 50d; do
	create_error "--min-healthy: " --install fix@1 --min-healthy "$d"
	create_error "--host-timeout: " --install fix@1 --host-timeout "$d"
done
create_error "--canary: must be between 0 and 1000000" --install fix@1 --canary -1
create_error "--manual-promote: not with --canary 0" --install fix@1 --canary 0 --manual-promote
pass "campaign create: bad NAME@VERSION, counts, percentages, durations are usage errors"

for args in "--batch 10" "--batch 100% --max-failures 0" "--max-failures 0%" \
	"--max-failures 25% --on-failure abort" "--canary 0 --batch 1" \
	"--canary 3 --manual-promote --no-restart --name log4shell" \
	"--min-healthy 500ms --host-timeout 2m --dry-run" "--detach --json"; do
	# shellcheck disable=SC2086
	run 1 campaign create --target 'log4j-core < 2.17.1' --install log4j-fix@2.17.1 $args
	grep -q "^flotilla: cannot reach coordinator" <<<"$out" || fail "create $args: $out"
done
for args in "package list" "package show app" "package show app 1.0 --chunks" \
	"inventory query log4j-core < 2.17.1 --limit 5 --exit-code" "inventory show n1 --kind java" \
	"campaign list --json" "campaign status c1" "campaign watch c1" "campaign watch c1 --json" \
	"campaign pause c1" "campaign resume c1 --json" "campaign abort c1" "campaign report c1 --csv"; do
	# shellcheck disable=SC2086
	run 1 $args
	grep -q "^flotilla: cannot reach coordinator" <<<"$out" || fail "$args: $out"
done
pass "valid package, inventory and campaign command lines reach the network"
