#!/usr/bin/env bash
# check-layers.sh LIB.a: fails when the objects of a static library call
# each other in a cycle (a.o uses a symbol of b.o and b.o, directly or
# through others, one of a.o). The coordinator's files are layered (ADR
# 0011): a lower file reaches a higher one only through a callback.
set -euo pipefail
lib=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# object<TAB>defined symbol, object<TAB>used symbol
nm -A --defined-only "$lib" 2>/dev/null |
	awk '$(NF-1) ~ /^[TDBR]$/ { split($1, p, ":"); print p[2] "\t" $NF }' |
	sort -u >"$tmp/def"
nm -A --undefined-only "$lib" 2>/dev/null |
	awk '{ split($1, p, ":"); print p[2] "\t" $NF }' | sort -u >"$tmp/use"
# edges: user object -> defining object
join -t $'\t' -1 2 -2 2 <(sort -t $'\t' -k2 "$tmp/use") \
	<(sort -t $'\t' -k2 "$tmp/def") |
	awk -F'\t' '$2 != $3 { print $2 " " $3 }' | sort -u >"$tmp/edges"
# tsort reports a cycle on stderr and still prints an order.
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/cycle"; then
	echo "check-layers: $lib: files call each other in a cycle:" >&2
	cat "$tmp/cycle" >&2
	exit 1
fi
if [ -s "$tmp/cycle" ]; then
	echo "check-layers: $lib: files call each other in a cycle:" >&2
	cat "$tmp/cycle" >&2
	exit 1
fi
echo "layers: $(basename "$lib"): $(wc -l <"$tmp/edges") calls between files, no cycle"
