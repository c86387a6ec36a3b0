/*
 * The node table: every node's record and live state, registration and
 * heartbeat bookkeeping, parked long-polls, failure detection, drain and
 * eligibility, and the operator views of nodes. It calls nothing above it:
 * the agent methods that use it are in sync.c, node events reach the
 * engine through the on_event callback, and parked long-polls are answered
 * through answer_watch.
 *
 * What is durable lives in the `nodes` database as NodeRecord. What changes
 * on every heartbeat lives only here in memory: the last heartbeat time and
 * peer address. Status transitions are decided here, shown at once, and
 * persisted through the writer; after a restart every live node starts with
 * a fresh grace period of one TTL.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "coordinator.h"
#include "scheduler.h"
#include "flotilla/lock.h"
#include "flotilla/hash.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define MAX_LABELS 64
#define NAME_MAX_LEN 63
#define LABEL_VALUE_MAX 255

typedef struct cnode {
	char id[37];
	char name[NAME_MAX_LEN + 1];
	uint8_t secret_hash[crypto_generichash_BYTES];
	Flotilla__NodeStatus status; /* as operators see it now */
	Flotilla__NodeStatus persisted; /* as last committed */
	bool flush_queued;
	int64_t retry_at; /* a failed write is retried by the tick after it */
	int64_t status_changed_ms;
	int64_t last_hb_mono; /* 0: never since start (grace runs from load) */
	int64_t last_hb_wall;
	char addr[80];
	char reg_id[FLT_NODE_ID_MAX + 1]; /* the agent's registration id */
	uint8_t attr_hash[16]; /* of the last stored fingerprint and labels */
	uint64_t desired_index;
	uint8_t *tasks; /* packed NodeTasks of the last Sync */
	size_t tasks_len;
	flt_request_t *watch; /* parked long-poll, answered on change */
	int64_t watch_deadline;
} cnode_t;

struct coord_nodes {
	coord_nodes_opts_t o;
	flt_db_t db;
	flt_mutex_t mtx;
	cnode_t **v;
	size_t n, cap;
	flt_map_t by_id; /* id -> cnode_t */
	/* registration id -> the node registered with it that may still be
	 * unsynced (a retry before the first Sync reuses that node) */
	flt_map_t by_reg;
	/* name -> the new node of a Register being stored: a second one for
	 * the same name waits for it to be in the table. */
	flt_map_t joining;
	int64_t grace_from;
	bool closing; /* shutting down: new work is refused */
	/* Bumped by every change the scheduler's view shows: a status, or a
	 * stored record (registration, attributes, drain, eligibility). */
	atomic_uint_fast64_t fleet_gen;
	/* The last shared snapshot (coord_nodes_snapshot), or NULL. */
	flt_mutex_t snap_mtx;
	coord_fleet_snap_t *snap;
};

struct coord_fleet_snap {
	sched_fleet_t *fleet;
	uint64_t gen;
	atomic_uint refs;
};

uint64_t coord_nodes_generation(coord_nodes_t *t)
{
	return atomic_load(&t->fleet_gen);
}

static void node_event(coord_nodes_t *t, const char *id,
		       enum coord_node_event ev)
{
	if (t->o.on_event)
		t->o.on_event(t->o.ctx, id, ev);
}

/* ---- the table ------------------------------------------------------- */

/* Called with t->mtx held (or before threads start). */
static void table_add(coord_nodes_t *t, cnode_t *node)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = flt_xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = node;
	flt_map_put(&t->by_id, node->id, node);
	/* Stored nodes load in id order, not in the order they registered:
	 * an unsynced one wins over an older one with the same id. */
	if (node->reg_id[0] &&
	    (!flt_map_get(&t->by_reg, node->reg_id) ||
	     node->status == FLOTILLA__NODE_STATUS__NODE_STATUS_INITIALIZING))
		flt_map_put(&t->by_reg, node->reg_id, node);
}

/* A node registered under reg_id that has never synced, or NULL. */
static cnode_t *table_find_unsynced(coord_nodes_t *t, const char *reg_id)
{
	cnode_t *c = flt_map_get(&t->by_reg, reg_id);
	return c && c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_INITIALIZING
		       ? c
		       : NULL;
}

static cnode_t *table_find(coord_nodes_t *t, const char *id)
{
	return flt_map_get(&t->by_id, id);
}

/* The node that holds name and is not down, or NULL. Registration is
 * rare: a scan is enough. */
static cnode_t *table_find_live_name(coord_nodes_t *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i]->status !=
			    FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN &&
		    !strcmp(t->v[i]->name, name))
			return t->v[i];
	return NULL;
}

/* Does cr prove node c (its id and its secret)? */
static bool proves(const cnode_t *c, const Flotilla__Credentials *cr)
{
	uint8_t h[crypto_generichash_BYTES];
	if (!cr || strcmp(cr->node_id, c->id) != 0 ||
	    cr->node_secret.len != FLT_NODE_SECRET_LEN)
		return false;
	crypto_generichash(h, sizeof(h), cr->node_secret.data,
			   cr->node_secret.len, NULL, 0);
	return sodium_memcmp(h, c->secret_hash, sizeof(h)) == 0;
}

static const char *status_name(Flotilla__NodeStatus s)
{
	return flt_pb_enum_name(&flotilla__node_status__descriptor, (int)s);
}

/* Key and value of any map<string, string> entry, through its descriptor. */
static void entry_kv(const ProtobufCMessage *e, const char **k, const char **v)
{
	const ProtobufCMessageDescriptor *d = e->descriptor;
	*k = *(char *const *)((const char *)e + d->fields[0].offset);
	*v = *(char *const *)((const char *)e + d->fields[1].offset);
}

#define ENTRIES(l) ((ProtobufCMessage *const *)(l))

static void attr_hash(const Flotilla__Fingerprint *fp, size_t nlabels,
		      ProtobufCMessage *const *labels, uint8_t out[16])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 16);
	if (fp) {
		size_t len = protobuf_c_message_get_packed_size(&fp->base);
		cleanup_free uint8_t *b = flt_xmalloc(len);
		protobuf_c_message_pack(&fp->base, b);
		crypto_generichash_update(&st, b, len);
	}
	for (size_t i = 0; i < nlabels; i++) {
		const char *k, *v;
		entry_kv(labels[i], &k, &v);
		crypto_generichash_update(&st, (const uint8_t *)k,
					  strlen(k) + 1);
		crypto_generichash_update(&st, (const uint8_t *)v,
					  strlen(v) + 1);
	}
	crypto_generichash_final(&st, out, 16);
}

/* ---- loading --------------------------------------------------------- */

