#!/usr/bin/env bash
# Task least privilege (docs/security.md): what weakens the sandbox must be
# allowed by the agent that runs it (--allow-*), and a short list is never
# granted at all. The known escape specs (DAC bypass, setuid, Shocker,
# cgroup v1 mounts, host network admin, host paths), each submitted as a
# job: refused at submit time by default, naming the field and the missing
# allowance, with nothing stored; the never-granted ones refused even with
# an agent that allows everything else (and such flags refused when an
# agent starts); the grantable ones placed only on the agent whose flags
# allow them, where the task really holds what it asked (it binds port 80
# with CAP_NET_BIND_SERVICE). The agent checks again: through a symlink
# into its own state, or when run without the flag (exec, --task-dir).
. "$(dirname "$0")/lib.sh"

require_sandbox
JOBSEND="$FLT_BIN/tests/tools/flt-jobsend"
TOOLS=$(realpath "$FLT_BIN/tests/tools")

CLEANUP_HOOKS+=(stop_shims)
start_coord

# ---- never granted: an agent refuses such flags at start ------------------------
mkdir -p "$T/nd"
never_flag() {
	local rc=0 out
	out=$(timeout 10 "$AGENT" --dev --data-dir "$T/nd/agent" --coordinator "$LISTEN" \
		--join-token "$TOKEN" --name never "$@" 2>&1) || rc=$?
	[ $rc = 2 ] || fail "agent started with $*: rc=$rc $out"
	grep -q "$WANT" <<<"$out" || fail "agent with $*: expected '$WANT' in: $out"
	echo "  refused: $* -> $out"
}
WANT="CAP_SYS_MODULE is never granted (loads and unloads kernel modules" never_flag --allow-cap SYS_MODULE
WANT="CAP_SYS_RAWIO is never granted" never_flag --allow-cap cap_sys_rawio
WANT="CAP_SYS_BOOT is never granted" never_flag --allow-cap CAP_SYS_BOOT
WANT="CAP_MAC_ADMIN is never granted" never_flag --allow-cap MAC_ADMIN
WANT="open_by_handle_at: never granted (\"Shocker\"" never_flag --allow-syscall open_by_handle_at
WANT="kexec_load: never granted" never_flag --allow-syscall kexec_load
WANT="init_module: never granted" never_flag --allow-syscall init_module
WANT="/run is never granted" never_flag --allow-host-volume run=/run
WANT="/var/run/docker.sock is never granted\|/var/run is never granted\|/run.* is never granted" \
	never_flag --allow-host-volume docker=/var/run
WANT="/ is never granted" never_flag --allow-host-volume root=/
WANT="/proc is never granted" never_flag --allow-host-volume proc=/proc
WANT="the agent's data directory" never_flag --allow-host-volume mine="$T/nd"
WANT="root (uid or gid 0) is never a task user" never_flag --allow-user root
WANT="not a Linux capability" never_flag --allow-cap NET_ADMINX
pass "never-granted allowances stop the agent at start (exit 2, the reason named)"

# ---- by default: refused at submit time, nothing stored -------------------------
start_agent plain
wait_for 5 "plain ready" is_status plain ready
jobs_now() { "$CLI" job list --json | jq -c 'map(.name) | sort'; }
before=$(jobs_now)

# spec NAME FIELDS: a one-task job in $T/NAME.json; FIELDS is a jq object.
spec() {
	local name=$1 fields=$2
	jq -n --arg n "$name" \
		'{name: $n, groups: [{name: "g", tasks: [{name: "t", command: "/bin/true"} + ('"$fields"')]}]}' \
		>"$T/$name.json"
}
# refused NAME WANT...: the coordinator refuses job NAME with each WANT.
refused() {
	local name=$1 out; shift
	if out=$("$JOBSEND" "$API" "$T/$name.json" 2>&1); then fail "job $name was accepted"; fi
	for w in "$@"; do
		grep -qF -- "$w" <<<"$out" || fail "job $name: expected '$w' in: $out"
	done
	echo "  $name: $out"
}

