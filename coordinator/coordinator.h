/* Internal interfaces of flotilla-coordinator. */
#ifndef FLOTILLA_COORDINATOR_H
#define FLOTILLA_COORDINATOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/query.h"
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

/*
 * The same view, shared and read-only: rebuilt only when the generation
 * changed since the last one, else the last one with a new reference.
 * Lookups (sched_fleet_find, sched_node_*) on it are safe from any thread.
 * NULL on a store failure (err set). Release every snapshot taken.
 */
typedef struct coord_fleet_snap coord_fleet_snap_t;
coord_fleet_snap_t *coord_nodes_snapshot(coord_nodes_t *n, flt_error_t *err);
struct sched_fleet *coord_fleet_snap_fleet(coord_fleet_snap_t *s);
void coord_fleet_snap_release(coord_fleet_snap_t *s);

/* Packages, inventories and campaigns; set before the servers open
 * (each may be NULL). */
struct coord_pkgs;
struct coord_inv;
struct coord_campaigns;
void coord_nodes_set_parts(coord_nodes_t *n, struct coord_pkgs *pkgs,
			   struct coord_inv *inv,
			   struct coord_campaigns *camps);

/* Resolves an id, unique id prefix or name to the node's id and name. */
int coord_nodes_resolve(coord_nodes_t *n, const char *q, char id[37],
			char *name, size_t name_len, flt_error_t *err);
/* True when the node is ready (heartbeats arriving). */
bool coord_nodes_ready(coord_nodes_t *n, const char *node_id);

/* ---- packages.c: chunks and manifests --------------------------------- */

typedef struct coord_pkgs coord_pkgs_t;

int coord_pkgs_open(flt_store_t *store, coord_writer_t *writer,
		    coord_pkgs_t **out, flt_error_t *err);
void coord_pkgs_close(coord_pkgs_t *p);
bool coord_pkgs_serves(Flotilla__Method m);
/* ChunkPut, PackagePush, PackageList, PackageGet. */
void coord_pkgs_handle_api(coord_pkgs_t *p, flt_request_t *r);
/* FetchChunk, for an authenticated agent. */
void coord_pkgs_fetch_chunk(coord_pkgs_t *p, flt_request_t *r);
/* The stored manifest of name@version (FLT_ENOTFOUND when absent). */
int coord_pkgs_get(coord_pkgs_t *p, const char *name, const char *version,
		   Flotilla__PackageManifest **out, flt_error_t *err);

/* ---- inventory.c: what each node reported --------------------------- */

#define FLT_INV_DIGEST_LEN 65

typedef struct coord_inv coord_inv_t;
struct sched_fleet;

/* advisories: the advisory file for advisory: terms, or NULL. */
int coord_inv_open(flt_store_t *store, const char *advisories,
		   coord_inv_t **out, flt_error_t *err);
void coord_inv_close(coord_inv_t *t);
const flt_advisories_t *coord_inv_advisories(coord_inv_t *t);
/* The digest held for node_id ("" when none). */
void coord_inv_digest(coord_inv_t *t, const char *node_id,
		      char out[FLT_INV_DIGEST_LEN]);
/* The digest and the agent's scan time of what is held for node_id. */
void coord_inv_state(coord_inv_t *t, const char *node_id,
		     char digest[FLT_INV_DIGEST_LEN], int64_t *scanned_at_ms);
/* Bounds an inventory from an agent and sorts its items. */
int coord_inv_check(Flotilla__Inventory *inv, flt_error_t *err);
/* Stores inv for node_id inside the writer's transaction... */
int coord_inv_apply(coord_inv_t *t, flt_txn_t *txn, const char *node_id,
		    Flotilla__Inventory *inv, flt_error_t *err);
/* ...and, once committed, shows it (takes inv). */
void coord_inv_commit(coord_inv_t *t, const char *node_id,
		      Flotilla__Inventory *inv);

/* Called for every matching host: node is its index in the fleet, hits
 * the indexes of the matched items. Non-zero stops the walk. */
typedef int (*coord_inv_fn)(void *arg, size_t node,
			    const Flotilla__Inventory *inv, const size_t *hits,
			    size_t n_hits);
/* Evaluates q over every node of f; returns the hosts matched and counts
 * in *unknown those without an inventory. */
size_t coord_inv_eval(coord_inv_t *t, const struct sched_fleet *f,
		      const flt_query_t *q, coord_inv_fn fn, void *arg,
		      size_t *unknown);
/* Does node (an index in f) match q now? The matched items' versions
 * and paths go to versions and paths (", " lists); *known says whether
 * the node has an inventory at all. */
bool coord_inv_match_node(coord_inv_t *t, const struct sched_fleet *f,
			  size_t node, const flt_query_t *q, char *versions,
			  size_t vlen, char *paths, size_t plen, bool *known);
/* The versions of the items called name on node_id (", " list). */
void coord_inv_versions_of(coord_inv_t *t, const char *node_id,
			   const char *name, char *out, size_t len);
bool coord_inv_serves(Flotilla__Method m);
void coord_inv_handle_api(coord_inv_t *t, coord_nodes_t *nodes,
			  flt_request_t *r);

/* ---- campaign.c: fleet-wide patch campaigns ------------------------- */

typedef struct coord_campaigns coord_campaigns_t;

typedef struct coord_campaigns_opts {
	flt_store_t *store;
	coord_writer_t *writer;
	coord_nodes_t *nodes;
	coord_inv_t *inv;
	coord_pkgs_t *pkgs;
	uint32_t tick_ms; /* 0: 100 */
} coord_campaigns_opts_t;

int coord_campaigns_open(const coord_campaigns_opts_t *o,
			 coord_campaigns_t **out, flt_error_t *err);
void coord_campaigns_stop(coord_campaigns_t *c);
void coord_campaigns_free(coord_campaigns_t *c);
bool coord_campaigns_serves(Flotilla__Method m);
void coord_campaigns_handle_api(coord_campaigns_t *c, flt_request_t *r);
/* A node's step statuses from its Sync (copied). */
void coord_campaigns_report(coord_campaigns_t *c, const char *node_id,
			    Flotilla__StepStatus *const *steps, size_t n);
/* Fills resp->steps with the node's open steps; free with
 * coord_campaigns_node_steps_free. */
void coord_campaigns_node_steps(coord_campaigns_t *c, const char *node_id,
				Flotilla__SyncResponse *resp);
void coord_campaigns_node_steps_free(Flotilla__SyncResponse *resp);

#endif
