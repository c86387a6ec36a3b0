#!/usr/bin/env bash
# Signed packages by default.
#   - A coordinator given the fleet key (--package-key) refuses a push that
#     is unsigned or signed by another key, naming what is missing, and
#     stores nothing; a push signed with the fleet key is stored.
#   - Agents, driven by a stand-in coordinator (flt-fakecoord) that lists
#     INSTALL steps: an agent with neither --package-key nor --dev nor
#     --allow-unsigned-packages installs nothing (unsigned: refused; signed:
#     refused, it cannot check it); with --package-key it installs what the
#     fleet key signed and refuses unsigned, badly signed (a manifest
#     changed after signing) and otherwise signed packages; with
#     --allow-unsigned-packages an unsigned package goes through, a bad
#     signature still does not. Every refusal stages nothing.
. "$(dirname "$0")/lib.sh"

FAKE="$FLT_BIN/tests/tools/flt-fakecoord"
CHUNKS="$T/chunks"
CAMP=5e1f0000-0000-4000-8000-00000000000a
mkdir -p "$CHUNKS" "$T/src"

"$FAKE" keygen --public "$T/fleet.pub" --secret "$T/fleet.key" || fail "keygen"
"$FAKE" keygen --public "$T/other.pub" --secret "$T/other.key" || fail "keygen"
head -c 3000 /dev/urandom >"$T/payload.bin"

# ---- the coordinator ----------------------------------------------------

start_coord --package-key "$T/fleet.pub"
push() { "$CLI" package push app "$@" --format file 2>&1; }
out=$(push 1.0 "$T/payload.bin") && fail "an unsigned push was stored: $out"
grep -q "package app 1.0: unsigned; this coordinator accepts only packages signed with the fleet key (--package-key): push with --sign" <<<"$out" ||
	fail "unsigned push: $out"
out=$(push 1.0 "$T/payload.bin" --sign "$T/other.key") && fail "a push signed by another key was stored: $out"
grep -q "signed by another key.*this coordinator accepts only packages signed with the fleet key" <<<"$out" ||
	fail "push signed by another key: $out"
[ "$("$CLI" package list --json | jq length)" = 0 ] || fail "a refused push left a package: $("$CLI" package list --json)"
out=$(push 1.0 "$T/payload.bin" --sign "$T/fleet.key") || fail "a signed push was refused: $out"
"$CLI" package list --json | jq -e 'length == 1 and .[0].version == "1.0"' >/dev/null ||
	fail "package list: $("$CLI" package list --json)"
pass "a keyed coordinator refuses unsigned and foreign-signed pushes, stores nothing of them, takes a signed one"
kill9 coord

# ---- agents ----------------------------------------------------------------

# man VERSION [pack flags]: a one-file package; prints its manifest's path.
man() {
	local v=$1; shift
	echo "content $v" >"$T/src/$v.txt"
	"$FAKE" pack --name app --version "$v" --file "$T/src/$v.txt" --format file \
		--file-name app.txt --chunks "$CHUNKS" "$@" >"$T/src/$v.json" || fail "pack $v"
	echo "$T/src/$v.json"
}
U=$(man 1.0)                                  # unsigned
S=$(man 2.0 --sign "$T/fleet.key")            # signed with the fleet key
O=$(man 3.0 --sign "$T/other.key")            # signed with another key
man 4.0 --sign "$T/fleet.key" >/dev/null      # signed as 4.0, shown as 4.1
jq -c '.version = "4.1"' "$T/src/4.0.json" >"$T/src/4.1.json"
B="$T/src/4.1.json"

# One INSTALL step per manifest, numbered from 1.
steps() {
	local i=0 m
	for m in "$@"; do
		i=$((i + 1))
		jq -nc --arg id "$CAMP/$i" --arg camp "$CAMP" --slurpfile m "$m" \
			'{id: $id, campaign: $camp, action: "install", package: $m[0],
			  package_name: $m[0].name, restart: false, min_healthy_ms: 0,
			  timeout_ms: 30000}'
	done | jq -s . >"$T/steps.json"
}
st() { jq -c --arg id "$CAMP/$2" '.steps[] | select(.id == $id)' "$T/$1.state" 2>/dev/null; }
settled() { [ "$(st "$1" "$2" | jq -r .state)" = "$3" ]; }