static int load_one(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	coord_nodes_t *t = arg;
	Flotilla__NodeRecord *rec =
		flotilla__node_record__unpack(NULL, vlen, val);
	if (!rec || strlen(rec->id) >= sizeof(((cnode_t *)0)->id) ||
	    rec->secret_hash.len != crypto_generichash_BYTES) {
		flt_error("corrupt node record, skipped key=%.*s", (int)klen,
			  (const char *)key);
		if (rec)
			flotilla__node_record__free_unpacked(rec, NULL);
		return 0;
	}
	cnode_t *c = flt_xcalloc(1, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", rec->id);
	snprintf(c->name, sizeof(c->name), "%s", rec->name);
	snprintf(c->reg_id, sizeof(c->reg_id), "%s", rec->registration_id);
	memcpy(c->secret_hash, rec->secret_hash.data, sizeof(c->secret_hash));
	c->status = c->persisted = rec->status;
	c->status_changed_ms = rec->status_changed_at_ms;
	attr_hash(rec->fingerprint, rec->n_labels, ENTRIES(rec->labels),
		  c->attr_hash);
	/* A fresh grace period: silence is counted from now, not from
	 * before the restart. */
	c->last_hb_mono = t->grace_from;
	table_add(t, c);
	flotilla__node_record__free_unpacked(rec, NULL);
	return 0;
}

int coord_nodes_open(const coord_nodes_opts_t *o, coord_nodes_t **out,
		     flt_error_t *err)
{
	coord_nodes_t *t = flt_xcalloc(1, sizeof(*t));
	flt_txn_t *txn;
	int rc;

	t->o = *o;
	flt_mutex_init(&t->mtx, COORD_LOCK_NODES, "nodes");
	flt_mutex_init(&t->snap_mtx, COORD_LOCK_FLEET_SNAPSHOT,
		       "fleet snapshot");
	if ((rc = flt_store_db(o->store, "nodes", &t->db)) < 0) {
		free(t);
		return flt_err(err, rc, "store has no nodes database");
	}
	t->grace_from = flt_now_mono_ms();
	if ((rc = flt_txn_begin(o->store, false, &txn, err)) < 0) {
		free(t);
		return rc;
	}
	rc = flt_txn_foreach(txn, t->db, NULL, 0, load_one, t);
	flt_txn_abort(txn);
	if (rc < 0) {
		coord_nodes_close(t);
		return flt_err(err, rc, "loading nodes failed");
	}
	/* Whatever an agent saw before the restart, it fetches its
	 * allocations again: the index it knows is at most this one. */
	uint64_t idx = flt_store_index(o->store);
	for (size_t i = 0; i < t->n; i++)
		t->v[i]->desired_index = idx;
	*out = t;
	return 0;
}

void coord_nodes_close(coord_nodes_t *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i]->tasks);
		free(t->v[i]);
	}
	free(t->v);
	flt_map_free(&t->by_id);
	flt_map_free(&t->by_reg);
	flt_map_free(&t->joining);
	coord_fleet_snap_release(t->snap);
	flt_mutex_destroy(&t->snap_mtx);
	flt_mutex_destroy(&t->mtx);
	free(t);
}

size_t coord_nodes_count(coord_nodes_t *t, size_t *ready, size_t *down)
{
	size_t r = 0, d = 0;
	flt_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		r += t->v[i]->status ==
		     FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
		d += t->v[i]->status == FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN;
	}
	size_t n = t->n;
	flt_mutex_unlock(&t->mtx);
	if (ready)
		*ready = r;
	if (down)
		*down = d;
	return n;
}

/* ---- the stored record ------------------------------------------------ */

/*
 * The one read-modify-write of a stored node record, inside the writer's
 * transaction. edit changes rec and returns 0 to store it, > 0 to leave
 * the record as it is, or an error; undo (may be NULL) runs after the put
 * to take back what edit lent into rec (strings and messages it does not
 * own), so that freeing rec frees only what it owns.
 */
typedef struct record_edit {
	int (*edit)(Flotilla__NodeRecord *rec, void *arg, flt_error_t *err);
	void (*undo)(Flotilla__NodeRecord *rec, void *arg);
} record_edit_t;

static int record_update(flt_txn_t *txn, coord_nodes_t *t, const char *id,
			 const record_edit_t *how, void *arg, flt_error_t *err)
{
	Flotilla__NodeRecord *rec;
	int rc = flt_txn_get_pb(txn, t->db, id,
				&flotilla__node_record__descriptor,
				(ProtobufCMessage **)&rec, err);
	if (rc < 0)
		return rc;
	rc = how->edit(rec, arg, err);
	if (rc == 0) {
		rec->modify_index = flt_txn_index(txn);
		rc = flt_txn_put_pb(txn, t->db, id, &rec->base, err);
	}
	if (how->undo)
		how->undo(rec, arg);
	flotilla__node_record__free_unpacked(rec, NULL);
	return rc < 0 ? rc : 0;
}

/* ---- persisting changes ---------------------------------------------- */

typedef struct update_op {
	coord_nodes_t *t;
	cnode_t *node;
	/* New fingerprint and labels (set_attrs), step results...; borrowed
	 * from the caller until done. NULL for a status flush. */
	const Flotilla__SyncRequest *attrs;
	bool set_attrs; /* attrs carries a new fingerprint and labels */
	coord_apply_fn extra; /* more of the same transaction, or NULL */
	coord_nodes_stored_fn done;
	void *arg;
	Flotilla__NodeStatus written;
	/* What the record held before the attributes were lent into it. */
	Flotilla__Fingerprint *old_fp;
	size_t old_n;
	Flotilla__NodeRecord__LabelsEntry **old_labels;
	Flotilla__NodeRecord__LabelsEntry *entries, **ptrs;
} update_op_t;

static void queue_update(coord_nodes_t *t, cnode_t *c,
			 const Flotilla__SyncRequest *attrs,
			 coord_apply_fn extra, coord_nodes_stored_fn done,
			 void *arg);

static int update_edit(Flotilla__NodeRecord *rec, void *arg, flt_error_t *err)
{
	update_op_t *u = arg;
	(void)err;
	flt_mutex_lock(&u->t->mtx);
	u->written = u->node->status;
	rec->status = u->node->status;
	rec->status_changed_at_ms = u->node->status_changed_ms;
	flt_mutex_unlock(&u->t->mtx);
	if (!u->set_attrs)
		return 0;
	/* Lend the request's fingerprint and labels for the pack. */
	size_t n = u->attrs->n_labels;
	u->old_fp = rec->fingerprint;
	u->old_n = rec->n_labels;
	u->old_labels = rec->labels;
	u->entries = flt_xcalloc(n, sizeof(*u->entries));
	u->ptrs = flt_xcalloc(n, sizeof(*u->ptrs));
	for (size_t i = 0; i < n; i++) {
		flotilla__node_record__labels_entry__init(&u->entries[i]);
		u->entries[i].key = u->attrs->labels[i]->key;
		u->entries[i].value = u->attrs->labels[i]->value;
		u->ptrs[i] = &u->entries[i];
	}
	rec->fingerprint = u->attrs->fingerprint;
	rec->n_labels = n;
	rec->labels = u->ptrs;
	return 0;
}

