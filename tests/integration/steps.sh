#!/usr/bin/env bash
# Packages and patch steps on a real agent, driven by a stand-in
# coordinator (flt-fakecoord) that serves chunks, lists scripted steps in
# its SyncResponses and keeps the last step statuses and inventory it was
# sent. A sandboxed task uses the package "demo-lib": it reads the file
# the package holds and its health check rejects a "bad" marker.
#   - before the package is installed the task is reported failed, and is
#     started once a step installs it;
#   - INSTALL 1.0: succeeded, current -> 1.0, one "start" line in
#     steps.log, the inventory sent holds the managed item demo-lib 1.0 and
#     the step carries the re-scan's digest;
#   - INSTALL 2.0, whose marker the check rejects: failed, switched back
#     to 1.0, the task healthy again on 1.0;
#   - the same step ids after an agent restart are reported, never run
#     again (steps.log unchanged);
#   - kill -9 of the agent while a step is VERIFYING: the restarted agent
#     switches back, restarts the task onto the old version and reports
#     the step failed ("the agent restarted during the step");
#   - a tar with a "../" entry, and a package nobody signed while the agent
#     has --package-key: failed with the reason, nothing switched;
#   - ROLLBACK to a staged version switches and restarts the task; to one
#     that is not staged, fails.
. "$(dirname "$0")/lib.sh"

require_sandbox
FAKE="$FLT_BIN/tests/tools/flt-fakecoord"
ALLOCS="$T/allocs.json"
STEPS="$T/steps.json"
SYNCS="$T/syncs.jsonl"
STATE="$T/state.json"
CHUNKS="$T/chunks"
PKG="$T/agent/packages/demo-lib"
STEPLOG="$T/agent/steps.log"
ADIR="$T/agent/allocs"
A1=0a1b2c3d-0000-4000-8000-0000000000a1
CAMP=5e1f0000-0000-4000-8000-000000000001
mkdir -p "$CHUNKS" "$T/src"

CLEANUP_HOOKS+=(stop_shims)

"$FAKE" keygen --public "$T/fleet.pub" --secret "$T/fleet.key" || fail "keygen"

# pkg VERSION MARKER [pack flags...]: a tar.gz of VERSION and marker,
# packed; prints the path of its manifest.
pkg() {
	local v=$1 marker=$2; shift 2
	local d="$T/src/$v"
	mkdir -p "$d/lib"
	echo "$v" >"$d/VERSION"
	echo "$marker" >"$d/lib/marker"
	tar -C "$d" -czf "$T/src/$v.tar.gz" .
	"$FAKE" pack --name demo-lib --version "$v" --file "$T/src/$v.tar.gz" \
		--chunks "$CHUNKS" --chunk-size 64 "$@" >"$T/src/$v.json" || fail "pack $v"
	echo "$T/src/$v.json"
}
# step N MANIFEST MIN_HEALTHY_MS TIMEOUT_MS: an INSTALL step.
step() {
	jq -nc --arg id "$CAMP/$1" --arg camp "$CAMP" --slurpfile m "$2" \
		--argjson min "$3" --argjson to "$4" \
		'{id: $id, campaign: $camp, action: "install", package: $m[0],
		  package_name: $m[0].name, restart: true, min_healthy_ms: $min,
		  timeout_ms: $to}'
}
set_steps() { jq -s . >"$STEPS.tmp" && mv "$STEPS.tmp" "$STEPS"; }

# The task: says which version it sees, then waits; healthy while the
# package's marker is "good". Two failed checks in a row fail a step: one
# probe slower than its timeout on a loaded machine is not a bad patch.
task=$(jq -nc '{name: "app", command: "/bin/sh",
	args: ["-c", "echo start file=$(cat /packages/demo-lib/VERSION) env=$FLOTILLA_PACKAGE_DEMO_LIB_VERSION; exec sleep 100000"],
	uses: ["demo-lib"],
	checks: [{name: "marker", type: "exec",
		command: ["/bin/sh", "-c", "grep -qx good /packages/demo-lib/lib/marker"],
		interval_ms: 500, timeout_ms: 400, failures: 2}]}')
