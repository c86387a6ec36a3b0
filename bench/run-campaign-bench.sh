#!/usr/bin/env bash
# Patch campaign benchmark: builds (Release, in build-bench), starts a
# coordinator on free loopback ports with a throw-away data directory, and
# bench/agentsim with AGENTS simulated agents that report ITEMS inventory
# items each (log4j-core 2.14.1 on all of them) and long-poll (--watch).
# Once every node has sent its inventory it
#   1. measures the coordinator's idle CPU (heartbeats only) for BASELINE s;
#   2. times InventoryQuery 'log4j-core < 2.17.1' over the fleet end to end
#      (bench/invquery; every host listed, then only one: the evaluation
#      without the large reply), and a query that matches no host;
#   3. pushes log4j-core 2.17.1 (a small tar) and creates a campaign with
#      the CLI: target 'log4j-core < 2.17.1', canary 1, batch 20%,
#      max failures 2% (on failure: pause), min healthy MIN_HEALTHY,
#      host timeout 120 s; FAIL_PERCENT % of the agents fail their step
#      and roll back;
#   4. waits for it to complete (it must: 1% failing is under 2%) and
#      reports each wave (wall ms, gate, coordinator_ms from its log line,
#      the campaign thread's and the whole coordinator's CPU over the wave
#      from /proc), where each host's time went (dispatch -> step seen by
#      the agent -> gate -> outcome -> judged by the coordinator, from the
#      campaign report and agentsim --step-times), the campaign's wall
#      time against the sum of its gates (waves x min healthy), the final
#      counts and the exposure the query then finds, and what the machine's
#      other processes used meanwhile.
# Prints a plain-text report and one JSON line; raw outputs stay in $OUT.
#
#   bench/run-campaign-bench.sh
#   AGENTS=1000 bench/run-campaign-bench.sh          a quick run
#   PERF=1 bench/run-campaign-bench.sh               perf-record the coordinator
#                                                    during the campaign
#
# Environment: AGENTS (10000), ITEMS (200), INTERVAL (3333 ms: the
# coordinator's default for a 10 s TTL, given to both), MIN_HEALTHY (5s),
# HOST_TIMEOUT (120s), CANARY (1), BATCH (20%), MAX_FAILURES (2%),
# FAIL_PERCENT (1), BASELINE (10 s), QUERY_REPEAT (20), COORD_ARGS (more
# coordinator flags), BUILD (build-bench), CLI (the flotilla CLI; default
# the one built in BUILD), OUT (a new /tmp/campaign-bench.* directory),
# PERF (0), PERF_CG (fp; dwarf for user-space stacks), PERF_FREQ (499).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. "$top/bench/lib.sh"

agents=${AGENTS:-10000}
items=${ITEMS:-200}
interval=${INTERVAL:-3333}
min_healthy=${MIN_HEALTHY:-5s}
host_timeout=${HOST_TIMEOUT:-120s}
canary=${CANARY:-1}
batch=${BATCH:-20%}
max_failures=${MAX_FAILURES:-2%}
fail_percent=${FAIL_PERCENT:-1}
baseline_s=${BASELINE:-10}
query_repeat=${QUERY_REPEAT:-20}
coord_args=${COORD_ARGS:-} # more coordinator flags, split on spaces
build=${BUILD:-$top/build-bench}
out=${OUT:-$(mktemp -d /tmp/campaign-bench.XXXXXX)}
perf=${PERF:-0}
perf_cg=${PERF_CG:-fp}  # dwarf: user stacks without frame pointers
perf_freq=${PERF_FREQ:-499}
token=campaign-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
ttl=10
target='log4j-core < 2.17.1'
miss_query='openssl < 1.0'
mkdir -p "$out"

command -v jq >/dev/null || { echo "run-campaign-bench.sh: needs jq" >&2; exit 1; }

echo "building (Release) in $build"
cmake -S . -B "$build" -DFLT_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" -j2 flotilla-coordinator agentsim invquery >/dev/null
if [ -z "${CLI:-}" ] && ! make -C "$build" -j2 flotilla-cli >/dev/null; then
	echo "run-campaign-bench.sh: the CLI does not build in $build; set CLI to a flotilla CLI" >&2
	exit 1
