#!/usr/bin/env bash
# Escape attempts from inside the task sandbox: each probe of flt-escape
# (tests/sandbox/escape.c) runs as its own task through `flotilla-agent
# exec`, as the default user nobody. (Root is refused as a task user: uid
# 0 owns most of what the view shows of the host; the test checks that
# refusal too.) Every attempt must fail with exactly the error flt-escape
# --list names. Control runs with a defence taken away (the filter and
# capabilities given back, the host's socket bound in, the host's network,
# an executable directory) must succeed, so that a probe that can never
# succeed would be noticed. The table of results is printed in full before
# the verdict.
. "$(dirname "$0")/lib.sh"

require_sandbox

PROBES_DIR=$(realpath "$FLT_BIN/tests/sandbox")
[ -x "$PROBES_DIR/flt-escape" ] || fail "$PROBES_DIR/flt-escape is not built"

# The build tree is seen in place only when it lives under /usr; anywhere
# else (/tmp, /home, /build...) it is bound in.
# Host directories a spec mounts must be host volumes the agent allows.
MOUNTS='[]'
ALLOW=(--allow-host-volume "suid=$T/suid")
case "$(hidden_from_tasks "$PROBES_DIR")" in
yes)
	BIN_VISIBLE=0
	ESCAPE=/flt-probes/flt-escape
	MOUNTS=$(jq -nc --arg s "$PROBES_DIR" '[{source: $s, target: "/flt-probes"}]')
	ALLOW+=(--allow-host-volume "probes=$PROBES_DIR")
	;;
*)
	BIN_VISIBLE=1
	ESCAPE=$PROBES_DIR/flt-escape
	;;
esac

# The agent's data directory sits beside the probes, where the task would
# see it if it were not masked; it holds a marker the task must not read.
# (When the probes are bound in, the agent refuses a mount that would show
# its data directory, so it goes elsewhere.)
if [ $BIN_VISIBLE = 1 ]; then
	DATA=$(mktemp -d "$PROBES_DIR/data.XXXXXX")
else
	DATA=$(mktemp -d "$T/data.XXXXXX")
fi
SUID_HOST=""
SOCK_DIR=""
SERVERS=()
escape_cleanup() {
	local rc=$?
	for p in "${SERVERS[@]}"; do
		{ kill "$p" && wait "$p"; } 2>/dev/null || true
	done
	rm -rf "$DATA" ${SUID_HOST:+"$SUID_HOST"} ${SOCK_DIR:+"$SOCK_DIR"}
	(exit $rc)
	cleanup
}
trap escape_cleanup EXIT
echo "secret-$$" >"$DATA/flt-escape-secret"

# Setuid-root copies of flt-escape (which, so copied, only says who it
# runs as): one bound in through the spec's mounts, one lying in the host
# tree the sandbox shows read-only.
mkdir -m 0755 "$T/suid"
install -o root -g root -m 4755 "$PROBES_DIR/flt-escape" "$T/suid/flt-escape"
if [ $BIN_VISIBLE = 1 ]; then
	SUID_HOST=$(mktemp -d "$PROBES_DIR/suid.XXXXXX")
	chmod 0755 "$SUID_HOST"
	install -o root -g root -m 4755 "$PROBES_DIR/flt-escape" "$SUID_HOST/flt-escape"
fi

# Host daemons' sockets: one on a path under /var/tmp (world-connectable,
# as sockets of host daemons often are), one abstract; a task must reach
# neither. A device node off the allowlist (1:11, the kernel log) in a
# directory the spec binds in: spec mounts are nodev.
SOCK_DIR=$(mktemp -d /var/tmp/flt-escape.XXXXXX)
chmod 0755 "$SOCK_DIR"
ABSTRACT="flt-escape-$$"
"$PROBES_DIR/flt-escape" --serve-unix "$SOCK_DIR/s.sock" >"$T/serve-unix.out" 2>&1 &
SERVERS+=($!)
"$PROBES_DIR/flt-escape" --serve-abstract "$ABSTRACT" >"$T/serve-abstract.out" 2>&1 &
SERVERS+=($!)
listening() { grep -q listening "$T/serve-unix.out" && grep -q listening "$T/serve-abstract.out"; }
wait_for 5 "the host-side socket listeners" listening
mkdir -m 0755 "$T/devs"
mknod -m 0666 "$T/devs/kmsg" c 1 11
# The host does have what the view leaves out.
[ -d /var ] && [ -d /etc ] && [ -f /etc/passwd ] || fail "the host has no /var or /etc/passwd"

HOST_NAME=$(hostname)
FAILED=()
ROWS=()
n=0

