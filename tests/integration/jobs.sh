#!/usr/bin/env bash
# Jobs end to end with the real programs on a 3-agent local fleet: a service
# of 3 sandboxed tasks runs and is healthy; a new version rolls out canary
# first; a version whose health check fails is reverted automatically while
# the old allocations keep serving; kill -9 of the coordinator in the middle
# of a deployment, then a restart, and the deployment continues; a paused
# deployment places nothing new until resumed; kill -9 of
# an agent, and its allocation is rescheduled after the TTL; drain; stop;
# and a table of invalid jobs, each refused by the coordinator with its
# field path and nothing changed.
. "$(dirname "$0")/lib.sh"

require_sandbox
JOBSEND="$FLT_BIN/tests/tools/flt-jobsend"

CLEANUP_HOOKS+=(stop_shims)

start_coord --log-level debug
for a in a1 a2 a3; do start_agent $a; done
wait_for 10 "3 ready nodes" bash -c "[ \$('$CLI' node list --json | jq '[.[] | select(.status == \"ready\")] | length') = 3 ]"

# job_json VERSION CHECK CANARY AUTO_PROMOTE > file
# The tasks sleep for SLP seconds: a number of this run's own, so that
# pgrep never sees another test's processes.
SLP="1$$"
job_json() {
	jq -n --arg v "$1" --arg sleep "$SLP" --arg check "$2" --argjson canary "$3" --argjson ap "$4" '{
	  name: "web",
	  groups: [{
	    name: "web", count: 3,
	    spreads: [{attribute: "node.name", weight: 100}],
	    reschedule: {attempts: 3, delay_ms: 100},
	    tasks: [{
	      name: "srv", command: "/bin/sleep", args: [$sleep],
	      env: {VERSION: $v},
	      resources: {memory_mb: 32},
	      kill_timeout_ms: 500,
	      checks: [{name: "alive", type: "exec", command: [$check],
	                interval_ms: 500, timeout_ms: 400, failures: 2}]
	    }]
	  }],
	  update: {max_parallel: 1, canary: $canary, min_healthy_time_ms: 600,
	           healthy_deadline_ms: 5000, progress_deadline_ms: 30000,
	           auto_revert: true, auto_promote: $ap}
	}'
}

status_json() { "$CLI" job status web --json; }
jq_status() { status_json | jq -r "$1"; }
live_allocs() { status_json | jq -c '[.allocs[] | select(.desired == "run")]'; }

# ---- a service of 3 runs, sandboxed, healthy --------------------------------
job_json 1 /bin/true 1 true >"$T/v1.json"
"$CLI" job run "$T/v1.json" >"$T/run1.out" || { cat "$T/run1.out"; fail "job run v1"; }
[ "$(jq_status .summary.running)" = 3 ] || fail "3 running: $(jq_status .summary)"
[ "$(jq_status .summary.healthy)" = 3 ] || fail "3 healthy: $(jq_status .summary)"
[ "$(jq_status .deployment.status)" = successful ] || fail "first deployment"
[ "$(jq_status '[.allocs[].node_name] | unique | length')" = 3 ] ||
	fail "spread over the 3 nodes: $(jq_status '[.allocs[].node_name]')"
# The tasks really run on the agents, under their allocation ids.
for a in a1 a2 a3; do
	n=$("$CLI" node status $a --json | jq '[.tasks[] | select(.alloc_id != "" and .state == "running")] | length')
	[ "$n" = 1 ] || fail "node $a runs $n allocation tasks"
done
pgrep -f "sleep $SLP\$" >/dev/null || fail "no task process"
pass "a 3-task service runs sandboxed and healthy on 3 agents"
V1_IDS=$(live_allocs | jq -r '[.[].id] | sort | join(",")')