fi
coord_bin=$build/coordinator/flotilla-coordinator
sim_bin=$build/bench/agentsim
query_bin=$build/bench/invquery
cli=${CLI:-$build/cli/flotilla}

# Both processes hold one descriptor per agent connection.
ulimit -n "$(ulimit -Hn)"
clk_tck=$(getconf CLK_TCK)

pids=()
data=
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -z "$data" ] || rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# thread_ticks PID TID: utime+stime of one thread.
thread_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/task/$2/stat" 2>/dev/null || echo 0; }
rss_mb() { awk '/^VmRSS:/ { printf "%.0f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Epoch ms of an RFC 3339 log timestamp.
log_ms() { date -d "$1" +%s%3N; }

report_header "$out"

# ---- the coordinator and the fleet ----------------------------------------
data=$(mktemp -d /tmp/campaign-bench-data.XXXXXX)
agent_url=tcp://127.0.0.1:$(free_port)
api_url=tcp://127.0.0.1:$(free_port)
export FLOTILLA_ADDR=$api_url
# Every simulated agent connects from 127.0.0.1: no per-source limit (the
# default of 100 would refuse all but 100 of them).
"$coord_bin" --dev --data-dir "$data" --listen "$agent_url" \
	--api "$api_url" --join-token "$token" --heartbeat-ttl "$ttl" \
	--heartbeat-interval "$interval" --map-size 8192 \
	--max-conns-per-source 0 \
	$coord_args 2>"$out/coordinator.log" &
coord_pid=$!
pids+=("$coord_pid")
coordinator_started "$out/coordinator.log" "$coord_pid" || {
	echo "coordinator did not start:" >&2
	cat "$out/coordinator.log" >&2
	exit 1
}

t_start=$(date +%s%3N)
# Runs until interrupted; --duration only bounds a forgotten run.
"$sim_bin" --coordinator "$agent_url" --api "$api_url" \
	--join-token "$token" --log-level info --agents "$agents" \
	--interval "$interval" --warmup 0 --duration 3600 \
	--inventory "$items" --watch --campaign-fail-percent "$fail_percent" \
	--step-times "$out/steps.txt" \
	>"$out/agentsim.txt" 2>"$out/agentsim.log" &
sim_pid=$!
pids+=("$sim_pid")

# The coordinator's campaign thread, to check its own accounting.
camp_tid=0
for t in /proc/"$coord_pid"/task/*; do
	[ "$(cat "$t/comm" 2>/dev/null)" = campaigns ] && camp_tid=${t##*/}
done

# One line every 0.5 s: epoch_ms coordinator_ticks coordinator_rss_mb
# agentsim_ticks machine_busy_ticks campaign_thread_ticks.
(
	while kill -0 "$sim_pid" 2>/dev/null; do
		echo "$(date +%s%3N) $(ticks "$coord_pid") $(rss_mb "$coord_pid") $(ticks "$sim_pid") $(busy) $(thread_ticks "$coord_pid" "$camp_tid")"
		sleep 0.5
	done
) >"$out/samples" &
pids+=($!)

