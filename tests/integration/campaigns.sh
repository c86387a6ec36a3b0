#!/usr/bin/env bash
# Patch campaigns end to end with the real programs: 5 agents, a service
# that uses a synthetic log4j-core on every one of them, the exposure found
# by an inventory query (plain ranges and an advisory), a campaign whose
# target finds no host or holds an empty range refused (unless
# --allow-empty, for no host), a campaign to the fixed version, canary first and in waves, and zero hosts exposed after.
# Then: a host that matches only later is reported; a step that succeeds
# but leaves the host exposed counts as a failure; kill -9 of the
# coordinator between waves, in the middle of a wave and in the middle of
# an abort's rollback, each followed by a restart that completes the
# campaign with every host patched exactly once; a bad patch whose health
# check fails (the canary fails, is switched back, the campaign pauses,
# or aborts by policy, and no other host is touched); a host down when its
# wave comes (failed_offline after the per-host timeout).
. "$(dirname "$0")/lib.sh"

require_sandbox
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MKJAR="$FLT_BIN/deploy/dev/flt-mkjar"

CLEANUP_HOOKS+=(stop_shims)

COORD_FLAGS=(--advisories "$SRC/share/advisories/log4shell.json")
start_coord "${COORD_FLAGS[@]}"
AGENTS=(a1 a2 a3 a4 a5)
for a in "${AGENTS[@]}"; do start_agent $a --dpkg-status none; done
wait_for 15 "5 ready nodes" bash -c "[ \$('$CLI' node list --json | jq '[.[] | select(.status == \"ready\")] | length') = 5 ]"

# mkpkg VERSION [broken]: a tar holding log4j-core-VERSION.jar (Maven
# metadata, JndiLookup.class) and a VERSION file; "broken" adds the marker
# the service's health check refuses.
mkpkg() {
	local v=$1 d="$T/pkg-$1"
	mkdir -p "$d"
	"$MKJAR" "$d/log4j-core-$v.jar" --jndi \
		--pom "org.apache.logging.log4j:log4j-core:$v"
	echo "$v" >"$d/VERSION"
	[ "${2:-}" = broken ] && echo "refuses to start" >"$d/BROKEN"
	tar -C "$d" -cf "$T/log4j-core-$v.tar" .
	"$CLI" package push log4j-core "$v" "$T/log4j-core-$v.tar" >/dev/null ||
		fail "package push $v"
}
for v in 2.14.1 2.17.1 2.18.0 2.19.0 2.20.0 2.22.0; do mkpkg $v; done
mkpkg 2.21.0 broken

# create ARGS...: creates a campaign without waiting, prints its id.
create() {
	"$CLI" campaign create --detach --json "$@" | jq -r .campaign.id
}
camp() { "$CLI" campaign status "$1" --json; }
state_of() { camp "$1" | jq -r .campaign.state; }
report() { "$CLI" campaign report "$1" --json; }
# starts ID AGENT: how many times AGENT started a step of campaign ID.
starts() { grep -c " start $1/" "$T/$2/steps.log" 2>/dev/null || true; }
# started_once ID N: every agent started campaign N (ID)'s step once.
started_once() {
	local a
	for a in "${AGENTS[@]}"; do
		[ "$(starts "$1" $a)" = 1 ] || fail "$a ran campaign $2's step $(starts "$1" $a) times"
	done
}
current_of() { readlink "$T/$1/packages/log4j-core/current" || true; }
exposed() {
	"$CLI" inventory query --json "$1" | jq -r .hosts_matched
}

# ---- provisioning: the vulnerable version everywhere ------------------------
"$CLI" campaign create --target 'not managed:log4j-core' \
	--install log4j-core@2.14.1 --canary 1 --batch 100% \
	--min-healthy 200ms --host-timeout 60s >"$T/c0.out" ||
	{ cat "$T/c0.out"; fail "provisioning campaign"; }
for a in "${AGENTS[@]}"; do
	[ "$(current_of $a)" = 2.14.1 ] || fail "$a current is $(current_of $a)"
done
pass "log4j-core 2.14.1 installed on 5 hosts by a campaign"

