/* Job specs: the JSON product teams submit, parsed and checked. */
#ifndef FLOTILLA_JOB_H
#define FLOTILLA_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

/* Largest job spec flt_job_parse accepts, in bytes. */
#define FLT_JOB_SPEC_MAX (1u << 20)

/*
 * Parses len bytes of JSON text (need not be NUL-terminated) into a new
 * Job, mapped field by field from the proto (flt_pb_from_json), and checks
 * it with flt_job_check. On success *out is owned by the caller (free with
 * flotilla__job__free_unpacked(job, NULL)); on failure *out is untouched.
 *
 * Errors: -EFBIG past FLT_JOB_SPEC_MAX; -EINVAL for everything else, with
 * "line L column C: <reason>" for JSON syntax (duplicate keys included)
 * and "<field path>: <reason>" for the rest. Unlike flt_job_check, an
 * explicit 0 is refused where 0 is out of range ("priority": 0,
 * "count": 0 outside system jobs) instead of standing for the default.
 */
int flt_job_parse(const char *json, size_t len, Flotilla__Job **out,
		  flt_error_t *err);

/*
 * Checks every field of job and reports the first error with its full
 * field path and reason ("groups[1].name: \"web\" is used by groups[0]").
 * Every string must be valid UTF-8 without control characters but tab
 * and newline ("groups[0].tasks[0].args[0]: control character at byte
 * 1"). Host-independent: meant for the coordinator, which cannot resolve task
 * users or see mount sources (the agent checks those when it starts a
 * task).
 *
 * Fills numeric defaults, since proto3 cannot tell 0 from absent: priority
 * 50, count 1 (0 for system jobs, whose count is ignored), spread weight
 * 50, update (max_parallel 1, min_healthy_time_ms 10000,
 * healthy_deadline_ms 300000, progress_deadline_ms 600000) and reschedule
 * (attempts 2, interval_ms 3600000, delay_ms 30000). A missing update or
 * reschedule message is allocated with malloc, so job must be freeable by
 * protobuf-c's default allocator (as parsed and unpacked jobs are). Strings
 * are left as given ("" type means service). On failure job may be partly
 * filled.
 *
 * Returns 0 or -EINVAL.
 */
int flt_job_check(Flotilla__Job *job, flt_error_t *err);

/*
 * Checks one task spec without touching the host: the rules of the
 * agent's own check except that the user is not looked up (only root by
 * name, uid 0 and gid 0 are refused) and mount sources are not looked
 * for. What is never granted (flotilla/privilege.h) is refused: such a
 * capability, seccomp.allow name or mount source ("mounts[0].source: /run
 * is never granted: ..."); a mount names either a source or a volume.
 * Whether an agent allows the rest is not checked here. Error paths start
 * with prefix ("groups[0].tasks[1]"; NULL or "" for none). Packages in uses must be valid names (flt_pkg_name_valid), at
 * most 16, each once; packages_dir, when set, an absolute path other than
 * "/". Returns 0 or -EINVAL.
 */
int flt_task_check(const Flotilla__TaskSpec *t, const char *prefix,
		   flt_error_t *err);

/*
 * A tcp or http health check's address: "host:port", "[v6]:port" or
 * "[v6%zone]:port". Splits it into host (the brackets removed) and port
 * (its number, without leading zeros) and sets *numeric when host is an
 * IP address, not a name. Returns 0, or -EINVAL with *reason pointing at
 * the words that follow the field name ("port must be 1-65535").
 */
#define FLT_CHECK_HOST_MAX 256
#define FLT_CHECK_PORT_MAX 6
int flt_check_address_split(const char *address, char host[FLT_CHECK_HOST_MAX],
			    char port[FLT_CHECK_PORT_MAX], bool *numeric,
			    const char **reason);

/* An http check's path: it goes into the request line, so it must start
 * with '/' and hold no space or control character (no CR/LF injection),
 * and be at most FLT_CHECK_PATH_MAX bytes. */
#define FLT_CHECK_PATH_MAX 1024
bool flt_check_path_ok(const char *path);

/*
 * Checks one health check; prefix like "groups[0].tasks[1].checks[2]"
 * (NULL or "" for none).
 */
int flt_check_validate(const Flotilla__HealthCheck *hc, const char *prefix,
		       flt_error_t *err);

/*
 * The variable that tells a task the version of a package it uses (task
 * spec "uses"): FLOTILLA_PACKAGE_<name upper-cased, every character but
 * A-Z and 0-9 as '_'>_VERSION ("demo-lib": FLOTILLA_PACKAGE_DEMO_LIB_VERSION).
 * Task checks refuse two packages that map to the same variable.
 */
#define FLT_PKG_ENV_MAX (17 + 64 + 8 + 1)
void flt_pkg_env_name(const char *pkg, char out[FLT_PKG_ENV_MAX]);

/*
 * The operators of a constraint, in the order of this enum: "=", "!=",
 * "<", ">", "<=", ">=", "regexp", "version", "set_contains", "in",
 * "is_set", "is_not_set", "distinct_hosts", "distinct_property".
 */
typedef enum flt_constraint_op {
	FLT_OP_EQ,
	FLT_OP_NE,
	FLT_OP_LT,
	FLT_OP_GT,
	FLT_OP_LE,
	FLT_OP_GE,
	FLT_OP_REGEXP,
	FLT_OP_VERSION,
	FLT_OP_SET_CONTAINS,
	FLT_OP_IN,
	FLT_OP_IS_SET,
	FLT_OP_IS_NOT_SET,
	FLT_OP_DISTINCT_HOSTS,
	FLT_OP_DISTINCT_PROPERTY,
} flt_constraint_op_t;

/* The operator spelled op, or -1 for none. */
int flt_constraint_op(const char *op);

/* RLIMIT_* of a task rlimit name ("nofile"), or -1. */
int flt_rlimit_resource(const char *name);

/* "SIGTERM", "TERM" or "15" (and "" for SIGTERM) -> 15; 0 if unknown. */
int flt_signal_number(const char *name);

#endif
