#!/usr/bin/env bash
# Three agents join and stay ready; a killed agent goes down within TTL + 2 s
# and comes back under the same id; a killed coordinator comes back with
# every node and gives each a fresh grace period.
. "$(dirname "$0")/lib.sh"

start_coord
for a in a1 a2 a3; do start_agent $a --label rack=$a; done
for a in a1 a2 a3; do wait_for 5 "$a ready" is_status $a ready; done
[ "$(count_nodes)" = 3 ] || fail "expected 3 nodes, got $(count_nodes)"
[ "$(nodes_json | jq -r '.[] | select(.name=="a2") | .labels.rack')" = a2 ] ||
	fail "labels not reported"
nodes_json | jq -e 'all(.[]; .last_heartbeat != "" and (.id | length) == 36)' >/dev/null ||
	fail "node list lacks last_heartbeat or id"
pass "three agents registered and ready"

id1=$(id_of a1)
kill9 a1
t0=$(now_ms)
wait_for $((TTL + 3)) "a1 down" is_status a1 down
dt=$(( $(now_ms) - t0 ))
[ $dt -le $(( (TTL + 2) * 1000 )) ] || fail "a1 down after ${dt} ms (TTL+2 s is $(( (TTL + 2) * 1000 )))"
is_status a2 ready && is_status a3 ready || fail "others did not stay ready"
pass "killed agent down after ${dt} ms, others ready"

start_agent a1 --label rack=a1
wait_for 5 "a1 ready again" is_status a1 ready
[ "$(id_of a1)" = "$id1" ] || fail "a1 came back as $(id_of a1), was $id1"
[ "$(count_nodes)" = 3 ] || fail "restart created a new node"
pass "restarted agent kept its id $id1"

ids_before=$(nodes_json | jq -r '[.[].id] | sort | join(",")')
kill9 a3
kill9 coord
# The grace period starts when the coordinator does, after t0: checks until
# t0 + TTL - 0.5 s all fall inside it, however slowly the machine starts it.
t0=$(now_ms)
start_coord
ids_after=$(nodes_json | jq -r '[.[].id] | sort | join(",")')
[ "$ids_before" = "$ids_after" ] || fail "nodes changed across a coordinator crash"
# a3 is dead too, but must not be declared down before its grace ends.
while [ $(( $(now_ms) - t0 )) -lt $(( TTL * 1000 - 500 )) ]; do
	nodes_json | jq -e 'all(.[]; .status != "down")' >/dev/null ||
		fail "a node was declared down during the grace period"
	sleep 0.2
done
wait_for 3 "a1 ready after restart" is_status a1 ready
is_status a2 ready || fail "a2 not ready after coordinator restart"
wait_for 4 "dead a3 down after grace" is_status a3 down
pass "coordinator crash lost nothing; grace period honoured"
