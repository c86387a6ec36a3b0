#!/usr/bin/env bash
# Garbage, truncated, wrong-version, unknown-method and oversized messages
# get an error or are dropped, and the coordinator keeps serving.
. "$(dirname "$0")/lib.sh"

start_coord
start_agent a1
wait_for 5 "a1 ready" is_status a1 ready
idx_before=$(nodes_json | jq -r '.[0].modify_index')

for seed in 1 2 3 4 5 6 7 8; do
	out=$("$RAWSEND" --url "$LISTEN" --garbage $((seed * 97)) --seed $seed)
	case "$out" in
	"reply code=1 "*) ;; # ERROR_BAD_REQUEST
	*) fail "garbage seed $seed: $out" ;;
	esac
done
pass "garbage answered with BAD_REQUEST"

out=$("$RAWSEND" --url "$LISTEN" --version 9)
echo "$out" | grep -q "code=4 message=protocol version 9 is not supported" ||
	fail "wrong version: $out"
out=$("$RAWSEND" --url "$LISTEN" --method 4242)
echo "$out" | grep -q "code=5 message=method 4242 is not known" ||
	fail "unknown method: $out"
out=$("$RAWSEND" --url "$LISTEN" --garbage 0)
echo "$out" | grep -q "^reply code=" || fail "empty message: $out"
pass "wrong version and unknown method refused by name"

rc=0
out=$("$RAWSEND" --url "$LISTEN" --size $((8 * 1024 * 1024)) --timeout 2000) || rc=$?
[ $rc = 3 ] || fail "an 8 MiB message was not dropped: $out"
pass "oversized message dropped ($out)"

"$CLI" node list >/dev/null || fail "coordinator stopped serving"
kill -0 "${PIDS[coord]}" || fail "coordinator died"
sleep 1
is_status a1 ready || fail "a1 no longer ready"
[ "$(nodes_json | jq length)" = 1 ] || fail "bad input created nodes"
pass "coordinator still serving; state unchanged (index $idx_before)"
