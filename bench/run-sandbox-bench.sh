#!/usr/bin/env bash
# Sandbox start latency and memory (docs/benchmarks.md): /bin/true under
# the full Flotilla sandbox against unshare (the floor), bubblewrap and
# crun with Docker's default seccomp profile and capabilities, all in one
# harness run that interleaves them; once back to back, once with a pause
# before every start (isolated starts, as on a node), then a breakdown of
# the costs; then the idle agent's RSS and the RSS of each task's shim.
#
#   bench/run-sandbox-bench.sh [BUILD_DIR]
#
# BUILD_DIR (default build-sbench) holds a Release build with
# agent/flotilla-agent, agent/flotilla-shim, coordinator/flotilla-coordinator
# and bench/startbench. Needs root, util-linux's unshare, bubblewrap, crun,
# python3 and jq (Debian: apt-get install bubblewrap crun jq).
# Environment: RUNS (default 300), WARMUP (10), GAP_MS (50: the pause before
# each start in the spaced pass), TASKS (10: sleeping tasks for the RSS
# part), OUT (a directory to keep the raw results in; default a temporary
# one, printed at the end).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build-sbench}" && pwd)
RUNS=${RUNS:-300}
WARMUP=${WARMUP:-10}
GAP_MS=${GAP_MS:-50}
TASKS=${TASKS:-10}
AGENT=$BUILD/agent/flotilla-agent
SHIM=$BUILD/agent/flotilla-shim
COORD=$BUILD/coordinator/flotilla-coordinator
BENCH=$BUILD/bench/startbench

