#!/usr/bin/env bash
# Job submit -> task running, end to end on a local fleet: builds (Release,
# in build-bench), starts a coordinator and AGENTS agents (default 3) on
# loopback with throw-away state, and runs bench/submitbench: N (default
# 100) one-allocation service jobs, each timed from the JobRegister call
# until the coordinator reports its allocation running, i.e. the agent was
# pushed the placement, started the sandboxed task and reported it. Needs
# root (the tasks are sandboxed).
#
#   bench/run-submit-bench.sh
#   N=20 AGENTS=1 bench/run-submit-bench.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
n=${N:-100}
agents=${AGENTS:-3}
build=${BUILD:-$top/build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target flotilla-coordinator flotilla-agent \
	flotilla-shim submitbench >/dev/null
t=$(mktemp -d /tmp/submitbench.XXXXXX)
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	pkill -f "flotilla-shim $t/" 2>/dev/null || true
	sleep 0.5
	rm -rf "$t"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 10000))
token=submitbench-0123456789
"$build/coordinator/flotilla-coordinator" --dev --data-dir "$t/coord" \
	--listen "tcp://127.0.0.1:$port" --api "ipc://$t/api.sock" \
	--join-token "$token" >"$t/coord.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$agents"); do
	"$build/agent/flotilla-agent" --dev --data-dir "$t/a$i" \
		--coordinator "tcp://127.0.0.1:$port" --join-token "$token" \
		--name "a$i" --log-level warn >"$t/a$i.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 1 100); do
	ready=$("$build/cli/flotilla" --address "ipc://$t/api.sock" node list --json 2>/dev/null |
		jq '[.[] | select(.status == "ready")] | length' 2>/dev/null || echo 0)
	[ "$ready" = "$agents" ] && break
	sleep 0.1
done
echo "machine: $(nproc) cpus, $(uname -r); agents=$agents"
"$build/bench/submitbench" "ipc://$t/api.sock" "$n" /bin/sleep 3600
