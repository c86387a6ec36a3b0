#!/usr/bin/env bash
# Operator identity: bootstrap, tokens, policies, namespaces, the audit
# trail, and the permission matrix: every operator method called with no
# token, a wrong token, an expired token, a read-only policy, a policy
# that may write in namespace team-a (used in team-a and in team-b) and a
# management token. Each call is allowed exactly where the method table's
# permission and the policy say; every refusal is clear and changes no
# state (compared before and after).
. "$(dirname "$0")/lib.sh"

# ACLs on, as outside --dev (--dev only keeps the plain transport quiet).
"$COORD" --dev --acl on --data-dir "$T/coord" --listen "$LISTEN" --api "$API" \
	--join-token "$TOKEN" --heartbeat-ttl "$TTL" >>"$T/coord.log" 2>&1 &
PIDS[coord]=$!
denied() { local o; o=$("$CLI" node list 2>&1 || true); grep -q "permission denied" <<<"$o"; }
wait_for 5 "coordinator API" denied

# ---- refused before bootstrap, with what is missing named --------------
rc=0
out=$("$CLI" node list 2>&1) || rc=$?
[ $rc = 1 ] || fail "anonymous node list exited $rc"
grep -q "permission denied: node list needs node:read; the call carried no ACL token" <<<"$out" ||
	fail "anonymous refusal does not say what is missing: $out"
pass "without a token nothing is served: \"$out\""

# ---- bootstrap: once, then a reset index ---------------------------------
boot=$("$CLI" acl bootstrap --json) || fail "bootstrap failed: $boot"
MGMT=$(jq -r .secret_id <<<"$boot")
[ "$(jq -r .token.type <<<"$boot")" = management ] || fail "bootstrap token is not management: $boot"
[ "$(jq -r '.token.secret_hash // ""' <<<"$boot")" = "" ] || fail "a token's hash was sent: $boot"
rc=0
out=$("$CLI" acl bootstrap 2>&1) || rc=$?
[ $rc = 1 ] || fail "second bootstrap exited $rc: $out"
grep -q "ACL bootstrap already done (reset index: [0-9]*)" <<<"$out" || fail "second bootstrap: $out"
reset=$(sed -n 's/.*reset index: \([0-9]*\).*/\1/p' <<<"$out")
pass "bootstrap works once; then: $out"

m() { FLOTILLA_TOKEN=$MGMT "$CLI" "$@"; }
m acl token self --json | jq -e '.token.type == "management"' >/dev/null || fail "token self"