# ---- a target that finds nothing, or a range that holds nothing, is refused ---
if "$CLI" campaign create --target 'log4j-cor < 2.17.1' \
	--install log4j-core@2.17.1 --detach >"$T/none.out" 2>&1; then
	fail "a campaign that matches no host was created: $(cat "$T/none.out")"
fi
grep -q 'no host matches' "$T/none.out" || fail "no-match refusal: $(cat "$T/none.out")"
if "$CLI" campaign create --target 'log4j-core in [2.17.1, 2.0)' \
	--install log4j-core@2.17.1 --detach --allow-empty >"$T/range.out" 2>&1; then
	fail "a campaign over an empty range was created: $(cat "$T/range.out")"
fi
grep -q 'empty range' "$T/range.out" || fail "empty-range refusal: $(cat "$T/range.out")"
CE=$(create --target 'log4j-cor < 2.17.1' --install log4j-core@2.17.1 --allow-empty)
[ -n "$CE" ] && [ "$CE" != null ] || fail "campaign create --allow-empty"
camp "$CE" | jq -e '.campaign.spec.allow_empty == true and (.counts.total // 0) == 0' >/dev/null ||
	fail "the empty campaign: $(camp "$CE")"
pass "no matching host or an empty range refuses a campaign; --allow-empty keeps one"

# ---- a service on every host uses it ----------------------------------------
cat >"$T/billing.json" <<'J'
{"name": "billing", "type": "system",
 "groups": [{"name": "api", "count": 1,
   "tasks": [{"name": "api", "command": "/bin/sh",
     "args": ["-c", "while :; do cat /packages/log4j-core/VERSION > /alloc/seen.new && mv /alloc/seen.new /alloc/seen; sleep 0.5; done"],
     "uses": ["log4j-core"],
     "resources": {"memory_mb": 32, "max_pids": 16},
     "kill_timeout_ms": 500,
     "checks": [{"name": "log4j", "type": "exec",
                 "command": ["/bin/sh", "-c", "test -s /alloc/seen && test ! -e /packages/log4j-core/BROKEN"],
                 "interval_ms": 500, "timeout_ms": 400, "failures": 2}]}]}]}
J
"$CLI" job run "$T/billing.json" >"$T/job.out" || { cat "$T/job.out"; fail "job run"; }
wait_for 20 "5 healthy billing allocations" bash -c "[ \$('$CLI' job status billing --json | jq .summary.healthy) = 5 ]"
pass "a system job that uses log4j-core runs healthy on 5 hosts"

# ---- the exposure, found by one query -----------------------------------------
wait_for 10 "inventories of 5 hosts" bash -c "[ \$('$CLI' inventory query --json 'managed:log4j-core = 2.14.1' | jq .hosts_matched) = 5 ]"
q=$("$CLI" inventory query --json 'log4j-core < 2.17.1')
[ "$(jq .hosts_matched <<<"$q")" = 5 ] || fail "5 exposed hosts: $q"
jq -e '[.matches[].items[] | select(.kind == "java" and (.path | endswith("/current/log4j-core-2.14.1.jar")) and .jndi_lookup and .group == "org.apache.logging.log4j")] | length == 5' <<<"$q" >/dev/null ||
	fail "the probe's jars with JndiLookup.class: $q"
[ "$(exposed advisory:CVE-2021-44228)" = 5 ] || fail "advisory query"
[ "$(exposed 'advisory:CVE-2021-44228 and node.name = a3')" = 1 ] || fail "advisory and a node term"
pass "inventory query finds log4j-core 2.14.1 (with JndiLookup.class) on 5 hosts, also by advisory"

# ---- the campaign: canary, waves, zero exposed ---------------------------------
C1=$(create --target 'log4j-core < 2.17.1' --install log4j-core@2.17.1 \
	--canary 1 --batch 2 --min-healthy 1s --host-timeout 60s)