# run_probe LABEL USER PROBE WANT [ARG [JQ]]: one probe as one task, the
# spec edited by the jq filter JQ; sets RC, LINE and LOG.
run_probe() {
	local label=$1 user=$2 probe=$3 want=$4 arg=${5:-} extra=${6:-.}
	local name="esc-$user-${probe//_/-}-$$-$n" mounts=$MOUNTS spec
	n=$((n + 1))
	spec="$T/$name.json"
	LOG="$T/$name.err" # not *.log: lib.sh would dump every one
	if [ "${arg#/flt-suid/}" != "$arg" ]; then
		mounts=$(jq -c --arg s "$T/suid" '. + [{source: $s, target: "/flt-suid"}]' <<<"$mounts")
	fi
	jq -n --arg name "$name" --arg cmd "$ESCAPE" --arg probe "$probe" \
		--arg arg "$arg" --arg user "$user" --arg hp "$$" \
		--arg dd "$DATA" --argjson mounts "$mounts" \
		--arg sock "$SOCK_DIR/s.sock" --arg abs "$ABSTRACT" \
		'{name: $name, command: $cmd,
		  args: ([$probe] + (if $arg == "" then [] else [$arg] end)),
		  user: $user, mounts: $mounts,
		  env: {FLT_HOST_PID: $hp, FLT_DATA_DIR: $dd,
			FLT_HOST_SOCK: $sock, FLT_HOST_ABSTRACT: $abs}} | '"$extra" >"$spec"
	RC=0
	if [ "$label" = "tty(pty)" ]; then
		# A terminal of our own, as an operator's shell has one.
		timeout 30 script -qec "$(printf '%q ' "$AGENT" --data-dir "$DATA" "${ALLOW[@]}" ${EXTRA_ALLOW[@]+"${EXTRA_ALLOW[@]}"} exec "$spec")" \
			/dev/null >"$T/$name.pty" 2>>"$LOG" </dev/null || RC=$?
		tr -d '\r' <"$T/$name.pty" | grep '^flotilla-shim ' >>"$LOG" || true
		# Leading blanks: the terminal's echo of input a probe injected.
		LINE=$(tr -d '\r' <"$T/$name.pty" | grep -v '^flotilla-shim ' |
			sed 's/^[[:blank:]]*//' | head -n 1 || true)
	else
		# In a session of its own: run from a terminal, ctest would
		# lend it that terminal (which the pty run covers).
		LINE=$(setsid -w timeout 30 "$AGENT" --data-dir "$DATA" "${ALLOW[@]}" \
			${EXTRA_ALLOW[@]+"${EXTRA_ALLOW[@]}"} exec "$spec" 2>>"$LOG") || RC=$?
		LINE=$(head -n 1 <<<"$LINE")
	fi
	ROWS+=("$(printf '%-22s %-7s %-13s rc=%-3s %s' "$label" "$user" "$want" "$RC" "$LINE")")
}

# check LABEL USER WANT PROBE: the last run refused with the wanted error.
check() {
	local label=$1 user=$2 want=$3 probe=$4
	if [ "$RC" != 0 ] || ! grep -Eq "^$probe refused errno=($want)( |\$)" <<<"$LINE"; then
		FAILED+=("$label as $user: rc=$RC: ${LINE:-no output; $(tail -n 2 "$LOG" | tr '\n' ' ')}")
	fi
}

mapfile -t LIST < <("$PROBES_DIR/flt-escape" --list)
[ ${#LIST[@]} -ge 50 ] || fail "flt-escape --list names only ${#LIST[@]} probes"

for user in nobody; do
	for entry in "${LIST[@]}"; do
		read -r probe want <<<"$entry"
		case "$user:$probe" in
		# uid 0 is already what these try to become.
		root:setuid0 | root:setuid_exec) continue ;;
		esac
		if [ "$probe" = setuid_exec ]; then
			run_probe "setuid_exec(mounts)" "$user" "$probe" "$want" /flt-suid/flt-escape
			check "setuid_exec(mounts)" "$user" "$want" "$probe"
			if [ $BIN_VISIBLE = 1 ]; then
				run_probe "setuid_exec(host)" "$user" "$probe" "$want" "$SUID_HOST/flt-escape"
				check "setuid_exec(host)" "$user" "$want" "$probe"
			fi
			continue
		fi
		case "$probe" in
		dev_node_mounted)
			EXTRA_ALLOW=(--allow-host-volume "devs=$T/devs")
			run_probe "$probe" "$user" "$probe" "$want" /flt-devs/kmsg \
				'.mounts += [{source: "'"$T/devs"'", target: "/flt-devs"}]'
			EXTRA_ALLOW=()
			check "$probe" "$user" "$want" "$probe"
			continue
			;;
		tmp_full)
			# The default bound, then one of the spec's own.
			run_probe "$probe" "$user" "$probe" "$want"
			check "$probe" "$user" "$want" "$probe"
			grep -q 'size_mib=64$' <<<"$LINE" ||
				FAILED+=("tmp_full: the default /tmp is not 64 MiB: $LINE")
			run_probe "tmp_full(4 MiB)" "$user" "$probe" "$want" "" '. + {tmp_size_mb: 4}'
			check "tmp_full(4 MiB)" "$user" "$want" "$probe"
			grep -Eq 'wrote_mib=[34] size_mib=4$' <<<"$LINE" ||
				FAILED+=("tmp_full: tmp_size_mb 4 did not bound /tmp at 4 MiB: $LINE")
			continue
			;;
		esac
		run_probe "$probe" "$user" "$probe" "$want"
		check "$probe" "$user" "$want" "$probe"
		if [ "$probe" = tty ] && [ "$user" = nobody ] && command -v script >/dev/null; then
			run_probe "tty(pty)" "$user" "$probe" "$want"
			check "tty(pty)" "$user" "$want" "$probe"
		fi
	done
