#!/usr/bin/env bash
# Resource limits of the task sandbox, each taken to its end by flt-hog
# (tests/sandbox/hog.c) run through `flotilla-agent exec`: memory (the OOM
# killer ends the task and the shim says so), processes (a fork bomb stops
# at max_pids while the host keeps answering) and CPU (a quota holds a busy
# loop to its share; without one the loop gets a whole CPU).
. "$(dirname "$0")/lib.sh"

require_sandbox
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	echo "cgroup v2 (unified hierarchy): the v2 code path runs"
else
	echo "cgroup v1 controllers: the v1 code path runs (v2 is not exercised on this host)"
fi

PROBES_DIR=$(realpath "$FLT_BIN/tests/sandbox")
[ -x "$PROBES_DIR/flt-hog" ] || fail "$PROBES_DIR/flt-hog is not built"
# Seen in place in a host directory the sandbox shows; bound in otherwise.
MOUNTS='[]'
ALLOW=()
case "$(hidden_from_tasks "$PROBES_DIR")" in
yes)
	HOG=/flt-probes/flt-hog
	MOUNTS=$(jq -nc --arg s "$PROBES_DIR" '[{source: $s, target: "/flt-probes"}]')
	ALLOW=(--allow-host-volume "probes=$PROBES_DIR")
	;;
*) HOG=$PROBES_DIR/flt-hog ;;
esac

# hog NAME RESOURCES_JSON ARGS...: writes the spec, prints its path.
hog_spec() {
	local name="lim-$1-$$" res=$2
	shift 2
	jq -n --arg name "$name" --arg cmd "$HOG" --argjson res "$res" \
		--argjson mounts "$MOUNTS" '{name: $name, command: $cmd,
		args: $ARGS.positional, resources: $res, mounts: $mounts}' \
		--args "$@" >"$T/$name.json"
	echo "$T/$name.json"
}

# run SPEC LOG: the task in the foreground; sets RC and OUT.
run() {
	RC=0
	OUT=$(timeout 60 "$AGENT" --data-dir "$T/data" ${ALLOW[@]+"${ALLOW[@]}"} exec "$1" 2>"$2") || RC=$?
}

### Memory: 32 MiB, and a program that wants 512.
spec=$(hog_spec mem '{"memory_mb": 32}' mem 512)
run "$spec" "$T/mem.log"
last=$(grep -o 'allocated_mb=[0-9]*' <<<"$OUT" | tail -n 1 | cut -d= -f2)
echo "mem: exit $RC, last report ${last:-none} MiB; $(cat "$T/mem.log")"
[ "$RC" = 137 ] || fail "memory hog: exit status $RC, want 137 (SIGKILL); output: $OUT"
grep -q "survived" <<<"$OUT" && fail "memory hog was never stopped: $OUT"
[ "${last:-0}" -le 32 ] || fail "memory hog reported ${last} MiB under a 32 MiB limit"
grep -qx "flotilla-shim task=lim-mem-$$ killed by the OOM killer (memory limit 33554432 bytes)" \
	"$T/mem.log" || fail "the shim did not report the OOM kill: $(cat "$T/mem.log")"
pass "memory_mb 32: killed by the OOM killer after ${last:-0} MiB, exit status 137"

### Processes: a fork bomb against max_pids 64, for 3 s.
spec=$(hog_spec fork '{"max_pids": 64}' fork 3)
t0=$(now_ms)
timeout 60 "$AGENT" --data-dir "$T/data" ${ALLOW[@]+"${ALLOW[@]}"} exec "$spec" >"$T/fork.out" 2>"$T/fork.log" &
PIDS[fork]=$!
# Meanwhile the host answers: a trivial command, every 100 ms.
worst=0 probes=0
sleep 0.3
while kill -0 "${PIDS[fork]}" 2>/dev/null; do
	a=$(now_ms)
	date >/dev/null
	b=$(now_ms)
	[ $((b - a)) -gt $worst ] && worst=$((b - a))
	probes=$((probes + 1))
	sleep 0.1
done
RC=0
wait "${PIDS[fork]}" || RC=$?
unset 'PIDS[fork]'
took=$(($(now_ms) - t0))
OUT=$(cat "$T/fork.out")
echo "fork: exit $RC after $took ms: $OUT; host: $probes commands, slowest $worst ms"
[ "$RC" = 0 ] || fail "fork bomb task: exit status $RC: $(cat "$T/fork.log")"
max=$(grep -o 'procs_max=[0-9]*' <<<"$OUT" | cut -d= -f2)
fails=$(grep -o 'failures=[0-9]*' <<<"$OUT" | cut -d= -f2)
[ -n "$max" ] || fail "fork bomb printed no report: $OUT"
grep -q 'fork_errno=EAGAIN' <<<"$OUT" || fail "forks did not fail with EAGAIN: $OUT"
[ "$fails" -gt 0 ] || fail "the bomb never hit the limit: $OUT"
[ "$max" -le 64 ] || fail "$max processes under max_pids 64"
# Near the limit: the limit, not something else, stopped the bomb.
[ "$max" -ge 48 ] || fail "the bomb reached only $max processes of 64"
[ "$probes" -ge 5 ] || fail "only $probes host commands ran during the bomb"
[ "$worst" -lt 1000 ] || fail "a trivial host command took $worst ms during the bomb"
pass "max_pids 64: fork bomb stopped at $max processes (EAGAIN); host commands took at most $worst ms"