# The secret is stored only as its hash.
sync
if grep -qa -- "$MGMT" "$T/coord"/*.mdb; then fail "the secret id is stored in the clear"; fi
pass "the secret id is not in the store (only its SHA-256)"

# ---- policies and tokens ----------------------------------------------------
cat >"$T/ro.json" <<'J'
{"namespaces": [{"name": "*", "policy": "read"}], "node": "read",
 "package": "read", "inventory": "read", "campaign": "read", "audit": "read"}
J
cat >"$T/team-a.json" <<'J'
{"namespaces": [{"name": "team-a", "policy": "write"}]}
J
m acl policy apply readonly "$T/ro.json" --description "sees everything" >/dev/null ||
	fail "policy apply readonly"
m acl policy apply team-a "$T/team-a.json" >/dev/null || fail "policy apply team-a"
echo '{"namespaces": [{"name": "team-a", "policy": "admin"}]}' >"$T/bad.json"
rc=0
out=$(m acl policy apply bad "$T/bad.json" 2>&1) || rc=$?
[ $rc = 1 ] && grep -q 'policy.namespaces\[0\].policy: "deny", "read" or "write", not "admin"' <<<"$out" ||
	fail "a bad policy was not refused clearly ($rc): $out"
rc=0
out=$(m acl token create --name ghost --policy nosuch 2>&1) || rc=$?
[ $rc = 1 ] && grep -q 'no policy named "nosuch"' <<<"$out" || fail "token with an unknown policy: $out"
pass "bad policies and unknown policy names are refused with the field named"

RO=$(m acl token create --name viewer --policy readonly --json | jq -r .secret_id)
TA=$(m acl token create --name ci-a --policy team-a --json | jq -r .secret_id)
EXP=$(m acl token create --name brief --policy readonly --ttl 1s --json | jq -r .secret_id)
WRONG=00000000-1111-4222-8333-444444444444
[ -n "$RO" ] && [ -n "$TA" ] && [ -n "$EXP" ] || fail "token create printed no secret"
sleep 1.2
rc=0
out=$(FLOTILLA_TOKEN=$EXP "$CLI" node list 2>&1) || rc=$?
grep -q "ACL token [0-9a-f]\{8\} (brief) expired at" <<<"$out" || fail "expired token: $out"
out=$(FLOTILLA_TOKEN=$WRONG "$CLI" node list 2>&1) || true
grep -q "ACL token not found" <<<"$out" || fail "wrong token: $out"
echo "$RO" >"$T/ro.token"
"$CLI" --token-file "$T/ro.token" node list >/dev/null || fail "--token-file"
"$CLI" --token "$RO" node list >/dev/null || fail "--token"
pass "expired and unknown tokens refused; --token, --token-file, FLOTILLA_TOKEN work"

# ---- namespaces --------------------------------------------------------------
cat >"$T/web.json" <<'J'
{"name": "web-a", "namespace": "team-a", "type": "batch", "groups": [{"name": "g",
  "tasks": [{"name": "t", "command": "/bin/true"}]}]}
J
FLOTILLA_TOKEN=$TA "$CLI" job run "$T/web.json" --detach >/dev/null ||
	fail "team-a could not submit in team-a"
rc=0
out=$(m --namespace team-b job run "$T/web.json" --detach 2>&1) || rc=$?
grep -q "namespace: the job is in team-a but the call is in team-b" <<<"$out" ||
	fail "a job's namespace and the call's may differ: $out"
sed 's/"team-a"/"team-b"/' "$T/web.json" >"$T/web-b.json"
out=$(FLOTILLA_TOKEN=$TA "$CLI" job run "$T/web-b.json" --detach 2>&1) || true
grep -q "permission denied: job register needs namespace:submit-job in namespace team-b; token [0-9a-f]\{8\} (ci-a; policies team-a) does not grant it" <<<"$out" ||
	fail "team-a submitted in team-b: $out"
out=$(m job run "$T/web-b.json" --detach 2>&1) && fail "a name taken in another namespace was accepted: $out"
grep -q "the name is taken in another namespace" <<<"$out" || fail "taken name: $out"
[ "$(FLOTILLA_TOKEN=$TA "$CLI" --namespace team-a job list --json | jq length)" = 1 ] ||
	fail "team-a does not see its job"
[ "$(m --namespace team-b job list --json | jq length)" = 0 ] || fail "team-b sees team-a's job"
out=$(m --namespace team-b job status web-a 2>&1) && fail "job status across namespaces: $out"
grep -q "no such job in namespace team-b" <<<"$out" || fail "cross-namespace status: $out"
[ "$(m job list --all-namespaces --json | jq -r '.[0].namespace')" = team-a ] ||
	fail "job list --all-namespaces"
[ "$(FLOTILLA_TOKEN=$RO "$CLI" job list --all-namespaces --json | jq length)" = 1 ] ||
	fail "a read-everywhere token does not list every namespace"
pass "jobs live in one namespace; other namespaces neither see nor take them"

# ---- privileged tasks need the namespace's privileged permission -------------
cat >"$T/priv.json" <<'J'
{"name": "priv-a", "namespace": "team-a", "type": "batch", "groups": [{"name": "g",
  "tasks": [{"name": "t", "command": "/bin/true", "capabilities": ["CAP_NET_BIND_SERVICE"]}]}]}
J
out=$(FLOTILLA_TOKEN=$TA "$CLI" job run "$T/priv.json" --detach 2>&1) && fail "write grants privileged: $out"
grep -q 'permission denied: job priv-a: groups\[0\].tasks\[0\].capabilities\[0\] (cap CAP_NET_BIND_SERVICE) needs namespace:privileged in namespace team-a' <<<"$out" ||
	fail "privileged refusal does not name the field and permission: $out"
echo '{"namespaces": [{"name": "team-a", "capabilities": ["privileged"]}]}' >"$T/priv-pol.json"
m acl policy apply team-a-priv "$T/priv-pol.json" >/dev/null || fail "policy apply team-a-priv"
TP=$(m acl token create --name ci-a-priv --policy team-a --policy team-a-priv --json | jq -r .secret_id)
FLOTILLA_TOKEN=$TP "$CLI" job run "$T/priv.json" --detach >/dev/null ||
	fail "a token with privileged in team-a could not submit a privileged job"
out=$(FLOTILLA_TOKEN=$TP "$CLI" --namespace team-b job plan "$T/web-b.json" 2>&1) && fail "privileged in team-a leaked to team-b: $out"
pass "a task that weakens the sandbox needs namespace:privileged (never part of write)"

# ---- the permission matrix ---------------------------------------------------
# Every operator method and its permission, from the method table.
"$FLT_BIN/coordinator/flotilla-docgen" methods |
	awk -F'|' '$3 ~ /api/ { gsub(/[ `]/, "", $2); gsub(/ /, "", $4); print $2, $4 }' >"$T/methods"
[ "$(wc -l <"$T/methods")" -ge 30 ] || fail "method table not read: $(cat "$T/methods")"

# expect IDENTITY NAMESPACE PERMISSION: allow or deny.
expect() {
	local who=$1 ns=$2 perm=$3
	case $who in
	mgmt) echo allow ;;
	none) [ "$perm" = anyone ] && echo allow || echo deny ;;
	wrong | expired) echo deny ;;
	ro)
		case $perm in
		anyone | token | *:read | namespace:read-job) echo allow ;;
		*) echo deny ;;
		esac ;;
	team-a)
		case $perm in
		anyone | token) echo allow ;;
		namespace:privileged) echo deny ;;
		namespace:*) [ "$ns" = team-a ] && echo allow || echo deny ;;
		*) echo deny ;;
		esac ;;
	esac
}
secret_of() {
	case $1 in
	mgmt) echo "$MGMT" ;; ro) echo "$RO" ;; team-a) echo "$TA" ;;
	wrong) echo "$WRONG" ;; expired) echo "$EXP" ;; none) echo "" ;;
	esac
}
state() {
	for c in "job list --all-namespaces" "node list" "package list" \
		"campaign list" "acl token list" "acl policy list"; do
		# shellcheck disable=SC2086
		m $c --json | jq -S -c .
	done
}

calls=0 refused=0
before=$(state)
matrix() { # PASS: deny or allow
	local pass=$1 who ns meth perm want out code tok
	for who in none wrong expired ro team-a mgmt; do
		for ns in team-a team-b; do
			while read -r meth perm; do
				want=$(expect "$who" "$ns" "$perm")
				[ "$want" = "$pass" ] || continue
				tok=()
				[ "$who" = none ] || tok=(--op-token "$(secret_of "$who")")
				out=$("$RAWSEND_BIN" --url "$API" --call "$meth" \
					"${tok[@]}" --namespace "$ns")
				code=$(sed -n 's/^reply code=\([0-9]*\) .*/\1/p' <<<"$out")
				[ -n "$code" ] || fail "$meth as $who: no reply: $out"
				calls=$((calls + 1))
				if [ "$want" = deny ]; then
					refused=$((refused + 1))
					# 9: permission denied; 2: bad or expired token.
					case $code in 9 | 2) ;; *) fail "$meth as $who in $ns: want a refusal, got: $out" ;; esac
					case $who in
					wrong) grep -q "ACL token not found" <<<"$out" ;;
					expired) grep -q "expired at" <<<"$out" ;;
					*) grep -q "permission denied: .* needs $perm" <<<"$out" ;;
					esac || fail "$meth as $who in $ns: unclear refusal: $out"
				else
					case $code in 9 | 2) fail "$meth as $who in $ns: want it allowed, got: $out" ;; esac
				fi
			done <"$T/methods"
		done
	done
}
matrix deny
after=$(state)
[ "$before" = "$after" ] || fail "refused calls changed state:
before: $before
after:  $after"
pass "permission matrix: $refused refusals, each clear, none changed state"
matrix allow
pass "permission matrix: $((calls - refused)) calls allowed where the table says ($calls in all)"

