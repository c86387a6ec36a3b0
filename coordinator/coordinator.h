/* Internal interfaces of flotilla-coordinator. */
#ifndef FLOTILLA_COORDINATOR_H
#define FLOTILLA_COORDINATOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/lock.h"
#include "flotilla/query.h"
#include "flotilla/store.h"
#include "flotilla/tls.h"
#include "flotilla/wire.h"

/* ---- locks ------------------------------------------------------------ */

/*
 * The coordinator's locks, in their one order: a thread may take a lock
 * only while every lock it holds comes earlier in this list. Builds with
 * FLT_LOCK_CHECK (the sanitizer build) check it at run time and abort on
 * a violation (flotilla/lock.h). No lock is held across a wait for
 * another thread's work except where a condition variable releases it.
 *
 * COORD_LOCK_CAMPAIGNS (campaign.c, cs->mtx): the campaigns and targets
 *   in memory, the queues of reports and operator commands, `stopping`.
 *   Taken by the campaign thread around each read or publication of its
 *   state, by operator reads (get, list: the reply is sent under it) and
 *   by Sync's report and node_steps. Under it: memory and replies; the
 *   campaign thread calls the node table, inventories and the writer
 *   without it.
 * COORD_LOCK_INVENTORY (inventory.c): the inventories held in memory; read
 *   for queries, digests and matches, written when a commit shows a new
 *   inventory (the writer's thread). Under it: query matching, a query's
 *   reply (its items are borrowed from memory until packed) and the
 *   callback of coord_inv_eval, which must take no earlier lock (the
 *   campaigns' plan_one and late_one take none).
 * COORD_LOCK_FLEET_SNAPSHOT (nodes.c, snap_mtx): the cached shared fleet
 *   snapshot; held only to look at or swap it, never while building one.
 * COORD_LOCK_NODES (nodes.c, mtx): the node table (records in memory,
 *   live status, secrets' hashes, tasks, parked long-polls, the maps).
 *   Taken by Sync, Watch, Register's reply, operator node views, the tick
 *   and the writer's callbacks. Under it: memory, and answer_watch's
 *   reply of a parked long-poll; never the writer or the engine (events
 *   are raised after it is released).
 * COORD_LOCK_ENGINE_QUEUE (engine-internal.h, queue_mtx): work queued for
 *   the engine (ops, node events, the report inbox, cycle counters).
 *   Held for pointer moves and one memcmp of a report: a Sync's report
 *   never waits for an evaluation. Nothing is called under it.
 * COORD_LOCK_ENGINE_VIEW (engine-internal.h, view_mtx): the engine's
 *   committed state as readers see it. The engine thread takes it only to
 *   grow a table or publish a commit; readers to copy what they answer.
 *   Only memory is touched under it. (queue_mtx and view_mtx are never
 *   held together.)
 * COORD_LOCK_CAMPAIGN_COMMIT (campaign.c, wmtx) and COORD_LOCK_PLAN_COMMIT
 *   (plan.c, a waiter's mtx): a thread waiting for its own commit; the
 *   writer's done callback signals it. Nothing is taken under them.
 * COORD_LOCK_WRITER (writer.c): the writer's queue; coord_writer_submit
 *   may be called holding any lock above. The writer runs applies and
 *   done callbacks without it.
 * COORD_LOCK_JOINS (joinguard.c, mtx): the table of failed joins. A
 *   leaf: only memory and the log under it.
 * COORD_LOCK_ACL (acl.c, a rwlock): the tokens and policies in memory.
 *   Read by every operator call's check, written by the writer's done
 *   callbacks of ACL changes. A leaf: only memory under it.
 *
 * Outside this list: common/pb.c's table of enum names (a leaf, taken
 * under any of these), common/server.c's connection table (a leaf, taken
 * inside every reply) and nng's own locks inside replies.
 */
enum coord_lock_level {
	COORD_LOCK_CAMPAIGNS = 10,
	COORD_LOCK_INVENTORY = 20,
	COORD_LOCK_FLEET_SNAPSHOT = 30,
	COORD_LOCK_NODES = 40,
	COORD_LOCK_ENGINE_QUEUE = 50,
	COORD_LOCK_ENGINE_VIEW = 60,
	COORD_LOCK_CAMPAIGN_COMMIT = 70,
	COORD_LOCK_PLAN_COMMIT = 80,
	COORD_LOCK_WRITER = 90,
	COORD_LOCK_JOINS = 95,
	COORD_LOCK_ACL = 97,
};

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

