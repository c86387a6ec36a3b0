#!/usr/bin/env bash
# Mutual TLS on the agent socket: an agent with a certificate from the
# fleet's CA registers; a peer without a client certificate, or with one
# from another CA, is refused at the handshake.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || skip "openssl is not installed"

mkcert() { # mkcert NAME CA_NAME CN
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/$1.key" -subj "/CN=$3" -out "$T/$1.csr" 2>/dev/null
	printf 'subjectAltName=DNS:%s\n' "$3" >"$T/$1.ext"
	openssl x509 -req -in "$T/$1.csr" -CA "$T/$2.crt" -CAkey "$T/$2.key" \
		-CAcreateserial -days 2 -extfile "$T/$1.ext" -out "$T/$1.crt" 2>/dev/null
}
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/$1.key" -subj "/CN=$1" -days 2 -out "$T/$1.crt" 2>/dev/null
}
mkca ca
mkca otherca
mkcert server ca localhost
mkcert agent1 ca agent1
mkcert rogue otherca rogue

LISTEN="tls+tcp://127.0.0.1:$(free_port)"
start_coord --tls-ca "$T/ca.crt" --tls-cert "$T/server.crt" --tls-key "$T/server.key"

AGENT_API="tls+tcp://127.0.0.1:$(free_port)"
start_agent agent1 --tls-ca "$T/ca.crt" --tls-cert "$T/agent1.crt" \
	--tls-key "$T/agent1.key" --tls-server-name localhost --api "$AGENT_API"
wait_for 10 "agent1 ready over mTLS" is_status agent1 ready
pass "agent with a valid client certificate registered over tls+tcp"

# The agent's own API over mutual TLS, with the agent's certificate.
FAKE="$FLT_BIN/tests/tools/flt-fakecoord"
NO_ALLOC=00000000-0000-4000-8000-000000000000
api_logs() { timeout 20 "$FAKE" logs --url "$AGENT_API" --alloc $NO_ALLOC --tls-ca "$T/ca.crt" "$@"; }
wait_for 5 "agent1's API" bash -c "exec 3<>/dev/tcp/127.0.0.1/${AGENT_API##*:}"
out=$(api_logs --tls-server-name agent1 --tls-cert "$T/server.crt" --tls-key "$T/server.key") && rc=0 || rc=$?
# Past the handshake, the agent asks for a grant from the coordinator.
[ $rc = 1 ] && echo "$out" | jq -e '.error == 2 and (.message | contains("a grant from the coordinator is required"))' >/dev/null ||
	fail "a peer with a certificate of the CA: exit $rc: $out"
out=$(api_logs --tls-server-name agent1) && rc=0 || rc=$?
[ $rc = 3 ] || fail "a peer without a certificate got an answer from the agent's API: $out"
out=$(api_logs --tls-server-name agent1 --tls-cert "$T/rogue.crt" --tls-key "$T/rogue.key") && rc=0 || rc=$?
[ $rc = 3 ] || fail "a peer with a foreign certificate got an answer from the agent's API: $out"
grep -q "is plain TCP" "$T/agent1.log" && fail "warned about a TLS --api"
pass "agent --api over tls+tcp answers only peers with a certificate from the CA"

out=$("$RAWSEND" --url "$LISTEN" --tls-ca "$T/ca.crt" --tls-server-name localhost \
	--tls-cert "$T/agent1.crt" --tls-key "$T/agent1.key" --version 1) ||
	fail "a peer with a valid certificate got no answer: $out"
out=$("$RAWSEND" --url "$LISTEN" --tls-ca "$T/ca.crt" --tls-server-name localhost \
	--version 1 --timeout 2000) && rc=0 || rc=$?
[ $rc = 3 ] || fail "a peer without a client certificate got an answer: $out"
pass "peer without a client certificate refused ($out)"

start_agent rogue --tls-ca "$T/ca.crt" --tls-cert "$T/rogue.crt" \
	--tls-key "$T/rogue.key" --tls-server-name localhost
sleep 3
[ "$(count_nodes)" = 1 ] || fail "an agent with a foreign certificate registered"
pass "agent with a certificate from another CA refused"

rc=0
timeout 10 "$AGENT" --data-dir "$T/x" --coordinator "$LISTEN" --join-token "$TOKEN" \
	--name x >"$T/x.log" 2>&1 || rc=$?
[ $rc = 78 ] && grep -q "tls+tcp needs --tls-ca, --tls-cert and --tls-key" "$T/x.log" ||
	fail "agent without TLS files for a tls+tcp URL: exit $rc: $(cat "$T/x.log")"
pass "tls+tcp without certificate files is a clear configuration error"
