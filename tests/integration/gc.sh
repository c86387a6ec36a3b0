#!/usr/bin/env bash
# Garbage collection with the real programs: a coordinator with a 2 s
# retention and one sandboxed agent. A batch job runs to completion and is
# stopped; its allocations and all but its latest evaluation vanish from
# job status after the retention, and stay gone after a restart (read back
# from the store); the stopped job itself stays for the job retention.
# job purge removes a stopped job with everything hanging off it and is
# refused for one still running; system gc collects on demand. package rm
# deletes a version and the chunks no other version holds, keeps shared
# ones, and refuses the newest version of a package a job uses and a
# version a campaign that has not finished installs.
. "$(dirname "$0")/lib.sh"

require_sandbox
CLEANUP_HOOKS+=(stop_shims)

GCFLAGS=(--gc-retention 2s --gc-job-retention 1h)
start_coord "${GCFLAGS[@]}"
start_agent a1
wait_for 10 "a ready node" bash -c "[ \"\$('$CLI' node list --json | jq -r '.[0].status')\" = ready ]"

status() { "$CLI" job status "$1" --json; }

# ---- a batch job runs to completion, is stopped, and its garbage goes -------
jq -n '{name: "once", type: "batch", groups: [{name: "g", count: 2,
	tasks: [{name: "t", command: "/bin/true", resources: {memory_mb: 16}}]}]}' >"$T/once.json"
"$CLI" job run --detach "$T/once.json" >/dev/null || fail "job run once"
wait_for 20 "the batch job to complete" bash -c "[ \"\$('$CLI' job status once --json | jq -r .summary.status)\" = complete ]"
[ "$(status once | jq '.allocs | length')" = 2 ] || fail "2 allocations: $(status once)"
# Complete and still wanted: a batch job's record of its run stays (until
# the job retention), whatever the allocation retention says.
sleep 3
"$CLI" system gc >/dev/null || fail "system gc"
[ "$(status once | jq '[.allocs[] | select(.client_status == "complete")] | length')" = 2 ] ||
	fail "a complete batch job's allocations went before the job: $(status once | jq -c .allocs)"
pass "a complete batch job keeps its allocations while it is kept"

"$CLI" job stop --detach once >/dev/null || fail "job stop once"
t0=$(now_ms)
wait_for 15 "the stopped job's allocations to be collected" \
	bash -c "[ \"\$('$CLI' job status once --json | jq '.allocs | length')\" = 0 ]"
took=$(( $(now_ms) - t0 ))
[ "$took" -ge 1500 ] || fail "collected after ${took} ms, before the 2 s retention"
[ "$(status once | jq '.evals | length')" = 1 ] || fail "evaluations: $(status once | jq -c .evals)"
[ "$(status once | jq -r .summary.status)" = dead ] || fail "status: $(status once | jq -c .summary)"
grep -q "garbage collection jobs=0 .*allocations=2" "$T/coord.log" || fail "no collection logged"
pass "after the 2 s retention (${took} ms) the allocations and old evaluations are gone; the stopped job stays"

# From the store: a restart reads the same.
kill "${PIDS[coord]}"; wait "${PIDS[coord]}" 2>/dev/null || true
start_coord "${GCFLAGS[@]}"
[ "$(status once | jq '.allocs | length')" = 0 ] || fail "allocations back after a restart: $(status once | jq -c .allocs)"
[ "$(status once | jq '.evals | length')" -le 2 ] || fail "evaluations back after a restart"
pass "a restart reads the store: what was collected stays gone"

# ---- job purge ------------------------------------------------------------------
SLP="2$$"
jq -n --arg s "$SLP" '{name: "svc", groups: [{name: "g", count: 1,
	tasks: [{name: "t", command: "/bin/sleep", args: [$s], resources: {memory_mb: 16},
	kill_timeout_ms: 500}]}]}' >"$T/svc.json"
"$CLI" job run --detach "$T/svc.json" >/dev/null || fail "job run svc"
wait_for 20 "svc running" bash -c "[ \"\$('$CLI' job status svc --json | jq -r .summary.status)\" = running ]"
rc=0
out=$("$CLI" job purge svc 2>&1) || rc=$?
[ $rc = 1 ] || fail "purge of a running job exited $rc: $out"
grep -q "job svc: not stopped: stop it first (flotilla job stop svc)" <<<"$out" || fail "refusal: $out"
[ "$(status svc | jq -r .summary.status)" = running ] || fail "the refused purge changed the job"
pass "job purge of a running job is refused: $out"

out=$("$CLI" job purge once --json) || fail "job purge once: $out"
jq -e '.jobs == 1 and .versions == 1 and .evals >= 1' <<<"$out" >/dev/null || fail "purge counts: $out"
rc=0
"$CLI" job status once >/dev/null 2>&1 || rc=$?
[ $rc != 0 ] || fail "job once still there after its purge"
"$CLI" job list --json | jq -e 'map(select(.name == "once")) | length == 0' >/dev/null || fail "job list shows once"
"$CLI" audit list --json 2>/dev/null | jq -e 'map(select(.method == "job_purge" and .target == "once" and .ok)) | length == 1' >/dev/null ||
	fail "the purge is not audited: $("$CLI" audit list --json 2>&1 | jq -c 'map(select(.method == "job_purge"))')"