# ---- a new version rolls out, canary first ------------------------------------
job_json 2 /bin/true 1 true >"$T/v2.json"
"$CLI" job run --detach "$T/v2.json" >/dev/null
wait_for 10 "the canary" bash -c "'$CLI' job status web --json | jq -e '[.allocs[] | select(.desired == \"run\" and .canary and .job_version == 2)] | length == 1' >/dev/null"
# While the canary proves itself, the three of version 1 still serve.
n1=$(live_allocs | jq '[.[] | select(.job_version == 1)] | length')
[ "$n1" = 3 ] || fail "version 1 kept serving during the canary ($n1)"
wait_for 40 "deployment of version 2" bash -c "[ \"\$('$CLI' job status web --json | jq -r .deployment.status)\" = successful ]"
[ "$(live_allocs | jq '[.[] | select(.job_version == 2)] | length')" = 3 ] || fail "3 of version 2"
pass "version 2 rolled out canary first"
V2_IDS=$(live_allocs | jq -r '[.[].id] | sort | join(",")')
[ "$V1_IDS" != "$V2_IDS" ] || fail "the allocations were replaced"

# ---- a failing version is reverted; version 2 keeps serving --------------------
job_json 3 /bin/false 1 true >"$T/v3.json"
set +e
"$CLI" job run "$T/v3.json" >"$T/run3.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || { cat "$T/run3.out"; fail "job run of a failing version exits 1 (got $rc)"; }
grep -q "reverted to version 2" "$T/run3.out" || { cat "$T/run3.out"; fail "the output names the revert"; }
wait_for 20 "the revert deployment" bash -c "[ \"\$('$CLI' job status web --json | jq -r .deployment.status)\" = successful ]"
[ "$(jq_status .record.version)" = 4 ] || fail "version 4 is the revert"
jq_status .record.job.groups[0].tasks[0].env.VERSION | grep -qx 2 || fail "version 4 runs version 2's spec"
[ "$(live_allocs | jq -r '[.[].id] | sort | join(",")')" = "$V2_IDS" ] ||
	fail "the allocations of version 2 kept serving (updated in place)"
[ "$(status_json | jq '[.allocs[] | select(.job_version == 3 and .health == "unhealthy")] | length')" = 1 ] ||
	fail "one unhealthy canary of version 3"
"$CLI" job history web --json | jq -e '.versions[0].description | test("reverted to version 2")' >/dev/null ||
	fail "history shows the revert"
pass "a version failing its health check was reverted; version 2 kept serving"

# ---- kill -9 of the coordinator mid-deployment: it resumes ----------------------
job_json 5 /bin/true 1 false >"$T/v5.json"
"$CLI" job run --detach "$T/v5.json" >/dev/null
wait_for 20 "canary waiting for promotion" bash -c "'$CLI' job status web --json | jq -e '.deployment.status_description | test(\"promotion\")' >/dev/null"
DEP=$(jq_status .deployment.id)
kill9 coord
start_coord --log-level debug
wait_for 10 "the deployment after the restart" bash -c "[ \"\$('$CLI' deployment status $DEP --json | jq -r .deployment.status)\" = running ]"
"$CLI" deployment promote "$DEP" >/dev/null
wait_for 40 "deployment of version 5" bash -c "[ \"\$('$CLI' deployment status $DEP --json | jq -r .deployment.status)\" = successful ]"
[ "$(live_allocs | jq '[.[] | select(.job_version == 5)] | length')" = 3 ] || fail "3 of version 5"
pass "kill -9 of the coordinator mid-deployment; after the restart it resumed and completed"