die() { echo "run-sandbox-bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, cgroups, crun)"
for b in "$AGENT" "$SHIM" "$COORD" "$BENCH"; do
	[ -x "$b" ] || die "$b: not built"
done
for t in unshare bwrap crun python3 jq; do
	command -v "$t" >/dev/null || die "$t: not installed"
done

W=$(mktemp -d /tmp/flt-sbench.XXXXXX)
OUT=${OUT:-$W/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
	# Only what this script started: the agent, the coordinator, and the
	# shims named in our own task directories' status files.
	for f in "$W"/rss/data/tasks/*/status; do
		[ -f "$f" ] || continue
		p=$(sed -n 's/^shim_pid //p' "$f")
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -d "$W/crun-state" ]; then
		for id in $(crun --root "$W/crun-state" list -q 2>/dev/null); do
			crun --root "$W/crun-state" delete -f "$id" || true
		done
	fi
	[ -z "${SHM:-}" ] || rm -rf "$SHM"
	[ -z "${PROBE_CG:-}" ] || rmdir "$PROBE_CG" 2>/dev/null || true
	if [ "$OUT" = "$W/out" ]; then
		find "$W" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT

echo "== machine"
{
	echo "date: $(date -u +%FT%TZ)"
	echo "kernel: $(uname -r)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
	echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
	echo "cgroups: $(stat -fc %T /sys/fs/cgroup)$(mountpoint -q /sys/fs/cgroup/unified && echo ' + cgroup2 at unified (hybrid)')"
	echo "unshare: $(unshare --version | head -1)"
	echo "bwrap: $(bwrap --version)"
	echo "crun: $(crun --version | head -1)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

# ---------------------------------------------------------------- Flotilla
# The spec of the issue; flotilla-agent exec must run it as is.
cat >"$W/spec.json" <<'J'
{"name":"sbench","command":"/bin/true","resources":{"memory_mb":64,"max_pids":64}}
J
"$AGENT" --data-dir "$W/data" exec "$W/spec.json" ||
	die "flotilla-agent exec $W/spec.json failed"

# Task directories prepared by the agent's own code path (agent_task_prepare:
# shim.conf, and seccomp.bpf compiled once): flotilla-agent exec with a
# stand-in shim (FLOTILLA_SHIM) that keeps a copy of the directory it is
# given. The copy goes back to the path the agent chose, which shim.conf
# names. prepare DATA_DIR SPEC prints the task directory.
cat >"$W/keep-shim.sh" <<'S'
#!/bin/sh
cp -a "$2" "$2.kept" && echo "$2" >"$(dirname "$2")/kept.path"
S
chmod +x "$W/keep-shim.sh"
prepare() {
	FLOTILLA_SHIM="$W/keep-shim.sh" "$AGENT" --data-dir "$1" --allow-seccomp-unconfined exec "$2" >&2
	local dir
	dir=$(cat "$1/exec/kept.path")
	mv "$dir.kept" "$dir"
	"$SHIM" --foreground "$dir" 2>/dev/null || die "flotilla-shim --foreground $dir failed"
	echo "$dir"
}
# Unconfined (which the agent must allow) still gets the few-instruction
# filter of the never-granted system calls (docs/security.md).
jq '.seccomp = {"profile": "unconfined"}' "$W/spec.json" >"$W/spec-unconfined.json"
# The breakdown also runs from a tmpfs (/dev/shm), where fsync costs nothing.
SHM=$(mktemp -d /dev/shm/flt-sbench.XXXXXX)
TASK_DIR=$(prepare "$W/prep" "$W/spec.json")
TASK_DIR_SHM=$(prepare "$SHM/prep" "$W/spec.json")
TASK_DIR_SHM_UNCONFINED=$(prepare "$SHM/prep-unconfined" "$W/spec-unconfined.json")
echo "seccomp program: $(( $(stat -c %s "$TASK_DIR/seccomp.bpf") / 8 )) BPF instructions (native x86_64 only)" | tee -a "$OUT/machine.txt"

# -------------------------------------------------------------------- crun
# Rootfs: the host's /usr and /etc bound read-only into an empty directory
# (merged /usr: bin, lib, lib64 and sbin are links); Docker's mounts from
# `crun spec` (proc, tmpfs /dev, devpts, shm, mqueue, sysfs ro, cgroup ro)
# plus a tmpfs /tmp; pid, mount, uts, ipc and network namespaces; Docker's
# default capability set; no_new_privs; the same cgroup limits as the
# Flotilla task; and Docker's default seccomp profile as Docker hands it to
# the runtime for a container with the default capabilities on x86_64.
B=$W/crun-bundle
mkdir -p "$B/rootfs" "$W/crun-state"
(cd "$B/rootfs" && mkdir -p usr etc proc dev sys tmp &&
	for l in bin lib lib64 sbin; do ln -sfn "usr/$l" "$l"; done)
(cd "$B" && crun spec)
python3 - "$B/config.json" "$ROOT/agent/syscallfilter.c" <<'PY'
import json, re, sys
cfg_path, seccomp_c = sys.argv[1], sys.argv[2]

# Docker's unconditional allowlist, derived from Flotilla's own table
# (agent/syscallfilter.c), which is Docker's less the names listed in its comment
# and plus socket and the per-architecture names; both differences are
# undone here, so that crun gets Docker's profile exactly.
src = open(seccomp_c).read()
body = src[src.index("default_allow[] = {"):]
body = re.sub(r"/\*.*?\*/", "", body[:body.index("};")], flags=re.S)
names = re.findall(r'"([A-Za-z0-9_]+)"', body)
not_docker_main = {"socket", "arch_prctl", "modify_ldt", "arm_fadvise64_64",
    "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls",
    "sync_file_range2", "swapcontext", "s390_pci_mmio_read",
    "s390_pci_mmio_write", "s390_runtime_instr", "riscv_flush_icache"}
refused_by_flotilla = ["adjtimex", "clock_adjtime", "clock_adjtime64",
    "io_uring_enter", "io_uring_register", "io_uring_setup",
    "name_to_handle_at"]
main = sorted({n for n in names if n not in not_docker_main} |
              set(refused_by_flotilla))
if len(main) < 300:
    sys.exit("syscallfilter.c: could not read the allowlist (%d names)" % len(main))

def allow(names, **kw):
    return dict(names=names, action="SCMP_ACT_ALLOW", **kw)
rules = [allow(main),
         allow(["process_vm_readv", "process_vm_writev", "ptrace"]),  # kernel >= 4.8
         allow(["socket"], args=[dict(index=0, value=40, op="SCMP_CMP_NE")])]  # no AF_VSOCK
rules += [allow(["personality"], args=[dict(index=0, value=v, op="SCMP_CMP_EQ")])
          for v in (0x0, 0x8, 0x20000, 0x20008, 0xffffffff)]
rules += [allow(["arch_prctl"]), allow(["modify_ldt"]),
          # no namespace flags without CAP_SYS_ADMIN
          allow(["clone"], args=[dict(index=0, value=0x7E020000, op="SCMP_CMP_MASKED_EQ")]),
          dict(names=["clone3"], action="SCMP_ACT_ERRNO", errnoRet=38)]
seccomp = dict(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=1,
               architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
               syscalls=rules)

caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
        "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP",
        "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE"]
