#!/usr/bin/env bash
# The cost of the ACL check per operator call, side by side in one run:
# the coordinator of BASE (default bd6dcda, before ACLs), this tree's with
# ACLs off (--dev) and this tree's with ACLs on, the calls carrying a
# client token whose policy grants read-job in its namespace among other
# rules. Each is loaded by bench/callbench (JobGet of a job that does not
# exist: the front door, the check and a lookup) over an ipc socket, in
# ROUNDS (3) alternating rounds of N (20000) calls on THREADS (1 and 4)
# threads. Builds Release trees in build-bench and build-bench-base.
#
#   bench/run-acl-bench.sh
#   BASE=HEAD~5 N=5000 ROUNDS=2 bench/run-acl-bench.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
base=${BASE:-bd6dcda}
n=${N:-20000}
rounds=${ROUNDS:-3}
build=$top/build-bench
basedir=$top/build-bench-base
src=$top/build-bench-base.src # one path, so that the build's cache fits it
t=$(mktemp -d /tmp/aclbench.XXXXXX)
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	git -C "$top" worktree remove --force "$src" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target flotilla-coordinator flotilla-cli callbench >/dev/null
git -C "$top" worktree remove --force "$src" 2>/dev/null || true
git -C "$top" worktree add --detach "$src" "$base" >/dev/null 2>&1
cmake -S "$src" -B "$basedir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$basedir" -j2 --target flotilla-coordinator >/dev/null

start() { # NAME BINARY FLAGS...
	local name=$1 bin=$2; shift 2
	"$bin" --data-dir "$t/$name" --listen "ipc://$t/$name-agents.sock" \
		--api "ipc://$t/$name.sock" --join-token aclbench-0123456789 \
		--log-level warn "$@" >"$t/$name.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do
		[ -S "$t/$name.sock" ] && return 0
		sleep 0.05
	done
	echo "$name did not start: $(cat "$t/$name.log")" >&2
	exit 1
}
start base "$basedir/coordinator/flotilla-coordinator" --dev
start off "$build/coordinator/flotilla-coordinator" --dev
start on "$build/coordinator/flotilla-coordinator" --dev --acl on

cli() { "$build/cli/flotilla" --address "ipc://$t/on.sock" "$@"; }
mgmt=$(cli acl bootstrap --json | jq -r .secret_id)
cat >"$t/policy.json" <<'J'
{"namespaces": [{"name": "team-a", "policy": "write"},
                {"name": "team-b-*", "capabilities": ["read-job"]},
                {"name": "bench", "policy": "read"}],
 "node": "read", "inventory": "read"}
J
FLOTILLA_TOKEN=$mgmt cli acl policy apply bench "$t/policy.json" >/dev/null
client=$(FLOTILLA_TOKEN=$mgmt cli acl token create --name bench --policy bench --json | jq -r .secret_id)

echo "machine: $(nproc) cpus, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "base=$(git -C "$top" rev-parse --short "$base") head=$(git -C "$top" rev-parse --short HEAD) n=$n rounds=$rounds"
for r in $(seq 1 "$rounds"); do
	for threads in 1 4; do
		echo "round $r threads $threads"
		printf '  %-22s ' "base ($base)"
		"$build/bench/callbench" "ipc://$t/base.sock" "$n" "$threads"
		printf '  %-22s ' "acl off (--dev)"
		"$build/bench/callbench" "ipc://$t/off.sock" "$n" "$threads"
		printf '  %-22s ' "acl on (client token)"
		FLOTILLA_TOKEN=$client FLOTILLA_NAMESPACE=bench \
			"$build/bench/callbench" "ipc://$t/on.sock" "$n" "$threads"
	done
done
