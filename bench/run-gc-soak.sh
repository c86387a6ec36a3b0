#!/usr/bin/env bash
# Garbage collection soak: N (default 2000) one-allocation batch jobs
# (/bin/true, sandboxed) submitted in chunks of CHUNK (default 500) to a
# coordinator with AGENTS (default 2) real agents on loopback, each chunk
# run to completion before the next. Run twice in one go: the tree as it
# is with a short retention (--gc-retention 1s --gc-job-retention 1s), and
# the commit BASE (default: where this branch left main), which deletes
# nothing. After every chunk: data.mdb's size and the coordinator's RSS;
# at the end, the jobs and allocations the store holds (the coordinator is
# restarted and its "jobs loaded" line read: the engine holds exactly what
# the store holds). Needs root (the tasks are sandboxed). A chunk whose
# jobs do not all complete within 120 s is reported with how many are
# left: without collection an agent keeps every completed batch
# allocation it ran, and starts nothing past its 1,024 tasks.
#
#   bench/run-gc-soak.sh
#   N=400 CHUNK=200 bench/run-gc-soak.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. bench/lib.sh
n=${N:-2000}
chunk=${CHUNK:-500}
agents=${AGENTS:-2}
base=${BASE:-$(git merge-base HEAD main)}
build=${BUILD:-$top/build-bench}
t=$(mktemp -d /tmp/gcsoak.XXXXXX)
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	pkill -f "flotilla-shim $t/" 2>/dev/null || true
	sleep 0.5
	rm -rf "$t"
}
trap cleanup EXIT

# Both sides built in Release: this tree, and BASE from git archive.
build_side() { # SRC BUILD
	cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release >/dev/null
	nice -n 10 cmake --build "$2" -j2 --target flotilla-coordinator \
		flotilla-agent flotilla-shim flotilla-cli >/dev/null
}
build_side "$top" "$build"
# The base's sources stay beside its build (CMake's cache names them).
base_dir=${BASE_DIR:-$top/build-bench-base-${base:0:7}}
if [ ! -f "$base_dir/src/CMakeLists.txt" ]; then
	mkdir -p "$base_dir/src"
	git archive "$base" | tar -x -C "$base_dir/src"
fi
base_build=$base_dir/build
build_side "$base_dir/src" "$base_build"

for i in $(seq 1 "$n"); do
	printf '{"name":"soak-%05d","type":"batch","groups":[{"name":"g","count":1,"tasks":[{"name":"t","command":"/bin/true"}]}]}\n' "$i" >"$t/j$i.json"
done

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
mdb_bytes() { stat -c %s "$1/data.mdb"; }

# side NAME BUILD [coordinator flags]: prints one line per chunk and one
# summary line.
side() {
	local name=$1 b=$2; shift 2
	local d="$t/$name" port token=gcsoak-0123456789
	local cli=("$b/cli/flotilla" --address "ipc://$d/api.sock")
	mkdir -p "$d"
	port=$(free_port)
	"$b/coordinator/flotilla-coordinator" --dev --data-dir "$d/coord" \
		--listen "tcp://127.0.0.1:$port" --api "ipc://$d/api.sock" \
		--join-token "$token" --log-level warn "$@" >"$d/coord.log" 2>&1 &
	local cpid=$!
	pids+=($cpid)
	local apids=()
	for i in $(seq 1 "$agents"); do
		"$b/agent/flotilla-agent" --dev --data-dir "$d/a$i" \
			--coordinator "tcp://127.0.0.1:$port" --join-token "$token" \
			--name "$name-a$i" --log-level warn >"$d/a$i.log" 2>&1 &
		pids+=($!)
		apids+=($!)
	done
	for _ in $(seq 1 200); do
		[ "$("${cli[@]}" node list --json 2>/dev/null | jq '[.[] | select(.status == "ready")] | length' 2>/dev/null || echo 0)" = "$agents" ] && break
		sleep 0.1
	done
	local start done_jobs=0 t0
	t0=$(date +%s%N)
	for start in $(seq 1 "$chunk" "$n"); do
		local end=$((start + chunk - 1))
		[ "$end" -le "$n" ] || end=$n
		seq "$start" "$end" | sed "s|.*|$t/j&.json|" |
			xargs -P 4 -n 1 "${cli[@]}" job run --detach >/dev/null
		# Every job of the chunk complete (or already collected), or
		# 120 s: what is left is counted.
		local left deadline=$(( $(date +%s) + 120 ))
		while :; do
			left=$("${cli[@]}" job list --json | jq '[.[] | select(.status != "complete" and .status != "dead")] | length')
			[ "$left" = 0 ] || [ "$(date +%s)" -ge "$deadline" ] && break
			sleep 0.25
		done
		done_jobs=$end
		# Time for a collection to pass (retention 1 s, every 1 s).
		sleep 3
		printf '%s: %5d jobs submitted, %3d not complete  data.mdb %7.1f MiB  coordinator RSS %6.1f MiB  jobs listed %5d\n' \
			"$name" "$done_jobs" "$left" "$(echo "$(mdb_bytes "$d/coord") / 1048576" | bc -l)" \
			"$(echo "$(rss_kb $cpid) / 1024" | bc -l)" \
			"$("${cli[@]}" job list --json | jq length)"
	done
	local secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
	kill "$cpid"; wait "$cpid" 2>/dev/null || true
	"$b/coordinator/flotilla-coordinator" --dev --data-dir "$d/coord" \
		--listen "tcp://127.0.0.1:$port" --api "ipc://$d/api.sock" \
		--join-token "$token" "$@" >"$d/coord2.log" 2>&1 &
	cpid=$!
	pids+=($cpid)
	coordinator_started "$d/coord2.log" "$cpid" || true
	local loaded
	loaded=$(grep -m1 -o "jobs loaded jobs=[0-9]* allocations=[0-9]*" "$d/coord2.log" || echo "?")
	echo "$name: $n jobs in ${secs} s; after a restart the store holds: ${loaded#jobs loaded }; data.mdb $(mdb_bytes "$d/coord") bytes"
	kill "$cpid" "${apids[@]}" 2>/dev/null || true
	wait "$cpid" "${apids[@]}" 2>/dev/null || true
	pkill -f "flotilla-shim $d/" 2>/dev/null || true
}

report_header "$t"
echo "N=$n CHUNK=$chunk AGENTS=$agents; gc: $(git rev-parse --short HEAD), base: ${base:0:7}"
side gc "$build" --gc-retention 1s --gc-job-retention 1s
side base "$base_build"
