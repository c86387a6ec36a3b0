/*
 * Patch steps: what a campaign asks of this host (install a package
 * version, or switch back to one). The coordinator lists every step the
 * node has to run or report on in each SyncResponse; new ones run one at
 * a time, in the order listed, on a worker thread of their own.
 *
 * Each step id runs at most once, whatever happens: a journal in the
 * agent's LMDB store ("steps": id -> the step's StepStatus and what a
 * restarted agent needs to settle it) is written before every phase is
 * acted on, and an id found there is only ever reported again. Every run
 * appends one "start" line and one "end" line to <data_dir>/steps.log.
 *
 *   INSTALL:  APPLYING (fetch chunks, verify, stage, switch) ->
 *             VERIFYING (restart the tasks that use the package when the
 *             step says so; they must all run healthy, then stay so for
 *             min_healthy_ms) -> SUCCEEDED after an inventory re-scan;
 *             a task that exits, fails, restarts or turns unhealthy, or
 *             no health within the step's timeout, switches back to the
 *             previous version (restarting the tasks again): FAILED with
 *             rolled_back. Staging errors: FAILED, nothing switched.
 *   ROLLBACK: APPLYING (switch to rollback_to, which must be staged; ""
 *             removes the current version) -> VERIFYING -> SUCCEEDED, or
 *             FAILED when the tasks do not come back healthy.
 *
 * An agent that stops or dies mid-step leaves the step APPLYING or
 * VERIFYING in the journal; the next start settles it before any task is
 * supervised: the package is switched back when it points at the step's
 * new version, and the step is FAILED with "the agent restarted during the
 * step".
 */
#ifndef FLOTILLA_AGENT_STEPS_H
#define FLOTILLA_AGENT_STEPS_H

#include <stddef.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/store.h"
#include "invscan.h"
#include "pkgstore.h"
#include "tasks.h"

#define AGENT_STEP_TIMEOUT_MS 300000u /* a step's timeout_ms when 0 */

typedef struct agent_steps agent_steps_t;

typedef struct agent_steps_opts {
	flt_store_t *store; /* opened with a "steps" database */
	const char *data_dir; /* where steps.log is appended; borrowed */
	agent_pkgs_t *pkgs;
	/* Fetches a chunk from the coordinator (worker thread). */
	agent_chunk_fetch_fn fetch;
	void *fetch_arg;
	/* A step's reported status changed: quick, any thread, may be
	 * NULL. */
	void (*on_change)(void *arg);
	void *change_arg;
	/* Staged versions kept per package besides the current one and the
	 * one a rollback would return to; older ones are removed after a
	 * step that restarted the package's users succeeds. */
	unsigned package_keep;
} agent_steps_opts_t;

/*
 * Opens the journal and settles every step a previous run left under way
 * (switching packages back; the tasks that use them are restarted by
 * agent_steps_start). Call it before the tasks are re-attached. Fails
 * only when the journal cannot be read or steps.log opened.
 */
int agent_steps_open(const agent_steps_opts_t *o, agent_steps_t **out,
		     flt_error_t *err);

/*
 * Restarts the tasks that use the packages agent_steps_open switched back,
 * and starts the worker. tasks and inv are borrowed until close.
 */
int agent_steps_start(agent_steps_t *s, agent_tasks_t *tasks,
		      agent_invscan_t *inv, flt_error_t *err);

/*
 * Stops the worker: a step under way is left as it stands in the journal
 * (the next start settles it). Call before closing what it borrows.
 */
void agent_steps_close(agent_steps_t *s);

/*
 * The steps of the latest SyncResponse (borrowed, copied): what is
 * reported from now on, and what the worker runs (those not in the
 * journal yet, in this order). Thread-safe.
 */
void agent_steps_offer(agent_steps_t *s, Flotilla__PatchStep *const *steps,
		       size_t n);

/*
 * For the next SyncRequest: the journal's status of every step of the
 * latest offer, and of the step under way. *out is an array of the
 * returned number of statuses (free with agent_steps_status_free).
 * Thread-safe.
 */
size_t agent_steps_status(agent_steps_t *s, Flotilla__StepStatus ***out);
void agent_steps_status_free(Flotilla__StepStatus **v, size_t n);

#endif