[ -n "$C1" ] && [ "$C1" != null ] || fail "campaign create"
[ "$(camp "$C1" | jq .campaign.waves)" = 3 ] || fail "1 canary + 2 waves of 2"
# A host that joins later, holding an exposed war (nested jar), is reported.
mkdir -p "$T/a6-app/lib"
"$MKJAR" "$T/a6-app/inner.jar" --jndi --pom org.apache.logging.log4j:log4j-core:2.14.1
"$MKJAR" "$T/a6-app/app.war" --add "WEB-INF/lib/log4j-core-2.14.1.jar=$T/a6-app/inner.jar"
rm "$T/a6-app/inner.jar"
start_agent a6 --dpkg-status none --java-root "$T/a6-app"
timeout 90 "$CLI" campaign watch "$C1" >"$T/watch1.out" || { cat "$T/watch1.out"; fail "campaign 1 did not complete"; }
r=$(report "$C1")
[ "$(jq '[.targets[] | select(.state == "remediated" and .before == "2.14.1" and .after == "2.17.1")] | length' <<<"$r")" = 5 ] ||
	fail "5 remediated 2.14.1 -> 2.17.1: $r"
# Wave order: the canary finished before any other host started.
canary_end=$(jq '[.targets[] | select(.wave == 0)][0].finished_at_ms' <<<"$r")
first_other=$(jq '[.targets[] | select(.wave > 0 and .state != "late") | .started_at_ms] | min' <<<"$r")
[ "$canary_end" -le "$first_other" ] || fail "a wave started before the canary ended"
started_once "$C1" 1
for a in "${AGENTS[@]}"; do
	[ "$(current_of $a)" = 2.17.1 ] || fail "$a is on $(current_of $a)"
done
[ "$("$CLI" inventory query --json 'log4j-core < 2.17.1 and not node.name = a6' | jq .hosts_matched)" = 0 ] ||
	fail "exposed hosts left"
wait_for 10 "a6 reported late" bash -c "'$CLI' campaign report $C1 --json | jq -e '[.targets[] | select(.node_name == \"a6\" and .state == \"late\")] | length == 1'"
q=$("$CLI" inventory query --json 'log4j-core < 2.17.1')
jq -e '.hosts_matched == 1 and (.matches[0].items[0].path | endswith("app.war!/WEB-INF/lib/log4j-core-2.14.1.jar"))' <<<"$q" >/dev/null ||
	fail "the nested jar on a6: $q"
[ "$("$CLI" job status billing --json | jq .summary.healthy)" = 5 ] || fail "billing healthy after the patch"
pass "campaign to 2.17.1: canary then waves, 5 hosts remediated once each, 0 exposed; a late host reported with its nested jar"

# ---- remediated means re-scanned: a step that leaves the host exposed ---------
C=$(create --target 'log4j-core < 2.17.1 and node.name = a6' --install log4j-core@2.17.1 \
	--canary 0 --batch 1 --max-failures 1 --min-healthy 100ms --host-timeout 30s)
wait_for 30 "the a6 campaign to end" bash -c "[ \"\$('$CLI' campaign status $C --json | jq -r .campaign.state)\" = complete ]"
report "$C" | jq -e '.targets[0].state == "still_exposed"' >/dev/null ||
	fail "a6 counted still exposed: $(report "$C")"
pass "a step that succeeds but leaves the host exposed is counted still_exposed"
kill9 a6

# ---- kill -9 of the coordinator between waves ---------------------------------
restart_coord() {
	kill9 coord
	start_coord "${COORD_FLAGS[@]}"
}
TARGET='managed:log4j-core < 2.18.0 and not node.name = a6'
C2=$(create --target "$TARGET" --install log4j-core@2.18.0 --canary 1 --batch 2 \
	--min-healthy 500ms --host-timeout 60s --manual-promote)
wait_for 30 "the canary wave" bash -c "[ \"\$('$CLI' campaign status $C2 --json | jq -r .campaign.state)\" = paused ]"
restart_coord
[ "$(state_of "$C2")" = paused ] || fail "paused after the restart"
"$CLI" campaign resume "$C2" >/dev/null
timeout 90 "$CLI" campaign watch "$C2" >/dev/null || fail "campaign 2 after the restart: $(camp "$C2")"
started_once "$C2" 2
# wave_ok ID: every wave of campaign ID logged its time, restarts or not.
wave_ok() {
	local n
	n=$(grep -c "campaign ${1:0:8} wave [0-9]* done wall_ms=[0-9]" "$T/coord.log" || true)
	[ "$n" = "$(camp "$1" | jq .campaign.waves)" ] ||
		fail "campaign ${1:0:8}'s wave times: $(grep "campaign ${1:0:8} wave" "$T/coord.log")"
}
wave_ok "$C2"
pass "kill -9 between waves: the campaign resumes and completes, each host patched once, wave times kept"

