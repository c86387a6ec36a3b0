#!/usr/bin/env bash
# A local dev fleet: installs the dependencies, builds, starts one
# coordinator and five agents on loopback with a throw-away data directory,
# runs the demos (a job rolled out; the Log4Shell case: a vulnerable
# log4j-core found by one query and fixed by one campaign), and keeps the
# fleet running until Ctrl-C.
#
#   deploy/dev/fleet.sh            run until Ctrl-C
#   deploy/dev/fleet.sh --exit     show the demo, then stop (for scripts)
#   AGENTS=5 deploy/dev/fleet.sh   more agents
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

exit_after=0
for a in "$@"; do
	case "$a" in
	--exit) exit_after=1 ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "fleet.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
agents=${AGENTS:-5}

scripts/deps.sh
scripts/build.sh build

dir=$(mktemp -d /tmp/flotilla-dev.XXXXXX)
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
listen="tcp://127.0.0.1:${FLOTILLA_AGENT_PORT:-4700}"
api="tcp://127.0.0.1:${FLOTILLA_API_PORT:-4701}"
export FLOTILLA_ADDR=$api
pids=()

stop() {
	trap - EXIT INT TERM
	echo
	echo "stopping the dev fleet"
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	# Each daemon bounds its own shutdown; whatever still runs after 15 s
	# is killed, so the script never leaves processes behind.
	for _ in $(seq 150); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	# Task supervisors outlive their agent by design: stop them too.
	pkill -TERM -f "flotilla-shim $dir" 2>/dev/null || true
	for _ in $(seq 50); do pgrep -f "flotilla-shim $dir" >/dev/null || break; sleep 0.1; done
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 0' INT TERM

# The fleet's package key, as in production: the coordinator stores and
# the agents install only what it signed (--dev does not lift a key).
build/cli/flotilla package keygen "$dir/fleet.pub" "$dir/fleet.key" >/dev/null
export FLOTILLA_SIGNING_KEY="$dir/fleet.key"

# ACLs on, as in production (--dev alone would turn them off): the first
# call bootstraps the management token every command below carries.
build/coordinator/flotilla-coordinator --dev --acl on --data-dir "$dir/coordinator" \
	--listen "$listen" --api "$api" --join-token "$token" \
	--package-key "$dir/fleet.pub" \
	--advisories "$top/share/advisories/log4shell.json" \
	--heartbeat-ttl 10 >"$dir/coordinator.log" 2>&1 &
pids+=($!)
boot=
for _ in $(seq 50); do boot=$(build/cli/flotilla acl bootstrap --json 2>/dev/null) && break; sleep 0.1; done
[ -n "$boot" ] || { cat "$dir/coordinator.log"; exit 1; }
FLOTILLA_TOKEN=$(jq -r .secret_id <<<"$boot")
export FLOTILLA_TOKEN
build/cli/flotilla node list >/dev/null || { cat "$dir/coordinator.log"; exit 1; }

# The demo: a job of three sandboxed tasks with a health check, spread
# over the zones, submitted like a product team would.
root=0
[ "$(id -u)" = 0 ] && root=1 ||
	echo "not root: the agents run without the demo job (the sandbox needs root)"
cat >"$dir/hello.json" <<'J'
{"name": "hello",
 "groups": [{"name": "web", "count": 3,
   "spreads": [{"attribute": "label.zone", "weight": 100}],
   "tasks": [{"name": "hello", "command": "/bin/sh",
     "args": ["-c", "echo \"hello from $(hostname), alloc $FLOTILLA_ALLOC_ID, uid $(id -u)\"; while :; do date > /alloc/heartbeat; sleep 2; done"],
     "resources": {"memory_mb": 32, "max_pids": 16},
     "checks": [{"name": "heartbeat", "type": "exec",
                 "command": ["/bin/sh", "-c", "test -s /alloc/heartbeat"],
                 "interval_ms": 1000, "timeout_ms": 500}]}]}],
 "update": {"max_parallel": 1, "canary": 1, "min_healthy_time_ms": 2000,
            "auto_revert": true, "auto_promote": true}}
J

api_port=${FLOTILLA_AGENT_API_PORT:-4810}
zones=(eu-west eu-north us-east)
for i in $(seq 1 "$agents"); do
	build/agent/flotilla-agent --dev --data-dir "$dir/agent-$i" \
		--coordinator "$listen" --join-token "$token" --name "agent-$i" \
		--label "zone=${zones[$(( (i - 1) % 3 ))]}" --label "rack=r$i" \
		--api "tcp://127.0.0.1:$((api_port + i))" \
		--package-key "$dir/fleet.pub" \
		>"$dir/agent-$i.log" 2>&1 &
	pids+=($!)
done

ready() { [ "$(build/cli/flotilla node list --json | jq '[.[] | select(.status == "ready")] | length')" -ge "$agents" ]; }
for _ in $(seq 100); do ready 2>/dev/null && break; sleep 0.1; done

cat <<INFO

Flotilla dev fleet: 1 coordinator, $agents agents (state in $dir)
  agents connect to  $listen
  operators use      $api   (export FLOTILLA_ADDR=$api)
  with the token     export FLOTILLA_TOKEN=$FLOTILLA_TOKEN
                     (ACLs are on: without it every call is refused)
  packages signed by $dir/fleet.key (FLOTILLA_SIGNING_KEY)
  logs               $dir/*.log

\$ flotilla node list
INFO
build/cli/flotilla node list
if [ $root = 1 ]; then
	echo
	echo "\$ flotilla job run $dir/hello.json"
	build/cli/flotilla job run "$dir/hello.json"
	echo
	echo "\$ flotilla job status hello"
	build/cli/flotilla job status hello
	alloc=$(build/cli/flotilla job status hello --json | jq -r '[.allocs[] | select(.desired == "run")][0].id')
	for _ in $(seq 30); do
		[ -n "$(build/cli/flotilla alloc logs "$alloc" 2>/dev/null)" ] && break
		sleep 0.1
	done
	echo
	echo "\$ flotilla alloc logs ${alloc:0:8}"
	build/cli/flotilla alloc logs "$alloc"
fi
ready || { echo "not every agent became ready" >&2; exit 1; }

# ---- the Log4Shell case -------------------------------------------------------
# Every host runs "billing", a service that uses a synthetic log4j-core
# 2.14.1 (a real jar layout: Maven metadata and JndiLookup.class, built
# here without a JDK). One query finds the exposure; one campaign fixes it,
# canary first, then in waves, each host health-checked.
cli() {
	local shown=() a
	for a in "$@"; do
		case "$a" in *[\ \<\>\|]*) shown+=("'$a'") ;; *) shown+=("$a") ;; esac
	done
	echo; echo "\$ flotilla ${shown[*]}"
	build/cli/flotilla "$@"
}
for v in 2.14.1 2.17.1; do
	mkdir -p "$dir/pkg-$v"
	build/deploy/dev/flt-mkjar "$dir/pkg-$v/log4j-core-$v.jar" --jndi \
		--pom "org.apache.logging.log4j:log4j-core:$v"
	echo "$v" >"$dir/pkg-$v/VERSION"
	tar -C "$dir/pkg-$v" -cf "$dir/log4j-core-$v.tar" .
	build/cli/flotilla package push log4j-core "$v" "$dir/log4j-core-$v.tar" >/dev/null
done
cli package list
echo
echo "# The fleet as it was in December 2021: log4j-core 2.14.1 on every host."
build/cli/flotilla campaign create --target 'not managed:log4j-core' \
	--install log4j-core@2.14.1 --canary 1 --batch 100% \
	--min-healthy 200ms --name "2021 baseline" >/dev/null
if [ $root = 1 ]; then
	cat >"$dir/billing.json" <<'J'
{"name": "billing", "type": "system",
 "groups": [{"name": "api", "count": 1,
   "tasks": [{"name": "api", "command": "/bin/sh",
     "args": ["-c", "while :; do cat /packages/log4j-core/VERSION > /alloc/log4j.new && mv /alloc/log4j.new /alloc/log4j; sleep 1; done"],
     "uses": ["log4j-core"],
     "resources": {"memory_mb": 32, "max_pids": 16},
     "checks": [{"name": "log4j", "type": "exec",
                 "command": ["/bin/sh", "-c", "test -s /alloc/log4j"],
                 "interval_ms": 500, "timeout_ms": 400}]}]}]}
J
	cli job run "$dir/billing.json"
fi
for _ in $(seq 50); do
	[ "$(build/cli/flotilla inventory query --json 'managed:log4j-core' | jq .hosts_matched)" -ge "$agents" ] && break
	sleep 0.2
done
cli inventory query 'log4j-core < 2.17.1'
cli inventory query 'advisory:CVE-2021-44228' --limit 1
cli campaign create --target 'log4j-core < 2.17.1' --install log4j-core@2.17.1 \
	--canary 1 --batch 2 --min-healthy 2s --name "Log4Shell"
camp=$(build/cli/flotilla campaign list --json | jq -r '[.[] | select(.campaign.spec.name == "Log4Shell")][0].campaign.id')
cli campaign report "${camp:0:8}"
cli inventory query 'log4j-core < 2.17.1'

if [ $exit_after = 1 ]; then
	exit 0
fi
echo
echo "The fleet keeps running (Ctrl-C stops it); try, with FLOTILLA_ADDR=$api"
echo "and FLOTILLA_TOKEN=$FLOTILLA_TOKEN:"
echo "  build/cli/flotilla job status hello"
echo "  build/cli/flotilla inventory query 'dpkg:openssl < 3.0.11'"
echo "  build/cli/flotilla campaign list"
echo "  build/cli/flotilla audit list"
echo "  edit $dir/hello.json (an env entry, say) and: build/cli/flotilla job run $dir/hello.json"
while sleep 5; do
	kill -0 "${pids[0]}" 2>/dev/null || { echo "coordinator exited" >&2; exit 1; }
done