spec shadow-dac '{command: "/bin/cat", args: ["/etc/shadow"], capabilities: ["CAP_DAC_READ_SEARCH"]}'
spec shadow-override '{command: "/bin/cat", args: ["/etc/shadow"], capabilities: ["CAP_DAC_OVERRIDE"]}'
spec setuid0 '{command: "/bin/sh", args: ["-c", "id -u"], capabilities: ["CAP_SETUID"]}'
spec cgroupv1 '{command: "/bin/sh", args: ["-c", "mkdir -p /alloc/cg && mount -t cgroup -o memory cgroup /alloc/cg"],
	capabilities: ["CAP_SYS_ADMIN"], seccomp: {profile: "unconfined"}}'
spec syscalls '{seccomp: {allow: ["ptrace", "keyctl", "perf_event_open", "io_uring_setup"]}}'
spec netadmin '{command: "/sbin/ip", args: ["link", "set", "lo", "mtu", "1280"], network: "host",
	capabilities: ["CAP_NET_ADMIN"]}'
spec asuser '{user: "1000:1000"}'
spec shocker '{capabilities: ["CAP_DAC_READ_SEARCH"], seccomp: {allow: ["open_by_handle_at"]}}'
spec mountrun '{mounts: [{source: "/run", target: "/hostrun"}]}'
spec mountdata "$(jq -nc --arg s "$T/plain" '{mounts: [{source: $s, target: "/state"}]}')"
spec mountvol '{mounts: [{volume: "tools", target: "/flt-tools"}]}'

refused shadow-dac "groups[0].tasks[0].capabilities[0]: CAP_DAC_READ_SEARCH needs --allow-cap DAC_READ_SEARCH; none of the 1 nodes allows it"
refused shadow-override "groups[0].tasks[0].capabilities[0]: CAP_DAC_OVERRIDE needs --allow-cap DAC_OVERRIDE"
refused setuid0 "groups[0].tasks[0].capabilities[0]: CAP_SETUID needs --allow-cap SETUID"
refused cgroupv1 "groups[0].tasks[0].capabilities[0]: CAP_SYS_ADMIN needs --allow-cap SYS_ADMIN"
refused syscalls "groups[0].tasks[0].seccomp.allow[0]: ptrace needs --allow-syscall ptrace"
refused netadmin "groups[0].tasks[0].network: host needs --allow-host-network"
refused asuser "groups[0].tasks[0].user: 1000:1000 needs --allow-user 1000:1000"
refused shocker "groups[0].tasks[0].seccomp.allow[0]: open_by_handle_at is never granted (\"Shocker\""
refused mountrun "groups[0].tasks[0].mounts[0].source: /run is never granted"
refused mountdata "groups[0].tasks[0].mounts[0].source: $T/plain needs --allow-host-volume"
refused mountvol "groups[0].tasks[0].mounts[0].volume: tools needs --allow-host-volume tools=PATH"
[ "$(jobs_now)" = "$before" ] || fail "a refused job was stored: $(jobs_now)"
pass "each privileged spec refused at submit time with its field and allowance; job list unchanged ($before)"

# ---- an agent that allows the grantable ones --------------------------------------
mkdir -p "$T/vol"
ln -s "$T/wide" "$T/vol/state" # a link from an allowed volume into the agent's state
start_agent wide --label role=wide \
	--allow-cap DAC_READ_SEARCH --allow-cap DAC_OVERRIDE --allow-cap SETUID \
	--allow-cap SYS_ADMIN --allow-cap NET_ADMIN --allow-cap net_bind_service \
	--allow-syscall ptrace --allow-syscall keyctl --allow-syscall perf_event_open \
	--allow-syscall io_uring_setup --allow-seccomp-unconfined --allow-host-network \
	--allow-user 1000:1000 --allow-host-volume "tools=$TOOLS" --allow-host-volume "vol=$T/vol"
