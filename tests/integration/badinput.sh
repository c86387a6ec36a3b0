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

# Terminal safety: strings from outside are shown escaped, never raw.
ESC=$'\e'
RLO=$'\xe2\x80\xae' # U+202E RIGHT-TO-LEFT OVERRIDE
raw_esc() { grep -c "$ESC" "$@" || true; }

# A host whose os-release names itself with an escape sequence (valid
# UTF-8) joins; one whose name is also invalid UTF-8 joins too, its
# fingerprint escaped by the agent.
printf 'ID=evil\nPRETTY_NAME="Evil \e]0;pwned\a\e[2J OS"\n' >"$T/os-release.esc"
printf 'ID=evil\nPRETTY_NAME="Evil \e[2J\xff OS"\n' >"$T/os-release.bad"
start_agent a2 --os-release "$T/os-release.esc" --label "motd=x${RLO}y"
start_agent a3 --os-release "$T/os-release.bad"
wait_for 10 "a2 ready" is_status a2 ready
wait_for 10 "a3 ready" is_status a3 ready
pass "hosts with an escape sequence or invalid UTF-8 in os-release join"

out=$("$CLI" node status a2)
grep -qF 'os              = Evil \x1b]0;pwned\x07\x1b[2J OS (evil ' <<<"$out" ||
	fail "a2's os_name not shown escaped: $out"
grep -qF 'motd=x\u202ey' <<<"$out" || fail "a2's label not shown escaped: $out"
[ "$(raw_esc <<<"$out")" = 0 ] && ! grep -qF "$RLO" <<<"$out" ||
	fail "node status wrote control characters"
out=$("$CLI" node list)
grep -qE '^[0-9a-f]{8} +a2 .*motd=x\\u202ey' <<<"$out" ||
	fail "node list: the label with U+202E not escaped: $out"
! grep -qF "$RLO" <<<"$out" || fail "node list printed U+202E raw"
out=$("$CLI" node status a3)
grep -qF 'os              = Evil \x1b[2J\xff OS (evil ' <<<"$out" ||
	fail "a3's os_name not escaped: $out"
grep -q 'fingerprint: os_name is not valid UTF-8, sent escaped' "$T/a3.log" ||
	fail "a3 did not say it escaped its os_name"
# --json is escaped by the JSON encoder: controls as \u001b.
[ "$(nodes_json | jq -r '.[] | select(.name == "a2") | .labels.motd')" = "x${RLO}y" ] ||
	fail "JSON does not carry the label as it is"
out=$("$CLI" node status a2 --json)
grep -qiF 'Evil \u001b]0;pwned\u0007\u001b[2J OS' <<<"$out" && [ "$(raw_esc <<<"$out")" = 0 ] ||
	fail "JSON does not escape control characters"
pass "node list and node status show labels and fingerprints escaped; JSON escapes controls"

rc=0
out=$("$CLI" node status "x${ESC}[2J${RLO}" 2>&1) || rc=$?
[ $rc = 1 ] && grep -qF 'x\x1b[2J\u202e' <<<"$out" && [ "$(raw_esc <<<"$out")" = 0 ] ||
	fail "an error quoting a name with controls: $rc $out"
pass "errors quote outside strings escaped"

# A NUL inside a string: refused with its field, never cut ("t\0x" is not
# "t"). JobRegisterRequest{job{name "web", groups[{name "g",
# tasks[{name "t\0x"}]}]}} and NodeGetRequest{node "t\0x"}, by hand.
out=$("$RAWSEND" --url "$API" --method 111 \
	--body-hex 0a110a03776562220a0a01671a050a03740078)
grep -qF 'message=JobRegisterRequest: job.groups[0].tasks[0].name: NUL character at byte 1' <<<"$out" ||
	fail "a task name with NUL: $out"
out=$("$RAWSEND" --url "$API" --method 101 --body-hex 0a03740078)
grep -qF 'message=NodeGetRequest: node: NUL character at byte 1' <<<"$out" ||
	fail "a node name with NUL: $out"
"$CLI" job status web >/dev/null 2>&1 && fail "a job was registered"
pass "a NUL inside a string is refused with its field and byte"

[ "$(raw_esc "$T"/coord.log "$T"/a2.log "$T"/a3.log | grep -vc ':0$')" = 0 ] ||
	fail "a log line holds a raw escape character"
pass "the coordinator's and agents' logs hold no raw control character"
