#!/usr/bin/env bash
# A full disk under a running task, for real: the agent's data directory
# (its store, its tasks and their logs) on a 4 MiB tmpfs, filled up while a
# task writes to stdout. The task must keep running (a log that cannot be
# written must not close its pipe: SIGPIPE would kill it for a reason not
# its own), the shim must say which log and why, and the log must grow
# again once there is room.
#
# The tmpfs is mounted in a private mount namespace: this test's alone.
. "$(dirname "$0")/mountns.sh"
. "$(dirname "$0")/lib.sh"

require_sandbox
DATA="$T/agent"
mkdir -p "$DATA"
mount -t tmpfs -o size=4m,mode=0700 tmpfs "$DATA" ||
	skip "cannot mount a tmpfs here"
# The tmpfs goes with the namespace: keep what a failure must show.
keep_logs() {
	cp "$DATA/tasks/talker/shim.log" "$T/shim.log" 2>/dev/null || true
	df "$DATA" >"$T/df.log" 2>&1 || true
}
unmount_data() { umount -l "$DATA" 2>/dev/null || true; }
cleanup_tasks() { stop_shims; }
CLEANUP_HOOKS+=(keep_logs cleanup_tasks unmount_data)

SPECS="$T/specs"
mkdir -p "$SPECS"
LOGS="$DATA/tasks/talker/logs"
task_json() { "$CLI" node status agent --json | jq -c --arg t "$1" '.tasks[] | select(.name == $t)'; }
task_field() { task_json "$1" | jq -r "$2"; }
task_is() { [ "$(task_field "$1" .state)" = "$2" ]; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
grown() { [ "$(size_of "$LOGS/stdout.log")" -gt "$1" ]; }

start_coord
start_agent agent --task-dir "$SPECS"
wait_for 5 "agent ready" is_status agent ready

# A line every 20 ms, with no rotation to fall back on (one big file).
cat >"$SPECS/talker.json" <<J
{"name": "talker", "command": "/bin/sh",
 "args": ["-c", "i=0; while :; do echo line-\$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=\$((i+1)); sleep 0.02; done"],
 "logs": {"max_file_bytes": 104857600, "max_files": 1}}
J
wait_for 10 "talker running" task_is talker running
wait_for 10 "talker's output logged" grown 1000
pid=$(sed -n 's/^init_pid //p' "$DATA/tasks/talker/status")

dd if=/dev/zero of="$DATA/filler" bs=64k 2>/dev/null || true
[ "$(stat -f -c %a "$DATA")" = 0 ] || fail "the tmpfs still has room: $(df "$DATA")"
# Long enough for the task to write many lines into a full disk.
sleep 2
kill -0 "$pid" || fail "the task died on a full disk"
task_is talker running || fail "talker is $(task_field talker .state) on a full disk"
[ "$(task_field talker .restarts)" = 0 ] || fail "talker restarted on a full disk"
pass "full disk: the task keeps running, not restarted"

# shim.log is on the full disk too: the shim's word comes once it can be
# written.
before=$(size_of "$LOGS/stdout.log")
rm -f "$DATA/filler"
wait_for 10 "stdout.log to grow again" grown "$before"
want="log written again, output was dropped before path=$LOGS/stdout.log error=\"no space left on device\""
wait_for 10 "the shim to name the log and the cause" grep -qF "$want" "$DATA/tasks/talker/shim.log"
[ "$(sed -n 's/^init_pid //p' "$DATA/tasks/talker/status")" = "$pid" ] ||
	fail "the task was restarted"
kill -0 "$pid" || fail "the task died"
pass "room again: the log grows again, same task; shim.log: \"$want\""
