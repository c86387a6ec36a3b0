/*
 * Task supervision in the agent: which tasks should run, one detached
 * flotilla-shim per task, re-attachment to live shims after an agent
 * restart, health checks, and the TaskStatus list the agent reports in
 * every Sync.
 *
 * Tasks come from two sources that never touch each other's tasks: the
 * JSON specs in --task-dir (static tasks, named by their spec) and the
 * allocations the coordinator sends (alloc tasks, named by allocation id
 * and task name, in <data_dir>/allocs/<alloc id>/<task>/).
 */
#ifndef FLOTILLA_AGENT_TASKS_H
#define FLOTILLA_AGENT_TASKS_H

#include <stdbool.h>
#include <stddef.h>

#include "flotilla.pb-c.h"
#include "flotilla/store.h"
#include "pkgstore.h"

typedef struct agent_tasks agent_tasks_t;

typedef struct agent_tasks_opts {
	flt_store_t *store;
	const char *data_dir;
	const char *spec_dir; /* NULL: no static tasks */
	/*
	 * Called when what agent_tasks_status reports of a task changes in a
	 * way the coordinator waits for: its state or health, or the task
	 * appearing or going. Called from the main loop, the health thread or
	 * agent_tasks_set_allocs' caller, with no lock of the table held; it
	 * must be quick (write to an eventfd) and may be NULL.
	 */
	void (*on_change)(void *arg);
	void *change_arg;
	/* The packages tasks may use (spec "uses"); NULL: none installed. */
	agent_pkgs_t *pkgs;
	/* What tasks may weaken in their sandbox; NULL: nothing. A task
	 * asking more is refused (reported FAILED, never started). */
	const Flotilla__Allowances *allow;
} agent_tasks_opts_t;

/* Loads the task records and re-attaches to every live shim; starts the
 * health-check thread. */
int agent_tasks_open(const agent_tasks_opts_t *o, agent_tasks_t **out,
		     flt_error_t *err);
/* Stops the health thread; tasks keep running under their shims. */
void agent_tasks_close(agent_tasks_t *t);

/* Reconciles specs with tasks and collects state changes. Main loop,
 * about once a second. */
void agent_tasks_tick(agent_tasks_t *t);

/*
 * The allocations this node must run: all of them (the set replaces the
 * previous one). Every task of every allocation runs, started before this
 * returns; alloc tasks of allocations no longer listed get their stop
 * signal now and are forgotten (records and directories) once stopped. A
 * task whose spec changed is stopped and started anew with the new one.
 * Until the first call after agent_tasks_open, re-attached alloc tasks are
 * left running whatever happens: the coordinator may be out of reach.
 *
 * A task spec this host refuses (agent_task_spec_check: no such user, a
 * missing mount source...) is reported FAILED with the reason as its
 * message, and not started. Past MAX_TASKS tasks in all, further tasks are
 * not started (warned in the log).
 *
 * Each alloc task gets FLOTILLA_ALLOC_ID, FLOTILLA_JOB, FLOTILLA_GROUP,
 * FLOTILLA_ALLOC_INDEX and FLOTILLA_TASK in its environment, over any the
 * spec sets.
 *
 * Packages (spec "uses", static tasks too): each is bound read-only at
 * <packages_dir>/<name> from its version directory as current when the
 * task starts, with FLOTILLA_PACKAGE_<NAME>_VERSION in the environment. A
 * task whose package has no current version here is reported FAILED
 * ("package NAME is not installed on this host") and not started; it is
 * tried again after agent_tasks_packages_changed, and every 5 s.
 *
 * allocs is borrowed. Returns 0, or -EINVAL naming the first allocation
 * that was malformed (id not a UUID, job or group not a name, a task
 * without a name or named twice); those are skipped, the others applied,
 * and the caller should try the set again later. Thread-safe.
 */
int agent_tasks_set_allocs(agent_tasks_t *t, Flotilla__AllocSpec *const *allocs,
			   size_t n, flt_error_t *err);

/*
 * The log directory (stdout.log, stderr.log) of task `task` of allocation
 * alloc_id ("" task: the allocation's first task), copied into dir.
 * Returns 0 or FLT_ENOTFOUND with a message naming what is missing.
 * Thread-safe.
 */
int agent_tasks_log_dir(agent_tasks_t *t, const char *alloc_id,
			const char *task, char *dir, size_t len,
			flt_error_t *err);

/* A snapshot for Sync: *out is an array of n statuses (free with
 * agent_tasks_status_free). Alloc tasks carry alloc_id and their own task
 * name; static tasks an empty alloc_id. Thread-safe. */
size_t agent_tasks_status(agent_tasks_t *t, Flotilla__TaskStatus ***out);
void agent_tasks_status_free(Flotilla__TaskStatus **v, size_t n);

/* ---- packages ------------------------------------------------------- */

/*
 * A task uses a package when its spec lists it, or when its running
 * process has it mounted (a task re-attached after an agent restart,
 * before its spec is known again).
 *
 * agent_tasks_restart_using asks every task that uses pkg, and should run,
 * to restart: stopped (stop signal, kill timeout) and started anew with
 * the package's version current at that moment; one that is not running
 * is started. A re-attached task whose spec has not come back yet keeps
 * running until it does (ADR 0008: nothing stops before the coordinator
 * speaks). Until the new process is started the task is reported
 * RESTARTING. Returns how many tasks were asked; the work is done by
 * agent_tasks_tick. Thread-safe.
 */
unsigned agent_tasks_restart_using(agent_tasks_t *t, const char *pkg);

/* A package switched: tasks that could not start for want of a package
 * are restarted (as agent_tasks_restart_using does). Thread-safe. */
void agent_tasks_packages_changed(agent_tasks_t *t);

/* What a patch step watches of one task that uses a package. */
typedef struct agent_task_health {
	char key[128]; /* "<name>", or "<alloc id>/<name>" */
	uint64_t gen; /* changes when the task is replaced (new spec) */
	Flotilla__TaskState state; /* as reported */
	bool healthy; /* running and every check passed its last run */
	bool starting; /* a restart the agent asked for is under way */
	uint64_t runs; /* processes started for it: grows on every restart */
	/* running, and a check has failed its threshold of runs in a row
	 * (agent_check_failed): the first such check's count, and its reason
	 * in why */
	bool failed_checks;
	uint32_t failures;
	char why[320]; /* when not healthy: its state and reason */
} agent_task_health_t;

/*
 * The tasks that use pkg and should run: *out (malloc'd, free it) gets one
 * entry each, in no particular order; returns how many. Thread-safe.
 */
size_t agent_tasks_health_using(agent_tasks_t *t, const char *pkg,
				agent_task_health_t **out);

/* True for the 36 characters of a UUID (8-4-4-4-12 hex digits). */
bool agent_is_uuid(const char *s);

#endif