jq -nc --arg id $A1 --argjson t "$task" '[{id: $id, job: "web", group: "front",
	job_version: 1, index: 0, tasks: [$t]}]' >"$ALLOCS"
echo '[]' >"$STEPS"

start_fake() {
	"$FAKE" serve --listen "$LISTEN" --allocs "$ALLOCS" --log "$SYNCS" \
		--steps "$STEPS" --chunks "$CHUNKS" --state "$STATE" \
		--interval 1000 >>"$T/fake.log" 2>&1 &
	PIDS[fake]=$!
}
agent() {
	start_agent agent --package-key "$T/fleet.pub" --dpkg-status none \
		--inventory-interval 1h
}

last_sync() { fake_last sync "$SYNCS"; }
task_report() { last_sync | jq -c --arg a $A1 '.request.tasks[] | select(.alloc_id == $a)'; }
task_is() { task_report | jq -e "$1" >/dev/null; }
st() { jq -c --arg id "$CAMP/$1" '.steps[] | select(.id == $id)' "$STATE" 2>/dev/null; }
st_field() { st "$1" | jq -r "$2"; }
st_is() { [ "$(st_field "$1" .state)" = "$2" ]; }
current() { readlink "$PKG/current" 2>/dev/null || echo none; }
starts() { grep -c " start $CAMP/$1 " "$STEPLOG" || true; }
ends() { grep -c " end $CAMP/$1 " "$STEPLOG" || true; }
stdout_last() { tail -n 1 "$ADIR/$A1/app/logs/stdout.log"; }
managed() { jq -c '[.inventory.items[] | select(.kind == "managed")]' "$STATE"; }

start_fake
agent
wait_for 15 "the task reported failed for want of its package" \
	task_is '.state == "failed" and (.message | contains("package demo-lib is not installed on this host"))'
[ ! -e "$ADIR/$A1/app/status" ] || fail "a task without its package was started"
wait_for 10 "an inventory sent" jq -e '.inventory != null' "$STATE"
[ "$(managed)" = "[]" ] || fail "managed items before any install: $(managed)"
jq -e '.inventory_digest == .inventory.digest' "$STATE" >/dev/null ||
	fail "the Sync's digest is not the inventory's: $(jq -c '{inventory_digest, d: .inventory.digest}' "$STATE")"
pass "a task using a package that is not installed: reported failed, not started; inventory sent with its digest"

# INSTALL 1.0.
M1=$(pkg 1.0 good --sign "$T/fleet.key")
step 1 "$M1" 1000 30000 | set_steps
wait_for 30 "step 1 succeeded" st_is 1 succeeded
[ "$(current)" = 1.0 ] || fail "current is $(current), want 1.0"
[ "$(starts 1)" = 1 ] && [ "$(ends 1)" = 1 ] || fail "steps.log: $(cat "$STEPLOG")"
grep -q " start $CAMP/1 install demo-lib (none) -> 1.0$" "$STEPLOG" || fail "start line: $(cat "$STEPLOG")"
st 1 | jq -e '.from_version == "" and .to_version == "1.0" and .rolled_back == false and
	.started_at_ms > 0 and .finished_at_ms >= .started_at_ms' >/dev/null || fail "status: $(st 1)"
digest=$(st_field 1 .inventory_digest)
[ -n "$digest" ] || fail "no inventory digest in the step: $(st 1)"
wait_for 10 "the re-scanned inventory sent" bash -c "jq -e --arg d '$digest' '.inventory.digest == \$d' '$STATE'"
managed | jq -e --arg p "$T/agent/packages/demo-lib" \
	'length == 1 and .[0].name == "demo-lib" and .[0].version == "1.0"' >/dev/null ||
	fail "managed items: $(managed)"