static void update_undo(Flotilla__NodeRecord *rec, void *arg)
{
	update_op_t *u = arg;
	if (!u->set_attrs)
		return;
	rec->fingerprint = u->old_fp;
	rec->n_labels = u->old_n;
	rec->labels = u->old_labels;
	free(u->entries);
	free(u->ptrs);
	u->entries = NULL;
	u->ptrs = NULL;
}

static int update_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	static const record_edit_t how = { update_edit, update_undo };
	update_op_t *u = arg;
	int rc;
	if (u->extra && (rc = u->extra(txn, u->arg, err)) < 0)
		return rc;
	return record_update(txn, u->t, u->node->id, &how, u, err);
}

static void update_done(void *arg, int rc, uint64_t index,
			const flt_error_t *err)
{
	update_op_t *u = arg;
	coord_nodes_t *t = u->t;
	cnode_t *c = u->node;
	(void)index;

	flt_mutex_lock(&t->mtx);
	c->flush_queued = false;
	bool again = false;
	if (rc == 0) {
		c->persisted = u->written;
		if (u->set_attrs)
			atomic_fetch_add(&t->fleet_gen, 1);
		again = c->status != c->persisted && !t->closing;
	} else {
		/* Not stored: the tick retries the status after a pause
		 * (never in a tight loop on a full disk), and the agent
		 * sends its attributes again. */
		c->retry_at = flt_now_mono_ms() + 1000;
		if (u->set_attrs)
			memset(c->attr_hash, 0, sizeof(c->attr_hash));
	}
	if (again)
		c->flush_queued = true;
	uint64_t desired = c->desired_index;
	flt_mutex_unlock(&t->mtx);
	if (u->done)
		u->done(u->arg, rc, desired, err);
	free(u);
	if (again)
		queue_update(t, c, NULL, NULL, NULL, NULL);
}

static void queue_update(coord_nodes_t *t, cnode_t *c,
			 const Flotilla__SyncRequest *attrs,
			 coord_apply_fn extra, coord_nodes_stored_fn done,
			 void *arg)
{
	update_op_t *u = flt_xcalloc(1, sizeof(*u));
	u->t = t;
	u->node = c;
	u->attrs = attrs;
	u->set_attrs = attrs && attrs->fingerprint;
	u->extra = extra;
	u->done = done;
	u->arg = arg;
	coord_writer_submit(t->o.writer, update_apply, update_done, u);
}

void coord_nodes_store(coord_nodes_t *t, const char *node_id,
		       const Flotilla__SyncRequest *attrs, coord_apply_fn extra,
		       coord_nodes_stored_fn done, void *arg)
{
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	flt_mutex_unlock(&t->mtx);
	if (c) {
		queue_update(t, c, attrs, extra, done, arg);
	} else if (done) {
		flt_error_t err;
		flt_err(&err, FLT_ENOTFOUND, "node %s: not in the table",
			node_id);
		done(arg, err.code, 0, &err);
	}
}

/* Called with t->mtx held. Returns true when a flush must be queued. */
static bool set_status(coord_nodes_t *t, cnode_t *c, Flotilla__NodeStatus s)
{
	if (c->status == s)
		return false;
	flt_log(s == FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN ? FLT_LOG_WARN
							     : FLT_LOG_INFO,
		"node %s node=%s name=%s was=%s", status_name(s), c->id,
		c->name, status_name(c->status));
	c->status = s;
	c->status_changed_ms = flt_now_wall_ms();
	atomic_fetch_add(&t->fleet_gen, 1);
	if (c->flush_queued)
		return false;
	c->flush_queued = true;
	return true;
}

/* ---- validation ------------------------------------------------------ */

int coord_nodes_check_attrs(const Flotilla__Fingerprint *fp, size_t n,
			    ProtobufCMessage *const *labels, flt_error_t *err)
{
	if (!fp)
		return flt_err(err, FLT_EPROTO, "fingerprint: required");
	if (!*fp->hostname || strlen(fp->hostname) > 255)
		return flt_err(err, FLT_EPROTO,
			       "fingerprint.hostname: must be 1 to 255 bytes");
	const char *strs[] = { fp->os_id,        fp->os_version,
			       fp->os_name,      fp->kernel,
			       fp->arch,         fp->cgroup_version,
			       fp->agent_version };
	for (size_t i = 0; i < FLT_ARRAY_SIZE(strs); i++)
		if (strlen(strs[i]) > 255)
			return flt_err(err, FLT_EPROTO,
				       "fingerprint: attribute longer than "
				       "255 bytes");
	/* Allowances go into every scheduler view: bounded. */
	const Flotilla__Allowances *a = fp->allowances;
	if (a) {
		size_t lists[] = { a->n_capabilities, a->n_syscalls, a->n_users,
				   a->n_host_volumes };
		for (size_t i = 0; i < FLT_ARRAY_SIZE(lists); i++)
			if (lists[i] > 256)
				return flt_err(err, FLT_EPROTO,
					       "fingerprint.allowances: more "
					       "than 256 entries in a list");
		for (size_t i = 0; i < a->n_host_volumes; i++)
			if (strlen(a->host_volumes[i]->name) > 255 ||
			    strlen(a->host_volumes[i]->path) > 4095)
				return flt_err(err, FLT_EPROTO,
					       "fingerprint.allowances."
					       "host_volumes[%zu]: too long",
					       i);
		char **strl[] = { a->capabilities, a->syscalls, a->users };
		size_t strn[] = { a->n_capabilities, a->n_syscalls,
				  a->n_users };
		for (size_t l = 0; l < FLT_ARRAY_SIZE(strl); l++)
			for (size_t i = 0; i < strn[l]; i++)
				if (strlen(strl[l][i]) > 255)
					return flt_err(
						err, FLT_EPROTO,
						"fingerprint.allowances: "
						"entry longer than 255 bytes");
	}
	if (n > MAX_LABELS)
		return flt_err(err, FLT_EPROTO, "labels: more than %d",
			       MAX_LABELS);
	for (size_t i = 0; i < n; i++) {
		const char *k, *v;
		entry_kv(labels[i], &k, &v);
		if (!flt_is_name(k, NAME_MAX_LEN))
			return flt_err(err, FLT_EPROTO,
				       "labels[%zu].key: must be 1 to %d of "
				       "[A-Za-z0-9._-]",
				       i, NAME_MAX_LEN);
		if (strlen(v) > LABEL_VALUE_MAX)
			return flt_err(err, FLT_EPROTO,
				       "labels[%zu].value: longer than %d", i,
				       LABEL_VALUE_MAX);
	}
	return 0;
}

