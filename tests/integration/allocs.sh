#!/usr/bin/env bash
# Allocations pushed by a coordinator, run by a real agent: a stand-in
# coordinator (flt-fakecoord) serves the wire and logs every Sync. Two
# allocations start sandboxed and are reported running with their alloc
# id, promptly (the heartbeat is 30 s); the allocation's identity reaches
# the task's environment; the agent's --api serves the task's output only
# with a grant the coordinator signed for that allocation on that node,
# unexpired (anonymous, another allocation's, another node's, an expired
# and a forged grant are refused, and logged); a spec this host refuses is reported failed with the reason; an agent
# killed with -9 and restarted while the coordinator is away leaves its
# tasks alone and re-attaches; a task whose spec changes is restarted; an
# allocation dropped from the set stops, vanishes from the reports and
# leaves no directory behind.
. "$(dirname "$0")/lib.sh"

require_sandbox
FAKE="$FLT_BIN/tests/tools/flt-fakecoord"
ALLOCS="$T/allocs.json"
SYNCS="$T/syncs.jsonl"
ADIR="$T/agent/allocs"
API_URL="tcp://127.0.0.1:$(free_port)"
A1=0a1b2c3d-0000-4000-8000-000000000001
A2=0a1b2c3d-0000-4000-8000-000000000002
A3=0a1b2c3d-0000-4000-8000-000000000003
A4=0a1b2c3d-0000-4000-8000-000000000004
A5=0a1b2c3d-0000-4000-8000-000000000005

CLEANUP_HOOKS+=(stop_shims)
# The stand-in coordinator's grant key, and a key nobody trusts.
"$FAKE" keygen --public "$T/grant.pub" --secret "$T/grant.key" || fail "keygen"
"$FAKE" keygen --public "$T/forged.pub" --secret "$T/forged.key" || fail "keygen"

# alloc ID INDEX TASK-JSON...: one AllocSpec.
alloc() {
	local id=$1 index=$2; shift 2
	jq -nc --arg id "$id" --argjson index "$index" '{id: $id, job: "web", group: "front",
		job_version: 1, index: $index, tasks: $ARGS.positional}' --jsonargs "$@"
}
# A task that says who it is, on stdout and stderr, then waits.
talker() {
	jq -nc --arg name "$1" --arg tag "$2" '{name: $name, command: "/bin/sh",
		args: ["-c", "echo hello-$0 alloc=$FLOTILLA_ALLOC_ID job=$FLOTILLA_JOB group=$FLOTILLA_GROUP index=$FLOTILLA_ALLOC_INDEX task=$FLOTILLA_TASK; echo oops-$0 >&2; exec sleep 1235\($tag)", $tag],
		env: {FLOTILLA_JOB: "spoofed", GREETING: "hi"}}'
}
# The same, healthy while /alloc/up exists.
checked() {
	talker "$@" | jq -c '.checks = [{name: "up", type: "exec", command: ["/bin/sh", "-c", "test -e /alloc/up"],
		interval_ms: 500, timeout_ms: 400, failures: 2}]'
}
set_allocs() { jq -s . >"$ALLOCS.tmp" && mv "$ALLOCS.tmp" "$ALLOCS"; }

start_fake() {
	"$FAKE" serve --listen "$LISTEN" --allocs "$ALLOCS" --log "$SYNCS" \
		--interval 30000 --grant-key "$T/grant.key" >>"$T/fake.log" 2>&1 &
	PIDS[fake]=$!
}

# What the last Sync reported.
last_sync() { fake_last sync "$SYNCS"; }
task_report() { last_sync | jq -c --arg a "$1" --arg t "$2" '.request.tasks[] | select(.alloc_id == $a and .name == $t)'; }
task_field() { task_report "$1" "$2" | jq -r "$3"; }
state_is() { [ "$(task_field "$1" "$2" .state)" = "$3" ]; }
alloc_reported() { last_sync | jq -e --arg a "$1" 'any(.request.tasks[]; .alloc_id == $a)' >/dev/null; }
status_file() { sed -n "s/^$3 //p" "$ADIR/$1/$2/status"; }
# logs ARGS: one read with a valid grant; anon ARGS: with none.
anon() { timeout 20 "$FAKE" logs --url "$API_URL" "$@"; }
logs() { anon --grant-key "$T/grant.key" "$@"; }