# ---- kill -9 in the middle of a wave ---------------------------------------------
C3=$(create --target 'managed:log4j-core < 2.19.0 and not node.name = a6' --install log4j-core@2.19.0 \
	--canary 1 --batch 4 --min-healthy 2s --host-timeout 60s)
wait_for 30 "the second wave in flight" bash -c "'$CLI' campaign status $C3 --json | jq -e '.campaign.wave == 1 and .counts.in_flight > 0'"
restart_coord
timeout 90 "$CLI" campaign watch "$C3" >/dev/null || fail "campaign 3 after the restart: $(camp "$C3")"
[ "$(report "$C3" | jq '[.targets[] | select(.state == "remediated")] | length')" = 5 ] || fail "5 remediated"
started_once "$C3" 3
wave_ok "$C3"
pass "kill -9 mid-wave: the campaign completes, each host patched exactly once, wave times kept"

# ---- abort rolls back; kill -9 in the middle of the rollback --------------------
C4=$(create --target 'managed:log4j-core < 2.20.0 and not node.name = a6' --install log4j-core@2.20.0 \
	--canary 1 --batch 4 --min-healthy 1500ms --host-timeout 60s)
wait_for 30 "the canary remediated" bash -c "'$CLI' campaign status $C4 --json | jq -e '.counts.remediated >= 1'"
"$CLI" campaign abort "$C4" >/dev/null
wait_for 30 "a rollback in flight" bash -c "'$CLI' campaign report $C4 --json | jq -e '[.targets[] | select(.state == \"rolling_back\")] | length > 0'"
restart_coord
wait_for 60 "campaign 4 aborted" bash -c "[ \"\$('$CLI' campaign status $C4 --json | jq -r .campaign.state)\" = aborted ]"
r=$(report "$C4")
for a in "${AGENTS[@]}"; do
	[ "$(current_of $a)" = 2.19.0 ] || fail "$a is on $(current_of $a) after the abort"
	n=$(starts "$C4" $a)
	s=$(jq -r --arg a $a '.targets[] | select(.node_name == $a) | .state' <<<"$r")
	case "$s" in
	rolled_back) [ "$n" = 2 ] || fail "$a: install and rollback once each, not $n" ;;
	skipped) [ "$n" = 0 ] || fail "$a skipped but ran $n steps" ;;
	failed) ;;
	*) fail "$a ended $s" ;;
	esac
done
pass "abort rolls every changed host back, across a kill -9 of the coordinator mid-rollback"

# ---- a bad patch: the canary fails, is switched back, nothing else touched -------
C5=$(create --target 'managed:log4j-core < 2.21.0 and not node.name = a6' --install log4j-core@2.21.0 \
	--canary 1 --batch 2 --min-healthy 1s --host-timeout 10s)
wait_for 60 "campaign 5 paused" bash -c "[ \"\$('$CLI' campaign status $C5 --json | jq -r .campaign.state)\" = paused ]"
r=$(report "$C5")
canary=$(jq -r '.targets[] | select(.wave == 0) | .node_name' <<<"$r")
jq -e '[.targets[] | select(.wave == 0)][0].state == "failed"' <<<"$r" >/dev/null || fail "the canary failed: $r"
wait_for 10 "canary $canary switched back to 2.19.0" bash -c "[ \"\$(readlink '$T/$canary/packages/log4j-core/current')\" = 2.19.0 ]"
for a in "${AGENTS[@]}"; do
	[ "$a" = "$canary" ] && continue
	[ "$(starts "$C5" $a)" = 0 ] || fail "$a was touched by the bad patch"
	[ "$(current_of $a)" = 2.19.0 ] || fail "$a changed"
done
camp "$C5" | jq -e '.campaign.message | test("exceed")' >/dev/null || fail "the pause says why"
"$CLI" campaign abort "$C5" >/dev/null
wait_for 20 "campaign 5 aborted" bash -c "[ \"\$('$CLI' campaign status $C5 --json | jq -r .campaign.state)\" = aborted ]"
wait_for 20 "billing healthy again" bash -c "[ \$('$CLI' job status billing --json | jq .summary.healthy) = 5 ]"
pass "bad patch: the canary fails and is switched back, the campaign pauses, no other host touched"