/* ---- registration ------------------------------------------------------ */

typedef struct reg_op {
	coord_nodes_t *t;
	const Flotilla__RegisterRequest *req;
	coord_nodes_registered_fn done;
	void *arg;
	cnode_t *node;
	bool retry; /* node exists: only its secret is issued anew */
	uint8_t secret[FLT_NODE_SECRET_LEN];
	uint8_t secret_hash[crypto_generichash_BYTES];
} reg_op_t;

static int reissue_edit(Flotilla__NodeRecord *rec, void *arg, flt_error_t *err)
{
	reg_op_t *g = arg;
	(void)err;
	free(rec->secret_hash.data);
	rec->secret_hash.data = g->secret_hash;
	rec->secret_hash.len = sizeof(g->secret_hash);
	return 0;
}

static void reissue_undo(Flotilla__NodeRecord *rec, void *arg)
{
	(void)arg;
	/* The hash was lent: do not let free_unpacked release it. */
	rec->secret_hash.data = NULL;
	rec->secret_hash.len = 0;
}

/* A retried Register: the first one's reply was lost. */
static int reissue_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	static const record_edit_t how = { reissue_edit, reissue_undo };
	reg_op_t *g = arg;
	return record_update(txn, g->t, g->node->id, &how, g, err);
}

static int reg_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	reg_op_t *g = arg;
	Flotilla__NodeRecord rec = FLOTILLA__NODE_RECORD__INIT;
	size_t n = g->req->n_labels;
	Flotilla__NodeRecord__LabelsEntry entries[n ? n : 1];
	Flotilla__NodeRecord__LabelsEntry *ptrs[n ? n : 1];

	for (size_t i = 0; i < n; i++) {
		flotilla__node_record__labels_entry__init(&entries[i]);
		entries[i].key = g->req->labels[i]->key;
		entries[i].value = g->req->labels[i]->value;
		ptrs[i] = &entries[i];
	}
	rec.id = g->node->id;
	rec.name = g->node->name;
	rec.registration_id = g->node->reg_id;
	rec.secret_hash.data = g->node->secret_hash;
	rec.secret_hash.len = sizeof(g->node->secret_hash);
	rec.status = g->node->status;
	rec.labels = ptrs;
	rec.n_labels = n;
	rec.fingerprint = g->req->fingerprint;
	rec.registered_at_ms = g->node->status_changed_ms;
	rec.status_changed_at_ms = g->node->status_changed_ms;
	rec.create_index = rec.modify_index = flt_txn_index(txn);
	return flt_txn_put_pb(txn, g->t->db, g->node->id, &rec.base, err);
}

static void reg_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	reg_op_t *g = arg;
	if (rc < 0) {
		g->done(g->arg, rc, NULL, NULL, err);
		if (!g->retry) {
			flt_mutex_lock(&g->t->mtx);
			flt_map_del(&g->t->joining, g->node->name);
			flt_mutex_unlock(&g->t->mtx);
			free(g->node);
		}
	} else {
		atomic_fetch_add(&g->t->fleet_gen, 1);
		flt_mutex_lock(&g->t->mtx);
		if (g->retry) {
			memcpy(g->node->secret_hash, g->secret_hash,
			       sizeof(g->secret_hash));
		} else {
			g->node->persisted = g->node->status;
			table_add(g->t, g->node);
		}
		if (!g->retry)
			flt_map_del(&g->t->joining, g->node->name);
		g->node->last_hb_mono = flt_now_mono_ms();
		flt_mutex_unlock(&g->t->mtx);
		flt_info("node %s node=%s name=%s index=%llu",
			 g->retry ? "registration retried" : "registered",
			 g->node->id, g->node->name, (unsigned long long)index);
		g->done(g->arg, 0, g->node->id, g->secret, NULL);
	}
	sodium_memzero(g->secret, sizeof(g->secret));
	free(g);
}

/* Why the name must not be registered now, in err, or 0. Called with
 * t->mtx held, after the registration id found no node to retry. */
static int name_taken(coord_nodes_t *t, const char *name,
		      const Flotilla__Credentials *cr, cnode_t **same,
		      flt_error_t *err)
{
	cnode_t *holder = table_find_live_name(t, name);
	if (holder && proves(holder, cr)) {
		*same = holder;
		return 0;
	}
	if (holder)
		return flt_err(err, FLT_ECONFLICT,
			       "name %s is held by live node %.8s; stop it or "
			       "choose another --name",
			       name, holder->id);
	if (flt_map_get(&t->joining, name))
		return flt_err(err, FLT_ECONFLICT,
			       "name %s is being registered by another node; "
			       "retry later or choose another --name",
			       name);
	return 0;
}

void coord_nodes_register(coord_nodes_t *t,
			  const Flotilla__RegisterRequest *req,
			  const Flotilla__Credentials *cr,
			  coord_nodes_registered_fn done, void *arg)
{
	reg_op_t *g = flt_xcalloc(1, sizeof(*g));
	cnode_t *fresh = flt_xcalloc(1, sizeof(*fresh));
	flt_error_t err;
	int rc = 0;

	g->t = t;
	g->req = req;
	g->done = done;
	g->arg = arg;
	randombytes_buf(g->secret, sizeof(g->secret));
	crypto_generichash(g->secret_hash, sizeof(g->secret_hash), g->secret,
			   sizeof(g->secret), NULL, 0);
	snprintf(fresh->reg_id, sizeof(fresh->reg_id), "%s",
		 req->registration_id);
	flt_uuid_v4(fresh->id);
	snprintf(fresh->name, sizeof(fresh->name), "%s", req->name);
	memcpy(fresh->secret_hash, g->secret_hash, sizeof(g->secret_hash));
	fresh->status = FLOTILLA__NODE_STATUS__NODE_STATUS_INITIALIZING;
	fresh->status_changed_ms = flt_now_wall_ms();
	attr_hash(req->fingerprint, req->n_labels, ENTRIES(req->labels),
		  fresh->attr_hash);

	/*
	 * The same registration id again, for a node that never synced: the
	 * agent did not get the first reply. Same node, new secret. A node
	 * that has synced is never handed out again this way.
	 *
	 * A name held by a node that is not down is that node's: only its
	 * own id and secret in the credentials register it again (same node,
	 * new secret). Anyone else is refused, so that a second host cannot
	 * take over the name that constraints and operators use. The name of
	 * a node that is down is free: a host installed anew comes back under
	 * its old name as a new node, as in Nomad, and the old record stays
	 * down beside it. A Register being stored holds its name too.
	 */
	flt_mutex_lock(&t->mtx);
	if (*req->registration_id)
		g->node = table_find_unsynced(t, req->registration_id);
	if (!g->node)
		rc = name_taken(t, req->name, cr, &g->node, &err);
	if (rc == 0 && !g->node)
		flt_map_put(&t->joining, fresh->name, fresh);
	flt_mutex_unlock(&t->mtx);

	if (rc < 0) {
		flt_warn("registration refused: %s", err.msg);
		sodium_memzero(g->secret, sizeof(g->secret));
		free(fresh);
		free(g);
		done(arg, rc, NULL, NULL, &err);
		return;
	}
	if (g->node) {
		free(fresh);
		g->retry = true;
		coord_writer_submit(t->o.writer, reissue_apply, reg_done, g);
		return;
	}
	g->node = fresh;
	coord_writer_submit(t->o.writer, reg_apply, reg_done, g);
}

