#!/usr/bin/env bash
# `flotilla job plan`: a job checked by the coordinator and the scheduler
# run against the real fleet, changing nothing.
. "$(dirname "$0")/lib.sh"

start_coord
for i in 1 2 3; do start_agent n$i --label rack=r$i --label tier=$([ $i = 3 ] && echo db || echo web); done
for i in 1 2 3; do wait_for 5 "n$i ready" is_status n$i ready; done
# What a plan could change if it were not a dry run. (Not the nodes'
# modify_index: an agent's first inventory report may still move it.)
placement_state() {
	nodes_json | jq -c 'map({id, eligible, draining, labels}) | sort_by(.id)'
	"$CLI" job list --json | jq -c 'map(.name)'
}
state_before=$(placement_state)

cat >"$T/web.json" <<J
{"name": "web", "groups": [{"name": "web", "count": 2,
  "tasks": [{"name": "srv", "command": "/bin/true", "resources": {"memory_mb": 64}}],
  "constraints": [{"attribute": "label.tier", "operator": "=", "value": "web"},
                  {"operator": "distinct_hosts"}]}]}
J
out=$("$CLI" job plan "$T/web.json" --json) || fail "plan of a job that fits exited $?: $out"
n1=$(id_of n1); n2=$(id_of n2)
placed=$(jq -r '.groups[0].nodes | sort | join(",")' <<<"$out")
[ "$placed" = "$(printf '%s\n' "$n1" "$n2" | sort | paste -sd,)" ] ||
	fail "web should land on n1 and n2 (tier=web, distinct hosts): $out"
pass "constraints and distinct_hosts place on the right nodes"

cat >"$T/big.json" <<J
{"name": "big", "groups": [{"name": "db", "count": 3,
  "tasks": [{"name": "pg", "command": "/bin/true", "resources": {"memory_mb": 100000000}}],
  "constraints": [{"attribute": "label.tier", "operator": "=", "value": "db"}]}]}
J
rc=0
out=$("$CLI" job plan "$T/big.json") || rc=$?
[ $rc = 1 ] || fail "plan of a job that cannot fit exited $rc"
grep -q "3 of 3 allocations not placed: constraint label.tier = db filtered 2 nodes; memory exhausted on 1 nodes" <<<"$out" ||
	fail "no reason given: $out"
pass "a job that cannot fit says which filter stopped it"

echo '{"name": "bad job", "groups": []}' >"$T/bad.json"
rc=0
out=$("$CLI" job plan "$T/bad.json" 2>&1) || rc=$?
[ $rc = 1 ] && grep -q "bad.json: name: must be 1 to 63 of" <<<"$out" || fail "invalid job: $rc $out"
pass "an invalid job is refused with its field path"

[ "$(placement_state)" = "$state_before" ] || fail "a plan changed state: $(placement_state)"
rc=0
"$CLI" job status web >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "job web exists after its plan (job status exited $rc)"
pass "plans change nothing"