# run NAME FLAGS...: a stand-in coordinator and an agent (no --dev) with
# FLAGS, each with their own state, on the steps of steps.json.
run() {
	local name=$1; shift
	"$FAKE" serve --listen "$LISTEN" --allocs "$T/allocs.json" --log "$T/$name.syncs" \
		--steps "$T/steps.json" --chunks "$CHUNKS" --state "$T/$name.state" \
		--interval 500 >>"$T/fake-$name.log" 2>&1 &
	PIDS[fake]=$!
	"$AGENT" --data-dir "$T/$name" --coordinator "$LISTEN" --join-token "$TOKEN" \
		--name "$name" --dpkg-status none --inventory-interval 1h "$@" >>"$T/$name.log" 2>&1 &
	PIDS[$name]=$!
}
stop() { kill9 "$1"; kill9 fake; }
# expect NAME STEP STATE [MESSAGE]
expect() {
	wait_for 20 "$1: step $2 $3" settled "$1" "$2" "$3"
	[ -z "${4:-}" ] || st "$1" "$2" | jq -e --arg w "$4" '.message | contains($w)' >/dev/null ||
		fail "$1: step $2: $(st "$1" "$2"), want \"$4\""
}
staged() { ls "$T/$1/packages/app" 2>/dev/null | grep -v '^\.' | grep -vx current | sort | tr '\n' ' '; }
echo '[]' >"$T/allocs.json"

# Neither a key nor an allowance: nothing is installed.
steps "$U" "$S"
run bare
expect bare 1 failed "package app 1.0: unsigned; this agent requires packages signed with the fleet key (--package-key), or --allow-unsigned-packages"
expect bare 2 failed "package app 2.0: signed, but this agent has no fleet key to verify it with (--package-key FILE), or --allow-unsigned-packages"
[ -z "$(staged bare)" ] || fail "bare: staged $(staged bare)"
grep -q "no --package-key: every package is refused" "$T/bare.log" || fail "bare: no warning at start"
stop bare
pass "an agent without --package-key, --dev or --allow-unsigned-packages refuses every package, saying what is missing"

# The fleet key: signed packages only.
steps "$U" "$S" "$O" "$B"
run keyed --package-key "$T/fleet.pub"
expect keyed 2 succeeded
expect keyed 1 failed "package app 1.0: unsigned; this agent requires packages signed with the fleet key (--package-key)"
expect keyed 3 failed "package app 3.0: signed by another key"
expect keyed 4 failed "package app 4.1: bad signature; this agent installs only packages signed with the fleet key"
[ "$(staged keyed)" = "2.0 " ] || fail "keyed: staged $(staged keyed)"
[ "$(readlink "$T/keyed/packages/app/current")" = 2.0 ] || fail "keyed: current is not 2.0"
stop keyed
pass "with --package-key: signed installed; unsigned, foreign-signed and altered-after-signing refused, nothing staged"

# --dev with a key still enforces it.
steps "$U"
run devkeyed --dev --package-key "$T/fleet.pub"
expect devkeyed 1 failed "unsigned"
stop devkeyed
pass "--dev does not lift a --package-key"

# --allow-unsigned-packages: unsigned goes through, bad signatures do not.
steps "$U" "$B"
run open --allow-unsigned-packages
expect open 1 succeeded
stop open
run openkeyed --allow-unsigned-packages --package-key "$T/fleet.pub"
expect openkeyed 1 succeeded
expect openkeyed 2 failed "bad signature"
[ "$(staged openkeyed)" = "1.0 " ] || fail "openkeyed: staged $(staged openkeyed)"
grep -q "packages are installed without a signature check" "$T/open.log" || fail "open: no warning at start"
stop openkeyed
pass "--allow-unsigned-packages installs unsigned packages (with a warning), never badly signed ones"