/* ---- authentication and heartbeats ----------------------------------- */

int coord_nodes_authenticate(coord_nodes_t *t, const Flotilla__Credentials *cr)
{
	uint8_t h[crypto_generichash_BYTES];
	cnode_t *c = NULL;

	if (cr && cr->node_secret.len == FLT_NODE_SECRET_LEN) {
		crypto_generichash(h, sizeof(h), cr->node_secret.data,
				   cr->node_secret.len, NULL, 0);
		flt_mutex_lock(&t->mtx);
		c = table_find(t, cr->node_id);
		flt_mutex_unlock(&t->mtx);
		if (c && sodium_memcmp(h, c->secret_hash, sizeof(h)) != 0)
			c = NULL;
	}
	return c ? 0 : FLT_EAUTH;
}

int coord_nodes_heartbeat(coord_nodes_t *t, const char *node_id,
			  const char *peer, const Flotilla__SyncRequest *req,
			  coord_heartbeat_t *hb)
{
	/* Task states are the agent's to report: kept in memory, shown to
	 * operators, and the input of rollouts later. */
	Flotilla__NodeTasks nt = FLOTILLA__NODE_TASKS__INIT;
	nt.n_tasks = req->n_tasks;
	nt.tasks = req->tasks;
	size_t tlen = protobuf_c_message_get_packed_size(&nt.base);
	uint8_t *tbuf = flt_xmalloc(tlen);
	protobuf_c_message_pack(&nt.base, tbuf);

	memset(hb, 0, sizeof(*hb));
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	if (!c) {
		flt_mutex_unlock(&t->mtx);
		free(tbuf);
		return FLT_ENOTFOUND;
	}
	free(c->tasks);
	c->tasks = tbuf;
	c->tasks_len = tlen;
	c->last_hb_mono = flt_now_mono_ms();
	c->last_hb_wall = flt_now_wall_ms();
	snprintf(c->addr, sizeof(c->addr), "%s", peer);
	hb->came_up = c->status != FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	hb->flush = set_status(t, c, FLOTILLA__NODE_STATUS__NODE_STATUS_READY);
	if (req->fingerprint) {
		uint8_t h[16];
		attr_hash(req->fingerprint, req->n_labels, ENTRIES(req->labels),
			  h);
		if (memcmp(h, c->attr_hash, sizeof(h)) != 0) {
			memcpy(c->attr_hash, h, sizeof(h));
			hb->attrs_changed = true;
		}
	}
	hb->desired_index = c->desired_index;
	flt_mutex_unlock(&t->mtx);
	return 0;
}

/* ---- long-polls ---------------------------------------------------------- */

bool coord_nodes_watch(coord_nodes_t *t, const char *node_id, uint64_t known,
		       uint32_t wait_ms, flt_request_t *r, uint64_t *index)
{
	flt_request_t *old = NULL;
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	uint64_t idx = c ? c->desired_index : 0;
	*index = idx;
	if (!c || idx > known || wait_ms == 0 || t->closing) {
		flt_mutex_unlock(&t->mtx);
		return false;
	}
	/* One long-poll per node: a newer one replaces the older. */
	old = c->watch;
	c->watch = r;
	c->watch_deadline = flt_now_mono_ms() + wait_ms;
	flt_request_defer(r);
	flt_mutex_unlock(&t->mtx);
	if (old)
		t->o.answer_watch(old, idx, false);
	return true;
}

/* ---- failure detection ----------------------------------------------- */

void coord_nodes_tick(coord_nodes_t *t)
{
	int64_t now = flt_now_mono_ms();
	size_t nflush = 0, nwatch = 0, ndown = 0;
	cnode_t **flush = NULL, **down = NULL;
	struct {
		flt_request_t *r;
		uint64_t idx;
	} *expired = NULL;

	flt_mutex_lock(&t->mtx);
	if (t->closing) {
		flt_mutex_unlock(&t->mtx);
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		cnode_t *c = t->v[i];
		bool need = false;
		if (c->status != FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN &&
		    now - c->last_hb_mono > t->o.ttl_ms) {
			need = set_status(
				t, c, FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN);
			down = flt_xrealloc(down, (ndown + 1) * sizeof(*down));
			down[ndown++] = c;
		}
		/* A transition whose write failed earlier. */
		if (!need && !c->flush_queued && c->status != c->persisted &&
		    now >= c->retry_at) {
			c->flush_queued = true;
			need = true;
		}
		if (need) {
			flush = flt_xrealloc(flush,
					     (nflush + 1) * sizeof(*flush));
			flush[nflush++] = c;
		}
		if (c->watch && now >= c->watch_deadline) {
			expired = flt_xrealloc(expired,
					       (nwatch + 1) * sizeof(*expired));
			expired[nwatch].r = c->watch;
			expired[nwatch++].idx = c->desired_index;
			c->watch = NULL;
		}
	}
	flt_mutex_unlock(&t->mtx);
	for (size_t i = 0; i < nflush; i++)
		queue_update(t, flush[i], NULL, NULL, NULL, NULL);
	for (size_t i = 0; i < nwatch; i++)
		t->o.answer_watch(expired[i].r, expired[i].idx, false);
	for (size_t i = 0; i < ndown; i++)
		node_event(t, down[i]->id, COORD_NODE_DOWN);
	free(flush);
	free(down);
	free(expired);
}

static void release_watches(coord_nodes_t *t);

void coord_nodes_shutdown(coord_nodes_t *t)
{
	flt_mutex_lock(&t->mtx);
	t->closing = true;
	flt_mutex_unlock(&t->mtx);
	release_watches(t);
}

bool coord_nodes_closing(coord_nodes_t *t)
{
	flt_mutex_lock(&t->mtx);
	bool c = t->closing;
	flt_mutex_unlock(&t->mtx);
	return c;
}

static void release_watches(coord_nodes_t *t)
{
	flt_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		cnode_t *c = t->v[i];
		if (c->watch) {
			t->o.answer_watch(c->watch, c->desired_index, false);
			c->watch = NULL;
		}
	}
	flt_mutex_unlock(&t->mtx);
}

/* ---- operator views -------------------------------------------------- */