c = json.load(open(cfg_path))
p = c["process"]
p["terminal"] = False
p["args"] = ["/bin/true"]
p["noNewPrivileges"] = True
p["capabilities"] = dict(bounding=caps, effective=caps, permitted=caps)
c["root"] = dict(path="rootfs", readonly=True)
c["mounts"] += [
    dict(destination="/usr", type="bind", source="/usr", options=["rbind", "ro", "nosuid", "nodev"]),
    dict(destination="/etc", type="bind", source="/etc", options=["rbind", "ro", "nosuid", "nodev"]),
    dict(destination="/tmp", type="tmpfs", source="tmpfs", options=["nosuid", "nodev", "mode=1777"])]
ns = {n["type"] for n in c["linux"]["namespaces"]}
assert ns >= {"pid", "mount", "uts", "ipc", "network"}, ns
c["linux"]["resources"]["memory"] = dict(limit=64 << 20)
c["linux"]["resources"]["pids"] = dict(limit=64)
c["linux"]["seccomp"] = seccomp
json.dump(c, open(cfg_path, "w"), indent=1)
print("crun seccomp: %d names allowed unconditionally, %d rules, arches %s"
      % (len(main), len(rules), ",".join(seccomp["architectures"])))
PY
# The same bundle without the seccomp profile: what compiling it costs.
mkdir -p "$W/crun-noseccomp"
ln -s "$B/rootfs" "$W/crun-noseccomp/rootfs"
jq 'del(.linux.seccomp)' "$B/config.json" >"$W/crun-noseccomp/config.json"

# --------------------------------------------------------------- the runs
# crun 1.8 refuses the hybrid cgroup layout; in a private mount namespace
# without the cgroup2 mount it sees plain v1, like everyone else here.
# Every contender runs in that namespace, so they see the same thing.
cat >"$W/contenders.sh" <<S
#!/bin/sh
umount /sys/fs/cgroup/unified 2>/dev/null || true
CRUN="crun --root $W/crun-state"
exec "$BENCH" "\$@" \\
  :: true /bin/true \\
  :: unshare unshare --pid --fork --mount --uts --ipc --net /bin/true \\
  :: bwrap bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp /bin/true \\
  :: crun-docker \$CRUN run --bundle $B sb-{n} \\
  :: flotilla-shim $SHIM --foreground $TASK_DIR \\
  :: flotilla-exec $AGENT --data-dir $W/data exec $W/spec.json
S
# What the parts cost: the same sandbox with its task directory on tmpfs
# (no fsync cost) and without seccomp; crun without seccomp; the agent's
# process start alone; its preparation of a task directory (spec, seccomp
# compile, files) with a shim that does nothing, with and without seccomp;
# and a shell that moves itself into a cgroup v1 cgroup before it execs,
# against one that does not: the price of one cgroup migration.
if [ -d /sys/fs/cgroup/pids ]; then
	PROBE_CG=/sys/fs/cgroup/pids/flt-sbench-probe-$$
else
	PROBE_CG=/sys/fs/cgroup/flt-sbench-probe-$$
fi
mkdir "$PROBE_CG"
cat >"$W/breakdown.sh" <<S
#!/bin/sh
umount /sys/fs/cgroup/unified 2>/dev/null || true
CRUN="crun --root $W/crun-state"
exec "$BENCH" "\$@" \\
  :: true /bin/true \\
  :: flotilla-shim $SHIM --foreground $TASK_DIR \\
  :: shim-tmpfs $SHIM --foreground $TASK_DIR_SHM \\
  :: shim-tmpfs-noseccomp $SHIM --foreground $TASK_DIR_SHM_UNCONFINED \\
  :: crun-docker \$CRUN run --bundle $B sb-{n} \\
  :: crun-noseccomp \$CRUN run --bundle $W/crun-noseccomp sn-{n} \\
  :: agent-help $AGENT --help \\
  :: env-true env /bin/true \\
  :: sh-true sh -c 'exec /bin/true' \\
  :: sh-cgroup-join sh -c 'echo \$\$ >$PROBE_CG/cgroup.procs && exec /bin/true' \\
  :: agent-prepare env FLOTILLA_SHIM=/bin/true $AGENT --data-dir $W/data exec $W/spec.json \\
  :: agent-prep-noseccomp env FLOTILLA_SHIM=/bin/true $AGENT --data-dir $W/data --allow-seccomp-unconfined exec $W/spec-unconfined.json
S
chmod +x "$W/contenders.sh" "$W/breakdown.sh"
run() { unshare --mount --propagation private "$@"; }

