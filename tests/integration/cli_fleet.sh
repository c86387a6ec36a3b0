#!/usr/bin/env bash
# What the CLI prints and how it exits, against a real 3-agent fleet: job
# run followed to success, to a failure that reverts, and for a batch job;
# job status, list, history and stop; alloc status and logs through the
# agent's API; deployment status; node drain and eligibility; errors of
# things that do not exist. (--json replies are covered by integration.jobs.)
. "$(dirname "$0")/lib.sh"

require_sandbox

CLEANUP_HOOKS+=(stop_shims)

start_coord
N1_API="tcp://127.0.0.1:$(free_port)"
start_agent n1 --api "$N1_API"
start_agent n2 --api "tcp://127.0.0.1:$(free_port)"
start_agent n3
for n in n1 n2 n3; do wait_for 10 "$n ready" is_status $n ready; done

# run EXPECTED_RC CMD...: runs the CLI, keeps its output in $out.
run() {
	local want=$1; shift
	rc=0
	out=$(timeout 60 "$CLI" "$@" 2>&1) || rc=$?
	[ "$rc" = "$want" ] || fail "flotilla $* exited $rc, not $want: $out"
}
has() { grep -qE -- "$1" <<<"$out" || fail "no /$1/ in: $out"; }

# web_json VERSION COMMAND: a service of 2 on n1 and n2 (the agents with
# an API), printing a marker on stdout and stderr.
web_json() {
	jq -n --arg v "$1" --arg cmd "$2" '{
	  name: "web",
	  groups: [{name: "web", count: 2,
	    constraints: [{attribute: "node.name", operator: "in", value: "n1,n2"},
	                  {operator: "distinct_hosts"}],
	    tasks: [{name: "srv", command: "/bin/sh",
	             args: ["-c", $cmd], env: {V: $v}, kill_timeout_ms: 500,
	             restart: {attempts: 0, on: "never"}}]}],
	  update: {max_parallel: 2, min_healthy_time_ms: 500,
	           healthy_deadline_ms: 4000, progress_deadline_ms: 8000,
	           auto_revert: true}}'
}
# The first line would retitle a terminal and clear it if shown raw.
GOOD='printf "evil \033]0;x\007\033[2J\\n"; echo "hello v$V"; echo "warn v$V" >&2; exec sleep 100000'

web_json 1 "$GOOD" >"$T/v1.json"
run 0 job run "$T/v1.json"
has '^job web version 1 submitted \(eval [0-9a-f]{8}\)$'
has '^deployment [0-9a-f]{8} \(web version 1\) successful: '
has '^  web 2/2 healthy  2 placed  0 unhealthy$'
run 0 job run "$T/v1.json" --detach
has '^job web unchanged \(version 1\)$'
pass "job run follows a deployment to success (exit 0); an unchanged job says so"

run 0 job status web
has '^Name +  = web$'
has '^Status +  = running$'
has '^Allocations += 2 desired, 2 running, 2 healthy, 0 pending, 0 failed$'
has '^ID +GROUP +NODE +VERSION +DESIRED +STATUS +HEALTH +CREATED$'
[ "$(grep -cE '^[0-9a-f]{8} +web\[[01]\] +n[12] +1 +run +running +healthy ' <<<"$out")" = 2 ] ||
	fail "two running healthy allocations: $out"
run 0 job list
has '^web +service +1 +running +2/2 +2 +successful '
run 0 deployment status web
has '^Status += successful$'
has '^  web +2 +- +- +2 +2 +0$'
pass "job status, job list and deployment status"

alloc=$(timeout 20 "$CLI" job status web --json | jq -r '[.allocs[] | select(.desired == "run")][0].id')
run 0 alloc status "${alloc:0:8}"
has "^ID += $alloc$"
has '^  srv +'"${alloc:0:8}"' +running +yes +0 '
wait_for 10 "the task's output" bash -c "'$CLI' alloc logs ${alloc:0:8} | grep -q 'hello v1'"
run 0 alloc logs "${alloc:0:8}" --stderr
[ "$out" = "warn v1" ] || fail "stderr: $out"
run 0 alloc logs "${alloc:0:8}" --tail 3
[ "$out" = "v1" ] || fail "tail: $out"
"$CLI" alloc logs "${alloc:0:8}" -f >"$T/follow.out" 2>&1 &
follower=$!
wait_for 10 "alloc logs -f printing the log" grep -q "hello v1" "$T/follow.out"
kill -INT $follower
rc=0; wait $follower || rc=$?
[ $rc = 0 ] && grep -q "hello v1" "$T/follow.out" || fail "logs -f: $rc $(cat "$T/follow.out")"
pass "alloc status; alloc logs of stdout, stderr, a tail, and -f until SIGINT"

# The agents answer only the coordinator's grants: a direct read of n1's
# API without one, or with one signed by another key, is refused.
FAKE="$FLT_BIN/tests/tools/flt-fakecoord"
"$FAKE" keygen --public "$T/forged.pub" --secret "$T/forged.key" >/dev/null
n1_alloc=$(timeout 20 "$CLI" job status web --json |
	jq -r '[.allocs[] | select(.desired == "run" and .node_name == "n1")][0].id')
n1_id=$(nodes_json | jq -r '.[] | select(.name == "n1") | .id')
out=$(timeout 20 "$FAKE" logs --url "$N1_API" --alloc "$n1_alloc" --offset 0) && fail "anonymous read answered: $out"
echo "$out" | jq -e '.error == 2 and (.message | contains("a grant from the coordinator is required"))' >/dev/null ||
	fail "anonymous read: $out"
