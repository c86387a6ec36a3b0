#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "cgroup.h"
#include "devices.h"

/* The first four are required; without freezer, kills do not freeze. */
static const char *const v1_ctls[] = { "memory", "cpu", "pids", "devices",
				       "freezer" };
#define NV1 (sizeof(v1_ctls) / sizeof(v1_ctls[0]))
#define NV1_REQUIRED 4

static int write_file(const char *dir, const char *file, const char *val)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	int rc = n < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int rc = n < 0 ? -errno : 0;
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return rc;
}

static bool is_cgroup2(const char *path)
{
	struct statfs st;
	return statfs(path, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

int agent_cgroup_version(void)
{
	char buf[256];
	if (is_cgroup2(AGENT_CGROUP_ROOT) &&
	    read_file(AGENT_CGROUP_ROOT, "cgroup.controllers", buf,
		      sizeof(buf)) == 0 &&
	    strstr(buf, "memory"))
		return 2;
	char p[256];
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", AGENT_CGROUP_ROOT, v1_ctls[i]);
		if (access(p, W_OK) != 0)
			return 0;
	}
	return 1;
}

static void dir_of(const agent_cgroup_t *cg, const char *ctl, char *out,
		   size_t len)
{
	if (cg->version == 2)
		snprintf(out, len, "%s/%s", AGENT_CGROUP_ROOT, cg->name);
	else
		snprintf(out, len, "%s/%s/%s", AGENT_CGROUP_ROOT, ctl,
			 cg->name);
}

static int mkdir_one(const char *p)
{
	return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

#define FAIL(rc, ...)                               \
	do {                                        \
		snprintf(why, whylen, __VA_ARGS__); \
		return (rc);                        \
	} while (0)

int agent_cgroup_create(agent_cgroup_t *cg, const char *task,
			uint64_t memory_bytes, uint32_t cpu_weight,
			uint32_t cpu_quota_percent, uint32_t max_pids,
			char *why, size_t whylen)
{
	char dir[512], val[64];
	int rc;

	memset(cg, 0, sizeof(*cg));
	cg->version = agent_cgroup_version();
	if (!cg->version)
		FAIL(-ENOTSUP, "no usable cgroup hierarchy under %s",
		     AGENT_CGROUP_ROOT);
	snprintf(cg->name, sizeof(cg->name), "flotilla/%s", task);
	if (!cpu_weight)
		cpu_weight = 100;
	if (!max_pids)
		max_pids = 1024;

	if (cg->version == 2) {
		snprintf(dir, sizeof(dir), "%s/flotilla", AGENT_CGROUP_ROOT);
		/* Controllers must be enabled on every level above a task. */
		write_file(AGENT_CGROUP_ROOT, "cgroup.subtree_control",
			   "+memory +cpu +pids");
		if ((rc = mkdir_one(dir)) < 0)
			FAIL(rc, "mkdir %s: %s", dir, strerror(-rc));
		write_file(dir, "cgroup.subtree_control", "+memory +cpu +pids");
		dir_of(cg, NULL, dir, sizeof(dir));
		if ((rc = mkdir_one(dir)) < 0)
			FAIL(rc, "mkdir %s: %s", dir, strerror(-rc));
		/* Every limit is written, "max" when unset: a reused
		 * cgroup keeps nothing of an earlier run. */
		if (memory_bytes)
			snprintf(val, sizeof(val), "%llu",
				 (unsigned long long)memory_bytes);
		else
			snprintf(val, sizeof(val), "max");
		if ((rc = write_file(dir, "memory.max", val)) < 0)
			FAIL(rc, "%s/memory.max: %s", dir, strerror(-rc));
		/* Over the limit means OOM, not swapping. */
		write_file(dir, "memory.swap.max", memory_bytes ? "0" : "max");
		snprintf(val, sizeof(val), "%u", cpu_weight);
		if ((rc = write_file(dir, "cpu.weight", val)) < 0)
			FAIL(rc, "%s/cpu.weight: %s", dir, strerror(-rc));
		if (cpu_quota_percent)
			snprintf(val, sizeof(val), "%u 100000",
				 cpu_quota_percent * 1000);
		else
			snprintf(val, sizeof(val), "max 100000");
		if ((rc = write_file(dir, "cpu.max", val)) < 0)
			FAIL(rc, "%s/cpu.max: %s", dir, strerror(-rc));
		snprintf(val, sizeof(val), "%u", max_pids);
		if ((rc = write_file(dir, "pids.max", val)) < 0)
			FAIL(rc, "%s/pids.max: %s", dir, strerror(-rc));
		/* v2 has no devices controller: the allowlist is a BPF
		 * program attached to the task's cgroup. */
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			FAIL(rc, "%s: %s", dir, strerror(-rc));
		}
		rc = agent_devices_bpf_attach(fd, why, whylen);
		close(fd);
		return rc;
	}

	/* Without the devices controller no device allowlist could be
	 * enforced: refuse rather than run the task with every device. */
	snprintf(dir, sizeof(dir), "%s/devices", AGENT_CGROUP_ROOT);
	if (access(dir, W_OK) != 0)
		FAIL(-ENOTSUP,
		     "no writable devices controller at %s: the task's device "
		     "allowlist cannot be enforced",
		     dir);
	for (size_t i = 0; i < NV1; i++) {
		snprintf(dir, sizeof(dir), "%s/%s/flotilla", AGENT_CGROUP_ROOT,
			 v1_ctls[i]);
		if (mkdir_one(dir) < 0 && i >= NV1_REQUIRED)
			continue; /* no freezer: kill without freezing */
		dir_of(cg, v1_ctls[i], dir, sizeof(dir));
		if ((rc = mkdir_one(dir)) < 0 && i < NV1_REQUIRED)
			FAIL(rc, "mkdir %s: %s", dir, strerror(-rc));
	}
	dir_of(cg, "memory", dir, sizeof(dir));
	if (memory_bytes)
		snprintf(val, sizeof(val), "%llu",
			 (unsigned long long)memory_bytes);
	else
		snprintf(val, sizeof(val), "-1");
	/* memsw must stay >= the memory limit: lift it first. */
	write_file(dir, "memory.memsw.limit_in_bytes", "-1");
	if ((rc = write_file(dir, "memory.limit_in_bytes", val)) < 0)
		FAIL(rc, "%s/memory.limit_in_bytes: %s", dir, strerror(-rc));
	if (memory_bytes) {
		/* Where swap accounting exists, forbid swap as on v2. */
		write_file(dir, "memory.memsw.limit_in_bytes", val);
		write_file(dir, "memory.swappiness", "0");
	}
	dir_of(cg, "cpu", dir, sizeof(dir));
	/* v2 weight 100 is v1 shares 1024. */
	unsigned shares = (unsigned)((uint64_t)cpu_weight * 1024 / 100);
	snprintf(val, sizeof(val), "%u", shares < 2 ? 2 : shares);
	if ((rc = write_file(dir, "cpu.shares", val)) < 0)
		FAIL(rc, "%s/cpu.shares: %s", dir, strerror(-rc));
	write_file(dir, "cpu.cfs_period_us", "100000");
	if (cpu_quota_percent) {
		snprintf(val, sizeof(val), "%u", cpu_quota_percent * 1000);
		if ((rc = write_file(dir, "cpu.cfs_quota_us", val)) < 0)
			FAIL(rc, "%s/cpu.cfs_quota_us: %s", dir, strerror(-rc));
	} else {
		write_file(dir, "cpu.cfs_quota_us", "-1");
	}
	dir_of(cg, "pids", dir, sizeof(dir));
	snprintf(val, sizeof(val), "%u", max_pids);
	if ((rc = write_file(dir, "pids.max", val)) < 0)
		FAIL(rc, "%s/pids.max: %s", dir, strerror(-rc));
	dir_of(cg, "devices", dir, sizeof(dir));
	return agent_devices_v1(dir, why, whylen);
}

int agent_cgroup_attach(const agent_cgroup_t *cg, pid_t pid)
{
	char dir[512], val[32];
	snprintf(val, sizeof(val), "%d", (int)pid);
	if (cg->version == 2) {
		dir_of(cg, NULL, dir, sizeof(dir));
		return write_file(dir, "cgroup.procs", val);
	}
	for (size_t i = 0; i < NV1; i++) {
		dir_of(cg, v1_ctls[i], dir, sizeof(dir));
		int rc = write_file(dir, "cgroup.procs", val);
		if (rc < 0 && (i < NV1_REQUIRED || rc != -ENOENT))
			return rc;
	}
	return 0;
}

/* The hierarchy whose membership we list: v2's, or v1's pids. */
static void procs_dir(const agent_cgroup_t *cg, char *dir, size_t len)
{
	dir_of(cg, cg->version == 2 ? NULL : "pids", dir, len);
}

static int for_each_pid(const agent_cgroup_t *cg, int sig)
{
	char dir[512], p[600];
	procs_dir(cg, dir, sizeof(dir));
	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	FILE *f = fopen(p, "re");
	int n = 0, pid;
	if (!f)
		return 0;
	while (fscanf(f, "%d", &pid) == 1) {
		n++;
		if (sig)
			kill(pid, sig);
	}
	fclose(f);
	return n;
}

bool agent_cgroup_empty(const agent_cgroup_t *cg)
{
	return for_each_pid(cg, 0) == 0;
}

void agent_cgroup_signal(const agent_cgroup_t *cg, int sig)
{
	for_each_pid(cg, sig);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

int agent_cgroup_kill(const agent_cgroup_t *cg, unsigned timeout_ms)
{
	char dir[512];
	/* Usually empty by now (pid 1 took its namespace along): freezing
	 * costs a kernel-wide text patch, so look first. */
	if (agent_cgroup_empty(cg))
		return 0;
	if (cg->version == 2) {
		dir_of(cg, NULL, dir, sizeof(dir));
		/* cgroup.kill (Linux 5.14) kills atomically, forks included. */
		if (write_file(dir, "cgroup.kill", "1") < 0)
			for_each_pid(cg, SIGKILL);
	} else {
		dir_of(cg, "freezer", dir, sizeof(dir));
		/* Frozen tasks cannot fork away from the kill; SIGKILL is
		 * delivered when they thaw. */
		bool frozen = write_file(dir, "freezer.state", "FROZEN") == 0;
		for_each_pid(cg, SIGKILL);
		if (frozen)
			write_file(dir, "freezer.state", "THAWED");
	}
	for (unsigned waited = 0; waited <= timeout_ms; waited += 10) {
		if (agent_cgroup_empty(cg))
			return 0;
		for_each_pid(cg, SIGKILL);
		sleep_ms(10);
	}
	return -ETIMEDOUT;
}

uint64_t agent_cgroup_oom_kills(const agent_cgroup_t *cg)
{
	char dir[512], buf[1024];
	dir_of(cg, "memory", dir, sizeof(dir));
	if (read_file(dir,
		      cg->version == 2 ? "memory.events" : "memory.oom_control",
		      buf, sizeof(buf)) < 0)
		return 0;
	char *p = strstr(buf, "oom_kill ");
	return p ? strtoull(p + 9, NULL, 10) : 0;
}

void agent_cgroup_destroy(const agent_cgroup_t *cg)
{
	char dir[512];
	if (cg->version == 2) {
		dir_of(cg, NULL, dir, sizeof(dir));
		rmdir(dir);
		return;
	}
	for (size_t i = 0; i < NV1; i++) {
		dir_of(cg, v1_ctls[i], dir, sizeof(dir));
		rmdir(dir);
	}
}