# Stopped and purged at once: the name is free again.
"$CLI" job stop --detach svc >/dev/null || fail "job stop svc"
wait_for 20 "svc stopped" bash -c "[ \"\$('$CLI' job status svc --json | jq -r .summary.status)\" = dead ]"
"$CLI" job purge svc >/dev/null || fail "job purge svc"
"$CLI" job run --detach "$T/svc.json" >/dev/null || fail "job run svc again"
[ "$(status svc | jq -r .record.version)" = 1 ] || fail "a purged job's name starts again at version 1"
"$CLI" job stop --detach svc >/dev/null
pass "job purge deletes a stopped job with its history; it is audited; the name is free again"

out=$("$CLI" system gc --json) || fail "system gc: $out"
jq -e 'type == "object"' <<<"$out" >/dev/null || fail "system gc: $out"
pass "system gc answers what it collected: $(jq -c . <<<"$out")"

# ---- package rm --------------------------------------------------------------------
head -c 300000 /dev/urandom >"$T/a.bin"
head -c 200000 /dev/urandom >"$T/b.bin"
"$CLI" package push demo 1.0 "$T/a.bin" --format file >/dev/null || fail "push 1.0"
"$CLI" package push demo 2.0 "$T/a.bin" --format file >/dev/null || fail "push 2.0"
"$CLI" package push demo 3.0 "$T/b.bin" --format file >/dev/null || fail "push 3.0"
# A job that uses the package, kept unplaced (no node named so).
jq -n '{name: "user", groups: [{name: "g", count: 1,
	constraints: [{attribute: "node.name", operator: "=", value: "nowhere"}],
	tasks: [{name: "t", command: "/bin/true", uses: ["demo"]}]}]}' >"$T/user.json"
"$CLI" job run --detach "$T/user.json" >/dev/null || fail "job run user"

rc=0
out=$("$CLI" package rm demo@3.0 2>&1) || rc=$?
[ $rc = 1 ] && grep -q "package demo@3.0: the newest version of demo, and job user uses demo" <<<"$out" ||
	fail "rm of the newest version in use: rc=$rc $out"
"$CLI" package show demo 3.0 >/dev/null || fail "the refused rm removed 3.0"
pass "package rm of the newest version a job uses is refused: $out"

# A campaign that has not finished installs 1.0: refused until it ends.
wait_for 20 "a1's inventory" bash -c "'$CLI' inventory query 'dpkg:bash' --json | jq -e 'length >= 1'"
cid=$("$CLI" campaign create --detach --json --target 'dpkg:bash and node.name = a1' \
	--install demo@1.0 | jq -r .campaign.id)
[ -n "$cid" ] && [ "$cid" != null ] || fail "campaign create"
rc=0
out=$("$CLI" package rm demo@1.0 2>&1) || rc=$?
[ $rc = 1 ] && grep -q "package demo@1.0: campaign $cid installs it and has not finished: wait for it or abort it" <<<"$out" ||
	fail "rm of a version a campaign installs: rc=$rc $out"
"$CLI" package show demo 1.0 >/dev/null || fail "the refused rm removed 1.0"
"$CLI" campaign abort "$cid" >/dev/null || fail "campaign abort"
wait_for 60 "the campaign to end" bash -c "'$CLI' campaign status $cid --json | jq -e '.campaign.state == \"aborted\" or .campaign.state == \"complete\"'"
pass "package rm of a version a campaign installs is refused while it runs: $out"

out=$("$CLI" package rm demo@1.0 --json) || fail "rm 1.0: $out"
jq -e '.chunks_deleted == 0 and .chunks_kept >= 1' <<<"$out" >/dev/null || fail "rm 1.0 kept the shared chunks? $out"
out=$("$CLI" package rm demo 2.0 --json) || fail "rm 2.0: $out"
jq -e '.chunks_deleted >= 1 and (.bytes_freed | tonumber) == 300000' <<<"$out" >/dev/null || fail "rm 2.0: $out"
[ "$("$CLI" package list --json | jq -c '[.[] | select(.name == "demo") | .version]')" = '["3.0"]' ] ||
	fail "versions left: $("$CLI" package list --json)"
rc=0
out=$("$CLI" package rm demo@1.0 2>&1) || rc=$?
[ $rc = 1 ] && grep -q "no package demo@1.0" <<<"$out" || fail "rm of a removed version: $out"
# A version pushed again after its chunks went is stored whole again.
"$CLI" package push demo 2.0 "$T/a.bin" --format file >/dev/null || fail "push 2.0 again"
pass "package rm deletes a version's own chunks, keeps the shared ones, and 2.0 can be pushed again"

"$CLI" job stop --detach user >/dev/null
wait_for 10 "user stopped" bash -c "[ \"\$('$CLI' job status user --json | jq -r .record.stopped)\" = true ]"
out=$("$CLI" package rm demo@2.0 2>&1) || fail "rm 2.0 once the job stopped: $out"
pass "once the job stopped, the newest version can go"
