#!/usr/bin/env bash
# A bad patch, side by side: how long Flotilla and an Ansible rolling
# update each take to notice that a patch breaks the service on the canary,
# switch it back and stop the rollout, with each tool's default settings.
#
# Flotilla: builds (Release, in build-bench), starts a coordinator and
# HOSTS real agents on loopback (sandboxed tasks: needs root), runs a
# system job whose task reads /packages/app/VERSION every 0.5 s and whose
# exec check (every CHECK_INTERVAL ms, the default 3 failures in a row)
# refuses a package holding a BROKEN file, installs app 1.0 everywhere with
# a campaign, then ROUNDS times pushes a broken version and creates a
# campaign with the defaults (canary 1, batch 25%, max failures 0, on
# failure pause, min healthy 30 s, host timeout 10 m). It times
# `campaign create` -> the campaign is paused, and checks that the canary
# counts failed, is back on the previous version with its task healthy,
# and no other host was touched; then aborts the campaign.
#
# Ansible (ansible-playbook, Debian's ansible-core; skipped with a note when
# it is not installed): HOSTS hosts with ansible_connection=local, each a
# directory with releases/, a `current` link and the same service loop.
# The playbook is a classic rolling update: serial [1, 25%],
# max_fail_percentage 0, per host unarchive the release, switch the link,
# restart the service, check it the same way (until/retries 3, delay
# CHECK_INTERVAL), and in a rescue block switch back, restart and fail the
# host. It times ansible-playbook from start to exit, ROUNDS times.
#
# The two run in the same script on the same machine, one after the other
# per round. Prints a report and one JSON line; raw outputs stay in $OUT.
#
#   sudo bench/run-failpatch-bench.sh
#   HOSTS=50 ROUNDS=5 sudo bench/run-failpatch-bench.sh
#
# Environment: HOSTS (20), ROUNDS (3), CHECK_INTERVAL (1000 ms), BUILD
# (build-bench), OUT (a new /tmp/failpatch-bench.* directory), ANSIBLE
# (1; 0 skips the Ansible side).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. "$top/bench/lib.sh"

hosts=${HOSTS:-20}
rounds=${ROUNDS:-3}
interval=${CHECK_INTERVAL:-1000}
build=${BUILD:-$top/build-bench}
out=${OUT:-$(mktemp -d /tmp/failpatch-bench.XXXXXX)}
ansible=${ANSIBLE:-1}
mkdir -p "$out"
me=run-failpatch-bench.sh

[ "$(id -u)" = 0 ] || { echo "$me: needs root (the agents run sandboxed tasks)" >&2; exit 1; }
command -v jq >/dev/null || { echo "$me: needs jq" >&2; exit 1; }
if [ "$ansible" = 1 ] && ! command -v ansible-playbook >/dev/null; then
	echo "$me: ansible-playbook is not installed (apt-get install ansible-core); measuring Flotilla only" >&2
	ansible=0
fi

echo "building (Release) in $build"
cmake -S . -B "$build" -DFLT_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" -j2 flotilla-coordinator flotilla-agent flotilla-shim flotilla-cli >/dev/null
coord_bin=$build/coordinator/flotilla-coordinator
agent_bin=$build/agent/flotilla-agent
cli=$build/cli/flotilla

ms() { date +%s%3N; }
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pkill -f "flotilla-shim $out/" 2>/dev/null || true
	[ -f "$out/ans/pids" ] && xargs -r kill <"$out/ans/pids" 2>/dev/null || true
	pkill -f "$out/ans/h" 2>/dev/null || true
}
trap cleanup EXIT

# ---- Flotilla ----------------------------------------------------------------
token=failpatch-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
listen=tcp://127.0.0.1:$(free_port)
export FLOTILLA_ADDR=ipc://$out/api.sock
"$coord_bin" --dev --data-dir "$out/coord" --listen "$listen" --api "$FLOTILLA_ADDR" \
	--join-token "$token" >"$out/coord.log" 2>&1 &
pids+=($!)
coordinator_started "$out/coord.log" "${pids[0]}" || { cat "$out/coord.log" >&2; exit 1; }
names=()
for i in $(seq -w 1 "$hosts"); do
	names+=(h$i)
	"$agent_bin" --dev --data-dir "$out/h$i" --coordinator "$listen" --join-token "$token" \
		--name "h$i" --dpkg-status none >"$out/h$i.log" 2>&1 &
	pids+=($!)
done