/* ---- nodes.c: the node table --------------------------------------- */

typedef struct coord_nodes coord_nodes_t;

/* What happens to a node, as the engine needs to hear it. */
enum coord_node_event {
	COORD_NODE_DOWN,
	COORD_NODE_UP, /* ready again, or joined */
	COORD_NODE_DRAIN, /* drain started or its deadline changed */
	COORD_NODE_ELIGIBLE,
};

typedef struct coord_nodes_opts {
	flt_store_t *store;
	coord_writer_t *writer;
	int64_t ttl_ms;
	/* Down, drain and eligibility events: called on the tick's thread
	 * or the writer's, with no lock of the table held. May be NULL. */
	void (*on_event)(void *ctx, const char *node_id,
			 enum coord_node_event ev);
	void *ctx;
	/* Answers a parked long-poll (sync.c): the node's index and whether
	 * it moved. Called with the table's lock held: it may only reply. */
	void (*answer_watch)(flt_request_t *r, uint64_t index, bool changed);
} coord_nodes_opts_t;

/* Loads every stored node; each live one gets a fresh grace period. */
int coord_nodes_open(const coord_nodes_opts_t *o, coord_nodes_t **out,
		     flt_error_t *err);
void coord_nodes_close(coord_nodes_t *n);

/* Operator methods on nodes (see api.c). */
void coord_nodes_list(coord_nodes_t *n, flt_request_t *r);
void coord_nodes_get(coord_nodes_t *n, flt_request_t *r);
void coord_nodes_drain(coord_nodes_t *n, flt_request_t *r);
void coord_nodes_eligibility(coord_nodes_t *n, flt_request_t *r);

/* Checks a fingerprint and labels as an agent sends them. */
int coord_nodes_check_attrs(const Flotilla__Fingerprint *fp, size_t n,
			    ProtobufCMessage *const *labels, flt_error_t *err);

/*
 * Registers a node (a new one, or the same one again for a registration
 * id that never synced, with a new secret) once req was checked. A name
 * held by a node that is not down is refused (FLT_ECONFLICT, "name web-3
 * is held by live node 1a2b3c4d; stop it or choose another --name")
 * unless cr (may be NULL) carries that node's id and secret: then that
 * node is registered again with a new secret. req and cr are borrowed
 * until done, which runs once, on the writer's thread or (a refusal) on
 * the caller's: rc 0 with the node's id and secret (both borrowed for the
 * call), or the failure.
 */
typedef void (*coord_nodes_registered_fn)(void *arg, int rc,
					  const char *node_id,
					  const uint8_t *secret,
					  const flt_error_t *err);
void coord_nodes_register(coord_nodes_t *n,
			  const Flotilla__RegisterRequest *req,
			  const Flotilla__Credentials *cr,
			  coord_nodes_registered_fn done, void *arg);

/* 0 when cr proves a node's secret, FLT_EAUTH otherwise (one answer for
 * unknown ids and wrong secrets alike). */
int coord_nodes_authenticate(coord_nodes_t *n, const Flotilla__Credentials *cr);

/* What a heartbeat changed. */
typedef struct coord_heartbeat {
	bool came_up; /* was not ready */
	bool attrs_changed; /* the fingerprint or labels differ */
	bool flush; /* a status is owed to the store: pass it on to
		     * coord_nodes_store (alone or with attributes) */
	uint64_t desired_index;
} coord_heartbeat_t;

/* Records a Sync: the node is ready, its tasks and address are kept in
 * memory. FLT_ENOTFOUND for a node not in the table. */
int coord_nodes_heartbeat(coord_nodes_t *n, const char *node_id,
			  const char *peer, const Flotilla__SyncRequest *req,
			  coord_heartbeat_t *hb);