out=$(timeout 20 "$FAKE" logs --url "$N1_API" --alloc "$n1_alloc" --offset 0 \
	--grant-key "$T/forged.key" --grant-node "$n1_id") && fail "forged grant answered: $out"
echo "$out" | jq -e '.message | contains("not signed by this agent'"'"'s coordinator")' >/dev/null ||
	fail "forged grant: $out"
[ "$(stat -c %a "$T/coord/grant.key")" = 600 ] || fail "grant.key mode $(stat -c %a "$T/coord/grant.key")"
pass "agents refuse anonymous and forged log reads; the coordinator's grant key is 0600"

# script(1) gives alloc logs a terminal: what the task wrote is escaped
# there (newlines kept), raw with --raw and into a pipe.
ESC=$'\e'
RAW=$'evil \e]0;x\a\e[2J'
out=$(timeout 30 script -qec "'$CLI' alloc logs ${alloc:0:8}" /dev/null) ||
	fail "alloc logs on a terminal: $out"
grep -qF 'evil \x1b]0;x\x07\x1b[2J' <<<"$out" && grep -q '^hello v1' <<<"$out" &&
	! grep -qF "$ESC" <<<"$out" || fail "not escaped on a terminal: $(cat -v <<<"$out")"
out=$(timeout 30 script -qec "'$CLI' alloc logs ${alloc:0:8} --raw" /dev/null) ||
	fail "alloc logs --raw on a terminal: $out"
grep -qF "$RAW" <<<"$out" || fail "--raw escaped: $(cat -v <<<"$out")"
run 0 alloc logs "${alloc:0:8}"
[ "$out" = "$RAW"$'\nhello v1' ] || fail "not raw into a pipe: $(cat -v <<<"$out")"
pass "alloc logs escapes control sequences on a terminal, not with --raw or into a pipe"

web_json 2 'echo dying; exit 3' >"$T/v2.json"
run 1 job run "$T/v2.json"
has '^deployment [0-9a-f]{8} \(web version 2\) failed: '
has '^job web reverted to version 1$'
wait_for 20 "the revert rolled out" bash -c "'$CLI' deployment status web | grep -q '^Status *= successful'"
run 0 job history web
has '^3 +yes +.* reverted to version 1: deployment [0-9a-f]{8} failed '
has '^2 +no +.* web\.srv: /bin/sh -c echo dying; exit 3$'
has '^1 +yes +.* web x2$'
pass "a failing version: exit 1, the revert named; job history lists what changed"

# On n3, the agent without an API.
jq -n '{name: "once", type: "batch", groups: [{name: "b", count: 2,
  constraints: [{attribute: "node.name", operator: "=", value: "n3"}],
  tasks: [{name: "t", command: "/bin/sh", args: ["-c", "echo done"]}]}]}' >"$T/batch.json"
run 0 job run "$T/batch.json"
has '^job once version 1 submitted '
# job run returns once both have started (a batch task may run for
# hours); "echo done" may or may not have ended by then.
[ "$(grep -cE '^[0-9a-f]{8} +b\[[01]\] +n3 +1 +run +(running|complete) ' <<<"$out")" = 2 ] ||
	fail "batch allocations started: $out"
wait_for 20 "both batch allocations complete" bash -c \
	"[ \$('$CLI' job status once | grep -cE '^[0-9a-f]{8} +b\[[01]\] +n3 +1 +run +complete ') = 2 ]"
[ "$(timeout 20 "$CLI" job status once --json | jq -r .summary.status)" = complete ] ||
	fail "a batch job whose allocations all ended well is complete"
pass "job run of a batch job waits for its allocations to start and prints them; they complete"

run 0 node drain n3 --deadline 1m
has '^node n3 \([0-9a-f]{8}\): ready, ineligible, draining until [0-9T:.-]+Z$'
run 0 node list
has '^[0-9a-f]{8} +n3 +ready +no +yes '
run 0 node drain n3 --disable
has '^node n3 \([0-9a-f]{8}\): ready, ineligible, not draining$'
run 0 node eligibility n3 on
has '^node n3 \([0-9a-f]{8}\): ready, eligible, not draining$'
run 0 node status n3
has '^Eligible += yes$'
has '^Draining += no$'
has '^Agent API += -$'
pass "node drain, eligibility, and their columns"

batch_alloc=$(timeout 20 "$CLI" job status once --json | jq -r '.allocs[0].id')
run 1 alloc logs "$batch_alloc"
[ "$out" = "flotilla: node n3 has no agent API (start the agent with --api)" ] || fail "no API: $out"
pass "alloc logs on a node without an agent API says so"

run 0 job stop web
has '^job web version 3 stopped \(eval [0-9a-f]{8}\)$'
run 0 job status web
has '^Status += dead \(stopped\)$'
pass "job stop waits for the allocations to finish"

for cmd in "job status nosuch" "job history nosuch" "job stop nosuch" \
	"alloc status 00000000" "deployment status nosuch" "node status nosuch"; do
	# shellcheck disable=SC2086
	run 1 $cmd
	[ "$(wc -l <<<"$out")" = 1 ] && has '^flotilla: ' || fail "$cmd: $out"
done
pass "things that do not exist: exit 1, one line"
