#!/usr/bin/env bash
# Damaged stores are refused, never served. A real coordinator store with a
# few jobs, then, each on a copy of it: an empty and a missing data.mdb
# beside the store's marker, the file cut to half, every page in turn
# zeroed and filled with random bytes, and one bit flipped in each copy of
# a job's bytes. Each start must either refuse with a message that names
# the damage (an exit status below 128: never a signal), or serve exactly
# the jobs that were stored.
. "$(dirname "$0")/lib.sh"

# An agent's store first (it holds the agent's identity), on a
# coordinator of its own.
start_coord
start_agent a1
wait_for 10 "agent a1 ready" bash -c "[ \"\$('$CLI' node list --json | jq -r '.[0].status')\" = ready ]"
NODE_ID=$("$CLI" node list --json | jq -r '.[0].id')
for p in a1 coord; do
	kill "${PIDS[$p]}"
	wait "${PIDS[$p]}" 2>/dev/null || true
	unset "PIDS[$p]"
done
rm -rf "$T/coord"

# The coordinator's store: jobs without nodes, which stay as they are.
start_coord
for i in 1 2 3; do
	jq -n --arg n "web$i" --arg mark "stored-mark-web$i" '{
	  name: $n,
	  groups: [{name: "g", count: 1,
	    tasks: [{name: "t", command: "/bin/sleep", args: ["100"],
	             env: {MARK: $mark}, resources: {memory_mb: 32}}]}]
	}' >"$T/web$i.json"
	"$CLI" job run --detach "$T/web$i.json" >/dev/null
done

# What the coordinator serves: the list of jobs and each one's history.
served() {
	"$CLI" job list --json
	for i in 1 2 3; do "$CLI" job history "web$i" --json; done
}
served >"$T/want.json"
kill "${PIDS[coord]}"
wait "${PIDS[coord]}" 2>/dev/null || true
unset 'PIDS[coord]'
ORIG="$T/coord"
[ -s "$ORIG/data.mdb" ] || fail "no data.mdb in $ORIG"
grep -q '^id=' "$ORIG/store-id" || fail "no marker beside the store: $(ls "$ORIG")"
SIZE=$(stat -c %s "$ORIG/data.mdb")
PAGE=4096
PAGES=$((SIZE / PAGE))

PORT2=$(free_port)
TRY_API="ipc://$T/try.sock"

# try DIR: starts a coordinator on DIR. Sets state to "refused" (with rc,
# its exit status, and out, its log) or "served" (after checking that what
# it serves is what was stored, and stopping it).
try() {
	local dir=$1 pid i
	state=""
	rc=0
	timeout -s KILL 30 "$COORD" --dev --data-dir "$dir" \
		--listen "tcp://127.0.0.1:$PORT2" --api "$TRY_API" \
		--join-token "$TOKEN" >"$T/try.log" 2>&1 &
	pid=$!
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || break
		if FLOTILLA_ADDR="$TRY_API" timeout 10 "$CLI" job list \
			>/dev/null 2>&1; then
			state=served
			break
		fi
		sleep 0.05
	done
	if [ "$state" = served ]; then
		FLOTILLA_ADDR="$TRY_API" served >"$T/got.json" 2>&1 || true
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		if ! cmp -s "$T/want.json" "$T/got.json"; then
			# An error that names a damaged record is a refusal too;
			# anything else served is changed data.
			grep -q "checksum mismatch\|is damaged" "$T/got.json" ||
				fail "$what: changed data served: $(diff "$T/want.json" "$T/got.json" | head -20)"
		fi
		out=$(cat "$T/try.log")
		return 0
	fi
	wait "$pid" || rc=$?
	out=$(cat "$T/try.log")
	state=refused
	[ "$rc" -ne 0 ] || fail "$what: the coordinator exited 0 on a damaged store: $out"
	[ "$rc" -lt 128 ] || fail "$what: the coordinator died of a signal (status $rc): $out"
}

# copy NAME: a fresh copy of the original store, echoes its directory.
copy() {
	rm -rf "$T/$1"
	cp -a "$ORIG" "$T/$1"
	echo "$T/$1"
}

expect_refused() {
	[ "$state" = refused ] || fail "$what: served, not refused: $out"
	grep -qF "$1" <<<"$out" || fail "$what: the message does not say \"$1\": $out"
	pass "$what: refused, exit $rc: \"$(grep -F "$1" <<<"$out" | head -1 | sed 's/.*msg=//' | cut -c1-200)\""
}

# ---- the original starts and serves ------------------------------------------
what="the undamaged store"
try "$(copy ok)"
[ "$state" = served ] || fail "the undamaged copy was refused: $out"
grep -q "store verified" <<<"$out" || fail "no verification logged: $out"
pass "the undamaged copy is served: $(grep -o 'store verified.*' <<<"$out")"

# ---- empty and missing data.mdb beside the marker --------------------------------
what="0-byte data.mdb"
d=$(copy empty)
: >"$d/data.mdb"
try "$d"
expect_refused "data.mdb is empty but this directory held a store"
[ ! -s "$d/data.mdb" ] || fail "$what: the refused start wrote a store"

what="missing data.mdb"
d=$(copy missing)
rm "$d/data.mdb"
try "$d"
expect_refused "data.mdb is missing but this directory held a store"
[ ! -e "$d/data.mdb" ] || fail "$what: the refused start created a store"

# ---- truncated ---------------------------------------------------------------
what="data.mdb cut to half"
d=$(copy half)
truncate -s $((SIZE / 2)) "$d/data.mdb"
try "$d"
expect_refused "bytes its last used page needs"
[ "$(stat -c %s "$d/data.mdb")" = $((SIZE / 2)) ] || fail "$what: the file changed"