/*
 * The one writer of a stored node record's status and attributes: queues
 * the node's status and, when attrs carries a fingerprint, its fingerprint
 * and labels; extra (may be NULL) runs in the same transaction first.
 * attrs is borrowed until done, which (may be NULL) runs once after the
 * commit or the failure on the writer's thread, with the node's desired
 * index. With everything NULL it stores the status a heartbeat owes.
 */
typedef void (*coord_nodes_stored_fn)(void *arg, int rc, uint64_t desired,
				      const flt_error_t *err);
void coord_nodes_store(coord_nodes_t *n, const char *node_id,
		       const Flotilla__SyncRequest *attrs, coord_apply_fn extra,
		       coord_nodes_stored_fn done, void *arg);

/*
 * Parks a long-poll: returns true when r was deferred, to be answered
 * through answer_watch when the node's index moves past known, at the
 * deadline, or at shutdown. false (not parked) when the index already
 * moved, wait_ms is 0, the node is unknown or the table is closing;
 * *index is the node's index either way.
 */
bool coord_nodes_watch(coord_nodes_t *n, const char *node_id, uint64_t known,
		       uint32_t wait_ms, flt_request_t *r, uint64_t *index);

/*
 * Declares down every node silent for longer than the TTL and answers
 * expired long-polls. Called by the main loop a few times a second.
 */
void coord_nodes_tick(coord_nodes_t *n);

/*
 * Shutdown, before the writer drains and the servers close: agent calls
 * are refused from now on (coord_nodes_closing), every parked long-poll is
 * answered, and no new work reaches the writer.
 */
void coord_nodes_shutdown(coord_nodes_t *n);
bool coord_nodes_closing(coord_nodes_t *n);

size_t coord_nodes_count(coord_nodes_t *n, size_t *ready, size_t *down);

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

/* Resolves an id, unique id prefix or name to the node's id and name. */
int coord_nodes_resolve(coord_nodes_t *n, const char *q, char id[37],
			char *name, size_t name_len, flt_error_t *err);
/* True when the node is ready (heartbeats arriving). */
bool coord_nodes_ready(coord_nodes_t *n, const char *node_id);
/* The name of node_id and the agent API address its fingerprint reports
 * ("" when it has none). FLT_ENOTFOUND for an unknown node. */
int coord_nodes_agent_api(coord_nodes_t *n, const char *node_id, char *name,
			  size_t name_len, char *addr, size_t addr_len,
			  flt_error_t *err);

/* ---- packages.c: chunks and manifests --------------------------------- */

typedef struct coord_pkgs coord_pkgs_t;

/* fleet_key: the fleet's package signing key (32 bytes, copied), or NULL.
 * With it, a push that it did not sign is refused (FLT_EAUTH) and nothing
 * is stored. */
int coord_pkgs_open(flt_store_t *store, coord_writer_t *writer,
		    const uint8_t *fleet_key, coord_pkgs_t **out,
		    flt_error_t *err);
void coord_pkgs_close(coord_pkgs_t *p);
/* Operator methods: ChunkPut, PackagePush, PackageList, PackageGet. */
void coord_pkgs_chunk_put(coord_pkgs_t *p, flt_request_t *r);
void coord_pkgs_push(coord_pkgs_t *p, flt_request_t *r);
void coord_pkgs_list(coord_pkgs_t *p, flt_request_t *r);
void coord_pkgs_show(coord_pkgs_t *p, flt_request_t *r);
/*
 * Who uses a package, for PackageRm (api.c wires the campaigns and the
 * engine in). campaign: whether a campaign that has not finished installs
 * name@version (its id in who). job: whether a job that is not stopped
 * has a task whose `uses` names the package (its name in who).
 */
typedef struct coord_pkg_users {
	bool (*campaign)(void *ctx, const char *name, const char *version,
			 char *who, size_t len);
	bool (*job)(void *ctx, const char *name, char *who, size_t len);
	void *ctx;
} coord_pkg_users_t;
/* PackageRm: removes name@version and every chunk no other version names.
 * Refused (ERROR_CONFLICT, saying who) while a campaign that has not
 * finished installs that version, or, for the newest version pushed, while
 * a job that is not stopped uses the package (tasks name packages, not
 * versions: a new host is given the newest). */