wait_for 15 "the task running healthy" task_is '.state == "running" and .healthy'
[ "$(stdout_last)" = "start file=1.0 env=1.0" ] || fail "the task saw: $(stdout_last)"
pass "INSTALL 1.0: succeeded, current -> 1.0, one start line, inventory holds demo-lib 1.0, task started on it"

# INSTALL 2.0, whose marker the health check rejects.
M2=$(pkg 2.0 bad --sign "$T/fleet.key")
{ step 1 "$M1" 1000 30000; step 2 "$M2" 1000 5000; } | set_steps
wait_for 30 "step 2 failed" st_is 2 failed
st 2 | jq -e '.rolled_back and .from_version == "1.0" and .to_version == "2.0" and
	(.message | contains("task '$A1'/app")) and (.message | contains("check marker failed")) and
	(.message | endswith("switched back to 1.0"))' >/dev/null || fail "status: $(st 2)"
[ "$(current)" = 1.0 ] || fail "current is $(current) after the failure, want 1.0"
wait_for 15 "the task healthy again" task_is '.state == "running" and .healthy'
wait_for 5 "the task on 1.0 again" bash -c "[ \"\$(tail -n 1 '$ADIR/$A1/app/logs/stdout.log')\" = 'start file=1.0 env=1.0' ]"
grep -q "start file=2.0 env=2.0" "$ADIR/$A1/app/logs/stdout.log" || fail "the task never ran on 2.0"
[ "$(starts 1)" = 1 ] && [ "$(starts 2)" = 1 ] && [ "$(ends 2)" = 1 ] || fail "steps.log: $(cat "$STEPLOG")"
st_is 1 succeeded || fail "step 1 no longer reported: $(jq -c .steps "$STATE")"
pass "INSTALL 2.0 that fails its health check: failed, switched back to 1.0, task healthy on 1.0"

# An agent restart: the same ids are reported, never run again.
lines=$(wc -l <"$STEPLOG")
kill -TERM "${PIDS[agent]}"
rc=0
wait "${PIDS[agent]}" || rc=$?
unset "PIDS[agent]"
[ $rc = 0 ] || fail "agent exited with status $rc on SIGTERM"
n=$(jq .syncs "$STATE")
agent
wait_for 15 "a sync after the restart" bash -c "[ \$(jq .syncs '$STATE') -gt $((n + 1)) ]"
st_is 1 succeeded && st_is 2 failed || fail "reports after the restart: $(jq -c .steps "$STATE")"
sleep 1
[ "$(wc -l <"$STEPLOG")" = "$lines" ] || fail "steps ran again: $(cat "$STEPLOG")"
[ "$(current)" = 1.0 ] || fail "current is $(current)"
pass "after an agent restart the same step ids are reported, not run again"

# kill -9 while a step is VERIFYING (a long min_healthy).
M3=$(pkg 3.0 good --sign "$T/fleet.key")
{ step 1 "$M1" 1000 30000; step 2 "$M2" 1000 5000; step 3 "$M3" 60000 90000; } | set_steps
wait_for 30 "step 3 verifying" st_is 3 verifying
[ "$(current)" = 3.0 ] || fail "current is $(current) while verifying, want 3.0"
wait_for 10 "the task on 3.0" bash -c "[ \"\$(tail -n 1 '$ADIR/$A1/app/logs/stdout.log')\" = 'start file=3.0 env=3.0' ]"
kill9 agent
agent
wait_for 20 "step 3 failed after the restart" st_is 3 failed
st 3 | jq -e '.rolled_back and (.message == "the agent restarted during the step; switched back to 1.0")' >/dev/null ||
	fail "status: $(st 3)"