# ---- pause and resume a rolling deployment ----------------------------------------
job_json 6 /bin/true 0 true >"$T/v6.json"
"$CLI" job run --detach "$T/v6.json" >/dev/null
DEP6=$(jq_status .deployment.id)
"$CLI" deployment pause web >"$T/pause.out" || { cat "$T/pause.out"; fail "deployment pause"; }
grep -q "paused" "$T/pause.out" || { cat "$T/pause.out"; fail "pause prints the paused deployment"; }
# Paused, the replacement placed before the pause still has its health
# recorded, and nothing more of version 6 is placed (min_healthy_time is
# 0.6 s: running, the next would come within a second of it).
wait_for 10 "the first of version 6 healthy" bash -c "'$CLI' job status web --json | jq -e '[.allocs[] | select(.job_version == 6 and .health == \"healthy\")] | length == 1' >/dev/null"
sleep 2
[ "$(live_allocs | jq '[.[] | select(.job_version == 6)] | length')" = 1 ] || fail "paused: one allocation of version 6"
[ "$(live_allocs | jq '[.[] | select(.job_version == 5)] | length')" = 2 ] || fail "paused: version 5 keeps serving"
[ "$(jq_status .deployment.status)" = paused ] || fail "the deployment is paused: $(jq_status .deployment.status)"
if out=$("$CLI" deployment promote web 2>&1); then fail "promote accepted while paused"; fi
case "$out" in *"cannot promote when paused"*) ;; *) fail "promote refused with the table's message: $out" ;; esac
# Paused survives a kill -9 of the coordinator.
kill9 coord
start_coord --log-level debug
wait_for 10 "the paused deployment after the restart" bash -c "[ \"\$('$CLI' deployment status $DEP6 --json | jq -r .deployment.status)\" = paused ]"
"$CLI" deployment resume "$DEP6" >/dev/null || fail "deployment resume"
wait_for 40 "deployment of version 6" bash -c "[ \"\$('$CLI' deployment status $DEP6 --json | jq -r .deployment.status)\" = successful ]"
[ "$(live_allocs | jq '[.[] | select(.job_version == 6)] | length')" = 3 ] || fail "3 of version 6"
if out=$("$CLI" deployment pause "$DEP6" 2>&1); then fail "pause of a successful deployment accepted"; fi
case "$out" in *"cannot pause when successful"*) ;; *) fail "pause refused with the table's message: $out" ;; esac
[ "$(jq_status .deployment.status)" = successful ] || fail "the refused pause changed the deployment"
pass "a paused deployment placed nothing new, survived a restart, and completed once resumed"

# ---- kill -9 of an agent: its allocation moves after the TTL ---------------------
VICTIM_ID=$(id_of a3)
kill9 a3
killed=$(now_ms)
wait_for 20 "a replacement off a3" bash -c "'$CLI' job status web --json | jq -e --arg n '$VICTIM_ID' '[.allocs[] | select(.desired == \"run\" and .node_id != \$n and .client_status == \"running\")] | length == 3' >/dev/null"
moved=$(( $(now_ms) - killed ))
[ "$(status_json | jq --arg n "$VICTIM_ID" '[.allocs[] | select(.node_id == $n and .client_status == "lost")] | length')" = 1 ] ||
	fail "the allocation on a3 is lost"
# Silence is counted from the last heartbeat, up to one interval (TTL/3)
# before the kill.
[ $moved -ge $((TTL * 1000 - TTL * 1000 / 3)) ] || fail "replaced before the TTL ($moved ms)"
pass "kill -9 of an agent: its allocation was rescheduled ${moved} ms later (TTL ${TTL}s)"

# The node comes back: the allocation replaced meanwhile is stopped there.
LOST=$(status_json | jq -r --arg n "$VICTIM_ID" '.allocs[] | select(.node_id == $n and .client_status == "lost") | .id')
pgrep -f "flotilla-shim $T/a3/" >/dev/null || fail "a3's task kept running while its agent was away"
start_agent a3
wait_for 10 "a3 ready" is_status a3 ready
wait_for 15 "a3 stopped the superseded allocation" bash -c "! pgrep -f '[f]lotilla-shim $T/a3/allocs/$LOST' >/dev/null"
[ "$(live_allocs | jq 'length')" = 3 ] || fail "still 3 allocations"
pass "a3 came back and stopped its superseded allocation"

