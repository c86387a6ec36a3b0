# Shared helpers for the integration tests: start the real programs on
# loopback with throw-away state, wait for conditions, clean up.
# Each test sources this file; FLT_BIN names the build directory.
set -euo pipefail

: "${FLT_BIN:?FLT_BIN must name the build directory}"
COORD="$FLT_BIN/coordinator/flotilla-coordinator"
AGENT="$FLT_BIN/agent/flotilla-agent"
CLI="$FLT_BIN/cli/flotilla"
RAWSEND_BIN="$FLT_BIN/tests/tools/flt-rawsend"
TOKEN="test-join-token-0123456789"

T=$(mktemp -d /tmp/flotilla-it.XXXXXX)
declare -A PIDS=()

# Tests add functions here to run at exit, before the processes go.
CLEANUP_HOOKS=()

cleanup() {
	local rc=$?
	for h in "${CLEANUP_HOOKS[@]}"; do "$h" || true; done
	for p in "${PIDS[@]}"; do
		{ kill -9 "$p" && wait "$p"; } 2>/dev/null || true
	done
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		echo "--- logs of the failed test ($T) ---"
		# The coordinator's log is where a test's story is told: more
		# of it (the 300 last lines), 30 of every other.
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "== $f"
			case ${f##*/} in coord.log) tail -n 300 "$f" ;; *) tail -n 30 "$f" ;; esac
		done
	fi
	[ -n "${FLT_KEEP:-}" ] || rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Every probe has a deadline: a hung peer fails the test, never stalls it.
RAWSEND() { timeout 20 "$RAWSEND_BIN" "$@"; }
RAWSEND="RAWSEND"
pass() { echo "ok - $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# A TCP port nobody listens on right now, below the kernel's ephemeral
# range (so outgoing connections of other programs never take it).
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	for _ in $(seq 1 100); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"; return 0
		fi
	done
	return 1
}

LISTEN="tcp://127.0.0.1:$(free_port)"
API="ipc://$T/api.sock"
export FLOTILLA_ADDR="$API"
TTL=3

start_coord() {
	"$COORD" --dev --data-dir "$T/coord" --listen "$LISTEN" --api "$API" \
		--join-token "$TOKEN" --heartbeat-ttl "$TTL" "$@" \
		>>"$T/coord.log" 2>&1 &
	PIDS[coord]=$!
	wait_for 5 "coordinator API" "$CLI" node list
}

# start_agent NAME [extra flags]
start_agent() {
	local name=$1; shift
	"$AGENT" --dev --data-dir "$T/$name" --coordinator "$LISTEN" \
		--join-token "$TOKEN" --name "$name" "$@" >>"$T/$name.log" 2>&1 &
	PIDS[$name]=$!
}

# stop_shims: shims outlive their agent by design; stops those this test
# started, whose task directories are under $T (TERM, then KILL).
stop_shims() {
	pkill -f "flotilla-shim $T/" 2>/dev/null || true
	sleep 0.2
	pkill -9 -f "flotilla-shim $T/" 2>/dev/null || true
}

kill9() {
	{ kill -9 "${PIDS[$1]}" && wait "${PIDS[$1]}"; } 2>/dev/null || true
	unset "PIDS[$1]"
}

# wait_for SECONDS WHAT COMMAND...: retries COMMAND every 0.1 s.
wait_for() {
	local secs=$1 what=$2; shift 2
	local end=$(( $(date +%s%N) + secs * 1000000000 ))
	while [ "$(date +%s%N)" -lt $end ]; do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	fail "timed out after ${secs}s waiting for $what"
}

# Skips (77) unless this host can run sandboxed tasks: root, namespaces,
# and a writable cgroup hierarchy (v2 with memory, or v1 memory/cpu/pids).
require_sandbox() {
	[ "$(id -u)" = 0 ] || skip "needs root: the agent sets up namespaces, mounts and cgroups"
	command -v unshare >/dev/null &&
		unshare --mount --pid --uts --ipc --net --fork true 2>/dev/null ||
		skip "creating namespaces is not permitted here"
	local r=/sys/fs/cgroup
	if [ -f $r/cgroup.controllers ]; then
		grep -qw memory $r/cgroup.controllers && [ -w $r ]
	else
		[ -w $r/memory ] && [ -w $r/cpu ] && [ -w $r/pids ]
	fi || skip "no writable cgroup hierarchy under /sys/fs/cgroup"
}

# "yes" when tasks do not see PATH: they see only the host's /usr and its
# links (/bin, /sbin, /lib...) and a curated /etc, so a build tree or a
# test's files anywhere else are bound in with a "mounts" entry.
hidden_from_tasks() {
	case "$(realpath "$1")/" in
	/usr/* | /bin/* | /sbin/* | /lib/* | /lib32/* | /lib64/* | /libx32/*) echo no ;;
	*) echo yes ;;
	esac
}

# fake_last METHOD FILE: the last whole line for METHOD in flt-fakecoord's
# JSON-lines log FILE. A line still being written (a report with an
# inventory takes several writes) is left out.
fake_last() {
	grep "\"method\":\"$1\"" "$2" | tail -n 2 | jq -c -R 'fromjson? // empty' | tail -n 1
}

nodes_json() { "$CLI" node list --json; }
status_of() { nodes_json | jq -r --arg n "$1" '.[] | select(.name == $n) | .status'; }
id_of() { nodes_json | jq -r --arg n "$1" '.[] | select(.name == $n) | .id'; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
count_nodes() { nodes_json | jq length; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
