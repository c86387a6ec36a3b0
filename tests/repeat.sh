#!/usr/bin/env bash
# Runs the test suite (ctest in one build directory) several times in a
# row, optionally under a CPU hog, to find tests that do not always pass.
#
#   tests/repeat.sh                      20 runs of the normal build's suite
#   tests/repeat.sh --runs 5 --hog       5 runs, with one busy loop per core
#   tests/repeat.sh --build build-asan   the sanitizer build's suite
#   tests/repeat.sh -R 'integration\.'   only the tests whose names match
#
# Options:
#   --runs N      how many runs (20)
#   --hog         while the suite runs, keep every core busy with a spinning
#                 process at the suite's own priority (one per core)
#   --build DIR   the build directory (build); it is configured and built
#                 first with scripts/build.sh DIR -DFLT_TESTS=ON, plus
#                 -DFLT_SANITIZE=ON when DIR is build-asan
#   --jobs J      ctest's parallelism (2, as in tests/run-all.sh)
#   --stop        stop at the first failing run (the default goes on, so
#                 that one session finds every test that fails)
#   -R REGEX      only the tests whose names match (ctest -R)
#   --out DIR     where each run's log goes (a new /tmp/flotilla-repeat.*)
#
# Prints one line per run and, at the end, every test that failed with
# the runs it failed in; each failing run's whole ctest output stays in
# the --out directory. Exits 0 only when every run passed. See
# docs/testing.md for what the repeat has found.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

runs=20 hog=0 build=build jobs=2 stop=0 regex= out=
usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "repeat.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
	case $1 in
	--runs) need "$@"; runs=$2; shift 2 ;;
	--hog) hog=1; shift ;;
	--build) need "$@"; build=$2; shift 2 ;;
	--jobs) need "$@"; jobs=$2; shift 2 ;;
	--stop) stop=1; shift ;;
	-R) need "$@"; regex=$2; shift 2 ;;
	--out) need "$@"; out=$2; shift 2 ;;
	-h | --help) usage ;;
	*) echo "repeat.sh: unknown option $1" >&2; usage ;;
	esac
done
case $runs in '' | *[!0-9]* | 0) echo "repeat.sh: --runs takes a positive count, not '$runs'" >&2; exit 2 ;; esac
case $jobs in '' | *[!0-9]* | 0) echo "repeat.sh: --jobs takes a positive count, not '$jobs'" >&2; exit 2 ;; esac
out=${out:-$(mktemp -d /tmp/flotilla-repeat.XXXXXX)}
mkdir -p "$out"

opts=(-DFLT_TESTS=ON)
[ "$(basename "$build")" = build-asan ] && opts+=(-DFLT_SANITIZE=ON)
scripts/build.sh "$build" "${opts[@]}" >"$out/build.log" 2>&1 || {
	tail -n 30 "$out/build.log" >&2
	echo "repeat.sh: the build failed (log: $out/build.log)" >&2
	exit 1
}
if [ "$(basename "$build")" = build-asan ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

hogs=()
stop_hogs() {
	for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${hogs[@]}"; do wait "$p" 2>/dev/null || true; done
	hogs=()
}
trap stop_hogs EXIT
if [ $hog = 1 ]; then
	for _ in $(seq 1 "$(nproc)"); do
		# A pure CPU spin: no system calls, so it competes for the cores
		# and for nothing else.
		awk 'BEGIN { for (;;) n++ }' &
		hogs+=($!)
	done
fi

ctest_args=(--output-on-failure -j "$jobs" --timeout 300)
[ -n "$regex" ] && ctest_args+=(-R "$regex")
echo "repeat: $runs run(s) of $build's suite${regex:+ (-R $regex)}," \
	"$([ $hog = 1 ] && echo "under $(nproc) spinning processes" || echo "no hog"), logs in $out"

declare -A failed_in=()
bad_runs=0
for i in $(seq 1 "$runs"); do
	log=$out/run-$i.log
	t0=$(date +%s)
	if (cd "$build" && ctest "${ctest_args[@]}") >"$log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	secs=$(($(date +%s) - t0))
	total=$(sed -n 's/.*tests passed, [0-9]* tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -n 1)
	failed=$(sed -n '/The following tests FAILED:/,$p' "$log" |
		sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (.*/\1/p')
	if [ $rc = 0 ]; then
		echo "run $i: ${total:-?} tests passed in ${secs}s"
		rm -f "$log"
		continue
	fi
	bad_runs=$((bad_runs + 1))
	[ -n "$failed" ] || failed="(ctest exited $rc)"
	echo "run $i: FAILED in ${secs}s: $(echo $failed)"
	for t in $failed; do failed_in[$t]="${failed_in[$t]:-}${failed_in[$t]:+ }$i"; done
	[ $stop = 1 ] && break
done
stop_hogs

if [ $bad_runs = 0 ]; then
	echo "repeat: all $runs runs passed"
	exit 0
fi
echo "repeat: $bad_runs run(s) failed; by test (the runs it failed in):"
for t in "${!failed_in[@]}"; do echo "  $t: ${failed_in[$t]}"; done | sort
echo "repeat: the failing runs' logs are in $out"
exit 1