# cpu_ms FROM_MS TO_MS COLUMN: CPU ms used between two instants (column 2
# the coordinator, 4 the simulator, 5 the whole machine, 6 the
# coordinator's campaign thread; interpolated samples).
cpu_ms() {
	awk -v a="$1" -v b="$2" -v c="$3" -v hz="$clk_tck" '
		function at(t,   i) {
			if (t <= T[1]) return V[1]
			for (i = 2; i <= n; i++)
				if (T[i] >= t)
					return V[i-1] + (V[i] - V[i-1]) * (t - T[i-1]) / (T[i] - T[i-1])
			return V[n]
		}
		{ n++; T[n] = $1; V[n] = $c }
		END { if (n < 2) { print 0; exit } printf "%.0f\n", (at(b) - at(a)) * 1000 / hz }' "$out/samples"
}
max_rss() { awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $3 > m { m = $3 } END { print m + 0 }' "$out/samples"; }

echo
echo "== $agents agents, $items inventory items each, watch on, heartbeat $interval ms"
if ! "$query_bin" --wait-hosts "$agents" --wait-timeout 900 "$target" \
	>"$out/wait.txt" 2>"$out/wait.log"; then
	cat "$out/wait.log" >&2
	echo "not every agent sent its inventory; see $out" >&2
	exit 1
fi
t_inv=$(date +%s%3N)
inv_s=$(awk -v a="$t_start" -v b="$t_inv" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
rss_inv=$(rss_mb "$coord_pid")
echo "  inventories: all $agents in $inv_s s from the simulator's start (connect and register included); coordinator RSS $rss_inv MB"

# ---- idle baseline ----------------------------------------------------------
sleep "$baseline_s"
t_base=$(date +%s%3N)
base_cpu=$(cpu_ms "$t_inv" "$t_base" 2)
base_rate=$(awk -v c="$base_cpu" -v a="$t_inv" -v b="$t_base" 'BEGIN { printf "%.4f", c / (b - a) }')
echo "  idle: coordinator $(awk -v r="$base_rate" 'BEGIN { printf "%.0f", r * 100 }')% of a core over ${baseline_s} s (heartbeats, watches)"

# ---- queries ----------------------------------------------------------------
if [ "$perf" = 1 ] && command -v perf >/dev/null; then
	perf record -e cpu-clock -F "$perf_freq" --call-graph "$perf_cg" \
		-p "$coord_pid" -o "$out/query.perf.data" >/dev/null 2>&1 &
	qperf_pid=$!
	pids+=("$qperf_pid")
	sleep 1
fi
"$query_bin" --repeat "$query_repeat" "$target" >"$out/query-all.txt"
"$query_bin" --repeat "$query_repeat" --limit 1 "$target" >"$out/query-one.txt"
"$query_bin" --repeat "$query_repeat" "$miss_query" >"$out/query-miss.txt"
if [ -n "${qperf_pid:-}" ]; then
	kill -INT "$qperf_pid" 2>/dev/null || true
	wait "$qperf_pid" 2>/dev/null || true
fi
for f in query-all query-one query-miss; do grep -v '^{' "$out/$f.txt" | sed 's/^/  /'; done

# ---- the campaign -------------------------------------------------------------
mkdir -p "$out/pkg"
head -c 2048 /dev/urandom >"$out/pkg/log4j-core-2.17.1.jar"
tar -C "$out/pkg" -cf "$out/log4j-core-2.17.1.tar" log4j-core-2.17.1.jar
"$cli" package push log4j-core 2.17.1 "$out/log4j-core-2.17.1.tar" --json >"$out/push.json"

t_camp0=$(date +%s%3N)
if [ "$perf" = 1 ] && command -v perf >/dev/null; then
	perf record -e cpu-clock -F "$perf_freq" --call-graph "$perf_cg" \
		-p "$coord_pid" \
		-o "$out/coordinator.perf.data" >/dev/null 2>&1 &
	perf_pid=$!
	pids+=("$perf_pid")
fi
"$cli" campaign create --target "$target" --install log4j-core@2.17.1 \
	--name "campaign bench" --canary "$canary" --batch "$batch" \
	--max-failures "$max_failures" --on-failure pause \
	--min-healthy "$min_healthy" --host-timeout "$host_timeout" \
	--detach --json >"$out/create.json"
id=$(jq -r '.campaign.id' "$out/create.json")
waves=$(jq -r '.campaign.waves' "$out/create.json")
gate_ms=$(jq -r '.campaign.spec.min_healthy_ms' "$out/create.json")
timeout_ms=$(jq -r '.campaign.spec.host_timeout_ms' "$out/create.json")
echo "  campaign ${id:0:8}: $(jq -r '.counts.total' "$out/create.json") targets in $waves waves, failure limit $(jq -r '.campaign.failure_limit' "$out/create.json"), gate $gate_ms ms"

# Every wave ends within the host timeout; the gates are the rest.
limit_s=$(((waves * (gate_ms + timeout_ms)) / 1000 + 60))
state=running
for _ in $(seq $((limit_s * 2))); do
	"$cli" campaign status "$id" --json >"$out/status.json" 2>"$out/status.err" || {
		sleep 0.5
		continue
	}
	state=$(jq -r '.campaign.state' "$out/status.json")
	[ "$state" = running ] || break
	sleep 0.5
done
t_camp1=$(date +%s%3N)
if [ -n "${perf_pid:-}" ]; then
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" 2>/dev/null || true
fi
"$cli" campaign status "$id" --json >"$out/status.json"
state=$(jq -r '.campaign.state' "$out/status.json")
[ "$state" = complete ] || echo "  CAMPAIGN NOT COMPLETE: $state: $(jq -r '.campaign.message' "$out/status.json")"

"$cli" campaign report "$id" --json >"$out/report.json" || true
"$query_bin" --repeat 5 "$target" >"$out/query-after.txt"
rss_end=$(rss_mb "$coord_pid")

kill -INT "$sim_pid" 2>/dev/null || true
wait "$sim_pid" || true
kill -TERM "$coord_pid"
coord_exit=0
wait "$coord_pid" || coord_exit=$?

# ---- the report -----------------------------------------------------------------
created=$(jq -r '.campaign.created_at_ms' "$out/status.json")
updated=$(jq -r '.campaign.updated_at_ms' "$out/status.json")
id8=${id:0:8}
# wave N wall_ms coordinator_ms end_epoch_ms
grep "campaign $id8 wave [0-9]* done" "$out/coordinator.log" |
	while read -r ts rest; do
		n=$(sed -n 's/.* wave \([0-9]*\) done.*/\1/p' <<<"$rest")
		w=$(sed -n 's/.*wall_ms=\([-0-9]*\).*/\1/p' <<<"$rest")
		c=$(sed -n 's/.*coordinator_ms=\([0-9.]*\).*/\1/p' <<<"$rest")
		echo "$n $w $c $(log_ms "$ts")"
	done >"$out/waves"

echo
echo "  coordinator_ms: from the wave's log line; campaign thread: that thread's CPU over the wave (/proc, 10 ms ticks)"
echo "  wave   hosts   wall ms   gate ms   over gate   coordinator_ms   campaign thread   coordinator process CPU ms (less idle)"
prev=$created
: >"$out/waves.json"
while read -r n w c end; do
	hosts=$(jq --argjson w "$((n - 1))" '[.targets[]? | select(.wave == $w)] | length' "$out/report.json" 2>/dev/null || echo "")
	cpu=$(cpu_ms "$prev" "$end" 2)
	less=$(awk -v c="$cpu" -v r="$base_rate" -v a="$prev" -v b="$end" 'BEGIN { printf "%.0f", c - r * (b - a) }')
	thr=$(cpu_ms "$prev" "$end" 6)
	printf '  %4s  %6s  %8s  %8s  %9s  %14s  %16s  %s (%s)\n' "$n" "${hosts:--}" "$w" "$gate_ms" "$((w - gate_ms))" "$c" "$thr" "$cpu" "$less"
	jq -nc --argjson n "$n" --argjson w "$w" --argjson c "$c" \
		--argjson g "$gate_ms" --argjson cpu "$cpu" --argjson less "$less" \
		--argjson thr "$thr" \
		--argjson hosts "${hosts:-null}" \
		'{wave: $n, hosts: $hosts, wall_ms: $w, gate_ms: $g, coordinator_ms: $c,
		  campaign_thread_cpu_ms: $thr, process_cpu_ms: $cpu,
		  process_cpu_over_idle_ms: $less}' >>"$out/waves.json"
	prev=$end
done <"$out/waves"

# Where each host's time went: dispatched (coordinator) -> step seen
# (agent) -> gate -> done (agent) -> judged (coordinator).
jq -r '.targets[] | select(.step_id != "") |
	"\(.step_id) \(.wave) \(.started_at_ms) \(.finished_at_ms)"' \
	"$out/report.json" >"$out/coordinator-steps" 2>/dev/null || true
awk 'NR == FNR { seen[$2] = $4; done[$2] = $5; acked[$2] = $6; next }
	($1 in seen) && done[$1] > 0 && acked[$1] > 0 {
		print $2 + 1, seen[$1] - $3, done[$1] - seen[$1],
			$4 - done[$1], acked[$1] - done[$1], $4 - acked[$1]
	}' "$out/steps.txt" "$out/coordinator-steps" >"$out/host-times" 2>/dev/null || true
# p50 and max of column COL for wave W of host-times.
pmax() {
	awk -v w="$1" -v c="$2" '$1 == w { print $c }' "$out/host-times" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] "/" v[NR]; else print "-" }'
}
if [ -s "$out/host-times" ]; then
	echo
	echo "  per host, ms p50/max: delivery = dispatched (coordinator) -> step seen (agent); gate = seen -> outcome (agent's timer);"
	echo "  judged = outcome -> target finished (coordinator), split into the outcome's sync (inventory committed,"
	echo "  answered) and answered -> finished (the campaign thread's round; negative: it ran before the answer)"
	echo "  wave   delivery     gate          judged        sync          round"
	while read -r n _; do
		printf '  %4s  %-11s  %-12s  %-12s  %-12s  %s\n' "$n" "$(pmax "$n" 2)" \
			"$(pmax "$n" 3)" "$(pmax "$n" 4)" "$(pmax "$n" 5)" "$(pmax "$n" 6)"
	done <"$out/waves"