{ alloc $A1 0 "$(talker main 1)"; alloc $A2 1 "$(checked main 2)" "$(talker side 3)"; } | set_allocs
start_fake
t0=$(now_ms)
start_agent agent --api "$API_URL" --allow-user no-such-user-flt
for t in "$A1 main" "$A2 main" "$A2 side"; do
	wait_for 10 "$t running" state_is $t running
done
t1=$(now_ms)
[ $((t1 - t0)) -lt 25000 ] || fail "running reported after $((t1 - t0)) ms: not before the 30 s heartbeat"
[ -d "$ADIR/$A2/side/logs" ] || fail "no task directory under allocs/<id>/<task>"
last_sync | jq -e '.request.tasks | length == 3' >/dev/null || fail "not three tasks: $(last_sync)"
grep '"method":"register"' "$SYNCS" | jq -e --arg u "$API_URL" '.request.fingerprint.api_address == $u' >/dev/null ||
	fail "the fingerprint does not carry the API address: $(grep register "$SYNCS")"
pass "two allocations (three tasks) running, reported with their alloc id before the next heartbeat"

# Health changes reach the coordinator without waiting for a heartbeat.
healthy_is() { [ "$(task_field $A2 main .healthy)" = "$1" ]; }
healthy_is false || fail "healthy before its check passed: $(task_report $A2 main)"
touch "$ADIR/$A2/main/alloc/up"
wait_for 10 "A2 main reported healthy" healthy_is true
rm "$ADIR/$A2/main/alloc/up"
wait_for 10 "A2 main reported unhealthy" healthy_is false
task_report $A2 main | jq -e '.checks[0].name == "up" and .checks[0].healthy == false' >/dev/null ||
	fail "check status: $(task_report $A2 main)"
pass "health changes of an alloc task reported at once (heartbeat 30 s)"

# The allocation's identity is in the environment, over the spec's own.
out=$(logs --alloc $A2 --task side --offset 0)
echo "$out" | jq -e --arg a $A2 '.data | contains("hello-3 alloc=\($a) job=web group=front index=1 task=side")' >/dev/null ||
	fail "unexpected output: $out"
pass "FLOTILLA_ALLOC_ID, _JOB, _GROUP, _ALLOC_INDEX and _TASK set, and win over the spec's env"

# Logs through the agent's API.
out=$(logs --alloc $A1 --offset 0)
echo "$out" | jq -e '.data | startswith("hello-1 ")' >/dev/null || fail "first task's stdout: $out"
size=$(stat -c %s "$ADIR/$A1/main/logs/stdout.log")
[ "$(echo "$out" | jq .offset)" = "$size" ] || fail "next offset $(echo "$out" | jq .offset), file has $size bytes"
out=$(logs --alloc $A1 --task main --offset "$size")
[ "$(echo "$out" | jq -r '.data + "/" + (.offset|tostring) + "/" + (.rotated|tostring)')" = "/$size/false" ] ||
	fail "read at the end: $out"
