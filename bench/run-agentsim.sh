#!/usr/bin/env bash
# Agent fleet benchmark: builds (Release, in build-bench), then for each
# fleet size starts a fresh coordinator on free loopback ports with a
# throw-away data directory and runs bench/agentsim against it, sampling the
# coordinator's RSS and CPU (and the simulator's CPU) over the measured
# window; then runs the failure-detection test. Prints a summary; raw
# outputs stay in $OUT.
#
#   bench/run-agentsim.sh
#   SIZES="1000" KILL_AGENTS=1000 bench/run-agentsim.sh     a quick run
#   PERF=1 bench/run-agentsim.sh    also perf-record the coordinator
#
# Environment: SIZES (default "1000 10000"), DURATION (30), WARMUP (5),
# KILL_AGENTS (10000), KILL (100), KILL_AT (10), KILL_DURATION (25),
# POLL ("list get": one failure-detection run per way of asking the API;
# empty for none), INTERVAL (1000 ms, for agents and coordinator),
# COORD_ARGS (more coordinator flags), BUILD (build-bench), OUT (a new
# /tmp/agentsim.* directory), PERF (0).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. "$top/bench/lib.sh"

sizes=${SIZES-"1000 10000"}
duration=${DURATION:-30}
warmup=${WARMUP:-5}
kill_agents=${KILL_AGENTS:-10000}
kill=${KILL:-100}
kill_at=${KILL_AT:-10}
kill_duration=${KILL_DURATION:-25}
polls=${POLL-"list get"}
sim_limit=${SIM_LIMIT:-300} # seconds: a hung simulator is killed
build=${BUILD:-$top/build-bench}
out=${OUT:-$(mktemp -d /tmp/agentsim.XXXXXX)}
perf=${PERF:-0}
coord_args=${COORD_ARGS:-} # more coordinator flags, split on spaces
token=agentsim-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
ttl=10
hb_ms=${INTERVAL:-1000}
mkdir -p "$out"

command -v jq >/dev/null || { echo "run-agentsim.sh: needs jq" >&2; exit 1; }

echo "building (Release) in $build"
cmake -S . -B "$build" -DFLT_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" -j2 flotilla-coordinator agentsim >/dev/null
coord_bin=$build/coordinator/flotilla-coordinator
sim_bin=$build/bench/agentsim

# Both processes hold one descriptor per agent connection.
ulimit -n "$(ulimit -Hn)"
clk_tck=$(getconf CLK_TCK)

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_coordinator NAME: sets coord_pid, agent_url, api_url.
start_coordinator() {
	local name=$1 data
	data=$(mktemp -d /tmp/agentsim-data.XXXXXX)
	agent_url=tcp://127.0.0.1:$(free_port)
	api_url=tcp://127.0.0.1:$(free_port)
	# Every simulated agent connects from 127.0.0.1: no per-source
	# limit (the default of 100 would refuse all but 100 of them).
	"$coord_bin" --dev --data-dir "$data" --listen "$agent_url" \
		--api "$api_url" --join-token "$token" \
		--heartbeat-ttl "$ttl" --heartbeat-interval "$hb_ms" \
		--max-conns-per-source 0 \
		$coord_args 2>"$out/$name.coordinator.log" &
	coord_pid=$!
	pids+=("$coord_pid")
	coord_data=$data
	coordinator_started "$out/$name.coordinator.log" "$coord_pid" && return
	echo "coordinator did not start:" >&2
	cat "$out/$name.coordinator.log" >&2
	exit 1
}