fi

nwaves=$(wc -l <"$out/waves")
sum_wall=$(awk '{ s += $2 } END { print s + 0 }' "$out/waves")
sum_coord=$(awk '{ s += $3 } END { printf "%.1f", s }' "$out/waves")
gates=$((nwaves * gate_ms))
total=$((updated - created))
overhead=$(awk -v t="$total" -v g="$gates" 'BEGIN { printf "%.2f", g ? (t - g) * 100 / g : 0 }')
camp_cpu=$(cpu_ms "$created" "$updated" 2)
camp_cpu_less=$(awk -v c="$camp_cpu" -v r="$base_rate" -v t="$total" 'BEGIN { printf "%.0f", c - r * t }')
sim_cpu=$(cpu_ms "$created" "$updated" 4)
camp_thr=$(cpu_ms "$created" "$updated" 6)
# What every other process on the machine used meanwhile, in cores: the
# simulator and the coordinator share the machine with it.
machine_cpu=$(cpu_ms "$created" "$updated" 5)
other_cores=$(awk -v m="$machine_cpu" -v c="$camp_cpu" -v s="$sim_cpu" -v t="$total" \
	'BEGIN { o = (m - c - s) / t; printf "%.2f", o < 0 ? 0 : o }')
cores=$(awk -v c="$camp_cpu" -v s="$sim_cpu" -v t="$total" 'BEGIN { printf "%.2f %.2f", c / t, s / t }')
rss_max=$(max_rss "$created" "$updated")
remediated=$(jq -r '.counts.remediated' "$out/status.json")
failed=$(jq -r '.counts.failed' "$out/status.json")
total_t=$(jq -r '.counts.total' "$out/status.json")
exposed=$(jq -r '.hosts_matched' <(grep '^{' "$out/query-after.txt"))
hosts_total=$(jq -r '.hosts_total' <(grep '^{' "$out/query-after.txt"))
qa=$(grep '^{' "$out/query-all.txt")
q1=$(grep '^{' "$out/query-one.txt")
qm=$(grep '^{' "$out/query-miss.txt")