[ "$(current)" = 1.0 ] || fail "current is $(current) after the restart, want 1.0"
[ "$(starts 3)" = 1 ] && [ "$(ends 3)" = 1 ] || fail "steps.log: $(cat "$STEPLOG")"
wait_for 20 "the task restarted onto 1.0" bash -c "[ \"\$(tail -n 1 '$ADIR/$A1/app/logs/stdout.log')\" = 'start file=1.0 env=1.0' ]"
wait_for 15 "the task healthy" task_is '.state == "running" and .healthy'
wait_for 10 "the inventory back at 1.0" bash -c "jq -e '[.inventory.items[] | select(.kind == \"managed\")] | .[0].version == \"1.0\"' '$STATE'"
pass "kill -9 during VERIFYING: switched back to 1.0 at start, task restarted onto it, step failed with the restart message"

# A hostile archive, and a package nobody signed.
d="$T/src/evil"
mkdir -p "$d"
echo pwned >"$d/f"
tar -C "$d" -P --transform 's,^f$,../escaped,' -czf "$T/src/evil.tar.gz" f
"$FAKE" pack --name demo-lib --version 4.0 --file "$T/src/evil.tar.gz" --chunks "$CHUNKS" \
	--sign "$T/fleet.key" >"$T/src/4.0.json" || fail "pack 4.0"
M5=$(pkg 5.0 good)
{ step 4 "$T/src/4.0.json" 0 30000; step 5 "$M5" 0 30000; } | set_steps
wait_for 30 "step 5 failed" st_is 5 failed
st_is 4 failed || fail "step 4: $(st 4)"
st 4 | jq -e '.rolled_back == false and (.message | contains(".."))' >/dev/null || fail "status: $(st 4)"
st 5 | jq -e '.rolled_back == false and (.message | contains("unsigned; this agent requires packages signed with the fleet key"))' >/dev/null || fail "status: $(st 5)"
[ "$(current)" = 1.0 ] || fail "current is $(current), want 1.0"
[ ! -e "$PKG/4.0" ] && [ ! -e "$PKG/5.0" ] || fail "a refused version was staged: $(ls "$PKG")"
[ ! -e "$T/agent/packages/escaped" ] && [ ! -e "$PKG/escaped" ] || fail "the archive wrote outside its directory"
[ "$(starts 4)" = 1 ] && [ "$(starts 5)" = 1 ] || fail "steps.log: $(cat "$STEPLOG")"
task_is '.state == "running" and .healthy' || fail "the task was disturbed: $(task_report)"
pass "a tar with a ../ entry and an unsigned package: failed with the reason, nothing switched"

# ROLLBACK: to a staged version, and to one that is not staged.
rollback() {
	jq -nc --arg id "$CAMP/$1" --arg camp "$CAMP" --arg to "$2" \
		'{id: $id, campaign: $camp, action: "rollback", package_name: "demo-lib",
		  rollback_to: $to, restart: true, min_healthy_ms: 500, timeout_ms: 20000}'
}
{ rollback 6 3.0; rollback 7 9.9; } | set_steps
wait_for 30 "step 7 failed" st_is 7 failed
st_is 6 succeeded || fail "step 6: $(st 6)"
st 6 | jq -e '.from_version == "1.0" and .to_version == "3.0" and .inventory_digest != ""' >/dev/null ||
	fail "status: $(st 6)"
st 7 | jq -e '.message == "demo-lib 9.9 is not staged on this host"' >/dev/null || fail "status: $(st 7)"
[ "$(current)" = 3.0 ] || fail "current is $(current) after the rollback to 3.0"
[ "$(tail -n 1 "$ADIR/$A1/app/logs/stdout.log")" = "start file=3.0 env=3.0" ] || fail "the task saw: $(stdout_last)"
grep -q " start $CAMP/6 rollback demo-lib 1.0 -> 3.0$" "$STEPLOG" || fail "steps.log: $(cat "$STEPLOG")"
pass "ROLLBACK to a staged version: switched, task restarted onto it; to a version not staged: failed"

# A clean stop (and no leak in a sanitizer build).
rc=0
kill -TERM "${PIDS[agent]}"
wait "${PIDS[agent]}" || rc=$?
unset "PIDS[agent]"
[ $rc = 0 ] || fail "agent exited with status $rc on SIGTERM"
pass "agent stopped cleanly"
