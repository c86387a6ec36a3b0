#!/usr/bin/env bash
# Wrong join tokens and forged node credentials are refused and change
# nothing.
. "$(dirname "$0")/lib.sh"

start_coord
start_agent good
wait_for 5 "good ready" is_status good ready

rc=0
timeout 10 "$AGENT" --dev --data-dir "$T/bad" --coordinator "$LISTEN" \
	--join-token "wrong-token-0123456789" --name bad >"$T/bad.log" 2>&1 || rc=$?
[ $rc = 78 ] || fail "agent with a wrong token exited $rc, want 78"
grep -q "registration refused: join token rejected" "$T/bad.log" ||
	fail "no clear error for a wrong token: $(cat "$T/bad.log")"
[ "$(count_nodes)" = 1 ] || fail "a wrong token created a node"
pass "wrong join token refused (exit 78, clear message), no node created"

id=$(id_of good)
out=$("$RAWSEND" --url "$LISTEN" --sync --node-id "$id" \
	--secret-hex 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff)
echo "$out" | grep -q "code=2 message=node credentials rejected" ||
	fail "forged secret not refused: $out"
out=$("$RAWSEND" --url "$LISTEN" --sync --node-id "not-a-node" --secret-hex 00)
echo "$out" | grep -q "code=2" || fail "unknown node not refused: $out"
is_status good ready || fail "forged sync disturbed the real node"
grep -q "node credentials rejected" "$T/coord.log" || fail "refusal not logged"
pass "sync with another node's id and a wrong secret refused"

# A Register retried after a lost reply (same registration id) returns the
# same node with a new secret; once that node has synced, the id is spent.
r1=$("$RAWSEND" --url "$LISTEN" --register retry --token "$TOKEN" --reg-id reg-0001)
r2=$("$RAWSEND" --url "$LISTEN" --register retry --token "$TOKEN" --reg-id reg-0001)
n1=${r1#node=}; n1=${n1%% *}; n2=${r2#node=}; n2=${n2%% *}
s1=${r1##*secret=}; s2=${r2##*secret=}
[ -n "$n1" ] && [ "$n1" = "$n2" ] || fail "retried Register made another node: $r1 / $r2"
[ "$s1" != "$s2" ] || fail "retried Register kept the old secret"
[ "$(count_nodes)" = 2 ] || fail "expected 2 nodes after a retried Register, got $(count_nodes)"
out=$("$RAWSEND" --url "$LISTEN" --sync --node-id "$n1" --secret-hex "$s1")
echo "$out" | grep -q "code=2" || fail "the superseded secret still works: $out"
out=$("$RAWSEND" --url "$LISTEN" --sync --node-id "$n1" --secret-hex "$s2")
echo "$out" | grep -q "code=0" || fail "the reissued secret does not work: $out"
r3=$("$RAWSEND" --url "$LISTEN" --register retry2 --token "$TOKEN" --reg-id reg-0001)
case $r3 in node=*) ;; *) fail "Register with a spent registration id: $r3" ;; esac
n3=${r3#node=}; n3=${n3%% *}
[ "$n3" != "$n1" ] || fail "a synced node was handed out again: $r3"
pass "retried Register is idempotent until the node has synced"

# The name of a live node is its own: another identity is refused, the
# node's own id and secret register it again (same node, new secret).
out=$("$RAWSEND" --url "$LISTEN" --register retry --token "$TOKEN" --reg-id reg-0002)
echo "$out" | grep -q "code=8 message=name retry is held by live node ${n1:0:8}; stop it or choose another --name" ||
	fail "a live node's name was taken: $out"
r4=$("$RAWSEND" --url "$LISTEN" --register retry --token "$TOKEN" --reg-id reg-0003 \
	--node-id "$n1" --secret-hex "$s2")
n4=${r4#node=}; n4=${n4%% *}
[ "$n4" = "$n1" ] || fail "the holder's own secret did not register it again: $r4"
pass "a live node's name is taken only with its secret"

# The API socket serves no agent methods and the agent socket no operator
# methods.
out=$("$RAWSEND" --url "$API" --method 1)
echo "$out" | grep -q "code=5" || fail "register on the API port: $out"
pass "methods are served only on their own socket"

# Many nodes: the list grows past any small buffer and stays intact.
for i in $(seq 1 40); do
	"$RAWSEND" --url "$LISTEN" --register "bulk-$i" --token "$TOKEN" --reg-id "bulk-reg-$i" >/dev/null
done
n=$(nodes_json | jq '[.[] | select(.name | startswith("bulk-"))] | length')
[ "$n" = 40 ] || fail "listed $n of 40 registered nodes"
nodes_json | jq -e 'all(.[]; (.registered_at | length) == 24 and (.id | length) == 36)' >/dev/null ||
	fail "listed nodes are garbled"
"$CLI" node list | grep -c "bulk-" | grep -qx 40 || fail "human list lacks nodes"
pass "a 40-node list is complete and intact"

# Once the holder of a name is down, the name is free for a new node (a
# host installed anew); the old record stays, down.
wait_for 10 "retry down" is_status retry down
r5=$("$RAWSEND" --url "$LISTEN" --register retry --token "$TOKEN" --reg-id reg-0004)
case $r5 in node=*) ;; *) fail "the name of a down node was refused: $r5" ;; esac
n5=${r5#node=}; n5=${n5%% *}
[ "$n5" != "$n1" ] || fail "a down node was handed out again: $r5"
pass "the name of a down node is free for a new node"
