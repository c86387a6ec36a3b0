/*
 * What the agent tells a task's supervisor (flotilla-shim): everything
 * resolved in advance (user ids, capability numbers, paths), so the shim
 * needs nothing but libc and libcap and stays small. Stored as text, one
 * "key value" per line, values percent-escaped; written atomically.
 */
#ifndef FLOTILLA_SHIMCONF_H
#define FLOTILLA_SHIMCONF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define SHIM_PATH_MAX 512

enum shim_net { SHIM_NET_NONE, SHIM_NET_PRIVATE, SHIM_NET_HOST };
enum shim_restart {
	SHIM_RESTART_FAILURE,
	SHIM_RESTART_ALWAYS,
	SHIM_RESTART_NEVER
};

typedef struct shim_mount {
	char *source, *target;
	bool writable; /* else read-only (the default) */
} shim_mount_t;

typedef struct shim_rlimit {
	int resource;
	rlim_t soft, hard;
} shim_rlimit_t;

typedef struct shim_conf {
	char name[64];
	char task_dir[SHIM_PATH_MAX]; /* status, logs, rootfs, alloc */
	char alloc_target[SHIM_PATH_MAX];
	char workdir[SHIM_PATH_MAX];
	char hostname[64];
	char seccomp_file[SHIM_PATH_MAX]; /* "" for unconfined */
	char cgroup[128]; /* cgroup name below flotilla/ */
	char **argv;
	size_t argc;
	char **envp;
	size_t envc;
	shim_mount_t *mounts;
	size_t nmounts;
	char **masks; /* host paths hidden under an empty read-only tmpfs */
	size_t nmasks;
	shim_rlimit_t *rlimits;
	size_t nrlimits;
	uint64_t caps; /* bit n keeps capability n */
	uid_t uid;
	gid_t gid;
	int net; /* enum shim_net */
	uint64_t memory_bytes;
	uint32_t cpu_weight;
	uint32_t cpu_quota_percent;
	uint32_t max_pids;
	int restart; /* enum shim_restart */
	uint32_t restart_attempts;
	uint32_t restart_interval_ms;
	uint32_t restart_delay_ms;
	int stop_signal;
	uint32_t kill_timeout_ms;
	uint64_t log_max_bytes;
	uint32_t log_max_files;
	uint32_t tmp_size_mb; /* bound of /tmp and /dev/shm; 0: the default */
} shim_conf_t;

/* The bound of a task's /tmp (and of its /dev/shm) when the spec sets
 * none: tmpfs pages are memory, and without a bound of their own they
 * are bounded only by the memory limit, if the task has one. */
#define SHIM_TMP_SIZE_MB_DEFAULT 64

/* Writes c to path (temp file, fsync, rename). Returns 0 or -errno. */
int shim_conf_write(const shim_conf_t *c, const char *path);
/* Reads path into c (zeroed first); -EINVAL names the bad line in why. */
int shim_conf_read(const char *path, shim_conf_t *c, char *why, size_t len);
void shim_conf_free(shim_conf_t *c);

/* Adds to the dynamic lists (copies the strings; aborts on OOM). */
void shim_conf_add_arg(shim_conf_t *c, const char *a);
void shim_conf_add_env(shim_conf_t *c, const char *kv);
void shim_conf_add_mount(shim_conf_t *c, const char *src, const char *tgt);
void shim_conf_add_mask(shim_conf_t *c, const char *path);
void shim_conf_add_rlimit(shim_conf_t *c, int res, rlim_t soft, rlim_t hard);

#endif
