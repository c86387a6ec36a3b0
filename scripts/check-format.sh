#!/usr/bin/env bash
# check-format.sh [--fix]: every C file in git must be formatted with the
# checked-in .clang-format; lists the ones that are not and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = --fix ]; then
	clang-format -i "${files[@]}"
	exit 0
fi
bad=()
for f in "${files[@]}"; do
	clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
	echo "flotilla: not formatted with .clang-format (run scripts/check-format.sh --fix):" >&2
	printf '  %s\n' "${bad[@]}" >&2
	exit 1
fi
echo "format: ${#files[@]} files formatted with .clang-format"