out=$(logs --alloc $A1 --task main --offset 100000)
echo "$out" | jq -e '.rotated and (.data | startswith("hello-1 "))' >/dev/null || fail "offset past the end: $out"
out=$(logs --alloc $A1 --task main --offset -1 --tail 6)
[ "$(echo "$out" | jq -r .data)" = "$(tail -c 6 "$ADIR/$A1/main/logs/stdout.log")" ] || fail "tail: $out"
out=$(logs --alloc $A1 --task main --stderr --offset 0)
[ "$(echo "$out" | jq -r .data)" = "oops-1" ] || fail "stderr: $out"
out=$(logs --alloc $A4 --task main) && fail "unknown allocation answered: $out"
echo "$out" | jq -e '.error == 3 and (.message | contains("does not run on this node"))' >/dev/null || fail "unknown alloc: $out"
out=$(logs --alloc $A1 --task nope) && fail "unknown task answered: $out"
echo "$out" | jq -e '.error == 3 and (.message | contains("no task nope"))' >/dev/null || fail "unknown task: $out"
out=$(logs --alloc ../../../etc --task main) && fail "a path as alloc id answered: $out"
echo "$out" | jq -e '.error == 1 and (.message | contains("alloc_id"))' >/dev/null || fail "bad alloc id: $out"
out=$(logs --alloc $A1 --task ../../etc) && fail "a path as task answered: $out"
echo "$out" | jq -e '.error == 1 and (.message | contains("task"))' >/dev/null || fail "bad task: $out"
pass "--api: stdout and stderr from an offset, the tail, rotation, unknown and malformed names refused"

# Grants: refused unless the coordinator signed one for this allocation on
# this node, unexpired; each refusal says why, and is logged.
refused() {
	local want=$1; shift
	out=$(anon --alloc $A1 --offset 0 "$@") && fail "answered ($*): $out"
	echo "$out" | jq -e --arg w "$want" '.error == 2 and (.message | contains($w))' >/dev/null ||
		fail "refusal ($*): $out"
	! echo "$out" | grep -q hello-1 || fail "a refusal carried the log: $out"
}
refused "a grant from the coordinator is required (flotilla alloc logs asks for one)"
refused "grant is for allocation $A2, not $A1" --grant-key "$T/grant.key" --grant-alloc $A2
refused "grant is for node other-node, not this one (fake-node)" --grant-key "$T/grant.key" --grant-node other-node
refused "grant expired 120 s ago" --grant-key "$T/grant.key" --grant-expires-in -120000
refused "not signed by this agent's coordinator" --grant-key "$T/forged.key"
refused "not signed by this agent's coordinator" --grant-key "$T/grant.key" --grant-corrupt
refused "valid for longer than an agent accepts" --grant-key "$T/grant.key" --grant-expires-in 3600000
logs --alloc $A1 --offset 0 --grant-expires-in -5000 | jq -e '.data | startswith("hello-1 ")' >/dev/null ||
	fail "a grant 5 s past its expiry (within the clock skew) was refused"
grep -q 'agent logs refused alloc='"$A1"'.*grant expired' "$T/agent.log" || fail "refusals are not logged"
pass "--api: anonymous, another allocation's, another node's, expired, forged and overlong grants refused"

# Specs the host refuses are reported with the reason.
{
	alloc $A1 0 "$(talker main 1)"
	alloc $A2 1 "$(checked main 2)" "$(talker side 3)"
	alloc $A3 2 '{"name": "rel", "command": "bin/sh"}'
	alloc $A4 3 '{"name": "who", "command": "/bin/true", "user": "no-such-user-flt"}'
	# What this agent's flags do not allow (--allow-cap NET_ADMIN).
	alloc $A5 4 '{"name": "na", "command": "/bin/true", "capabilities": ["CAP_NET_ADMIN"]}'
} | set_allocs
wait_for 10 "relative command reported failed" state_is $A3 rel failed
wait_for 10 "unknown user reported failed" state_is $A4 who failed
wait_for 10 "unallowed capability reported failed" state_is $A5 na failed
task_field $A3 rel .message | grep -q "command: must be an absolute path" || fail "reason: $(task_report $A3 rel)"
task_field $A4 who .message | grep -q 'no user named "no-such-user-flt"' || fail "reason: $(task_report $A4 who)"
task_field $A5 na .message | grep -qF 'refused by this node: capabilities[0]: CAP_NET_ADMIN needs --allow-cap NET_ADMIN, which this agent was not started with' ||
	fail "reason: $(task_report $A5 na)"