/* A Node message with the storage its strings and labels point into. */
typedef struct api_node {
	Flotilla__Node node;
	Flotilla__NodeRecord *rec;
	Flotilla__NodeTasks *tasks;
	Flotilla__Node__LabelsEntry *entries;
	Flotilla__Node__LabelsEntry **ptrs;
	char last_hb[40], registered[40], changed[40], deadline[40];
	char addr[80];
} api_node_t;

static void api_node_fill(coord_nodes_t *t, api_node_t *a,
			  Flotilla__NodeRecord *rec)
{
	memset(a, 0, sizeof(*a));
	flotilla__node__init(&a->node);
	a->rec = rec;
	a->node.id = rec->id;
	a->node.name = rec->name;
	a->node.attributes = rec->fingerprint;
	a->node.create_index = rec->create_index;
	a->node.modify_index = rec->modify_index;
	flt_format_time(rec->registered_at_ms, a->registered,
			sizeof(a->registered));
	a->node.registered_at = a->registered;
	a->entries = flt_xcalloc(rec->n_labels, sizeof(*a->entries));
	a->ptrs = flt_xcalloc(rec->n_labels, sizeof(*a->ptrs));
	for (size_t i = 0; i < rec->n_labels; i++) {
		flotilla__node__labels_entry__init(&a->entries[i]);
		a->entries[i].key = rec->labels[i]->key;
		a->entries[i].value = rec->labels[i]->value;
		a->ptrs[i] = &a->entries[i];
	}
	a->node.n_labels = rec->n_labels;
	a->node.labels = a->ptrs;
	a->node.eligible = !rec->ineligible;
	a->node.draining = rec->draining;
	if (rec->draining)
		flt_format_time(rec->drain_deadline_ms, a->deadline,
				sizeof(a->deadline));
	a->node.drain_deadline = a->deadline;
	if (rec->fingerprint)
		a->node.api_address = rec->fingerprint->api_address;

	Flotilla__NodeStatus status = rec->status;
	int64_t changed = rec->status_changed_at_ms, hb = 0;
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, rec->id);
	if (c) {
		status = c->status;
		changed = c->status_changed_ms;
		hb = c->last_hb_wall;
		snprintf(a->addr, sizeof(a->addr), "%s", c->addr);
		if (c->tasks)
			a->tasks = flotilla__node_tasks__unpack(
				NULL, c->tasks_len, c->tasks);
	}
	flt_mutex_unlock(&t->mtx);
	if (a->tasks) {
		a->node.n_tasks = a->tasks->n_tasks;
		a->node.tasks = a->tasks->tasks;
	}
	a->node.status = (char *)status_name(status);
	a->node.address = a->addr;
	if (hb)
		flt_format_time(hb, a->last_hb, sizeof(a->last_hb));
	a->node.last_heartbeat = a->last_hb;
	flt_format_time(changed, a->changed, sizeof(a->changed));
	a->node.status_changed_at = a->changed;
}

static void api_node_free(api_node_t *a)
{
	if (a->rec)
		flotilla__node_record__free_unpacked(a->rec, NULL);
	if (a->tasks)
		flotilla__node_tasks__free_unpacked(a->tasks, NULL);
	free(a->entries);
	free(a->ptrs);
}

typedef struct list_ctx {
	coord_nodes_t *t;
	api_node_t **v; /* one allocation per node: an api_node_t points
			 * into itself, so growing the array must not move
			 * them */
	size_t n, cap;
} list_ctx_t;

static int list_one(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	list_ctx_t *l = arg;
	(void)key;
	(void)klen;
	Flotilla__NodeRecord *rec =
		flotilla__node_record__unpack(NULL, vlen, val);
	if (!rec)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = flt_xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n] = flt_xmalloc(sizeof(*l->v[l->n]));
	api_node_fill(l->t, l->v[l->n++], rec);
	return 0;
}

void coord_nodes_list(coord_nodes_t *t, flt_request_t *r)
{
	list_ctx_t l = { .t = t };
	flt_error_t err;
	flt_txn_t *txn;

	if (flt_txn_begin(t->o.store, false, &txn, &err) < 0) {
		flt_request_fail(r, err.code, "%s", err.msg);
		return;
	}
	uint64_t index = flt_txn_index(txn);
	int rc = flt_txn_foreach(txn, t->db, NULL, 0, list_one, &l);
	flt_txn_abort(txn);
	if (rc < 0) {
		flt_request_fail(r, rc, "reading nodes failed");
	} else {
		Flotilla__NodeListResponse resp =
			FLOTILLA__NODE_LIST_RESPONSE__INIT;
		Flotilla__Node **ptrs = flt_xcalloc(l.n, sizeof(*ptrs));
		for (size_t i = 0; i < l.n; i++)
			ptrs[i] = &l.v[i]->node;
		resp.nodes = ptrs;
		resp.n_nodes = l.n;
		resp.index = index;
		flt_request_reply(r, &resp.base);
		free(ptrs);
	}
	for (size_t i = 0; i < l.n; i++) {
		api_node_free(l.v[i]);
		free(l.v[i]);
	}
	free(l.v);
}

/* Resolves an id, a unique name, or a unique id prefix to an id. */
static int resolve(coord_nodes_t *t, const char *q, char id[37],
		   flt_error_t *err)
{
	size_t by_name = 0, by_prefix = 0, ql = strlen(q);
	char name_id[37] = "", prefix_id[37] = "";

	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, q);
	if (c) {
		memcpy(id, c->id, 37);
		flt_mutex_unlock(&t->mtx);
		return 0;
	}
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->v[i]->name, q) == 0) {
			by_name++;
			memcpy(name_id, t->v[i]->id, 37);
		}
		if (strncmp(t->v[i]->id, q, ql) == 0) {
			by_prefix++;
			memcpy(prefix_id, t->v[i]->id, 37);
		}
	}
	flt_mutex_unlock(&t->mtx);
	if (by_name == 1 || (by_name == 0 && by_prefix == 1)) {
		memcpy(id, by_name ? name_id : prefix_id, 37);
		return 0;
	}
	if (by_name > 1 || by_prefix > 1)
		return flt_err(err, FLT_ECONFLICT,
			       "\"%s\" matches %zu nodes; use the node id", q,
			       by_name > 1 ? by_name : by_prefix);
	return flt_err(err, FLT_ENOTFOUND, "no node matches \"%s\"", q);
}

int coord_nodes_resolve(coord_nodes_t *t, const char *q, char id[37],
			char *name, size_t name_len, flt_error_t *err)
{
	int rc = resolve(t, q, id, err);
	if (rc < 0)
		return rc;
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, id);
	snprintf(name, name_len, "%s", c ? c->name : id);
	flt_mutex_unlock(&t->mtx);
	return 0;
}

