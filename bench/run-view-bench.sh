#!/usr/bin/env bash
# The narrower task view's start cost (docs/benchmarks.md, "Start latency
# of the narrower view"): /bin/true under the sandbox of this tree and
# under the sandbox of an earlier build, side by side in one startbench
# run that interleaves them, spaced (a pause before every start, as on a
# node) and back to back.
#
#   bench/run-view-bench.sh NEW_BUILD BASE_BUILD
#
# Each build directory holds a Release build (agent/flotilla-agent,
# agent/flotilla-shim, bench/startbench); startbench is taken from
# NEW_BUILD. Each build prepares its own task directory (shim.conf formats
# differ) with the agent's own code path, as bench/run-sandbox-bench.sh
# does. Needs root. Environment: RUNS (default 300), WARMUP (10), GAP_MS
# (50), OUT (a directory to keep the raw results in).
set -euo pipefail

[ $# = 2 ] || { echo "usage: $0 NEW_BUILD BASE_BUILD" >&2; exit 2; }
NEW=$(cd "$1" && pwd)
BASE=$(cd "$2" && pwd)
RUNS=${RUNS:-300}
WARMUP=${WARMUP:-10}
GAP_MS=${GAP_MS:-50}
BENCH=$NEW/bench/startbench

die() { echo "run-view-bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, cgroups)"
for b in "$NEW/agent/flotilla-agent" "$NEW/agent/flotilla-shim" \
	"$BASE/agent/flotilla-agent" "$BASE/agent/flotilla-shim" "$BENCH"; do
	[ -x "$b" ] || die "$b: not built"
done

W=$(mktemp -d /tmp/flt-vbench.XXXXXX)
OUT=${OUT:-$W/out}
mkdir -p "$OUT"
trap 'find "$W" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +; [ "$OUT" = "$W/out" ] || rm -rf "$W"' EXIT

{
	echo "date: $(date -u +%FT%TZ)"
	echo "kernel: $(uname -r)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
	echo "new: $NEW ($(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo ?))"
	echo "base: $BASE"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

cat >"$W/spec.json" <<'J'
{"name":"vbench","command":"/bin/true","resources":{"memory_mb":64,"max_pids":64}}
J
cat >"$W/keep-shim.sh" <<'S'
#!/bin/sh
cp -a "$2" "$2.kept" && echo "$2" >"$(dirname "$2")/kept.path"
S
chmod +x "$W/keep-shim.sh"
# prepare BUILD DATA_DIR: a task directory made by BUILD's agent.
prepare() {
	FLOTILLA_SHIM="$W/keep-shim.sh" "$1/agent/flotilla-agent" --data-dir "$2" exec "$W/spec.json" >&2
	local dir
	dir=$(cat "$2/exec/kept.path")
	mv "$dir.kept" "$dir"
	"$1/agent/flotilla-shim" --foreground "$dir" 2>/dev/null ||
		die "$1/agent/flotilla-shim --foreground $dir failed"
	echo "$dir"
}
TD_NEW=$(prepare "$NEW" "$W/prep-new")
TD_BASE=$(prepare "$BASE" "$W/prep-base")

cat >"$W/contenders.sh" <<S
#!/bin/sh
exec "$BENCH" "\$@" \\
  :: true /bin/true \\
  :: shim-narrow $NEW/agent/flotilla-shim --foreground $TD_NEW \\
  :: shim-base $BASE/agent/flotilla-shim --foreground $TD_BASE \\
  :: exec-narrow $NEW/agent/flotilla-agent --data-dir $W/data-new exec $W/spec.json \\
  :: exec-base $BASE/agent/flotilla-agent --data-dir $W/data-base exec $W/spec.json
S
chmod +x "$W/contenders.sh"

echo "== spaced: $RUNS starts each, interleaved, ${GAP_MS} ms pause before each"
"$W/contenders.sh" -n "$RUNS" -w "$WARMUP" -g "$GAP_MS" -o "$OUT/latency.jsonl" | tee "$OUT/spaced.txt"
echo "== back to back: $RUNS starts each, interleaved"
"$W/contenders.sh" -n "$RUNS" -w "$WARMUP" -o "$OUT/latency.jsonl" | tee "$OUT/back-to-back.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "results in $OUT"