[ ! -e "$ADIR/$A3/rel/status" ] || fail "a refused task was started"
[ ! -e "$ADIR/$A5/na/status" ] || fail "a task asking an unallowed capability was started"
pass "refused specs reported failed with the reason (a capability the agent does not allow included), never started"

# kill -9 of the agent while the coordinator is away: nothing stops.
p1=$(status_file $A1 main init_pid)
p2=$(status_file $A2 main init_pid)
kill9 fake
kill9 agent
start_agent agent --api "$API_URL" --allow-user no-such-user-flt
wait_for 10 "re-attached" grep -q "task re-attached task=$A2/side" "$T/agent.log"
sleep 2
for p in "$p1" "$p2"; do kill -0 "$p" || fail "task $p died while the coordinator was away"; done
grep -q "stopping task" <(sed -n '/task re-attached/,$p' "$T/agent.log") && fail "a task was stopped before the first sync"
n=$(wc -l <"$SYNCS")
start_fake
wait_for 15 "a sync after the coordinator came back" bash -c "[ \$(wc -l <'$SYNCS') -gt $n ]"
wait_for 10 "A1 reported again" state_is $A1 main running
state_is $A2 side running || fail "A2 side not running after the restart: $(task_report $A2 side)"
[ "$(status_file $A1 main init_pid)" = "$p1" ] && [ "$(status_file $A2 main init_pid)" = "$p2" ] ||
	fail "tasks were restarted"
[ "$(task_field $A1 main .pid)" = "$p1" ] || fail "reported pid $(task_field $A1 main .pid), want $p1"
out=$(logs --alloc $A2 --task side --offset 0)
echo "$out" | jq -e '.data | startswith("hello-3")' >/dev/null || fail "logs after the restart: $out"
pass "agent kill -9 with the coordinator away: tasks untouched, re-attached, still reported with their alloc id"

# A task whose spec changes is started anew.
{
	alloc $A1 0 "$(talker main 4)"
	alloc $A2 1 "$(checked main 2)" "$(talker side 3)"
} | set_allocs
wait_for 15 "A1 restarted with its new spec" bash -c "grep -q hello-4 '$ADIR/$A1/main/logs/stdout.log' 2>/dev/null"
wait_for 10 "A1 running again" state_is $A1 main running
! kill -0 "$p1" 2>/dev/null || fail "the old A1 process still runs"
sync_lacks() { ! last_sync | grep -q "$1"; }
wait_for 10 "refused allocations gone" sync_lacks "$A3"
pass "a changed spec restarts its task; dropped refused allocations leave the reports"

# Dropping an allocation stops it; it leaves the reports and the disk.
p2=$(status_file $A2 main init_pid)
p1=$(status_file $A1 main init_pid)
alloc $A1 0 "$(talker main 4)" | set_allocs
wait_for 15 "A2 gone from the reports" sync_lacks "$A2"
! kill -0 "$p2" 2>/dev/null || fail "A2's process survived its stop"
[ ! -e "$ADIR/$A2" ] || fail "A2's directory is left behind: $(ls -la "$ADIR/$A2")"
state_is $A1 main running && [ "$(status_file $A1 main init_pid)" = "$p1" ] || fail "A1 was disturbed"
out=$(logs --alloc $A2 --task main) && fail "logs of a removed allocation: $out"
pass "a dropped allocation is stopped, forgotten and its directory removed; the other runs on"

# A clean stop leaves the tasks running; its status is 0 (and a sanitizer
# build reports no leak).
p1=$(status_file $A1 main init_pid)
rc=0
kill -TERM "${PIDS[agent]}"
wait "${PIDS[agent]}" || rc=$?
unset "PIDS[agent]"
[ $rc = 0 ] || fail "agent exited with status $rc on SIGTERM"
kill -0 "$p1" || fail "a task stopped with the agent"
pass "agent stopped cleanly, its task runs on"