bool coord_nodes_ready(coord_nodes_t *t, const char *node_id)
{
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	bool ready = c && c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	flt_mutex_unlock(&t->mtx);
	return ready;
}

int coord_nodes_agent_api(coord_nodes_t *t, const char *node_id, char *name,
			  size_t name_len, char *addr, size_t addr_len,
			  flt_error_t *err)
{
	flt_txn_t *txn = NULL;
	Flotilla__NodeRecord *rec;
	int rc;
	if ((rc = flt_txn_begin(t->o.store, false, &txn, err)) < 0)
		return rc;
	rc = flt_txn_get_pb(txn, t->db, node_id,
			    &flotilla__node_record__descriptor,
			    (ProtobufCMessage **)&rec, err);
	flt_txn_abort(txn);
	if (rc == -ENOENT)
		return flt_err(err, FLT_ENOTFOUND, "no node %s", node_id);
	if (rc < 0)
		return rc;
	snprintf(name, name_len, "%s", rec->name);
	snprintf(addr, addr_len, "%s",
		 rec->fingerprint ? rec->fingerprint->api_address : "");
	flotilla__node_record__free_unpacked(rec, NULL);
	return 0;
}

static void reply_node(coord_nodes_t *t, flt_request_t *r, const char *id);

void coord_nodes_get(coord_nodes_t *t, flt_request_t *r)
{
	Flotilla__NodeGetRequest *req;
	flt_error_t err;
	char id[37];

	if (flt_request_body(r, &flotilla__node_get_request__descriptor, &req) <
	    0)
		return;
	int rc = *req->node ? resolve(t, req->node, id, &err)
			    : flt_err(&err, FLT_EPROTO, "node: required");
	flotilla__node_get_request__free_unpacked(req, NULL);
	if (rc < 0) {
		flt_request_fail(r, rc, "%s", err.msg);
		return;
	}
	reply_node(t, r, id);
}

static void reply_node(coord_nodes_t *t, flt_request_t *r, const char *id)
{
	flt_txn_t *txn = NULL;
	Flotilla__NodeRecord *rec;
	flt_error_t err;
	int rc;
	if ((rc = flt_txn_begin(t->o.store, false, &txn, &err)) < 0 ||
	    (rc = flt_txn_get_pb(txn, t->db, id,
				 &flotilla__node_record__descriptor,
				 (ProtobufCMessage **)&rec, &err)) < 0) {
		flt_txn_abort(txn);
		flt_request_fail(r, rc == -ENOENT ? FLT_ENOTFOUND : rc, "%s",
				 err.msg);
		return;
	}
	flt_txn_abort(txn);
	api_node_t a;
	api_node_fill(t, &a, rec);
	Flotilla__NodeGetResponse resp = FLOTILLA__NODE_GET_RESPONSE__INIT;
	resp.node = &a.node;
	flt_request_reply(r, &resp.base);
	api_node_free(&a);
}

/* ---- drain and eligibility ------------------------------------------------- */

enum edit_kind { EDIT_DRAIN, EDIT_ELIGIBILITY, EDIT_DRAINED };

typedef struct edit_op {
	coord_nodes_t *t;
	enum edit_kind kind;
	char id[37];
	bool enable;
	int64_t deadline_ms;
	flt_request_t *r;
	int rc;
	flt_error_t err;
} edit_op_t;

static int edit_edit(Flotilla__NodeRecord *rec, void *arg, flt_error_t *err)
{
	edit_op_t *o = arg;
	(void)err;
	o->rc = 0;
	switch (o->kind) {
	case EDIT_DRAIN:
		rec->draining = o->enable;
		if (o->enable) {
			rec->ineligible = true;
			rec->drain_deadline_ms = o->deadline_ms;
		} else {
			rec->drain_deadline_ms = 0;
		}
		break;
	case EDIT_ELIGIBILITY:
		if (o->enable && rec->draining) {
			/* Not an error of the transaction: nothing written. */
			o->rc = flt_err(&o->err, FLT_ECONFLICT,
					"node %s is draining; cancel the drain "
					"first (node drain --disable)",
					rec->name);
			return 1;
		}
		rec->ineligible = !o->enable;
		break;
	case EDIT_DRAINED:
		if (!rec->draining)
			return 1;
		rec->draining = false;
		rec->drain_deadline_ms = 0;
		break;
	}
	return 0;
}

static int edit_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	static const record_edit_t how = { edit_edit, NULL };
	edit_op_t *o = arg;
	int rc = record_update(txn, o->t, o->id, &how, o, err);
	if (rc < 0 || o->rc < 0 || !o->r)
		return rc;
	return coord_audit_in_txn(txn, o->r, err);
}

static void edit_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	edit_op_t *o = arg;
	(void)index;
	if (rc == 0 && o->rc == 0) {
		atomic_fetch_add(&o->t->fleet_gen, 1);
		flt_info("node %s node=%s%s",
			 o->kind == EDIT_DRAIN ? (o->enable ? "drain started"
							    : "drain cancelled")
			 : o->kind == EDIT_DRAINED ? "drain complete"
			 : o->enable               ? "eligible"
						   : "ineligible",
			 o->id, "");
		if (o->kind != EDIT_DRAINED)
			node_event(o->t, o->id,
				   o->kind == EDIT_DRAIN || !o->enable
					   ? COORD_NODE_DRAIN
					   : COORD_NODE_ELIGIBLE);
	}
	if (o->r) {
		if (rc < 0)
			flt_request_fail(o->r, rc, "%s",
					 err ? err->msg : "write failed");
		else if (o->rc < 0)
			flt_request_fail(o->r, o->rc, "%s", o->err.msg);
		else
			reply_node(o->t, o->r, o->id);
	}
	free(o);
}

/* Resolves the node of an edit and queues it (answered once stored). */
static void queue_edit(coord_nodes_t *t, flt_request_t *r, edit_op_t *o,
		       const char *query)
{
	flt_error_t err;
	int rc = *query ? resolve(t, query, o->id, &err)
			: flt_err(&err, FLT_EPROTO, "node: required");
	if (rc < 0) {
		flt_request_fail(r, rc, "%s", err.msg);
		return;
	}
	edit_op_t *op = flt_xmalloc(sizeof(*op));
	*op = *o;
	flt_request_defer(r);
	coord_writer_submit(t->o.writer, edit_apply, edit_done, op);
}

void coord_nodes_drain(coord_nodes_t *t, flt_request_t *r)
{
	Flotilla__NodeDrainRequest *req;
	edit_op_t o = { .t = t, .r = r, .kind = EDIT_DRAIN };
	char query[256];
	if (flt_request_body(r, &flotilla__node_drain_request__descriptor,
			     &req) < 0)
		return;
	o.enable = req->enable;
	uint32_t d = req->deadline_ms ? req->deadline_ms : 3600000;
	o.deadline_ms = flt_now_wall_ms() + d;
	snprintf(query, sizeof(query), "%s", req->node);
	flotilla__node_drain_request__free_unpacked(req, NULL);
	queue_edit(t, r, &o, query);
}