C6=$(create --target 'managed:log4j-core < 2.21.0 and not node.name = a6' --install log4j-core@2.21.0 \
	--canary 1 --batch 2 --min-healthy 1s --host-timeout 10s --on-failure abort)
wait_for 60 "campaign 6 aborted by policy" bash -c "[ \"\$('$CLI' campaign status $C6 --json | jq -r .campaign.state)\" = aborted ]"
[ "$(report "$C6" | jq '[.targets[] | select(.state == "skipped")] | length')" = 4 ] || fail "4 hosts skipped"
pass "bad patch with on_failure abort: aborted, the other 4 hosts skipped"

# ---- the gate's boundary: failures must EXCEED the limit -------------------------
# Limit 1: the canary's failure (1) does not trip it, so wave 2 starts;
# the first failure there (2) trips it; the other host of wave 2, already
# in flight, finishes and counts; wave 3 is never started.
C8=$(create --target 'managed:log4j-core < 2.21.0 and not node.name = a6' --install log4j-core@2.21.0 \
	--canary 1 --batch 2 --max-failures 1 --min-healthy 1s --host-timeout 10s)
wait_for 90 "campaign 8 paused with wave 2 settled" bash -c "'$CLI' campaign status $C8 --json | jq -e '.campaign.state == \"paused\" and .counts.in_flight == 0'"
r=$(report "$C8")
s=$(camp "$C8")
jq -e '.campaign.tripped and .campaign.failure_limit == 1 and .counts.failed == 3' <<<"$s" >/dev/null ||
	fail "tripped after 3 failures (limit 1): $s"
for a in a1 a2 a3; do [ "$(starts "$C8" $a)" = 1 ] || fail "$a: one start"; done
for a in a4 a5; do [ "$(starts "$C8" $a)" = 0 ] || fail "$a of wave 3 was started"; done
"$CLI" campaign abort "$C8" >/dev/null
wait_for 20 "campaign 8 aborted" bash -c "[ \"\$('$CLI' campaign status $C8 --json | jq -r .campaign.state)\" = aborted ]"
pass "gate boundary: 1 failure of limit 1 goes on, the 2nd trips it, the in-flight host finishes, wave 3 untouched"

# ---- a host down when its wave comes ------------------------------------------------
kill9 a5
C7=$(create --target 'managed:log4j-core < 2.22.0 and not node.name = a6' --install log4j-core@2.22.0 \
	--canary 1 --batch 4 --max-failures 1 --min-healthy 300ms --host-timeout 4s)
timeout 60 "$CLI" campaign watch "$C7" >/dev/null || fail "campaign 7: $(camp "$C7")"
r=$(report "$C7")
[ "$(jq -r '.targets[] | select(.node_name == "a5") | .state' <<<"$r")" = failed_offline ] ||
	fail "a5 failed_offline: $r"
[ "$(jq '[.targets[] | select(.state == "remediated")] | length' <<<"$r")" = 4 ] || fail "4 remediated"
pass "a host down for the per-host timeout counts failed_offline; the gate (1) lets the campaign complete"

# ---- staged versions are pruned (--package-keep, default 2) -----------------------
# a1-a4 staged six or seven versions over the campaigns above; each kept the
# current one (2.22.0), the one a rollback would return to (2.19.0) and the
# two most recently staged others; the oldest (2.14.1, 2.17.1) are gone.
for a in a1 a2 a3 a4; do
	vers=$(ls "$T/$a/packages/log4j-core" | grep -v '^current$' | sort -V | tr '\n' ' ')
	n=$(wc -w <<<"$vers")
	[ "$n" -le 4 ] || fail "$a keeps $n versions: $vers"
	for v in 2.22.0 2.19.0; do
		grep -qw "$v" <<<"$vers" || fail "$a lost $v: $vers"
	done
	for v in 2.14.1 2.17.1; do
		grep -qw "$v" <<<"$vers" && fail "$a still has $v: $vers"
	done
	[ "$(current_of $a)" = 2.22.0 ] || fail "$a is on $(current_of $a)"
done
pass "old staged versions are removed after a successful step; current and the rollback target stay"