echo "== back to back: $RUNS starts each, interleaved, after $WARMUP warm-up rounds"
run "$W/contenders.sh" -n "$RUNS" -w "$WARMUP" -o "$OUT/latency.jsonl" | tee "$OUT/back-to-back.txt"
echo "== spaced: $RUNS starts each, interleaved, ${GAP_MS} ms pause before each"
run "$W/contenders.sh" -n "$RUNS" -w "$WARMUP" -g "$GAP_MS" -o "$OUT/latency.jsonl" | tee "$OUT/spaced.txt"
echo "== breakdown (spaced like the above, $((RUNS / 2)) starts each)"
run "$W/breakdown.sh" -n $((RUNS / 2)) -w "$WARMUP" -g "$GAP_MS" -o "$OUT/latency.jsonl" | tee "$OUT/breakdown.txt"
left=$(crun --root "$W/crun-state" list -q | wc -l)
echo "crun containers left behind: $left"
[ "$left" = 0 ] || die "crun left containers behind"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

# --------------------------------------------------------------------- RSS
echo "== memory: idle agent, then $TASKS sleeping tasks"
R=$W/rss
mkdir -p "$R/specs"
port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port"
}
LISTEN="tcp://127.0.0.1:$(port)"
TOKEN="sbench-join-token-0123456789"
"$COORD" --dev --data-dir "$R/coord" --listen "$LISTEN" --api "ipc://$R/api.sock" \
	--join-token "$TOKEN" >"$R/coord.log" 2>&1 &
PIDS+=("$!")
sleep 1
"$AGENT" --dev --data-dir "$R/data" --coordinator "$LISTEN" --join-token "$TOKEN" \
	--name sbench --task-dir "$R/specs" >"$R/agent.log" 2>&1 &
APID=$!
PIDS+=("$APID")

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
pss() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup"; }
sleep 10
kill -0 "$APID" 2>/dev/null || die "the agent exited: $(tail -5 "$R/agent.log")"
printf 'agent idle (10 s): VmRSS %s KiB, Pss %s KiB, VmHWM %s KiB, threads %s\n' \
	"$(kib "$APID" VmRSS)" "$(pss "$APID")" "$(kib "$APID" VmHWM)" "$(kib "$APID" Threads)" |
	tee "$OUT/rss.txt"

for i in $(seq "$TASKS"); do
	printf '{"name":"sleep%d","command":"/bin/sleep","args":["3600"],"resources":{"memory_mb":64,"max_pids":64}}\n' \
		"$i" >"$R/specs/sleep$i.json"
done
deadline=$((SECONDS + 60))
while :; do
	n=$(cat "$R"/data/tasks/*/status 2>/dev/null | grep -c '^state running' || true)
	[ "$n" -ge "$TASKS" ] && break
	[ $SECONDS -lt $deadline ] || die "only $n of $TASKS tasks running after 60 s"
	sleep 0.5
done
sleep 5
printf 'agent with %d tasks: VmRSS %s KiB, Pss %s KiB\n' "$TASKS" \
	"$(kib "$APID" VmRSS)" "$(pss "$APID")" | tee -a "$OUT/rss.txt"
printf '%-8s %8s %8s %8s %8s %8s %8s\n' task shim_rss shim_pss init_rss init_pss prog_rss prog_pss |
	tee -a "$OUT/rss.txt"
for f in "$R"/data/tasks/*/status; do
	t=$(basename "$(dirname "$f")")
	s=$(sed -n 's/^shim_pid //p' "$f")
	# The task's pid 1 (a fork of the shim) is the shim's only child; the
	# program is pid 1's only child.
	i=$(cat "/proc/$s/task/$s/children" | awk '{print $1}')
	p=$(cat "/proc/$i/task/$i/children" | awk '{print $1}')
	printf '%-8s %8s %8s %8s %8s %8s %8s\n' "$t" "$(kib "$s" VmRSS)" "$(pss "$s")" \
		"$(kib "$i" VmRSS)" "$(pss "$i")" "$(kib "$p" VmRSS)" "$(pss "$p")"
done | sort -V | tee -a "$OUT/rss.txt"
awk 'NR > 3 { s += $2; sp += $3; i += $4; ip += $5; n++ }
     END { printf "mean per task: shim VmRSS %.0f KiB (Pss %.0f), pid 1 VmRSS %.0f KiB (Pss %.0f); shim+pid1 Pss %.0f KiB\n",
                  s/n, sp/n, i/n, ip/n, (sp+ip)/n }' "$OUT/rss.txt" | tee -a "$OUT/rss.txt"
echo "results in $OUT"