wait_for 5 "wide ready" is_status wide ready
"$CLI" node status wide | grep -q "allowances *= cap:CAP_DAC_OVERRIDE cap:CAP_DAC_READ_SEARCH cap:CAP_NET_ADMIN cap:CAP_NET_BIND_SERVICE" ||
	fail "node status does not show the allowances: $("$CLI" node status wide | grep allowances)"

refused shocker "open_by_handle_at is never granted"
refused mountrun "/run is never granted"
[ "$(jobs_now)" = "$before" ] || fail "a refused job was stored: $(jobs_now)"
pass "never-granted specs stay refused with an agent allowing everything else"

# Grantable: placed only on the agent that allows them.
wide_id=$(id_of wide)
for name in shadow-dac shadow-override setuid0 cgroupv1 syscalls netadmin asuser mountvol; do
	out=$("$CLI" job plan "$T/$name.json" --json) || fail "plan of $name: $out"
	[ "$(jq -r '.groups[0].nodes | join(",")' <<<"$out")" = "$wide_id" ] ||
		fail "$name not planned on wide alone: $out"
done
jq '.groups[0].count = 2 | .groups[0].constraints = [{operator: "distinct_hosts"}]' \
	"$T/shadow-dac.json" >"$T/two.json"
rc=0
out=$("$CLI" job plan "$T/two.json") || rc=$?
grep -q "1 of 2 allocations not placed: 1 nodes do not allow cap CAP_DAC_READ_SEARCH (tasks\[0\].capabilities\[0\]: --allow-cap DAC_READ_SEARCH)" <<<"$out" ||
	fail "the plan does not say why: rc=$rc $out"
pass "grantable specs are planned on the allowing agent only; the plan names the missing allowance"

# The task really holds what it asked: flt-httpd binds port 80 as nobody
# with CAP_NET_BIND_SERVICE (in its own network: tcp check on port 80).
jq -n '{name: "port80", groups: [{name: "g", tasks: [{name: "httpd",
	command: "/flt-tools/flt-httpd", args: ["80", "/alloc/state"],
	network: "private", capabilities: ["CAP_NET_BIND_SERVICE"],
	mounts: [{volume: "tools", target: "/flt-tools"}],
	checks: [{name: "p80", type: "tcp", address: "127.0.0.1:80",
	          interval_ms: 500, timeout_ms: 400, failures: 2}]}]}]}' >"$T/port80.json"
"$CLI" job run "$T/port80.json" --detach >/dev/null || fail "job port80 refused"
alloc_json() { "$CLI" job status "$1" --json | jq -c '[.allocs[] | select(.desired == "run")][0]'; }
healthy80() { [ "$(alloc_json port80 | jq -r '.tasks[0].checks[0].healthy // false')" = true ]; }
wait_for 20 "port80 healthy (bound port 80)" healthy80
[ "$(alloc_json port80 | jq -r .node_id)" = "$wide_id" ] || fail "port80 not on wide: $(alloc_json port80)"
# Without the capability the same program cannot bind port 80.
jq -n --arg c "$TOOLS/flt-httpd" '{name: "nocap80", command: "/flt-tools/flt-httpd",
	args: ["80", "/alloc/state"], network: "private",
	mounts: [{volume: "tools", target: "/flt-tools"}]}' >"$T/nocap80.json"
rc=0
timeout 20 "$AGENT" --data-dir "$T/exec" --allow-host-volume "tools=$TOOLS" exec "$T/nocap80.json" \
	>"$T/nocap80.out" 2>&1 || rc=$?
[ $rc != 0 ] && grep -qi "permission denied\|bind" "$T/nocap80.out" ||
	fail "flt-httpd bound port 80 without the capability: rc=$rc $(cat "$T/nocap80.out")"
pass "with --allow-cap NET_BIND_SERVICE the task binds port 80 (healthy tcp check on wide); without, bind fails"

