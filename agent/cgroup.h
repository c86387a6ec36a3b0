/*
 * Task cgroups: limits (memory, CPU weight and quota, pids), membership,
 * cgroup-wide kill and OOM accounting, and the device allowlist
 * (devices.h), on the unified hierarchy (v2, the allowlist a BPF program)
 * or, where only v1 controllers are mounted, on the memory, cpu, pids,
 * devices and freezer hierarchies. libc only: the shim uses it.
 */
#ifndef FLOTILLA_CGROUP_H
#define FLOTILLA_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_CGROUP_ROOT "/sys/fs/cgroup"

typedef struct agent_cgroup {
	int version; /* 2 or 1 */
	char name[192]; /* "flotilla/<task>" below each hierarchy's root */
} agent_cgroup_t;

/* 2 when the unified hierarchy has the memory controller, 1 when v1
 * memory, cpu and pids are mounted, 0 when neither. */
int agent_cgroup_version(void);

/*
 * Creates (or reuses) the task's cgroup and sets its limits; zero means no
 * limit for memory and quota, the default for weight (100) and pids
 * (1024). The device allowlist is always set; on v1 a missing devices
 * controller is refused (-ENOTSUP). Returns 0 or -errno with why filled.
 */
int agent_cgroup_create(agent_cgroup_t *cg, const char *task,
			uint64_t memory_bytes, uint32_t cpu_weight,
			uint32_t cpu_quota_percent, uint32_t max_pids,
			char *why, size_t whylen);
/* Moves pid into the cgroup (every hierarchy). */
int agent_cgroup_attach(const agent_cgroup_t *cg, pid_t pid);
/* True when no process is left in it. */
bool agent_cgroup_empty(const agent_cgroup_t *cg);
/* SIGKILLs every process in it (freezing first on v1, so nothing forks
 * away) and waits up to timeout_ms for it to empty. */
int agent_cgroup_kill(const agent_cgroup_t *cg, unsigned timeout_ms);
/* How many times the kernel's OOM killer has killed in it. */
uint64_t agent_cgroup_oom_kills(const agent_cgroup_t *cg);
/* Sends sig to every process in it. */
void agent_cgroup_signal(const agent_cgroup_t *cg, int sig);
/* Removes the (empty) cgroup. */
void agent_cgroup_destroy(const agent_cgroup_t *cg);

#endif
