/*
 * The engine: jobs, allocations, deployments and evaluations.
 *
 * One thread owns every change to them. Operator requests, node events
 * and the agents' reports queue work; each cycle the engine evaluates the
 * jobs concerned (reconcile: placements, stops, in-place updates,
 * deployment steps), commits the whole plan in one LMDB transaction
 * through the writer, then makes it visible: readers see committed state
 * only, and the nodes whose allocations changed are pushed.
 *
 * Threads: queueing work (the operator changes, coord_engine_report,
 * coord_engine_node_event) takes only the queue's lock, which nothing holds
 * for longer than a few pointer moves; reads of committed state (the
 * operator reads, coord_engine_node_allocs, coord_engine_job) take only the
 * view's lock, which the engine thread holds only to grow a table or to
 * publish a committed plan, never through an evaluation or a commit. No
 * entry point waits for a cycle but the direct calls below, which say so.
 * The callbacks of coord_engine_opts_t run on the engine thread (fleet
 * also on the API's threads, for JobPlan) with no engine lock held.
 */
#ifndef FLOTILLA_ENGINE_H
#define FLOTILLA_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator.h"
#include "scheduler.h"

typedef struct coord_engine coord_engine_t;

typedef struct coord_engine_opts {
	flt_store_t *store;
	coord_writer_t *writer;
	/* The fleet now: every node with attributes, capacity, eligibility
	 * and state (sched_node_set_state). NULL with err on failure. */
	sched_fleet_t *(*fleet)(void *ctx, flt_error_t *err);
	/* Optional: a number that changes whenever fleet() would return
	 * something else; the engine then reuses its last fleet. */
	uint64_t (*fleet_gen)(void *ctx);
	/* The allocations of node_id changed in the commit of index. */
	void (*push)(void *ctx, const char *node_id, uint64_t index);
	/* A draining node holds no allocation any more. */
	void (*drained)(void *ctx, const char *node_id);
	void *ctx;
	/* How often running deployments and timers are looked at. */
	uint32_t tick_ms; /* default 200 */
	/*
	 * Garbage collection (docs/operator-guide.md): terminal allocations,
	 * evaluations and deployments older than gc_retention_ms, and jobs
	 * that ended (stopped, or batch jobs whose allocations all completed)
	 * longer than gc_job_retention_ms ago, are deleted; of the versions
	 * of a job, the newest gc_versions_kept and those still needed stay.
	 * A collection runs every gc_interval_ms. 0: the defaults, 4 h, 24 h,
	 * 10 versions, and 5 min or the retention when that is shorter.
	 */
	int64_t gc_retention_ms;
	int64_t gc_job_retention_ms;
	uint32_t gc_versions_kept;
	int64_t gc_interval_ms;
} coord_engine_opts_t;

#define COORD_GC_RETENTION_MS (4LL * 3600 * 1000)
#define COORD_GC_JOB_RETENTION_MS (24LL * 3600 * 1000)
#define COORD_GC_VERSIONS_KEPT 10
#define COORD_GC_INTERVAL_MS (5LL * 60 * 1000)

/* Loads the stored state and starts the engine thread. */
int coord_engine_open(const coord_engine_opts_t *o, coord_engine_t **out,
		      flt_error_t *err);
/* Finishes the cycle under way and stops the thread. */
void coord_engine_stop(coord_engine_t *e);
void coord_engine_free(coord_engine_t *e);

/* ---- operator methods (jobs.c) ------------------------------------------- */

/*
 * One function a method, for the API's method table: each decodes r's
 * body, checks it, and answers r: at once for a read, or, for a change,
 * deferred until the engine's cycle that committed it (or refused it:
 * ERROR_NOT_FOUND, ERROR_CONFLICT with the reason). Called on the API
 * server's threads; r is answered exactly once.
 */
/* JobRegister: a checked job, as a new version when it changed. */
void coord_jobs_register(coord_engine_t *e, flt_request_t *r);
/* JobStop: the job's allocations stop; its record stays. */
void coord_jobs_stop(coord_engine_t *e, flt_request_t *r);
/* JobGet: the summary, record, allocations, latest deployment, evals. */
void coord_jobs_get(coord_engine_t *e, flt_request_t *r);
/* JobList: a summary of every job. */
void coord_jobs_list(coord_engine_t *e, flt_request_t *r);
/* JobHistory: every stored version, newest first. */
void coord_jobs_history(coord_engine_t *e, flt_request_t *r);
/* JobPlan: checks the job and shows where its allocations would go, on
 * the fleet as the engine's fleet callback returns it; changes nothing. */