# until SECONDS WHAT COMMAND...: polls COMMAND every 50 ms.
until_ok() {
	local end=$(($(ms) + $1 * 1000)) what=$2
	shift 2
	while [ "$(ms)" -lt $end ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "$me: timed out waiting for $what" >&2
	exit 1
}
until_ok 30 "$hosts ready nodes" bash -c "[ \$('$cli' node list --json | jq '[.[] | select(.status == \"ready\")] | length') = $hosts ]"

# mkpkg DIR VERSION [broken]: the release tree and its tar.
mkpkg() {
	mkdir -p "$1/$2"
	echo "$2" >"$1/$2/VERSION"
	[ "${3:-}" = broken ] && echo "refuses to start" >"$1/$2/BROKEN"
	tar -C "$1/$2" -cf "$1/app-$2.tar" .
}
mkdir -p "$out/pkg"
mkpkg "$out/pkg" 1.0
"$cli" package push app 1.0 "$out/pkg/app-1.0.tar" >/dev/null
"$cli" campaign create --target 'not managed:app' --install app@1.0 --batch 100% \
	--min-healthy 200ms --host-timeout 60s >"$out/provision.out" ||
	{ cat "$out/provision.out" >&2; exit 1; }

cat >"$out/job.json" <<J
{"name": "shop", "type": "system",
 "groups": [{"name": "web", "count": 1,
   "tasks": [{"name": "web", "command": "/bin/sh",
     "args": ["-c", "while :; do cat /packages/app/VERSION > /alloc/seen.new && mv /alloc/seen.new /alloc/seen; sleep 0.5; done"],
     "uses": ["app"],
     "resources": {"memory_mb": 16, "max_pids": 8},
     "kill_timeout_ms": 500,
     "checks": [{"name": "app", "type": "exec",
                 "command": ["/bin/sh", "-c", "test -s /alloc/seen && test ! -e /packages/app/BROKEN"],
                 "interval_ms": $interval, "timeout_ms": $((interval / 2))}]}]}]}
J
"$cli" job run "$out/job.json" >"$out/job.out" || { cat "$out/job.out" >&2; exit 1; }
healthy() { [ "$("$cli" job status shop --json | jq .summary.healthy)" = "$hosts" ]; }
until_ok 60 "$hosts healthy tasks" healthy

flt_ms=()
for r in $(seq 1 "$rounds"); do
	v=1.$r
	mkpkg "$out/pkg" "$v" broken
	"$cli" package push app "$v" "$out/pkg/app-$v.tar" >/dev/null
	t0=$(ms)
	id=$("$cli" campaign create --detach --json --target "managed:app < $v" \
		--install "app@$v" | jq -r .campaign.id)
	[ -n "$id" ] && [ "$id" != null ] || { echo "$me: campaign create failed" >&2; exit 1; }
	until_ok 660 "campaign $id paused" bash -c "[ \"\$('$cli' campaign status $id --json | jq -r .campaign.state)\" = paused ]"
	t1=$(ms)
	flt_ms+=($((t1 - t0)))
	"$cli" campaign report "$id" --json >"$out/flotilla-report-$r.json"
	canary=$(jq -r '.targets[] | select(.wave == 0) | .node_name' "$out/flotilla-report-$r.json")
	state=$(jq -r '.targets[] | select(.wave == 0) | .state' "$out/flotilla-report-$r.json")
	touched=$(jq '[.targets[] | select(.wave > 0 and .state != "pending")] | length' "$out/flotilla-report-$r.json")
	[ "$state" = failed ] || { echo "$me: round $r: the canary $canary ended $state" >&2; exit 1; }
	[ "$touched" = 0 ] || { echo "$me: round $r: $touched hosts beyond the canary were touched" >&2; exit 1; }
	back=$(readlink "$out/$canary/packages/app/current")
	[ "$back" = 1.0 ] || { echo "$me: round $r: the canary is on $back" >&2; exit 1; }
	until_ok 30 "the canary's task healthy again" healthy
	jq -r --arg t0 "$t0" --arg r "$r" '.targets[] | select(.wave == 0) |
		"flotilla round \($r): canary \(.node_name): dispatched +\(.started_at_ms - ($t0 | tonumber)) ms, judged failed +\(.finished_at_ms - ($t0 | tonumber)) ms: \(.message)"' \
		"$out/flotilla-report-$r.json" >>"$out/flotilla-detail.txt"
	"$cli" campaign abort "$id" >/dev/null
	until_ok 60 "campaign $id aborted" bash -c "case \"\$('$cli' campaign status $id --json | jq -r .campaign.state)\" in aborted|completed) exit 0;; esac; exit 1"
done

# ---- Ansible -----------------------------------------------------------------
ans_ms=()
if [ "$ansible" = 1 ]; then
	a=$out/ans
	mkdir -p "$a"
	svc="while :; do cat $a/HOST/current/VERSION > $a/HOST/seen.new && mv $a/HOST/seen.new $a/HOST/seen; sleep 0.5; done"
	{
		echo "[fleet]"
		for n in "${names[@]}"; do
			echo "$n ansible_connection=local ansible_python_interpreter=/usr/bin/python3 dir=$a/$n"
		done
	} >"$a/inventory"
	for n in "${names[@]}"; do
		mkdir -p "$a/$n/releases/1.0"
		cp "$out/pkg/1.0/VERSION" "$a/$n/releases/1.0/"
		ln -sfn releases/1.0 "$a/$n/current"
		# The service: started by the playbook's restart the same way.
		setsid sh -c "${svc//HOST/$n}" >/dev/null 2>&1 </dev/null &
		echo $! >"$a/$n/pid"
		echo $! >>"$a/pids"
	done
	cat >"$a/rollout.yml" <<Y
- hosts: fleet
  gather_facts: false
  serial: [1, "25%"]
  max_fail_percentage: 0
  vars:
    version: "{{ new_version }}"
    svc: "while :; do cat {{ dir }}/current/VERSION > {{ dir }}/seen.new && mv {{ dir }}/seen.new {{ dir }}/seen; sleep 0.5; done"
  tasks:
    - name: patch, check, or switch back
      block:
        - name: record the running release
          command: readlink {{ dir }}/current
          register: before
          changed_when: false
        - name: stage the release
          file: { path: "{{ dir }}/releases/{{ version }}", state: directory }
        - name: unpack it
          unarchive:
            src: "$out/pkg/app-{{ version }}.tar"
            dest: "{{ dir }}/releases/{{ version }}"
            remote_src: true
        - name: switch
          file: { src: "releases/{{ version }}", dest: "{{ dir }}/current", state: link, force: true }
        - name: restart the service
          shell: |
            kill \$(cat {{ dir }}/pid) 2>/dev/null; rm -f {{ dir }}/seen
            setsid sh -c '{{ svc }}' >/dev/null 2>&1 </dev/null & echo \$! > {{ dir }}/pid; echo \$! >> $a/pids
        - name: health check
          shell: test -s {{ dir }}/seen && test ! -e {{ dir }}/current/BROKEN
          register: hc
          until: hc.rc == 0
          retries: 3
          delay: $((interval / 1000))
          changed_when: false
      rescue:
        - name: switch back
          file: { src: "{{ before.stdout }}", dest: "{{ dir }}/current", state: link, force: true }
        - name: restart the service on the old release
          shell: |
            kill \$(cat {{ dir }}/pid) 2>/dev/null; rm -f {{ dir }}/seen
            setsid sh -c '{{ svc }}' >/dev/null 2>&1 </dev/null & echo \$! > {{ dir }}/pid; echo \$! >> $a/pids
        - name: the host failed
          fail: { msg: "the patch broke the service; switched back to {{ before.stdout }}" }
Y
	for r in $(seq 1 "$rounds"); do
		v=1.$r
		t0=$(ms)
		rc=0
		ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_RETRY_FILES_ENABLED=False \
			ansible-playbook -i "$a/inventory" "$a/rollout.yml" \
			-e "new_version=$v" \
			>"$a/play-$r.log" 2>&1 || rc=$?
		t1=$(ms)
		ans_ms+=($((t1 - t0)))
		[ $rc != 0 ] || { echo "$me: ansible round $r: the play succeeded with a broken patch" >&2; exit 1; }
		first=${names[0]}
		[ "$(readlink "$a/$first/current")" = releases/1.0 ] ||
			{ echo "$me: ansible round $r: $first is on $(readlink "$a/$first/current")" >&2; exit 1; }
		for n in "${names[@]:1}"; do
			[ "$(readlink "$a/$n/current")" = releases/1.0 ] ||
				{ echo "$me: ansible round $r: $n was touched" >&2; exit 1; }
		done
	done
fi

# ---- report ------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
{
	report_header "$out"
	echo "hosts: $hosts; check every $interval ms, 3 failures in a row (the default); $rounds rounds"
	echo "flotilla: campaign create -> paused, ms: ${flt_ms[*]} (median $(median "${flt_ms[@]}"))"
	cat "$out/flotilla-detail.txt"
	if [ ${#ans_ms[@]} -gt 0 ]; then
		echo "ansible $(ansible-playbook --version 2>/dev/null | sed -n 1p | sed 's/.*core /core /; s/]//'):" \
			"ansible-playbook start -> exit, ms: ${ans_ms[*]} (median $(median "${ans_ms[@]}"))"
	fi
} | tee "$out/report.txt"
printf '{"hosts":%s,"check_interval_ms":%s,"flotilla_ms":[%s],"ansible_ms":[%s]}\n' \
	"$hosts" "$interval" "$(IFS=,; echo "${flt_ms[*]}")" "$(IFS=,; echo "${ans_ms[*]:-}")" | tee "$out/result.json"
