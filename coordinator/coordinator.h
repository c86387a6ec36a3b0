/* Internal interfaces of flotilla-coordinator. */
#ifndef FLOTILLA_COORDINATOR_H
#define FLOTILLA_COORDINATOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/store.h"
#include "flotilla/tls.h"
#include "flotilla/wire.h"

/* ---- writer.c: the single writer, with group commit ------------------ */

typedef struct coord_writer coord_writer_t;

/*
 * Applies one change inside the batch's transaction. Runs on the writer
 * thread. Returning an error makes the writer re-run every op of the batch
 * alone, so that one bad op never takes the others down with it.
 */
typedef int (*coord_apply_fn)(flt_txn_t *txn, void *arg, flt_error_t *err);
/* Runs on the writer thread after the commit (rc 0) or failure. */
typedef void (*coord_done_fn)(void *arg, int rc, uint64_t index,
			      const flt_error_t *err);

int coord_writer_start(flt_store_t *store, coord_writer_t **out,
		       flt_error_t *err);
/* Queues an op; done (may be NULL) is always called exactly once. */
void coord_writer_submit(coord_writer_t *w, coord_apply_fn apply,
			 coord_done_fn done, void *arg);
/*
 * Applies everything still queued, then stops the thread; ops submitted
 * afterwards fail at once with -ESHUTDOWN. coord_writer_free (after every
 * submitter is gone) releases it.
 */
void coord_writer_stop(coord_writer_t *w);
void coord_writer_free(coord_writer_t *w);

/* ---- nodes.c: the node table, registration and heartbeats ------------ */

typedef struct coord_nodes coord_nodes_t;

typedef struct coord_nodes_opts {
	flt_store_t *store;
	coord_writer_t *writer;
	const char *join_token;
	int64_t ttl_ms;
	uint32_t interval_ms;
	uint32_t max_watch_ms;
} coord_nodes_opts_t;

/* Loads every stored node; each live one gets a fresh grace period. */
int coord_nodes_open(const coord_nodes_opts_t *o, coord_nodes_t **out,
		     flt_error_t *err);
void coord_nodes_close(coord_nodes_t *n);

/* Agent methods (Register, Sync, Watch). */
void coord_nodes_handle_agent(flt_request_t *r, void *arg);
/* Operator methods (NodeList, NodeGet). */
void coord_nodes_handle_api(flt_request_t *r, void *arg);

/*
 * Declares down every node silent for longer than the TTL and answers
 * expired long-polls. Called by the main loop a few times a second.
 */
void coord_nodes_tick(coord_nodes_t *n);

/*
 * Shutdown, before the writer drains and the servers close: agent calls
 * are refused from now on (ERROR_UNAVAILABLE), every parked long-poll is
 * answered, and no new work reaches the writer.
 */
void coord_nodes_shutdown(coord_nodes_t *n);
void coord_nodes_release_watches(coord_nodes_t *n);

size_t coord_nodes_count(coord_nodes_t *n, size_t *ready, size_t *down);

/* The engine that serves jobs; set before the servers open. */
struct coord_engine;
void coord_nodes_set_engine(coord_nodes_t *n, struct coord_engine *e);
/* The allocations of node_id changed at index: wake its long-poll. */
void coord_nodes_push(coord_nodes_t *n, const char *node_id, uint64_t index);
/* Changes whenever coord_nodes_fleet would return something else. */
uint64_t coord_nodes_generation(coord_nodes_t *n);
/* A draining node has nothing left: the drain is complete. */
void coord_nodes_drained(coord_nodes_t *n, const char *node_id);

/*
 * The scheduler's view of the fleet now: every stored node with its
 * attributes (node.name, node.id, attr.<fingerprint field>, label.<key>)
 * and capacity; eligible when ready. NULL on a store failure (err set).
 * Free with sched_fleet_free.
 */
struct sched_fleet;
struct sched_fleet *coord_nodes_fleet(coord_nodes_t *n, flt_error_t *err);

/* ---- jobs.c: operator methods on jobs --------------------------------- */

/* JobPlan: checks the job and shows where its allocations would go. */
void coord_jobs_plan(coord_nodes_t *n, flt_request_t *r);

#endif