void coord_pkgs_rm(coord_pkgs_t *p, flt_request_t *r,
		   const coord_pkg_users_t *users);
/* FetchChunk, for an authenticated agent. */
void coord_pkgs_fetch_chunk(coord_pkgs_t *p, flt_request_t *r);
/* The stored manifest of name@version (FLT_ENOTFOUND when absent). */
int coord_pkgs_get(coord_pkgs_t *p, const char *name, const char *version,
		   Flotilla__PackageManifest **out, flt_error_t *err);

/* ---- grants.c: grants for the agents' APIs ------------------------------ */

typedef struct coord_grants coord_grants_t;
struct coord_engine;

/*
 * Loads the coordinator's grant key from <data_dir>/grant.key (ed25519
 * secret, mode 0600; grant.pub beside it), made on first start. ttl_ms:
 * how long each grant is valid.
 */
int coord_grants_open(const char *data_dir, int64_t ttl_ms,
		      coord_grants_t **out, flt_error_t *err);
void coord_grants_close(coord_grants_t *g);
/* The public half (32 bytes), which agents get at Register and Sync. */
const uint8_t *coord_grants_public(const coord_grants_t *g);
/* AllocLogsGrant: a signed grant to read one allocation's logs from the
 * agent that runs it, and that agent's API address. */
void coord_grants_alloc_logs(coord_grants_t *g, struct coord_engine *e,
			     coord_nodes_t *n, flt_request_t *r);

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
/* Operator methods: InventoryQuery, InventoryGet. */
void coord_inv_query(coord_inv_t *t, coord_nodes_t *nodes, flt_request_t *r);
void coord_inv_get(coord_inv_t *t, coord_nodes_t *nodes, flt_request_t *r);

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
/* Operator methods on campaigns. */
void coord_campaigns_create(coord_campaigns_t *c, flt_request_t *r);
void coord_campaigns_get(coord_campaigns_t *c, flt_request_t *r);
void coord_campaigns_list(coord_campaigns_t *c, flt_request_t *r);
void coord_campaigns_pause(coord_campaigns_t *c, flt_request_t *r);
void coord_campaigns_resume(coord_campaigns_t *c, flt_request_t *r);
void coord_campaigns_abort(coord_campaigns_t *c, flt_request_t *r);
/* Whether a campaign that has not finished (running, paused, aborting)
 * installs name@version; its id in id. */
bool coord_campaigns_installs(coord_campaigns_t *c, const char *name,
			      const char *version, char *id, size_t len);
/* A node's step statuses from its Sync (copied). */
void coord_campaigns_report(coord_campaigns_t *c, const char *node_id,
			    Flotilla__StepStatus *const *steps, size_t n);
/* Fills resp->steps with the node's open steps; free with
 * coord_campaigns_node_steps_free. */
void coord_campaigns_node_steps(coord_campaigns_t *c, const char *node_id,
				Flotilla__SyncResponse *resp);
void coord_campaigns_node_steps_free(Flotilla__SyncResponse *resp);

/* ---- joinguard.c: failed joins ------------------------------------------ */

/*
 * Back-off per source for failed joins, a global cap and bounded logs
 * (the numbers and the reasons are at the top of joinguard.c). Peers are
 * flt_request_peer's strings; the port is ignored. Times are monotonic
 * milliseconds, passed in so that tests need no clock. Thread-safe.
 */
typedef struct coord_joinguard coord_joinguard_t;
/* Writes one log line (called with the guard's lock held). */
typedef void (*coord_joinguard_log_fn)(void *arg, const char *line);

/* log NULL: flt_warn. */
coord_joinguard_t *coord_joinguard_new(coord_joinguard_log_fn log, void *arg);
void coord_joinguard_free(coord_joinguard_t *g);
/* Before the token is looked at: 0 to go on, or -EAGAIN with "too many
 * failed joins from 10.0.0.7: retry in 1.6 s" in err (the refusal is
 * counted and logged at the bounded rate). */
int coord_joinguard_admit(coord_joinguard_t *g, const char *peer, int64_t now,
			  flt_error_t *err);
/* A join from peer failed (why: "wrong join token"): backs it off. */
void coord_joinguard_failed(coord_joinguard_t *g, const char *peer, int64_t now,
			    const char *why);