done

# Root (uid 0, gid 0) is refused before anything runs.
for u in root 0 65534:0 -1 4294967295 65534:4294967295; do
	jq -n --arg c "$PROBES_DIR/flt-escape" --arg u "$u" \
		'{name: "asroot", command: $c, args: ["mount"], user: $u}' >"$T/asroot.json"
	RC=0
	OUT=$(timeout 30 "$AGENT" --data-dir "$DATA" exec "$T/asroot.json" 2>&1) || RC=$?
	if [ $RC != 125 ] || ! grep -Eq 'user: .*(refused|is root|not uid|not a name or uid|no user)' <<<"$OUT"; then
		FAILED+=("user $u was not refused: rc=$RC $OUT")
	fi
	ROWS+=("$(printf '%-22s %-7s %-13s rc=%-3s %s' "user-refused" "$u" "exit-125" "$RC" "$(head -n 1 <<<"$OUT")")")
done

# Paths chosen by a spec never lead out of the new root: not through a
# magic link of /proc, nor through a symlink.
for ad in /proc/self/root/tmp/flt-escape-alloc /proc/1/cwd/x; do
	jq -n --arg ad "$ad" '{name: "linkalloc", command: "/bin/true", alloc_dir: $ad}' >"$T/linkalloc.json"
	RC=0
	OUT=$(timeout 30 "$AGENT" --data-dir "$DATA" exec "$T/linkalloc.json" 2>&1) || RC=$?
	if [ $RC = 0 ] || ! grep -q "must not go through a symlink" <<<"$OUT"; then
		FAILED+=("alloc_dir $ad was not refused: rc=$RC $OUT")
	fi
	[ ! -e /tmp/flt-escape-alloc ] || FAILED+=("alloc_dir $ad created a directory on the host")
	ROWS+=("$(printf '%-22s %-7s %-13s rc=%-3s %s' "alloc-dir-link" nobody "refused" "$RC" "$(tail -n 1 <<<"$OUT")")")
done
# A mount that would show the agent's data directory is refused: as a
# path no host volume holds, and as a volume, which the agent refuses to
# allow at all (never granted: it stops at start).
jq -n --arg s "$DATA" '{name: "showdata", command: "/bin/true", mounts: [{source: $s, target: "/data"}]}' >"$T/showdata.json"
RC=0
OUT=$(timeout 30 "$AGENT" --data-dir "$DATA" exec "$T/showdata.json" 2>&1) || RC=$?
if [ $RC != 125 ] || ! grep -q "needs --allow-host-volume" <<<"$OUT"; then
	FAILED+=("a mount of the data directory was not refused: rc=$RC $OUT")
fi
ROWS+=("$(printf '%-22s %-7s %-13s rc=%-3s %s' "mount-data-dir" nobody "exit-125" "$RC" "$(head -n 1 <<<"$OUT")")")
RC=0
OUT=$(timeout 30 "$AGENT" --data-dir "$DATA" --allow-host-volume "data=$DATA" exec "$T/showdata.json" 2>&1) || RC=$?
if [ $RC != 2 ] || ! grep -q "never granted: it is, holds or lies inside the agent's data directory" <<<"$OUT"; then
	FAILED+=("a volume of the data directory was not refused: rc=$RC $OUT")
fi
ROWS+=("$(printf '%-22s %-7s %-13s rc=%-3s %s' "volume-data-dir" nobody "exit-2" "$RC" "$(head -n 1 <<<"$OUT")")")

# Control: with the filter off and CAP_SYS_ADMIN kept, sethostname works
# (in the task's own UTS namespace): the probe does see a success.
EXTRA_ALLOW=(--allow-seccomp-unconfined --allow-cap SYS_ADMIN)
run_probe "control:sethostname" nobody sethostname "ESCAPED" "" \
	'. + {seccomp: {profile: "unconfined"}, capabilities: ["CAP_SYS_ADMIN"]}'