# stop_coordinator: sets coord_exit, "gone N" when it had already exited
# (N = 139 for SIGSEGV).
stop_coordinator() {
	local st=0
	if kill -0 "$coord_pid" 2>/dev/null; then
		kill -TERM "$coord_pid"
		wait "$coord_pid" || st=$?
		coord_exit=$st
	else
		wait "$coord_pid" || st=$?
		coord_exit="gone $st"
	fi
	rm -rf "$coord_data"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# overflows: the kernel's count of connections dropped because a listen
# queue was full (machine-wide).
overflows() { nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ { print $2 }' || echo 0; }

# sample NAME COORD_PID SIM_PID: one line every 0.5 s until the simulator
# exits: epoch_ms coordinator_ticks coordinator_rss_kb simulator_ticks
# machine_busy_ticks.
sample() {
	local name=$1 cp=$2 sp=$3
	while kill -0 "$sp" 2>/dev/null; do
		echo "$(date +%s%3N) $(ticks "$cp") $(rss_kb "$cp") $(ticks "$sp") $(busy)"
		sleep 0.5
	done >"$out/$name.samples"
}

# epoch ms of the simulator's log line carrying msg=WHAT.
mark_ms() {
	local ts
	ts=$(grep -m1 "msg=$2" "$out/$1.agentsim.log" | awk '{ print $1 }' || true)
	[ -n "$ts" ] && date -d "$ts" +%s%3N || echo 0
}

# window_stats NAME: "coord_cpu_pct coord_rss_max_mb sim_cpu_pct
# other_cpu_pct" over the measured window (the samples nearest inside its
# start and end); other is what every other process on the machine used.
window_stats() {
	local name=$1 t0 t1
	t0=$(mark_ms "$name" measuring)
	t1=$(mark_ms "$name" measured)
	awk -v t0="$t0" -v t1="$t1" -v hz="$clk_tck" '
		$1 >= t0 && $1 <= t1 {
			if (!n++) { a = $1; ca = $2; sa = $4; ma = $5 }
			b = $1; cb = $2; sb = $4; mb = $5
			if ($3 > rss) rss = $3
		}
		END {
			if (n < 2 || b == a) { print "0 0 0 0"; exit }
			s = (b - a) / 1000
			c = (cb - ca) / hz / s * 100
			m = (sb - sa) / hz / s * 100
			o = (mb - ma) / hz / s * 100 - c - m
			printf "%.0f %.0f %.0f %.0f\n", c, rss / 1024, m,
				o < 0 ? 0 : o
		}' "$out/$name.samples"
}

# downs NAME: "node down" transitions the coordinator logged until the end
# of the measured window: "all not_killed", the second being flaps.
downs() {
	local end
	end=$(grep -m1 'msg=measured' "$out/$1.agentsim.log" | awk '{ print $1 }' || true)
	awk -v end="${end:-9}" 'FNR == NR {
		if (match($0, /killed agent name=[^ ]*/))
			killed[substr($0, RSTART + 18, RLENGTH - 18)] = 1
		next
	}
	$1 <= end && /msg=node down/ && match($0, / name=[^ ]*/) {
		all++
		n = substr($0, RSTART + 6, RLENGTH - 6)
		if (!(n in killed) && !(n in seen)) { seen[n] = 1; c++ }
	}
	END { print all + 0, c + 0 }' "$out/$1.agentsim.log" "$out/$1.coordinator.log"
}

# run NAME AGENTSIM_ARGS...: one coordinator, one simulator run.
run() {
	local name=$1
	shift
	start_coordinator "$name"
	echo
	echo "== $name: agentsim $* (coordinator pid $coord_pid)"
	local ovf0
	ovf0=$(overflows)
	"$sim_bin" --coordinator "$agent_url" --api "$api_url" \
		--join-token "$token" --log-level info "$@" \
		>"$out/$name.txt" 2>"$out/$name.agentsim.log" &
	local sp=$!
	pids+=("$sp")
	(sleep "$sim_limit" && kill -KILL "$sp" 2>/dev/null) &
	local watchdog=$!
	sample "$name" "$coord_pid" "$sp" &
	local smp=$!
	if [ "$perf" = 1 ] && command -v perf >/dev/null; then
		(sleep $((warmup + 8)) &&
			perf record -e cpu-clock -F 499 -g -p "$coord_pid" \
				-o "$out/$name.perf.data" -- sleep 15 \
				>/dev/null 2>&1) &
	fi
	local rc=0
	wait "$sp" || rc=$?
	kill "$watchdog" 2>/dev/null || true
	wait "$smp" || true
	local ovf=$(($(overflows) - ovf0))
	local ccpu crss scpu ocpu rss_end
	read -r ccpu crss scpu ocpu < <(window_stats "$name") || true
	: "${ccpu:=0}" "${crss:=0}" "${scpu:=0}" "${ocpu:=0}"
	rss_end=$(($(rss_kb "$coord_pid") / 1024))
	stop_coordinator
	local ndown logflaps
	read -r ndown logflaps < <(downs "$name") || true
	: "${ndown:=0}" "${logflaps:=0}"
	grep -v '^{' "$out/$name.txt" || true
	echo "  coordinator: ${ccpu}% of one core, RSS max ${crss} MB over the measured window; agentsim: ${scpu}%; other processes: ${ocpu}%"
	echo "  listen queue: $ovf connection attempts dropped by the kernel (listen backlog full; nng listens with a backlog of 128)"
	echo "  coordinator log until the end of the window: $ndown 'node down' ($logflaps of agents not killed); $(grep -c 'level=error' "$out/$name.coordinator.log" || true) errors in all; exit: $coord_exit"
	case "$coord_exit" in
	gone*) echo "  COORDINATOR EXITED during the run ($coord_exit; 139 = SIGSEGV); last log lines:"
		tail -n 3 "$out/$name.coordinator.log" | sed 's/^/    /' ;;
	esac
	[ "$rc" = 0 ] || { echo "agentsim failed (exit $rc), see $out/$name.agentsim.log" >&2; exit 1; }
	# One JSON record per run: the simulator's line and the process
	# figures.
	grep '^{' "$out/$name.txt" | jq -c \
		--arg run "$name" --arg exit "$coord_exit" \
		--argjson ccpu "$ccpu" --argjson crss "$crss" \
		--argjson scpu "$scpu" --argjson ocpu "$ocpu" \
		--argjson rss_end "$rss_end" \
		--argjson logflaps "$logflaps" --argjson ovf "$ovf" \
		'. + {run: $run, coordinator_cpu_pct: $ccpu,
		      coordinator_rss_max_mb: $crss,
		      coordinator_rss_end_mb: $rss_end,
		      agentsim_cpu_pct: $scpu, other_cpu_pct: $ocpu,
		      coordinator_exit: $exit,
		      log_flaps: $logflaps, listen_overflows: $ovf}' >"$out/$name.json"
}