# ---- drain: allocations move before the node empties --------------------------
"$CLI" node drain a2 --deadline 60s >/dev/null
wait_for 30 "a2 drained" bash -c "'$CLI' node status a2 --json | jq -e '.draining == false and .eligible == false' >/dev/null"
A2_ID=$(id_of a2)
[ "$(live_allocs | jq --arg n "$A2_ID" '[.[] | select(.node_id == $n)] | length')" = 0 ] || fail "a2 emptied"
[ "$(live_allocs | jq 'length')" = 3 ] || fail "3 allocations after the drain"
"$CLI" node eligibility a2 on >/dev/null
pass "node drain moved the allocations off a2"

# ---- invalid jobs: refused by the coordinator with the field path -----------------
before=$("$CLI" job history web --json | jq -c '[.versions[].version]')
bad() {
	local path=$1 json=$2
	echo "$json" >"$T/bad.json"
	local out
	if out=$("$JOBSEND" "$API" "$T/bad.json"); then fail "accepted: $json"; fi
	case "$out" in *"$path"*) ;; *) fail "expected '$path' in: $out" ;; esac
}
T1='{"name":"web","groups":[{"name":"web","count":1,"tasks":[{"name":"srv","command":"/bin/sleep"}]}]}'
mut() { echo "$T1" | jq -c "$1"; }
bad "name" "$(mut '.name = "bad name!"')"
bad "type" "$(mut '.type = "cron"')"
bad "groups" "$(mut '.groups = []')"
bad "groups[0].name" "$(mut '.groups[0].name = ""')"
bad "groups[0].tasks" "$(mut '.groups[0].tasks = []')"
bad "groups[0].tasks[0].command" "$(mut '.groups[0].tasks[0].command = "sleep"')"
bad "groups[0].tasks[0].name" "$(mut '.groups[0].tasks[0].name = "a/b"')"
bad "groups[0].tasks[0].resources.memory_mb" "$(mut '.groups[0].tasks[0].resources = {memory_mb: 1}')"
bad "groups[0].tasks[0].user" "$(mut '.groups[0].tasks[0].user = "root"')"
bad "groups[0].tasks[0].network" "$(mut '.groups[0].tasks[0].network = "bridge"')"
bad "groups[0].tasks[0].checks[0].type" "$(mut '.groups[0].tasks[0].checks = [{name: "c", type: "grpc"}]')"
bad "groups[0].constraints[0].operator" "$(mut '.groups[0].constraints = [{attribute: "attr.arch", operator: "~", value: "x"}]')"
bad "groups[0].constraints[0].value" "$(mut '.groups[0].constraints = [{attribute: "attr.kernel", operator: "regexp", value: "("}]')"
bad "groups[0].spreads[0].weight" "$(mut '.groups[0].spreads = [{attribute: "node.name", weight: 1000}]')"
bad "update.canary" "$(mut '.update = {canary: 5}')"
bad "update.min_healthy_time_ms" "$(mut '.update = {min_healthy_time_ms: 9000, healthy_deadline_ms: 1000}')"
bad "groups[0].tasks[0].rlimits[0].name" "$(mut '.groups[0].tasks[0].rlimits = [{name: "bogus", soft: 1, hard: 1}]')"
[ "$("$CLI" job history web --json | jq -c '[.versions[].version]')" = "$before" ] || fail "history changed"
[ "$("$CLI" job list --json | jq 'if type == "array" then length else (.jobs | length) end')" = 1 ] || fail "job list changed"
pass "17 invalid jobs refused with their field paths; nothing changed"

# ---- stop ----------------------------------------------------------------------
"$CLI" job stop web >/dev/null
wait_for 20 "job stopped" bash -c "[ \"\$('$CLI' job status web --json | jq -r .summary.status)\" = dead ]"
wait_for 20 "tasks gone" bash -c "! pgrep -f '[s]leep $SLP\$' >/dev/null"
pass "job stop ended every task"
