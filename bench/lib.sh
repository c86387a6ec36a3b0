# Shared helpers of the benchmark scripts that run a coordinator against
# bench/agentsim: free ports, process and machine CPU figures, the
# header of a report. Sourced; messages name the script that sources it.

# A free port below the ephemeral range, so that the simulator's own
# thousands of outgoing connections can never take it first.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if ! ss -Htan "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
	echo "${0##*/}: no free port" >&2
	exit 1
}

# ticks PID: utime+stime in clock ticks.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# busy: CPU ticks the whole machine spent busy (not idle or iowait).
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# coordinator_started LOG PID: waits up to 5 s for the coordinator's
# "coordinator started" line in LOG; fails at once when PID exits.
coordinator_started() {
	for _ in $(seq 100); do
		grep -qs "coordinator started" "$1" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	grep -qs "coordinator started" "$1"
}

# report_header OUT: the machine, the source tree and the load, before a run.
report_header() {
	echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB," \
		"kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "source: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- coordinator common include proto 2>/dev/null || echo ' with uncommitted changes')"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); results in $1"
}