# ---- the audit trail ------------------------------------------------------------
out=$(m audit list --json)
jq -e 'map(select(.method == "job_register" and .namespace == "team-a" and .target == "web-a" and .ok and (.index | tonumber) > 0)) | length == 1' <<<"$out" >/dev/null ||
	fail "the job's registration is not in the audit trail: $(jq -c 'map(select(.method == "job_register"))' <<<"$out")"
jq -e 'map(select(.method == "job_register" and .namespace == "team-b" and (.ok | not) and (.error | test("permission denied")))) | length >= 1' <<<"$out" >/dev/null ||
	fail "a refused registration is not in the audit trail"
jq -e 'map(select(.method == "acl_token_create" and .target == "viewer" and .ok)) | length == 1' <<<"$out" >/dev/null ||
	fail "token creations are not in the audit trail"
jq -e 'map(select(.method == "node_list")) | length == 0' <<<"$out" >/dev/null || fail "reads are audited"
who=$(jq -r 'map(select(.method == "job_register" and .ok and .target == "web-a"))[0].who_name' <<<"$out")
[ "$who" = ci-a ] || fail "audit names $who, not the token ci-a"
n_ci=$(m audit list --who ci-a --json | jq length)
[ "$n_ci" -ge 1 ] || fail "audit list --who ci-a"
m audit list --since 1h >/dev/null || fail "audit list --since 1h"
out=$(FLOTILLA_TOKEN=$TA "$CLI" audit list 2>&1) && fail "team-a may read the audit trail"
grep -q "needs audit:read" <<<"$out" || fail "audit refusal: $out"
pass "audit: who, what, namespace, target and result of every state-changing call; reads are not recorded"

