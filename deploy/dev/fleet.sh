#!/usr/bin/env bash
# A local dev fleet: installs the dependencies, builds, starts one
# coordinator and three agents on loopback with a throw-away data directory,
# shows the fleet, and keeps it running until Ctrl-C.
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
agents=${AGENTS:-3}

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
	wait 2>/dev/null || true
	# Task supervisors outlive their agent by design: stop them too.
	pkill -TERM -f "flotilla-shim $dir" 2>/dev/null || true
	for _ in $(seq 50); do pgrep -f "flotilla-shim $dir" >/dev/null || break; sleep 0.1; done
	rm -rf "$dir"
}
trap stop EXIT
trap 'exit 0' INT TERM

build/coordinator/flotilla-coordinator --dev --data-dir "$dir/coordinator" \
	--listen "$listen" --api "$api" --join-token "$token" \
	--heartbeat-ttl 10 >"$dir/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do build/cli/flotilla node list >/dev/null 2>&1 && break; sleep 0.1; done
build/cli/flotilla node list >/dev/null || { cat "$dir/coordinator.log"; exit 1; }

# Each agent runs one sandboxed demo task with a health check.
tasks=()
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$dir/tasks"
	cat >"$dir/tasks/hello.json" <<'J'
{"name": "hello", "command": "/bin/sh",
 "args": ["-c", "echo \"hello from $(hostname), pid $$, uid $(id -u)\"; while :; do date > /alloc/heartbeat; sleep 2; done"],
 "resources": {"memory_mb": 32, "max_pids": 16},
 "checks": [{"name": "heartbeat", "type": "exec",
             "command": ["/bin/sh", "-c", "test -s /alloc/heartbeat"],
             "interval_ms": 2000, "timeout_ms": 1000}]}
J
	tasks=(--task-dir "$dir/tasks")
else
	echo "not root: the agents run without the demo task (the sandbox needs root)"
fi

zones=(eu-west eu-north us-east)
for i in $(seq 1 "$agents"); do
	build/agent/flotilla-agent --dev --data-dir "$dir/agent-$i" \
		--coordinator "$listen" --join-token "$token" --name "agent-$i" \
		--label "zone=${zones[$(( (i - 1) % 3 ))]}" --label "rack=r$i" \
		"${tasks[@]}" >"$dir/agent-$i.log" 2>&1 &
	pids+=($!)
done

ready() { [ "$(build/cli/flotilla node list --json | jq '[.[] | select(.status == "ready")] | length')" -ge "$agents" ]; }
for _ in $(seq 100); do ready 2>/dev/null && break; sleep 0.1; done
healthy() { build/cli/flotilla node status agent-1 --json | jq -e '.tasks[] | select(.name == "hello") | .healthy' >/dev/null; }
if [ ${#tasks[@]} -gt 0 ]; then
	for _ in $(seq 100); do healthy 2>/dev/null && break; sleep 0.1; done
fi

cat <<INFO

Flotilla dev fleet: 1 coordinator, $agents agents (state in $dir)
  agents connect to  $listen
  operators use      $api   (export FLOTILLA_ADDR=$api)
  logs               $dir/*.log

\$ flotilla node list
INFO
build/cli/flotilla node list
echo
echo "\$ flotilla node status agent-1"
build/cli/flotilla node status agent-1
if [ ${#tasks[@]} -gt 0 ]; then
	echo
	echo "\$ cat $dir/agent-1/tasks/hello/logs/stdout.log"
	cat "$dir/agent-1/tasks/hello/logs/stdout.log"
fi
ready || { echo "not every agent became ready" >&2; exit 1; }

if [ $exit_after = 1 ]; then
	exit 0
fi
echo
echo "The fleet keeps running; try: build/cli/flotilla node list   (Ctrl-C stops it)"
while sleep 5; do
	kill -0 "${pids[0]}" 2>/dev/null || { echo "coordinator exited" >&2; exit 1; }
done