report_header "$out"

for n in $sizes; do
	run "n$n" --agents "$n" --interval "$hb_ms" --warmup "$warmup" \
		--duration "$duration"
done
for method in $polls; do
	run "kill$kill_agents-$method" --agents "$kill_agents" \
		--interval "$hb_ms" --warmup "$warmup" \
		--duration "$kill_duration" --kill "$kill" --kill-at "$kill_at" \
		--poll "$method"
done

echo
echo "== summary (TTL ${ttl} s, interval ${hb_ms} ms; coordinator and agentsim share $(nproc) cores)"
printf '%-16s %7s %9s %7s %7s %8s %7s %8s %7s %10s %7s  %s\n' run agents \
	"syncs/s" "p50 ms" "p99 ms" "max ms" errors "coord MB" "coord %" \
	"agentsim %" "other %" "coordinator"
for f in "$out"/n*.json "$out"/kill*.json; do
	[ -e "$f" ] || continue
	jq -r '[.run, .agents, .syncs_per_s, .p50_ms, .p99_ms, .max_ms,
		(.errors + .timeouts), .coordinator_rss_max_mb,
		.coordinator_cpu_pct, .agentsim_cpu_pct, .other_cpu_pct,
		(if (.coordinator_exit | startswith("gone")) then
			"EXITED (" + .coordinator_exit + ")" else "ok" end)] | @tsv' "$f" |
		awk -F'\t' '{ printf "%-16s %7s %9.1f %7.2f %7.2f %8.2f %7s %8s %7s %10s %7s  %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 }'
done
for f in "$out"/kill*.json; do
	[ -e "$f" ] || continue
	jq -r 'def r: if . == null then "-" else . * 100 | round / 100 end;
		"\(.run): \(.kill) of \(.agents) killed at t=\(.kill_at_s | r) s, poll \(.poll): " +
		"\(.detected) seen down, \(.detect_min_s | r)-\(.detect_max_s | r) s after the kill " +
		"(\(.since_hb_min_s | r)-\(.since_hb_max_s | r) s after their last heartbeat), " +
		"\(.missed) never; flaps: \(.flaps // "n/a") seen by the poller, \(.log_flaps) in the coordinator log" +
		(if (.coordinator_exit | startswith("gone")) then "; the coordinator exited during the run (\(.coordinator_exit))" else "" end)' "$f"
done
echo "goal: every dead node down within TTL + 2 s = $((ttl + 2)) s; 10,000 agents at 1 s with p99 < 20 ms"
echo "raw results: $out"