/* A join from peer succeeded: its failures are forgotten. */
void coord_joinguard_succeeded(coord_joinguard_t *g, const char *peer,
			       int64_t now);
/* Writes the summaries that are due and forgets quiet sources; called
 * from the coordinator's tick. */
void coord_joinguard_tick(coord_joinguard_t *g, int64_t now);

/* ---- sync.c: the agent methods ---------------------------------------- */

typedef struct coord_sync coord_sync_t;
struct coord_engine;

typedef struct coord_sync_opts {
	const char *join_token; /* what Register must present */
	uint32_t interval_ms; /* the heartbeat interval agents are told */
	uint32_t max_watch_ms; /* the longest a Watch is parked */
	coord_nodes_t *nodes;
	/* What a Sync reports to and answers from; each may be NULL. */
	struct coord_engine *engine;
	coord_inv_t *inv;
	coord_campaigns_t *camps;
	coord_pkgs_t *pkgs;
	/* The grant key's public half, handed to agents (32 bytes). */
	const uint8_t *grant_key;
} coord_sync_opts_t;

int coord_sync_open(const coord_sync_opts_t *o, coord_sync_t **out,
		    flt_error_t *err);
void coord_sync_close(coord_sync_t *s);
void coord_sync_register(coord_sync_t *s, flt_request_t *r);
void coord_sync_heartbeat(coord_sync_t *s, flt_request_t *r);
void coord_sync_watch(coord_sync_t *s, flt_request_t *r);
void coord_sync_fetch_chunk(coord_sync_t *s, flt_request_t *r);
/* The periodic work of the agent methods (summaries of refused joins). */
void coord_sync_tick(coord_sync_t *s);
/* Answers a parked Watch: the node table's answer_watch. */
void coord_sync_answer_watch(flt_request_t *r, uint64_t index, bool changed);

/* ---- api.c: the front door -------------------------------------------- */

/* Every part of a running coordinator, as main.c wires them. */
typedef struct coord {
	flt_store_t *store;
	coord_writer_t *writer;
	coord_nodes_t *nodes;
	coord_sync_t *sync;
	struct coord_engine *engine;
	coord_pkgs_t *pkgs;
	coord_inv_t *inv;
	coord_campaigns_t *camps;
	struct coord_acl *acl;
	coord_grants_t *grants;
} coord_t;

/* The port a method is served on. */
typedef enum coord_port {
	COORD_PORT_AGENT, /* --listen: agents, with a join token or secret */
	COORD_PORT_OPERATOR, /* --api: operators and the CLI */
} coord_port_t;

/*
 * What a caller must hold to call a method (acl.c). The agent port's
 * two are checked by its handlers (the join token, a node's secret); the
 * operator port's are checked against the caller's ACL token before the
 * body is decoded. COORD_PERM_NS_* are granted per namespace: the
 * envelope's namespace ("default" when empty).
 */
typedef enum coord_perm {
	COORD_PERM_JOIN, /* the join token (Register) */
	COORD_PERM_NODE_SELF, /* a node's own secret: its own records only */
	COORD_PERM_ANYONE, /* no token needed (bootstrap checks its own) */
	COORD_PERM_TOKEN, /* any valid token (token self) */
	COORD_PERM_MANAGEMENT, /* a management token (ACL administration) */
	COORD_PERM_NODE_READ,
	COORD_PERM_NODE_WRITE,
	COORD_PERM_PACKAGE_READ,
	COORD_PERM_PACKAGE_WRITE,
	COORD_PERM_INVENTORY_READ,
	COORD_PERM_CAMPAIGN_READ,
	COORD_PERM_CAMPAIGN_WRITE,
	COORD_PERM_AUDIT_READ,
	COORD_PERM_NS_READ_JOB,
	COORD_PERM_NS_SUBMIT_JOB,
	COORD_PERM_NS_STOP_JOB,
	COORD_PERM_NS_READ_LOGS,
	COORD_PERM_NS_PRIVILEGED, /* checked by the job methods, per spec */
	COORD_PERM_COUNT
} coord_perm_t;

