#!/usr/bin/env bash
# Task supervision by a running agent: logs and their rotation, the restart
# policy, stop with grace then kill, a daemonised grandchild dying with its
# task, health checks of each kind going unhealthy and back, and an agent
# killed with -9 while tasks run: the tasks keep running, and an exit that
# happened while it was away is reported with its real status.
. "$(dirname "$0")/lib.sh"

require_sandbox
HTTPD="$FLT_BIN/tests/tools/flt-httpd"
# Tasks see the host's top-level directories except /tmp, /home, /root and
# /run: a build tree there is bound in read-only.
TOOLS_MOUNT='[]'
TOOLS_ALLOW=()
case "$(hidden_from_tasks "$FLT_BIN")" in
yes)
	TOOLS_MOUNT=$(jq -nc --arg s "$(realpath "$FLT_BIN/tests/tools")" '[{source: $s, target: "/flt-tools"}]')
	TOOLS_ALLOW=(--allow-host-volume "tools=$(realpath "$FLT_BIN/tests/tools")")
	HTTPD=/flt-tools/flt-httpd
	;;
esac
SPECS="$T/specs"
mkdir -p "$SPECS"
TASKS="$T/agent/tasks"

task_json() { "$CLI" node status agent --json | jq -c --arg t "$1" '.tasks[] | select(.name == $t)'; }
task_field() { task_json "$1" | jq -r "$2"; }
task_is() { [ "$(task_field "$1" .state)" = "$2" ]; }
check_is() { [ "$(task_field "$1" ".checks[] | select(.name == \"$2\") | .healthy")" = "$3" ]; }
status_of_file() { sed -n "s/^$2 //p" "$TASKS/$1/status"; }
file_state_is() { [ "$(status_of_file "$1" state)" = "$2" ]; }

# The tasks sleep for SLP0, SLP5 and SLP6 seconds: numbers of this run's
# own, so that pgrep never sees another test's processes.
SLP="1$$"
cleanup_tasks() {
	stop_shims
	pkill -9 -f "sleep ${SLP}[0567]\$" 2>/dev/null || true
}
CLEANUP_HOOKS+=(cleanup_tasks)

start_coord
start_agent agent --task-dir "$SPECS" ${TOOLS_ALLOW[@]+"${TOOLS_ALLOW[@]}"}
wait_for 5 "agent ready" is_status agent ready

port=$(free_port)
cat >"$SPECS/chatty.json" <<J
{"name": "chatty", "command": "/bin/sh",
 "args": ["-c", "i=0; while [ \$i -lt 400 ]; do echo line-\$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=\$((i+1)); done; echo err-line >&2; exec sleep ${SLP}0"],
 "logs": {"max_file_bytes": 4096, "max_files": 2}}
J
# 4 MiB in large writes, as fast as the pipe takes them: every byte must
# reach the log (the task's end of its output pipe blocks; it never sees
# EAGAIN).
cat >"$SPECS/bulk.json" <<J
{"name": "bulk", "command": "/bin/sh",
 "args": ["-c", "head -c 4194304 /dev/zero || echo HEAD-FAILED >&2; echo bulk-done; exec sleep ${SLP}7"],
 "logs": {"max_file_bytes": 16777216}}
J
cat >"$SPECS/crash.json" <<J
{"name": "crash", "command": "/bin/sh", "args": ["-c", "exit 3"],
 "restart": {"attempts": 2, "interval_ms": 60000, "delay_ms": 100}}
J
cat >"$SPECS/graceful.json" <<J
{"name": "graceful", "command": "/bin/sh",
 "args": ["-c", "trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done"],
 "kill_timeout_ms": 5000}
J
cat >"$SPECS/stubborn.json" <<J
{"name": "stubborn", "command": "/bin/sh",
 "args": ["-c", "trap '' TERM; while :; do sleep 0.1; done"],
 "kill_timeout_ms": 1000}
J
cat >"$SPECS/daemon.json" <<J
{"name": "daemon", "command": "/bin/sh",
 "args": ["-c", "(setsid sh -c 'exec sleep ${SLP}5' &) ; exec sleep ${SLP}6"]}
J
cat >"$SPECS/exiter.json" <<J
{"name": "exiter", "command": "/bin/sh",
 "args": ["-c", "while [ ! -e /alloc/go ]; do sleep 0.1; done; exit 7"]}
J
cat >"$SPECS/pwr.json" <<J
{"name": "pwr", "command": "/bin/sh",
 "args": ["-c", "trap 'exit 0' PWR; while :; do sleep 0.1; done"],
 "stop_signal": "SIGPWR", "kill_timeout_ms": 5000}
J
cat >"$SPECS/svc.json" <<J
{"name": "svc", "command": "$HTTPD", "args": ["$port", "/alloc/state"],
 "network": "private", "mounts": $TOOLS_MOUNT,
 "checks": [
  {"name": "exec", "type": "exec", "command": ["/bin/sh", "-c", "test -e /alloc/healthy"],
   "interval_ms": 500, "timeout_ms": 400, "failures": 2},
  {"name": "tcp", "type": "tcp", "address": "127.0.0.1:$port",
   "interval_ms": 500, "timeout_ms": 400, "failures": 2},
  {"name": "http", "type": "http", "address": "127.0.0.1:$port", "path": "/health",
   "interval_ms": 500, "timeout_ms": 400, "failures": 2}]}
J

for t in chatty graceful stubborn daemon exiter svc pwr; do
	wait_for 10 "$t running" task_is $t running
done
pass "seven tasks running under their shims"

# Logs: captured, rotated at 4 KiB, two rotated files kept.
wait_for 10 "stderr captured" grep -q err-line "$TASKS/chatty/logs/stderr.log"
[ -e "$TASKS/chatty/logs/stdout.log.2" ] || fail "stdout was not rotated twice"
[ ! -e "$TASKS/chatty/logs/stdout.log.3" ] || fail "more rotated files than max_files"
for f in "$TASKS"/chatty/logs/stdout.log*; do
	[ "$(stat -c %s "$f")" -le 4096 ] || fail "$f is larger than 4096 bytes"
done
tail -n 1 "$TASKS/chatty/logs/stdout.log" | grep -q "^line-399-" || fail "last line missing"
pass "logs captured and rotated at the configured size"
wait_for 20 "bulk's output logged" grep -q bulk-done "$TASKS/bulk/logs/stdout.log"
[ "$(stat -c %s "$TASKS/bulk/logs/stdout.log")" = $((4194304 + 10)) ] ||
	fail "bulk wrote 4194314 bytes, the log has $(stat -c %s "$TASKS/bulk/logs/stdout.log"): $(cat "$TASKS/bulk/logs/stderr.log")"
! grep -q HEAD-FAILED "$TASKS/bulk/logs/stderr.log" || fail "bulk's writes failed: $(cat "$TASKS/bulk/logs/stderr.log")"
pass "4 MiB written at once reach the log whole"

# Restart policy: two restarts, then failed.
wait_for 10 "crash failed" task_is crash failed
[ "$(task_field crash .restarts)" = 2 ] || fail "crash restarted $(task_field crash .restarts) times"
[ "$(task_field crash .exit_code)" = 3 ] || fail "crash exit code $(task_field crash .exit_code)"
task_field crash .message | grep -q "restart policy exhausted" || fail "no reason: $(task_field crash .message)"
pass "restart policy: 2 restarts, then failed with exit code 3"

# Health checks: each kind goes unhealthy and back.
echo ok >"$TASKS/svc/alloc/state"
touch "$TASKS/svc/alloc/healthy"
for c in exec tcp http; do wait_for 10 "$c healthy" check_is svc $c true; done
wait_for 5 "svc healthy" [ "$(task_field svc .healthy)" = true ]
rm "$TASKS/svc/alloc/healthy"
wait_for 10 "exec unhealthy" check_is svc exec false
[ "$(task_field svc .healthy)" = false ] || fail "task healthy with a failing check"
touch "$TASKS/svc/alloc/healthy"
wait_for 10 "exec healthy again" check_is svc exec true
echo 503 >"$TASKS/svc/alloc/state"
wait_for 10 "http unhealthy on 503" check_is svc http false
check_is svc tcp true || fail "tcp should stay healthy while http answers 503"
echo down >"$TASKS/svc/alloc/state"
wait_for 10 "tcp unhealthy when nothing listens" check_is svc tcp false
echo ok >"$TASKS/svc/alloc/state"
wait_for 10 "tcp healthy again" check_is svc tcp true
wait_for 10 "http healthy again" check_is svc http true
pass "exec, tcp and http checks turn unhealthy and back (task in its own network namespace)"

# The agent dies; tasks live on; an exit in between is not lost.
svc_pid=$(status_of_file svc init_pid)
kill9 agent
sleep 1
kill -0 "$svc_pid" || fail "a task died with the agent"
touch "$TASKS/exiter/alloc/go"
wait_for 10 "exiter exited while the agent was away" file_state_is exiter failed
start_agent agent --task-dir "$SPECS" ${TOOLS_ALLOW[@]+"${TOOLS_ALLOW[@]}"}
wait_for 10 "exiter reported" task_is exiter failed
[ "$(task_field exiter .exit_code)" = 7 ] || fail "exiter reported exit code $(task_field exiter .exit_code), want 7"
task_is svc running || fail "svc not running after the agent came back"
[ "$(status_of_file svc init_pid)" = "$svc_pid" ] || fail "svc was restarted"
grep -q "task re-attached task=svc" "$T/agent.log" || fail "no re-attach logged"
pass "agent kill -9: tasks kept running, exit status 7 collected after restart"

# Stop: grace, then kill; a daemonised grandchild goes with its task.
pgrep -f "sleep ${SLP}5\$" >/dev/null || fail "the daemonised grandchild never started"
wall0=$(( $(date +%s%N) / 1000000 ))
rm "$SPECS/graceful.json" "$SPECS/stubborn.json" "$SPECS/daemon.json"
wait_for 10 "graceful stopped" file_state_is graceful stopped
wait_for 10 "stubborn stopped" file_state_is stubborn stopped
[ "$(status_of_file graceful exit_code)" = 0 ] || fail "graceful did not exit 0 on SIGTERM"
[ "$(status_of_file stubborn exit_signal)" = 9 ] || fail "stubborn not killed: $(cat "$TASKS/stubborn/status")"
s_end=$(status_of_file stubborn finished_at_ms)
g_end=$(status_of_file graceful finished_at_ms)
[ $((s_end - wall0)) -ge 1000 ] || fail "stubborn killed $((s_end - wall0)) ms after the stop, before its 1000 ms timeout"
[ $((g_end - wall0)) -lt 4000 ] || fail "graceful took $((g_end - wall0)) ms to stop (its kill timeout is 5000)"
wait_for 10 "daemon stopped" file_state_is daemon stopped
! pgrep -f "sleep ${SLP}[56]\$" >/dev/null || fail "a process of the daemon task survived its stop"
pass "stop: SIGTERM honoured (exit 0), ignored SIGTERM killed after the timeout, daemonised grandchild gone"

# Any stop signal reaches the program (pid 1 forwards them all).
rm "$SPECS/pwr.json"
wait_for 10 "pwr stopped" file_state_is pwr stopped
[ "$(status_of_file pwr exit_code)" = 0 ] || fail "SIGPWR did not reach the task: $(cat "$TASKS/pwr/status")"
pass "a stop signal outside the common ones (SIGPWR) is delivered"

# A foreground exec of the same name has a cgroup of its own.
svc_pid=$(status_of_file svc init_pid)
echo '{"name": "svc", "command": "/bin/true"}' >"$T/svc-exec.json"
"$AGENT" --data-dir "$T/other" exec "$T/svc-exec.json" || fail "exec of a same-named task failed"
sleep 1
task_is svc running && [ "$(status_of_file svc init_pid)" = "$svc_pid" ] ||
	fail "an exec of the same name disturbed the running task"
pass "same-named exec leaves the running task alone"

# A supervisor killed outright takes its task with it.
chatty_shim=$(status_of_file chatty shim_pid)
pgrep -f "sleep ${SLP}0\$" >/dev/null || fail "chatty is not running"
kill -9 "$chatty_shim"
wait_for 5 "chatty's program gone with its supervisor" bash -c "! pgrep -f '[s]leep ${SLP}0\$'"
wait_for 10 "chatty reported failed" task_is chatty failed
task_field chatty .message | grep -q "supervisor exited unexpectedly" || fail "no reason: $(task_field chatty .message)"
pass "kill -9 of a shim ends its task, reported as failed"