# ---- token delete takes effect at once; bootstrap reset -------------------------
acc=$(FLOTILLA_TOKEN=$TA "$CLI" acl token self --json | jq -r .token.accessor_id)
m acl token delete "${acc:0:8}" >/dev/null || fail "token delete by prefix"
out=$(FLOTILLA_TOKEN=$TA "$CLI" --namespace team-a job list 2>&1) && fail "a deleted token still works"
grep -q "ACL token not found" <<<"$out" || fail "deleted token: $out"
echo "$reset" >"$T/coord/acl-bootstrap-reset"
boot2=$("$CLI" acl bootstrap --json) || fail "bootstrap with the reset index failed: $boot2"
[ ! -e "$T/coord/acl-bootstrap-reset" ] || fail "the reset file was left behind"
out=$("$CLI" acl bootstrap 2>&1) && fail "a reset index worked twice"
pass "a deleted token stops at once; a lost bootstrap token is recovered with the reset index, once"

# ---- survives a restart ------------------------------------------------------
kill9 coord
"$COORD" --dev --acl on --data-dir "$T/coord" --listen "$LISTEN" --api "$API" \
	--join-token "$TOKEN" --heartbeat-ttl "$TTL" >>"$T/coord.log" 2>&1 &
PIDS[coord]=$!
wait_for 5 "coordinator back" "$CLI" --token "$RO" node list
out=$(FLOTILLA_TOKEN=$RO "$CLI" job run "$T/web.json" --detach 2>&1) && fail "read-only token submitted after restart"
[ "$(m audit list --json | jq 'map(select(.method == "job_register" and .ok)) | length')" = 2 ] ||
	fail "audit lost across kill -9"
pass "tokens, policies and the audit trail survive kill -9"

# ---- a privilege needs both the agent's allowance and the policy --------------
if ! (require_sandbox) >/dev/null 2>&1; then
	echo "SKIP (part): no sandbox here, the agent side of privileges is not run"
	exit 0
fi
start_agent host1 --allow-cap NET_BIND_SERVICE
ready() { m node list --json | jq -e 'map(select(.name == "host1" and .status == "ready")) | length == 1' >/dev/null; }
wait_for 10 "host1 ready" ready
# priv-a (CAP_NET_BIND_SERVICE, submitted above by the privileged token)
# waited for a node that allows it; host1 does.
done_ok() { m --namespace team-a job status priv-a --json | jq -e '.allocs | map(select(.client_status == "complete")) | length == 1' >/dev/null; }
wait_for 20 "priv-a to run and complete on host1" done_ok
sed -e 's/priv-a/priv-b/' -e 's/CAP_NET_BIND_SERVICE/CAP_NET_ADMIN/' "$T/priv.json" >"$T/priv-b.json"
out=$(FLOTILLA_TOKEN=$TP "$CLI" job run "$T/priv-b.json" --detach 2>&1) && fail "a capability no agent allows was accepted: $out"
grep -q "CAP_NET_ADMIN needs --allow-cap NET_ADMIN; none of the 1 nodes allows it" <<<"$out" || fail "agent-side refusal: $out"
sed -e 's/priv-a/priv-c/' "$T/priv.json" >"$T/priv-c.json"
out=$(m acl token create --name ci-a-only --policy team-a --json | jq -r .secret_id)
out=$(FLOTILLA_TOKEN=$out "$CLI" job run "$T/priv-c.json" --detach 2>&1) && fail "an allowed capability without privileged was accepted: $out"
grep -q "needs namespace:privileged in namespace team-a" <<<"$out" || fail "policy-side refusal: $out"
pass "a privileged task runs only where the agent allows it and the token holds privileged"