echo
echo "  campaign: $state in $total ms (created -> last change) over $nwaves waves;" \
	"sum of the gates $gates ms ($nwaves x $gate_ms): the coordinator and the" \
	"fleet's round trips added $((total - gates)) ms = $overhead% (goal < 5%)"
echo "  coordinator: coordinator_ms (campaign thread CPU + commit waits, as logged) $sum_coord ms in all;" \
	"the campaign thread's CPU (/proc) $camp_thr ms;" \
	"process CPU during the campaign $camp_cpu ms ($camp_cpu_less ms over its idle rate);" \
	"RSS max $rss_max MB; agentsim CPU $sim_cpu ms"
echo "  machine during the campaign ($(nproc) cores): coordinator ${cores% *}, agentsim ${cores#* }," \
	"other processes $other_cores cores"
echo "  result: $remediated remediated, $failed failed of $total_t; the query now finds" \
	"$exposed of $hosts_total hosts exposed"
echo "  inventory query over $(jq -r .hosts_total <<<"$qa") hosts x $items items (goal < 50 ms):" \
	"p50 $(jq -r '.p50_ms * 100 | round / 100' <<<"$qa") ms listing all $(jq -r .hosts_listed <<<"$qa") matches" \
	"($(jq -r .reply_bytes <<<"$qa") bytes), p50 $(jq -r '.p50_ms * 100 | round / 100' <<<"$q1") ms listing one," \
	"p50 $(jq -r '.p50_ms * 100 | round / 100' <<<"$qm") ms for a query no host matches"