what="data.mdb cut to 100 bytes"
d=$(copy tiny)
truncate -s 100 "$d/data.mdb"
try "$d"
expect_refused "too short to hold LMDB's meta pages"

# ---- every page zeroed, then filled with random bytes ------------------------------
# page_with DIR PAGE SOURCE: overwrites one page of DIR's data.mdb.
page_with() {
	dd if="$3" of="$1/data.mdb" bs=$PAGE seek="$2" count=1 conv=notrunc \
		status=none
}
for kind in zero random; do
	refused=0 served=0
	for ((p = 0; p < PAGES; p++)); do
		what="page $p of $PAGES filled with $kind bytes"
		d=$(copy page)
		if [ $kind = zero ]; then
			page_with "$d" $p /dev/zero
		else
			head -c $PAGE /dev/urandom >"$T/rand.page"
			page_with "$d" $p "$T/rand.page"
		fi
		try "$d"
		if [ "$state" = refused ]; then
			grep -q "damaged\|cut short" <<<"$out" ||
				fail "$what: refused without naming the damage: $out"
			refused=$((refused + 1))
			# The kind of message, without paths and numbers.
			grep -o 'msg=.*' <<<"$out" | head -1 |
				sed -e 's|/[^ ]*||g' -e 's/[0-9][0-9]*/N/g' \
				-e 's/database [a-z_]*/database D/' -e 's/record [^:]*/record R/' \
				-e 's/ (page N.*//' -e 's/: restore.*//' -e 's/; restore.*//' \
				-e 's/^msg=//' >>"$T/kinds.$kind"
		else
			served=$((served + 1))
		fi
	done
	[ $refused -gt 0 ] || fail "no $kind page was refused"
	pass "every page filled with $kind bytes: $refused refused with a message, $served served unchanged (free pages), none crashed"
	sort "$T/kinds.$kind" | uniq -c | sed 's/^/    /'
done
what="meta page 0 zeroed"
d=$(copy meta)
page_with "$d" 0 /dev/zero
try "$d"
expect_refused "the first meta page is damaged"

# ---- one bit flipped in a job's bytes ----------------------------------------------
# Each copy of "stored-mark-web2" in the file (old copies may sit in free
# pages): one bit flipped, one copy at a time.
offsets=$(grep -boa stored-mark-web2 "$ORIG/data.mdb" | cut -d: -f1)
[ -n "$offsets" ] || fail "the job's bytes are not in data.mdb"
refused=0 served=0
for off in $offsets; do
	what="a bit flipped at byte $off"
	d=$(copy flip)
	byte=$(od -An -tu1 -j $((off + 13)) -N1 "$d/data.mdb" | tr -d ' ')
	printf "$(printf '\\%03o' $((byte ^ 1)))" |
		dd of="$d/data.mdb" bs=1 seek=$((off + 13)) conv=notrunc status=none
	try "$d"
	if [ "$state" = refused ]; then
		grep -q "checksum mismatch" <<<"$out" ||
			fail "$what: refused, but not for the checksum: $out"
		msg=$(grep -o 'record [a-z_]*/[^:]*: checksum mismatch' <<<"$out" | head -1)
		refused=$((refused + 1))
	else
		served=$((served + 1))
	fi
done
[ $refused -gt 0 ] || fail "no bit flip was refused"
pass "bit flips in a job's bytes: $refused refused (\"$msg\"), $served in free pages served unchanged"

# ---- the agent's own store -------------------------------------------------------
# try_agent DIR: an agent on DIR must refuse to start (its store is opened
# before it connects anywhere).
try_agent() {
	rc=0
	timeout -s KILL 20 "$AGENT" --dev --data-dir "$1" --coordinator "$LISTEN" \
		--join-token "$TOKEN" --name a1 >"$T/agent-try.log" 2>&1 || rc=$?
	out=$(cat "$T/agent-try.log")
	[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] ||
		fail "$what: the agent exited with status $rc: $out"
}
AORIG="$T/a1"
[ -s "$AORIG/data.mdb" ] && [ -f "$AORIG/store-id" ] || fail "the agent has no store and marker: $(ls "$AORIG")"
what="the agent's 0-byte data.mdb"
rm -rf "$T/ag" && cp -a "$AORIG" "$T/ag"
: >"$T/ag/data.mdb"
try_agent "$T/ag"
grep -qF "data.mdb is empty but this directory held a store" <<<"$out" ||
	fail "$what: $out"
pass "$what: refused, exit $rc"
what="the agent's data.mdb cut to half"
rm -rf "$T/ag" && cp -a "$AORIG" "$T/ag"
truncate -s $(($(stat -c %s "$AORIG/data.mdb") / 2)) "$T/ag/data.mdb"
try_agent "$T/ag"
grep -qF "bytes its last used page needs" <<<"$out" || fail "$what: $out"
pass "$what: refused, exit $rc"
what="a bit flipped in the agent's identity"
rm -rf "$T/ag" && cp -a "$AORIG" "$T/ag"
# Every copy of the node id in the file: the live record is one of them.
for off in $(grep -boa "$NODE_ID" "$T/ag/data.mdb" | cut -d: -f1); do
	byte=$(od -An -tu1 -j $((off + 3)) -N1 "$T/ag/data.mdb" | tr -d ' ')
	printf "$(printf '\\%03o' $((byte ^ 1)))" |
		dd of="$T/ag/data.mdb" bs=1 seek=$((off + 3)) conv=notrunc status=none
done
try_agent "$T/ag"
grep -q "record identity/[^:]*: checksum mismatch" <<<"$out" || fail "$what: $out"
pass "$what: refused, exit $rc: \"$(grep -o 'record identity/[^:]*: checksum mismatch' <<<"$out" | head -1)\""
