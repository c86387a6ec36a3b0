#!/usr/bin/env bash
# A full disk and a full store, for real: the coordinator's data directory
# on a 4 MiB tmpfs, filled up, then a package pushed with the real CLI; then
# a store whose --map-size is too small. The operator must read the cause
# and the directory (not "Input/output error"), lose nothing acknowledged,
# keep reading, and write again once there is room.
#
# The tmpfs is mounted in a private mount namespace: this test's alone,
# gone with it.
. "$(dirname "$0")/mountns.sh"
. "$(dirname "$0")/lib.sh"

DATA="$T/coord"
mkdir -p "$DATA"
mount -t tmpfs -o size=4m,mode=0700 tmpfs "$DATA" ||
	skip "cannot mount a tmpfs here"
unmount_data() { umount -l "$DATA" 2>/dev/null || true; }
CLEANUP_HOOKS+=(unmount_data)

# push NAME VERSION BYTES: a package of fresh random bytes (chunks are
# stored once per digest: random content always needs new room).
push() {
	head -c "$3" /dev/urandom >"$T/$1-$2.bin"
	rc=0
	out=$(timeout 60 "$CLI" package push "$1" "$2" "$T/$1-$2.bin" \
		--format file 2>&1) || rc=$?
}
listed() { "$CLI" package list --json | jq -e --arg n "$1" 'any(.[]; .name == $n)'; }

start_coord
push before 1.0 300000
[ $rc = 0 ] || fail "push before the disk is full: $out"

# Fill the file system to the last block.
dd if=/dev/zero of="$DATA/filler" bs=64k 2>/dev/null || true
[ "$(stat -f -c %a "$DATA")" = 0 ] || fail "the tmpfs still has room: $(df "$DATA")"

push full 1.0 $((1024 * 1024))
[ $rc != 0 ] || fail "a push to a full disk succeeded"
want="no space left on device (data directory $DATA)"
grep -qF "$want" <<<"$out" || fail "push to a full disk: $out"
! grep -q "Input/output error" <<<"$out" || fail "still an I/O error: $out"
grep -qF "write failed, nothing of it stored error=" "$T/coord.log" &&
	grep -F "write failed" "$T/coord.log" | grep -qF "$want" ||
	fail "the coordinator's log does not name the cause: $(grep 'write failed' "$T/coord.log" | tail -1)"
pass "full disk: \"$(head -1 <<<"$out")\""

kill -0 "${PIDS[coord]}" || fail "the coordinator exited on a full disk"
listed before >/dev/null || fail "an acknowledged package is gone"
! listed full >/dev/null || fail "a refused package is listed"
"$CLI" node list >/dev/null || fail "node list on a full disk"
pass "full disk: the coordinator keeps serving reads, the acknowledged package is there"

rm -f "$DATA/filler"
push full 1.0 $((1024 * 1024))
[ $rc = 0 ] || fail "push after freeing space: $out"
listed full >/dev/null || fail "the package pushed after freeing space is not listed"
pass "room again: the same push succeeds without a restart"

# Both survive a crash: acknowledged means on disk.
kill9 coord
start_coord
listed before >/dev/null && listed full >/dev/null ||
	fail "acknowledged packages lost across a restart: $("$CLI" package list 2>&1)"
pass "acknowledged packages survive a restart"

# A map too small for what is pushed: the smallest --map-size.
kill9 coord
umount "$DATA"
rm -rf "$DATA"
start_coord --map-size 16
push small 1.0 300000
[ $rc = 0 ] || fail "push to an empty 16 MiB store: $out"
push big 1.0 $((20 * 1024 * 1024))
[ $rc != 0 ] || fail "20 MiB fitted a 16 MiB map"
want="the store reached its map size of 16 MiB (--map-size; data directory $DATA)"
grep -qF "$want" <<<"$out" || fail "push past the map size: $out"
grep -F "write failed" "$T/coord.log" | grep -qF "$want" ||
	fail "the coordinator's log does not name the map size: $(grep 'write failed' "$T/coord.log" | tail -1)"
kill -0 "${PIDS[coord]}" || fail "the coordinator exited on a full map"
listed small >/dev/null || fail "an acknowledged package is gone"
pass "full map: \"$(head -1 <<<"$out")\""

# Raising --map-size is the way out (a restart: the map is sized at open).
kill -TERM "${PIDS[coord]}"
wait "${PIDS[coord]}" || fail "the coordinator did not stop cleanly"
unset "PIDS[coord]"
start_coord --map-size 64
rc=0
out=$(timeout 60 "$CLI" package push big 1.0 "$T/big-1.0.bin" --format file 2>&1) || rc=$?
[ $rc = 0 ] || fail "push after raising --map-size: $out"
listed small >/dev/null && listed big >/dev/null || fail "packages missing after raising --map-size"
pass "--map-size 64: the same push succeeds, nothing lost"
