#!/usr/bin/env bash
# Service life: both daemons tell systemd they are ready and keep its
# watchdog fed; SIGTERM stops them cleanly; the CLI fails with one line
# and a non-zero status when it cannot get an answer.
. "$(dirname "$0")/lib.sh"
SINK="$FLT_BIN/tests/tools/flt-notify-sink"

"$SINK" "$T/coord.notify" 4 >"$T/coord.notes" &
PIDS[csink]=$!
"$SINK" "$T/agent.notify" 4 >"$T/agent.notes" &
PIDS[asink]=$!
wait_for 5 "the notify sinks listening" test -S "$T/coord.notify" -a -S "$T/agent.notify"
NOTIFY_SOCKET="$T/coord.notify" WATCHDOG_USEC=400000 start_coord
NOTIFY_SOCKET="$T/agent.notify" WATCHDOG_USEC=400000 start_agent a1
wait_for 5 "a1 ready" is_status a1 ready
wait "${PIDS[csink]}" "${PIDS[asink]}"
unset 'PIDS[csink]' 'PIDS[asink]'
for who in coord agent; do
	grep -qx "READY=1" "$T/$who.notes" || fail "$who sent no READY=1: $(cat "$T/$who.notes")"
	n=$(grep -cx "WATCHDOG=1" "$T/$who.notes" || true)
	# Half the 400 ms watchdog for about 3 s: expect well over 5 pings.
	[ "$n" -ge 5 ] || fail "$who fed the watchdog $n times in ~3 s"
done
pass "READY=1 and WATCHDOG=1 reach systemd from both daemons"

kill -TERM "${PIDS[a1]}"
rc=0; wait "${PIDS[a1]}" || rc=$?
unset 'PIDS[a1]'
[ $rc = 0 ] || fail "agent exited $rc on SIGTERM"
kill -TERM "${PIDS[coord]}"
rc=0; wait "${PIDS[coord]}" || rc=$?
unset 'PIDS[coord]'
[ $rc = 0 ] || fail "coordinator exited $rc on SIGTERM"
grep -q "shutting down signal=Terminated" "$T/coord.log" || fail "no shutdown logged"
pass "SIGTERM stops both daemons with status 0"

rc=0
out=$(timeout 20 "$CLI" node list 2>&1) || rc=$?
[ $rc = 1 ] || fail "CLI with no coordinator exited $rc"
[ "$(echo "$out" | wc -l)" = 1 ] || fail "CLI error is not one line: $out"
echo "$out" | grep -q "^flotilla: cannot reach coordinator at $API" || fail "unclear CLI error: $out"
rc=0
out=$(timeout 20 "$CLI" --address "tcp://127.0.0.1:$(free_port)" node list 2>&1) || rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "Connection refused" || fail "unreachable tcp: $rc $out"
rc=0
out=$(timeout 20 "$CLI" node frobnicate 2>&1) || rc=$?
[ $rc = 2 ] && echo "$out" | grep -q 'unknown command "node frobnicate"' || fail "bad command: $rc $out"
pass "CLI errors: one line, non-zero status ($out)"

# A peer that answers garbage: the CLI reports a bad reply, not a crash.
start_coord
rc=0
out=$(timeout 20 "$CLI" --address "$LISTEN" node list 2>&1) || rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "not served on the agent port" || fail "wrong port: $rc $out"
pass "CLI pointed at the agent port says so ($out)"
