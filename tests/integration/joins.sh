#!/usr/bin/env bash
# Joining and names, and bounded regular expressions, on the real
# coordinator: a client guessing join tokens as fast as it is answered
# sees its guesses collapse to a handful, is answered at once, and leaves
# a bounded log; a real agent from another address joins meanwhile; an
# impostor cannot take a live node's name; the issue's regular expression
# fails at once with a clear error, a backtracking one hits the match
# limit, and the coordinator keeps serving.
. "$(dirname "$0")/lib.sh"

start_coord
refusals() { grep -c "registration refused" "$T/coord.log" || true; }
field() { sed -n "s/.*[ ]$1=\([0-9]*\).*/\1/p" <<<"$2"; }

# The guesser dials from 127.0.0.2 (all of 127/8 is loopback).
GUESS=(--url "$LISTEN" --source 127.0.0.2 --register guess
	--token wrong-token-0123456789)
log0=$(wc -c <"$T/coord.log")
out=$("$RAWSEND" "${GUESS[@]}" --repeat-ms 3000)
echo "$out"
total=$(grep '^total' <<<"$out") || fail "no totals: $out"
first=$(grep '^second=0 ' <<<"$out")
auth=$(field auth "$total"); later=$(field later "$total")
# Guesses checked at 0, 0.1, 0.3, 0.7 and 1.5 s (8,356 a second before).
[ "$(field auth "$first")" -le 4 ] && [ "$auth" -le 6 ] ||
	fail "the token was checked too often: $out"
[ "$later" -ge 100 ] || fail "refusals were not answered at once: $out"
[ "$(field other "$total")" = 0 ] && [ "$(field ok "$total")" = 0 ] ||
	fail "unexpected answers: $out"
[ "$(refusals)" -le 2 ] || fail "$(refusals) refusal lines for one source in 3 s"
pass "guessing collapses to $auth checked tokens in 3 s; $later refusals answered at once"

# Still guessing, from 127.0.0.2, while a real agent joins from 127.0.0.1.
"$RAWSEND" "${GUESS[@]}" --repeat-ms 6000 >"$T/guess2.out" &
guesser=$!
start_agent web-1 --label "rack=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"
wait_for 10 "web-1 ready while guessing goes on" is_status web-1 ready
wait "$guesser" || fail "the second guesser failed: $(cat "$T/guess2.out")"
total=$(grep '^total' "$T/guess2.out") || fail "no totals: $(cat "$T/guess2.out")"
[ "$(field auth "$total")" -le 3 ] || fail "back-off forgotten: $total"
grep -q "registration refused: wrong join token peer=127.0.0.2" "$T/coord.log" ||
	fail "the first refusal was not logged"
# 9 s of guessing: the first refusal and at most a summary or two, where
# the unbounded log took 10 MB in 10 s.
n=$(refusals)
grown=$(( $(wc -c <"$T/coord.log") - log0 ))
[ "$n" -le 3 ] && [ "$grown" -lt 4096 ] ||
	fail "the log grew by $n refusal lines, $grown bytes"
pass "an agent from another address joined during the guessing; the log grew by $n lines ($grown bytes)"

# An impostor with the join token but another identity.
id=$(id_of web-1)
out=$("$RAWSEND" --url "$LISTEN" --register web-1 --token "$TOKEN" --reg-id impostor-0001)
grep -q "code=8 message=name web-1 is held by live node ${id:0:8}; stop it or choose another --name" <<<"$out" ||
	fail "the impostor was not refused clearly: $out"
[ "$(nodes_json | jq '[.[] | select(.name == "web-1")] | length')" = 1 ] ||
	fail "two nodes named web-1: $(nodes_json)"
cat >"$T/pin.json" <<J
{"name": "pin", "groups": [{"name": "pin", "count": 1,
  "tasks": [{"name": "t", "command": "/bin/true", "resources": {"memory_mb": 16}}],
  "constraints": [{"attribute": "node.name", "operator": "=", "value": "web-1"}]}]}
J
out=$("$CLI" job plan "$T/pin.json" --json) || fail "plan exited $?: $out"
[ "$(jq -r '.groups[0].nodes | join(",")' <<<"$out")" = "$id" ] ||
	fail "node.name = web-1 does not place on the real node $id: $out"
pass "an impostor cannot take web-1; node.name = web-1 still places on the real node"

# Regular expressions: the issue's query and written the PCRE2 way fail
# at once at compile time; a backtracking one stops at the match limit.
pid=${PIDS[coord]}
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
hwm0=$(hwm)
query_fails() {
	local q=$1 want=$2 t0 out rc=0
	t0=$(now_ms)
	out=$("$CLI" inventory query "$q" 2>&1) || rc=$?
	[ $rc != 0 ] || fail "query $q succeeded: $out"
	grep -qF "$want" <<<"$out" || fail "query $q: no clear error: $out"
	[ $(( $(now_ms) - t0 )) -lt 2000 ] || fail "query $q took $(( $(now_ms) - t0 )) ms"
}
query_fails 'label.rack ~ x{,30000}{,30000}y' \
	'regular expression: at byte 1: "{,n}" is not a repetition here: write "{0,n}"'
query_fails 'label.rack ~ "(x{0,30000}){0,30000}y"' 'regular expression is too large'
wait_for 10 "web-1's inventory" bash -c "[ \$('$CLI' inventory query --json all | jq .hosts_matched) = 1 ]"
query_fails 'label.rack ~ "(a+)+$"' 'regular expression: match limit exceeded'
out=$("$CLI" inventory query --json 'label.rack ~ ^a+b$') || fail "a plain regexp failed: $out"
[ "$(jq .hosts_matched <<<"$out")" = 1 ] || fail "a plain regexp no longer matches: $out"
grown=$(( $(hwm) - hwm0 ))
[ "$grown" -lt 65536 ] || fail "the coordinator's peak RSS grew by $grown KiB"
is_status web-1 ready || fail "web-1 is no longer ready"
pass "bad and backtracking regexps fail at once with clear errors (peak RSS +$grown KiB); the coordinator serves on"