# ---- the agent checks again ------------------------------------------------------
# A source inside an allowed volume that leads, through a symlink, into the
# agent's own state: the coordinator sees a path inside the volume, the
# agent sees where it leads and refuses; the task never starts.
spec viasymlink "$(jq -nc --arg s "$T/vol/state" '{mounts: [{source: $s, target: "/state"}]}')"
"$CLI" job run "$T/viasymlink.json" --detach >/dev/null || fail "job viasymlink refused at submit"
msg() { alloc_json viasymlink | jq -r '.tasks[0].message // ""'; }
wait_for 20 "viasymlink refused by the agent" bash -c "'$CLI' job status viasymlink --json | grep -q 'lies in no host volume'"
echo "  viasymlink: $(msg)"
[ "$(alloc_json viasymlink | jq -r '.tasks[0].started_at_ms // 0')" = 0 ] || fail "viasymlink started: $(alloc_json viasymlink)"
pass "a mount through a symlink into the agent's state is refused by the agent, the task never started"

# exec: the same spec refused without the flag, run with it.
echo '{"name": "na", "command": "/bin/true", "capabilities": ["CAP_NET_ADMIN"]}' >"$T/na.json"
rc=0
out=$(timeout 20 "$AGENT" --data-dir "$T/exec" exec "$T/na.json" 2>&1) || rc=$?
[ $rc = 125 ] && grep -qF "capabilities[0]: CAP_NET_ADMIN needs --allow-cap NET_ADMIN, which this agent was not started with" <<<"$out" ||
	fail "exec without --allow-cap: rc=$rc $out"
timeout 20 "$AGENT" --data-dir "$T/exec" --allow-cap NET_ADMIN exec "$T/na.json" ||
	fail "exec with --allow-cap NET_ADMIN failed"
# A writable volume: written only when the volume allows :rw and the spec
# asks "writable"; read-only otherwise.
mkdir -m 0777 "$T/rw"
rwspec() {
	jq -n --argjson w "$1" '{name: "rw", command: "/bin/sh", args: ["-c", "echo hi >/rw/out"],
		mounts: [{volume: "rw", target: "/rw", writable: $w}]}' >"$T/rw.json"
}
rwspec true
rc=0
out=$(timeout 20 "$AGENT" --data-dir "$T/exec" --allow-host-volume "rw=$T/rw" exec "$T/rw.json" 2>&1) || rc=$?
[ $rc = 125 ] && grep -qF "mounts[0].volume: rw read-write needs --allow-host-volume rw=PATH:rw" <<<"$out" ||
	fail "a writable mount of a read-only volume: rc=$rc $out"
timeout 20 "$AGENT" --data-dir "$T/exec" --allow-host-volume "rw=$T/rw:rw" exec "$T/rw.json" ||
	fail "a writable mount of a :rw volume failed"
[ "$(cat "$T/rw/out")" = hi ] || fail "the task did not write to its writable volume"
rm "$T/rw/out"
rwspec false
rc=0
timeout 20 "$AGENT" --data-dir "$T/exec" --allow-host-volume "rw=$T/rw:rw" exec "$T/rw.json" >/dev/null 2>&1 || rc=$?
[ $rc != 0 ] && [ ! -e "$T/rw/out" ] || fail "a read-only mount was written: rc=$rc"
pass "host volumes: read-write only with :rw and \"writable\", read-only otherwise"

# --task-dir: a static task asking more than the agent allows is never run.
mkdir -p "$T/specs"
echo '{"name": "hostnet", "command": "/bin/sleep", "args": ["100"], "network": "host"}' >"$T/specs/hostnet.json"
start_agent static --task-dir "$T/specs"
wait_for 10 "static's refusal logged" grep -q 'task spec refused.*network: host needs --allow-host-network' "$T/static.log"
pass "the agent refuses what it does not allow (exec exit 125, --task-dir spec not run)"
