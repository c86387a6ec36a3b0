#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test twice: a normal
# build, then a build with AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/deps.sh
status=0
# An unformatted file fails the run (but the tests still run).
scripts/check-format.sh || status=1
for variant in normal sanitize; do
	dir=build
	opts=()
	if [ $variant = sanitize ]; then
		dir=build-asan
		opts=(-DFLT_SANITIZE=ON)
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	fi
	echo "=== $variant build ($dir)"
	scripts/build.sh "$dir" -DFLT_TESTS=ON "${opts[@]}"
	echo "=== $variant tests"
	(cd "$dir" && ctest --output-on-failure -j 2 --timeout 300) || status=1
done

# A short fuzzing run of every decoder of network input (libFuzzer).
if command -v clang >/dev/null; then
	scripts/build.sh build-fuzz -DCMAKE_C_COMPILER=clang -DFLT_FUZZ=ON -DFLT_TESTS=OFF
	for run in envelope:60:corpus query:30:corpus-query; do
		IFS=: read -r name secs corpus <<<"$run"
		echo "=== fuzz ${name} ($secs s)"
		mkdir -p "build-fuzz/$corpus"
		build-fuzz/tests/fuzz/fuzz_$name -max_total_time="$secs" -print_final_stats=0 \
			"build-fuzz/$corpus" 2>&1 | tail -n 2 || status=1
	done
else
	echo "SKIP: fuzz: clang is not installed"
fi
exit $status