### CPU: 3 s of spinning, with a 20% quota and without one.
# What the task's cgroup holds is read while it runs (cpu.max on v2,
# cpu.cfs_quota_us on v1): the quota is set, or none is. What the task gets
# is measured beside the same spinner run on the host at the same time with
# no limit, the reference for what this machine gives a busy process right
# now (the suite may run under load). Shares are each program's CPU time
# over its wall time. The quota holds the task to at most 20% (+8 for the
# kernel's accounting granularity), and to at least 12% unless the
# reference itself got less than twice that; without a quota the task gets
# at least half what the reference gets (tasks share the fleet's parent
# cgroup, so other busy tasks on the host take from it).
cg_quota() { # cg_quota TASK: prints the CPU quota setting of TASK's cgroup
	local f                 # (named TASK-<a suffix of the run's own>)
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		f=$(compgen -G "/sys/fs/cgroup/flotilla/$1-*/cpu.max")
	else
		f=$(compgen -G "/sys/fs/cgroup/cpu/flotilla/$1-*/cpu.cfs_quota_us")
	fi || return 1
	cat "$f" 2>/dev/null
}
cpu_share() { # cpu_share NAME RESOURCES: prints "TASK_PERCENT REF_PERCENT"
	local spec ref poll
	spec=$(hog_spec "$1" "$2" cpu 3)
	# The task's cgroup setting, read once it exists (within 3 s).
	(for _ in $(seq 60); do
		cg_quota "lim-$1-$$" >"$T/$1.quota" && exit 0
		sleep 0.05
	done
	exit 1) &
	poll=$!
	"$PROBES_DIR/flt-hog" cpu 3 >"$T/$1.ref" &
	ref=$!
	run "$spec" "$T/$1.log"
	wait $ref || fail "the reference spinner beside $1 failed"
	wait $poll || fail "task lim-$1-$$ had no cpu cgroup while it ran: $(cat "$T/$1.log")"
	[ "$RC" = 0 ] || fail "cpu hog $1: exit status $RC: $(cat "$T/$1.log")"
	local wall cpu rwall rcpu
	wall=$(grep -o 'wall_ms=[0-9]*' <<<"$OUT" | cut -d= -f2)
	cpu=$(grep -o 'cpu_ms=[0-9]*' <<<"$OUT" | cut -d= -f2)
	rwall=$(grep -o 'wall_ms=[0-9]*' "$T/$1.ref" | cut -d= -f2)
	rcpu=$(grep -o 'cpu_ms=[0-9]*' "$T/$1.ref" | cut -d= -f2)
	[ -n "$wall" ] && [ -n "$cpu" ] && [ "$wall" -gt 0 ] || fail "cpu hog $1 printed no report: $OUT"
	[ -n "$rwall" ] && [ -n "$rcpu" ] && [ "$rwall" -gt 0 ] || fail "the reference beside $1 printed no report: $(cat "$T/$1.ref")"
	echo "cpu $1: $OUT; quota setting: $(cat "$T/$1.quota"); reference: $(cat "$T/$1.ref")" >&2
	echo "$((cpu * 100 / wall)) $((rcpu * 100 / rwall))"
}
# The settings: 20 ms in every 100 ms period, and none.
quota_is() { # quota_is NAME V1_VALUE V2_VALUE
	local got
	got=$(cat "$T/$1.quota")
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		[ "$got" = "$3" ] || fail "task $1's cpu.max is '$got', want '$3'"
	else
		[ "$got" = "$2" ] || fail "task $1's cpu.cfs_quota_us is '$got', want '$2'"
	fi
}

read -r q qref <<<"$(cpu_share cpu20 '{"cpu_quota_percent": 20}')"
quota_is cpu20 20000 "20000 100000"
[ "$q" -le 28 ] || fail "cpu_quota_percent 20: the busy loop got ${q}% of a CPU, want at most 28"
[ "$q" -ge 12 ] || [ "$qref" -lt 24 ] ||
	fail "cpu_quota_percent 20: the busy loop got ${q}% of a CPU while an unlimited one got ${qref}%, want at least 12"
read -r u uref <<<"$(cpu_share cpufree '{}')"
quota_is cpufree -1 "max 100000"
[ $((u * 2)) -ge "$uref" ] ||
	fail "without a quota the busy loop got ${u}% of a CPU while the same loop on the host got ${uref}%"
pass "cpu_quota_percent 20: ${q}% of a CPU (an unlimited loop beside it: ${qref}%); without a quota: ${u}% (beside it: ${uref}%)"

### rlimits, environment and working directory reach the program.
cat >"$T/rl.json" <<J
{"name": "rlimits", "command": "/bin/sh",
 "args": ["-c", "echo nofile=\$(ulimit -n) core=\$(ulimit -c) greeting=\$GREETING pwd=\$(pwd) fds=\$(ls /proc/self/fd | wc -l) \$(grep SigIgn /proc/self/status | tr -d '\\t')"],
 "env": {"GREETING": "hi there"}, "workdir": "/usr",
 "rlimits": [{"name": "nofile", "soft": 64, "hard": 128}, {"name": "core", "soft": 0, "hard": 0}]}
J
run "$T/rl.json" "$T/rl.log"
[ "$RC" = 0 ] || fail "rlimits task: exit $RC: $(cat "$T/rl.log")"
# fds: 0, 1, 2 and the one ls reads /proc/self/fd with; nothing of the
# agent's. No signal ignored (SIGPIPE above all).
[ "$OUT" = "nofile=64 core=0 greeting=hi there pwd=/usr fds=4 SigIgn:0000000000000000" ] ||
	fail "rlimits/env/workdir/fds/signals not as set: $OUT"
pass "rlimits, env and workdir applied; no inherited descriptor or ignored signal ($OUT)"