EXTRA_ALLOW=()
if [ "$RC" != 1 ] || ! grep -q "^sethostname ESCAPED " <<<"$LINE"; then
	FAILED+=("control run: sethostname with CAP_SYS_ADMIN and no filter did not succeed: rc=$RC $LINE")
fi
# Unconfined, with CAP_DAC_READ_SEARCH allowed, open_by_handle_at (never
# granted) is still refused: Shocker needs no more than these two.
EXTRA_ALLOW=(--allow-seccomp-unconfined --allow-cap DAC_READ_SEARCH)
run_probe "unconfined:open_by_handle_at" nobody open_by_handle_at EPERM "" \
	'. + {seccomp: {profile: "unconfined"}, capabilities: ["CAP_DAC_READ_SEARCH"]}'
check "unconfined:open_by_handle_at" nobody EPERM open_by_handle_at
EXTRA_ALLOW=()

# The narrow view still serves ordinary programs: users by name, name
# resolution, the time zone, TLS roots, the distribution's identity.
cat >"$T/view.json" <<'J'
{"name": "view", "command": "/bin/sh", "args": ["-c",
 "echo user=$(id -un) host=$(getent hosts localhost | head -n 1 | cut -d' ' -f1) tz=$(readlink /etc/localtime) ld=$(test -s /etc/ld.so.cache && echo yes) os=$(. /etc/os-release && echo $ID) mtab=$(grep -c . /etc/mtab)"]}
J
RC=0
OUT=$(timeout 30 "$AGENT" --data-dir "$DATA" exec "$T/view.json" 2>"$T/view.err") || RC=$?
want_os=$(. /etc/os-release && echo "$ID")
if [ $RC != 0 ] || ! grep -Eq "^user=nobody host=(127\.0\.0\.1|::1) tz=$(readlink /etc/localtime || true) ld=yes os=$want_os mtab=[1-9]" <<<"$OUT"; then
	FAILED+=("ordinary programs in the view: rc=$RC $OUT $(tail -n 2 "$T/view.err" | tr '\n' ' ')")
fi
ROWS+=("$(printf '%-22s %-7s %-13s rc=%-3s %s' "view-works" nobody "exit-0" "$RC" "$OUT")")

# Controls of the new probes: each defence removed where that can be done
# from a spec, the same probe gets through.
# A read-only bind of the socket's directory: connect() still works.
EXTRA_ALLOW=(--allow-host-volume "sock=$SOCK_DIR")
run_probe "control:host_unix_socket" nobody host_unix_socket "ESCAPED" "" \
	'.mounts += [{source: "'"$SOCK_DIR"'", target: "/flt-sock"}] | .env.FLT_HOST_SOCK = "/flt-sock/s.sock"'
EXTRA_ALLOW=()
if [ "$RC" != 1 ] || ! grep -q "^host_unix_socket ESCAPED " <<<"$LINE"; then
	FAILED+=("control run: the bound host socket could not be reached: rc=$RC $LINE")
fi
# The host's network namespace: its abstract sockets are reachable.
EXTRA_ALLOW=(--allow-host-network)
run_probe "control:host_abstract" nobody host_abstract_socket "ESCAPED" "" '. + {network: "host"}'
EXTRA_ALLOW=()
if [ "$RC" != 1 ] || ! grep -q "^host_abstract_socket ESCAPED " <<<"$LINE"; then
	FAILED+=("control run: the abstract socket was not reached from the host network: rc=$RC $LINE")
fi
# /tmp is not noexec: the same copy runs from there.
run_probe "control:exec_tmp" nobody exec_noexec "ESCAPED" /tmp
if [ "$RC" != 1 ] || ! grep -q "^exec_noexec ESCAPED " <<<"$LINE"; then
	FAILED+=("control run: a copy in /tmp did not execute: rc=$RC $LINE")
fi

echo "probe                  user    want          status line"
printf '%s\n' "${ROWS[@]}"
[ "$(hostname)" = "$HOST_NAME" ] ||
	FAILED+=("the host's hostname changed: $HOST_NAME -> $(hostname)")
[ -f "$DATA/flt-escape-secret" ] || FAILED+=("the marker in the data directory is gone")

if [ ${#FAILED[@]} -gt 0 ]; then
	printf 'FAIL: %s\n' "${FAILED[@]}" >&2
	fail "${#FAILED[@]} of ${#ROWS[@]} sandbox probes were not refused as expected"
fi
pass "${#ROWS[@]} escape probes refused with the expected errors; host hostname unchanged ($HOST_NAME)"