/* "node:read", "namespace:submit-job", "management", ... */
const char *coord_perm_name(coord_perm_t p);
/* Whether a permission is granted per namespace. */
bool coord_perm_namespaced(coord_perm_t p);

/* One row of the method table. */
typedef struct coord_method {
	Flotilla__Method method;
	coord_port_t port;
	coord_perm_t perm;
	bool mutates; /* may change stored state: audited */
	const ProtobufCMessageDescriptor *request, *response;
	void (*handler)(coord_t *c, flt_request_t *r);
} coord_method_t;

/* The row of m, or NULL for a method no port serves. */
const coord_method_t *coord_api_method(Flotilla__Method m);
/* Every row, in the order of the proto; *n gets the count. */
const coord_method_t *coord_api_methods(size_t *n);

/*
 * The request handlers of the two ports (flt_server_opts_t.handler, with
 * arg the coord_t): each looks the method up in the table, refuses one
 * that is not served on its port, and calls the row's handler. Agent
 * calls are refused once the node table is closing.
 */
void coord_api_agent(flt_request_t *r, void *arg);
void coord_api_operator(flt_request_t *r, void *arg);

/* ---- acl.c: operator identity; audit.c: the audit trail ------------- */

typedef struct coord_acl coord_acl_t;

typedef struct coord_acl_opts {
	flt_store_t *store;
	coord_writer_t *writer;
	const char *data_dir; /* where acl-bootstrap-reset is looked for */
	bool enforce; /* false (--dev): every caller may do everything */
	uint64_t audit_max_events; /* 0: 100000 */
	int64_t audit_max_age_ms; /* 0: 365 days */
} coord_acl_opts_t;

int coord_acl_open(const coord_acl_opts_t *o, coord_acl_t **out,
		   flt_error_t *err);
void coord_acl_close(coord_acl_t *a);

struct coord_method;
/*
 * Before an operator method's handler: resolves the caller (the token in
 * the envelope's credentials, or anonymous), checks the row's permission
 * in the envelope's namespace, and attaches the call's context to r (the
 * identity, the namespace, the audit record of a method that changes
 * state, written when r is answered unless a change's transaction already
 * holds it). On a refusal answers r and returns -1: nothing else happened.
 */
int coord_acl_authorize(coord_acl_t *a, flt_request_t *r,
			const struct coord_method *row);

/* The call's namespace ("default" for an empty one; "*" for job list's
 * every namespace). Only for authorised operator calls. */
const char *coord_call_namespace(const flt_request_t *r);
/* Who makes the call: "token:<accessor id>", "anonymous" or "dev". */
const char *coord_call_who(const flt_request_t *r);
/* Whether the call's caller holds p (in namespace ns when p is granted
 * per namespace). True for every call when ACLs are not enforced. */
bool coord_call_may(const flt_request_t *r, coord_perm_t p, const char *ns);
/* Refuses r as coord_acl_authorize would, for p in ns: answers r. */
void coord_call_deny(flt_request_t *r, coord_perm_t p, const char *ns,
		     const char *what);
/*
 * Inside the transaction that makes r's change: records r in the audit
 * trail (ok, with the transaction's index). A no-op for calls that are
 * not audited. Returns 0 or the store's error.
 */
int coord_audit_in_txn(flt_txn_t *txn, flt_request_t *r, flt_error_t *err);

/* ACL and audit methods (the method table's handlers). */
void coord_acl_bootstrap(coord_acl_t *a, flt_request_t *r);
void coord_acl_token_create(coord_acl_t *a, flt_request_t *r);
void coord_acl_token_list(coord_acl_t *a, flt_request_t *r);
void coord_acl_token_get(coord_acl_t *a, flt_request_t *r);
void coord_acl_token_delete(coord_acl_t *a, flt_request_t *r);
void coord_acl_token_self(coord_acl_t *a, flt_request_t *r);
void coord_acl_policy_apply(coord_acl_t *a, flt_request_t *r);
void coord_acl_policy_list(coord_acl_t *a, flt_request_t *r);
void coord_acl_policy_get(coord_acl_t *a, flt_request_t *r);
void coord_acl_policy_delete(coord_acl_t *a, flt_request_t *r);
void coord_audit_list(coord_acl_t *a, flt_request_t *r);

#endif
