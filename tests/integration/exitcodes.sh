#!/usr/bin/env bash
# The exit-status contract of every program's command line: 0 for --help
# and --version, 2 for an unknown flag, a flag without its value, a bad
# value, an unknown command or a stray argument, each with a one-line
# error that names it. Nothing here may get as far as starting a daemon.
. "$(dirname "$0")/lib.sh"

SHIM="$FLT_BIN/agent/flotilla-shim"
VERSION=$(sed -n 's/^project(flotilla VERSION \([0-9.]*\).*/\1/p' "$FLT_SRC/CMakeLists.txt")
[ -n "$VERSION" ] || fail "no version in $FLT_SRC/CMakeLists.txt"

# expect RC PROGRAM ARGS...: runs PROGRAM, keeps stdout in $out and
# stderr in $errout.
expect() {
	local want=$1 prog=$2; shift 2
	rc=0
	out=$(cd "$T" && timeout 20 "$prog" "$@" 2>"$T/stderr") || rc=$?
	errout=$(cat "$T/stderr")
	[ "$rc" = "$want" ] ||
		fail "$(basename "$prog") $* exited $rc, not $want: $out $errout"
}

# usage_error PROGRAM WHAT ARGS...: exit 2, nothing on stdout, one line
# on stderr, "program: ..." naming WHAT.
usage_error() {
	local prog=$1 what=$2; shift 2
	expect 2 "$prog" "$@"
	local name; name=$(basename "$prog")
	[ -z "$out" ] || fail "$name $*: wrote to stdout: $out"
	[ "$(wc -l <<<"$errout")" = 1 ] || fail "$name $*: error is not one line: $errout"
	grep -q "^$name: " <<<"$errout" || fail "$name $*: no \"$name: \" in: $errout"
	grep -qF -- "$what" <<<"$errout" || fail "$name $*: no '$what' in: $errout"
}

# help_and_version PROGRAM: --help prints a usage, --version the version.
help_and_version() {
	local prog=$1 name; name=$(basename "$1")
	expect 0 "$prog" --help
	grep -qi "^usage: $name" <<<"$out" || fail "$name --help: $out"
	expect 0 "$prog" --version
	[ "$out" = "$name $VERSION" ] || fail "$name --version: $out"
}

for prog in "$CLI" "$AGENT" "$COORD" "$SHIM"; do
	help_and_version "$prog"
done
pass "--help and --version exit 0 in every program"

# flotilla
usage_error "$CLI" "--bogus: unknown flag" --bogus node list
usage_error "$CLI" "--address: needs a value" --address
usage_error "$CLI" "--timeout: needs a value" --timeout
usage_error "$CLI" "--timeout: \"soon\" is not a whole number" --timeout soon node list
usage_error "$CLI" "--timeout: must be between 1 and 600000" --timeout 0 node list
usage_error "$CLI" "--version: takes no value" --version=1
usage_error "$CLI" 'unknown command "bogus" (see flotilla --help)' bogus
usage_error "$CLI" 'unknown command "bogus" (see flotilla --help)' bogus list
usage_error "$CLI" 'unknown command "nod"; did you mean "node"?' nod list
usage_error "$CLI" 'unknown command "nod"; did you mean "node"?' nod
usage_error "$CLI" 'unknown command "campagin"; did you mean "campaign"?' campagin list
usage_error "$CLI" 'unknown command "node lst"; did you mean "node list"?' node lst
usage_error "$CLI" 'unknown command "jbo"; did you mean "job"?' jbo status web
usage_error "$CLI" 'unknown command "node frobnicate" (see flotilla --help)' node frobnicate
usage_error "$CLI" 'missing command after "node"' node
usage_error "$CLI" "--bogus: unknown flag" node list --bogus
expect 2 "$CLI"
grep -q "^Usage: flotilla" <<<"$errout" || fail "flotilla alone: $errout"
expect 0 "$CLI" node list --version
[ "$out" = "flotilla $VERSION" ] || fail "node list --version: $out"
pass "flotilla: unknown flags and commands, missing and bad values exit 2"

# flotilla-agent: nothing is started, no state directory is made.
usage_error "$AGENT" "--bogus: unknown flag" --bogus
usage_error "$AGENT" "--coordinator: needs a value" --data-dir "$T/agent" --coordinator
usage_error "$AGENT" "--package-keep: must be between 0 and 100" --data-dir "$T/agent" --package-keep 101
usage_error "$AGENT" "--label: \"nolabel\": expected key=value" --data-dir "$T/agent" --label nolabel
for v in 0s 500ms 25h 1d soon; do
	usage_error "$AGENT" "--inventory-interval \"$v\": a duration from 1s to 24h" \
		--data-dir "$T/agent" --inventory-interval "$v"
done
usage_error "$AGENT" "--name \"a b\": must be 1 to 63" --data-dir "$T/agent" --name "a b"
usage_error "$AGENT" "--idle-timeout: needs a value" --data-dir "$T/agent" --idle-timeout
for v in 0s 999ms 25h soon; do
	usage_error "$AGENT" "--idle-timeout \"$v\": a duration from 1s to 24h" \
		--data-dir "$T/agent" --idle-timeout "$v"
done
usage_error "$AGENT" "--max-conns-per-source: needs a value" --data-dir "$T/agent" --max-conns-per-source
usage_error "$AGENT" "--max-conns-per-source: must be between 0 and 1000000" \
	--data-dir "$T/agent" --max-conns-per-source -1
usage_error "$AGENT" 'unexpected argument "bogus"' --data-dir "$T/agent" bogus
expect 2 "$AGENT" --data-dir "$T/agent" exec
grep -q "^usage: flotilla-agent \[--data-dir DIR\] exec SPEC.json" <<<"$errout" ||
	fail "flotilla-agent exec: $errout"
[ ! -e "$T/agent" ] || fail "flotilla-agent made its state directory on a bad command line"
pass "flotilla-agent: unknown flags, missing and bad values, stray arguments exit 2"

# flotilla-coordinator
usage_error "$COORD" "--bogus: unknown flag" --bogus
usage_error "$COORD" "--listen: needs a value" --data-dir "$T/coord" --listen
usage_error "$COORD" "--heartbeat-ttl: \"x\" is not a whole number" --data-dir "$T/coord" --heartbeat-ttl x
usage_error "$COORD" "--workers: must be between" --data-dir "$T/coord" --workers 0
usage_error "$COORD" "--idle-timeout: needs a value" --data-dir "$T/coord" --idle-timeout
for v in 0s 999ms 25h soon; do
	usage_error "$COORD" "--idle-timeout \"$v\": a duration from 1s to 24h" \
		--data-dir "$T/coord" --idle-timeout "$v"
done
usage_error "$COORD" "--max-conns-per-source: needs a value" --data-dir "$T/coord" --max-conns-per-source
usage_error "$COORD" "--max-conns-per-source: must be between 0 and 1000000" \
	--data-dir "$T/coord" --max-conns-per-source 1000001
usage_error "$COORD" 'unexpected argument "bogus"' --data-dir "$T/coord" bogus
[ ! -e "$T/coord" ] || fail "flotilla-coordinator made its state directory on a bad command line"
pass "flotilla-coordinator: unknown flags, missing and bad values, stray arguments exit 2"

# flotilla-shim (started by the agent; its command line is fixed)
for args in "--bogus" "--foreground" "--exec-check $T" "a b"; do
	# shellcheck disable=SC2086
	expect 2 "$SHIM" $args
	grep -q "^usage: flotilla-shim" <<<"$errout" || fail "flotilla-shim $args: $errout"
done
pass "flotilla-shim: bad command lines exit 2"