void coord_nodes_eligibility(coord_nodes_t *t, flt_request_t *r)
{
	Flotilla__NodeEligibilityRequest *req;
	edit_op_t o = { .t = t, .r = r, .kind = EDIT_ELIGIBILITY };
	char query[256];
	if (flt_request_body(r, &flotilla__node_eligibility_request__descriptor,
			     &req) < 0)
		return;
	o.enable = req->eligible;
	snprintf(query, sizeof(query), "%s", req->node);
	flotilla__node_eligibility_request__free_unpacked(req, NULL);
	queue_edit(t, r, &o, query);
}

void coord_nodes_push(coord_nodes_t *t, const char *node_id, uint64_t index)
{
	flt_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	if (c && index > c->desired_index) {
		c->desired_index = index;
		if (c->watch) {
			t->o.answer_watch(c->watch, index, true);
			c->watch = NULL;
		}
	}
	flt_mutex_unlock(&t->mtx);
}

void coord_nodes_drained(coord_nodes_t *t, const char *node_id)
{
	edit_op_t *o = flt_xcalloc(1, sizeof(*o));
	o->t = t;
	o->kind = EDIT_DRAINED;
	snprintf(o->id, sizeof(o->id), "%s", node_id);
	coord_writer_submit(t->o.writer, edit_apply, edit_done, o);
}

/* ---- the scheduler's view ------------------------------------------------ */

static int fleet_one(const void *key, size_t klen, const void *val, size_t vlen,
		     void *arg)
{
	struct {
		coord_nodes_t *t;
		sched_fleet_t *f;
	} *x = arg;
	(void)key;
	(void)klen;
	Flotilla__NodeRecord *rec =
		flotilla__node_record__unpack(NULL, vlen, val);
	if (!rec)
		return 0;
	const Flotilla__Fingerprint *fp = rec->fingerprint;
	const char *keys[16 + MAX_LABELS], *vals[16 + MAX_LABELS];
	char lk[MAX_LABELS][NAME_MAX_LEN + 8], cpus[16], mem[32];
	size_t n = 0;
	keys[n] = "node.name", vals[n++] = rec->name;
	keys[n] = "node.id", vals[n++] = rec->id;
	if (fp) {
		snprintf(cpus, sizeof(cpus), "%u", fp->cpu_count);
		snprintf(mem, sizeof(mem), "%llu",
			 (unsigned long long)fp->memory_bytes);
		keys[n] = "attr.hostname", vals[n++] = fp->hostname;
		keys[n] = "attr.os_id", vals[n++] = fp->os_id;
		keys[n] = "attr.os_version", vals[n++] = fp->os_version;
		keys[n] = "attr.os_name", vals[n++] = fp->os_name;
		keys[n] = "attr.kernel", vals[n++] = fp->kernel;
		keys[n] = "attr.arch", vals[n++] = fp->arch;
		keys[n] = "attr.cpu_count", vals[n++] = cpus;
		keys[n] = "attr.memory_bytes", vals[n++] = mem;
		keys[n] = "attr.cgroup_version", vals[n++] = fp->cgroup_version;
		keys[n] = "attr.agent_version", vals[n++] = fp->agent_version;
	}
	for (size_t i = 0; i < rec->n_labels && i < MAX_LABELS; i++) {
		snprintf(lk[i], sizeof(lk[i]), "label.%s", rec->labels[i]->key);
		keys[n] = lk[i], vals[n++] = rec->labels[i]->value;
	}
	flt_mutex_lock(&x->t->mtx);
	cnode_t *c = table_find(x->t, rec->id);
	bool ready = c && c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	bool down = !c || c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN;
	flt_mutex_unlock(&x->t->mtx);
	size_t i = sched_fleet_add(x->f, rec->id, n, keys, vals,
				   fp ? fp->cpu_count * 100 : 0,
				   fp ? fp->memory_bytes >> 20 : 0, 4194304,
				   ready && !rec->ineligible && !rec->draining);
	sched_node_set_state(x->f, i, down, rec->draining,
			     rec->drain_deadline_ms);
	sched_node_set_allowances(x->f, i, fp ? fp->allowances : NULL);
	flotilla__node_record__free_unpacked(rec, NULL);
	return 0;
}

sched_fleet_t *coord_nodes_fleet(coord_nodes_t *t, flt_error_t *err)
{
	flt_txn_t *txn;
	if (flt_txn_begin(t->o.store, false, &txn, err) < 0)
		return NULL;
	struct {
		coord_nodes_t *t;
		sched_fleet_t *f;
	} x = { t, sched_fleet_new() };
	int rc = flt_txn_foreach(txn, t->db, NULL, 0, fleet_one, &x);
	flt_txn_abort(txn);
	if (rc < 0) {
		sched_fleet_free(x.f);
		flt_err(err, rc, "reading nodes failed");
		return NULL;
	}
	return x.f;
}

/*
 * One snapshot shared by every reader (campaign rounds, inventory queries)
 * until the node table's generation moves on. The generation is read
 * before the nodes, so a snapshot is never labelled newer than it is; its
 * id index is built before it is shared, so readers never write to it.
 */
coord_fleet_snap_t *coord_nodes_snapshot(coord_nodes_t *t, flt_error_t *err)
{
	uint64_t gen = atomic_load(&t->fleet_gen);
	flt_mutex_lock(&t->snap_mtx);
	coord_fleet_snap_t *s = t->snap;
	if (s && s->gen == gen) {
		atomic_fetch_add(&s->refs, 1);
		flt_mutex_unlock(&t->snap_mtx);
		return s;
	}
	flt_mutex_unlock(&t->snap_mtx);

	sched_fleet_t *f = coord_nodes_fleet(t, err);
	if (!f)
		return NULL;
	(void)sched_fleet_find(f, "");
	s = flt_xcalloc(1, sizeof(*s));
	s->fleet = f;
	s->gen = gen;
	atomic_init(&s->refs, 2); /* the caller's and the cache's */

	flt_mutex_lock(&t->snap_mtx);
	coord_fleet_snap_t *old = NULL;
	if (!t->snap || t->snap->gen <= gen) {
		old = t->snap;
		t->snap = s;
	} else {
		atomic_fetch_sub(&s->refs, 1); /* a newer one is cached */
	}
	flt_mutex_unlock(&t->snap_mtx);
	coord_fleet_snap_release(old);
	return s;
}

sched_fleet_t *coord_fleet_snap_fleet(coord_fleet_snap_t *s)
{
	return s->fleet;
}

void coord_fleet_snap_release(coord_fleet_snap_t *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		sched_fleet_free(s->fleet);
		free(s);
	}
}