void coord_jobs_plan(coord_engine_t *e, flt_request_t *r);
/* AllocGet: by id or unique id prefix, with the tasks last reported. */
void coord_allocs_get(coord_engine_t *e, flt_request_t *r);
/* The full id of the allocation q (an id or unique id prefix) names, and
 * the node it is placed on ("" when none). FLT_ENOTFOUND or
 * FLT_ECONFLICT (an ambiguous prefix) with a message. */
int coord_allocs_node(coord_engine_t *e, const char *q, const char *ns,
		      char alloc_id[37], char node_id[37], flt_error_t *err);
/* DeploymentGet: by id, unique id prefix, or job name (its latest). */
void coord_deployments_get(coord_engine_t *e, flt_request_t *r);
/* DeploymentPromote: the canaries are healthy; the rollout goes on. */
void coord_deployments_promote(coord_engine_t *e, flt_request_t *r);
/* DeploymentFail: fails the deployment (and reverts with auto_revert). */
void coord_deployments_fail(coord_engine_t *e, flt_request_t *r);
/* DeploymentPause: the deployment places nothing new (but replacements of
 * what was lost or failed), neither promotes nor advances, and its
 * progress deadline stands still; health is still recorded. */
void coord_deployments_pause(coord_engine_t *e, flt_request_t *r);
/* DeploymentResume: goes on, the progress deadline moved by the time
 * paused. */
void coord_deployments_resume(coord_engine_t *e, flt_request_t *r);

/* JobPurge: a stopped job is deleted now, with its versions, allocations,
 * evaluations and deployments; a job that is not stopped is refused
 * (ERROR_CONFLICT: stop it first). */
void coord_jobs_purge(coord_engine_t *e, flt_request_t *r);
/* SystemGc: a garbage collection now (GcResponse: what it deleted). */
void coord_system_gc(coord_engine_t *e, flt_request_t *r);

/* ---- from the node table ----------------------------------------------- */

void coord_engine_node_event(coord_engine_t *e, const char *node_id,
			     enum coord_node_event ev);

/*
 * A node's Sync: the statuses of every task it runs (copied). Queued for
 * the next cycle when they differ from the node's last report; a memcmp
 * when they do not. Never waits for the engine's cycle: it takes only the
 * queue's lock.
 */
void coord_engine_report(coord_engine_t *e, const char *node_id,
			 Flotilla__TaskStatus *const *tasks, size_t n);

/* Fills resp->allocs with what node_id must run (allocs_set true), as
 * last committed. Takes only the view's lock: never waits for a cycle. */
void coord_engine_node_allocs(coord_engine_t *e, const char *node_id,
			      Flotilla__SyncResponse *resp);
void coord_engine_node_allocs_free(Flotilla__SyncResponse *resp);

/* ---- direct calls (tests, benchmarks) ------------------------------------ */

/* Registers a checked job and waits for the commit. */
int coord_engine_register(coord_engine_t *e, const Flotilla__Job *job,
			  Flotilla__JobRegisterResponse **out,
			  flt_error_t *err);
/*
 * The same as METHOD_DEPLOYMENT_PROMOTE, _FAIL, _PAUSE or _RESUME (m) on
 * id, waiting for the commit: *out is the deployment then (free with
 * flotilla__deployment__free_unpacked).
 */
int coord_engine_deployment_act(coord_engine_t *e, Flotilla__Method m,
				const char *id, Flotilla__Deployment **out,
				flt_error_t *err);
/* The same as METHOD_JOB_GET; free with ..._free_unpacked. */
int coord_engine_job(coord_engine_t *e, const char *name,
		     Flotilla__JobGetResponse **out, flt_error_t *err);
/* The same as METHOD_JOB_STOP, waiting for the commit. */
int coord_engine_stop_job(coord_engine_t *e, const char *name,
			  flt_error_t *err);
/* A job purge (name) or, with name NULL, a garbage collection now; waits
 * for the commit. *out receives the counts of what was deleted. */
int coord_engine_gc(coord_engine_t *e, const char *name,
		    Flotilla__GcResponse *out, flt_error_t *err);
/* Whether a job that is not stopped has a task whose `uses` names the
 * package (the job's name in who). Takes only the view's lock. */
bool coord_engine_uses_package(coord_engine_t *e, const char *name, char *who,
			       size_t len);
/* How many jobs and allocations the engine holds in memory. */
void coord_engine_counts(coord_engine_t *e, size_t *jobs, size_t *allocs);
/* Waits until the queued work and the cycle it starts are done. */
void coord_engine_settle(coord_engine_t *e);

#endif