grep -v '^{' "$out/agentsim.txt" | sed 's/^/  /'
echo "  coordinator: $(grep -c 'level=error' "$out/coordinator.log" || true) errors," \
	"$(grep -c 'level=warn' "$out/coordinator.log" || true) warnings in its log; exit $coord_exit"
[ ! -e "$out/coordinator.perf.data" ] || echo "  perf: $out/query.perf.data (queries), $out/coordinator.perf.data (campaign): perf report -i FILE"

jq -nc \
	--argjson agents "$agents" --argjson items "$items" \
	--argjson interval "$interval" --arg state "$state" \
	--argjson waves "$nwaves" --argjson gate_ms "$gate_ms" \
	--argjson total_ms "$total" --argjson gates_ms "$gates" \
	--argjson overhead "$overhead" --argjson sum_wall "$sum_wall" \
	--argjson coord_ms "$sum_coord" --argjson camp_cpu "$camp_cpu" \
	--argjson camp_cpu_less "$camp_cpu_less" --argjson base_rate "$base_rate" \
	--argjson rss_inv "$rss_inv" --argjson rss_max "$rss_max" \
	--argjson rss_end "$rss_end" --argjson inv_s "$inv_s" \
	--argjson other "$other_cores" --argjson camp_thr "$camp_thr" \
	--argjson remediated "$remediated" --argjson failed "$failed" \
	--argjson targets "$total_t" --argjson exposed "$exposed" \
	--argjson qa "$qa" --argjson q1 "$q1" --argjson qm "$qm" \
	--slurpfile wl "$out/waves.json" \
	--argjson sim "$(grep '^{' "$out/agentsim.txt" || echo null)" \
	--arg exit "$coord_exit" \
	'{bench: "campaign", agents: $agents, inventory_items: $items,
	  interval_ms: $interval, inventory_all_s: $inv_s, state: $state,
	  targets: $targets, waves: $waves, gate_ms: $gate_ms,
	  campaign_ms: $total_ms, gates_ms: $gates_ms,
	  overhead_pct: $overhead, sum_wave_wall_ms: $sum_wall,
	  coordinator_ms: $coord_ms, campaign_thread_cpu_ms: $camp_thr,
	  coordinator_cpu_ms: $camp_cpu,
	  coordinator_cpu_over_idle_ms: $camp_cpu_less,
	  coordinator_idle_cores: $base_rate, other_cores: $other,
	  coordinator_rss_inventory_mb: $rss_inv,
	  coordinator_rss_max_mb: $rss_max, coordinator_rss_end_mb: $rss_end,
	  remediated: $remediated, failed: $failed, exposed_after: $exposed,
	  query_all: $qa, query_one: $q1, query_miss: $qm,
	  wave_list: $wl, agentsim: $sim, coordinator_exit: $exit}' |
	tee "$out/result.json"
echo "raw results: $out"
