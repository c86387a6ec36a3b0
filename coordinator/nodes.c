/*
 * The node table: registration, heartbeats (Sync), long-polls (Watch),
 * failure detection, and the operator views of nodes.
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
#include "engine.h"
#include "scheduler.h"
#include "flotilla/log.h"
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
	pthread_mutex_t mtx;
	cnode_t **v;
	size_t n, cap;
	uint32_t *slots; /* open addressing over v: index + 1, 0 empty */
	uint32_t *reg_slots; /* the same, by registration id */
	size_t nslots;
	uint8_t token_hash[crypto_generichash_BYTES];
	int64_t grace_from;
	bool closing; /* shutting down: new work is refused */
	coord_engine_t *engine;
	coord_pkgs_t *pkgs;
	coord_inv_t *inv;
	coord_campaigns_t *camps;
	/* Bumped by every change the scheduler's view shows: a status, or a
	 * stored record (registration, attributes, drain, eligibility). */
	atomic_uint_fast64_t fleet_gen;
	/* The last shared snapshot (coord_nodes_snapshot), or NULL. */
	pthread_mutex_t snap_mtx;
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

void coord_nodes_set_parts(coord_nodes_t *t, coord_pkgs_t *pkgs,
			   coord_inv_t *inv, coord_campaigns_t *camps)
{
	t->pkgs = pkgs;
	t->inv = inv;
	t->camps = camps;
}

void coord_nodes_set_engine(coord_nodes_t *t, coord_engine_t *e)
{
	t->engine = e;
}

/* ---- the table ------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static void slot_put(uint32_t *slots, size_t nslots, const char *key,
		     size_t idx)
{
	size_t s = hash_str(key) & (nslots - 1);
	while (slots[s])
		s = (s + 1) & (nslots - 1);
	slots[s] = (uint32_t)(idx + 1);
}

static void table_rehash(coord_nodes_t *t, size_t nslots)
{
	free(t->slots);
	free(t->reg_slots);
	t->slots = flt_xcalloc(nslots, sizeof(*t->slots));
	t->reg_slots = flt_xcalloc(nslots, sizeof(*t->reg_slots));
	t->nslots = nslots;
	for (size_t i = 0; i < t->n; i++) {
		slot_put(t->slots, nslots, t->v[i]->id, i);
		if (t->v[i]->reg_id[0])
			slot_put(t->reg_slots, nslots, t->v[i]->reg_id, i);
	}
}

/* Called with t->mtx held (or before threads start). */
static void table_add(coord_nodes_t *t, cnode_t *node)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = flt_xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = node;
	if (t->n * 2 > t->nslots) {
		table_rehash(t, t->nslots ? t->nslots * 2 : 128);
	} else {
		slot_put(t->slots, t->nslots, node->id, t->n - 1);
		if (node->reg_id[0])
			slot_put(t->reg_slots, t->nslots, node->reg_id,
				 t->n - 1);
	}
}

/* A node registered under reg_id that has never synced, or NULL. */
static cnode_t *table_find_unsynced(coord_nodes_t *t, const char *reg_id)
{
	if (!t->nslots)
		return NULL;
	size_t s = hash_str(reg_id) & (t->nslots - 1);
	while (t->reg_slots[s]) {
		cnode_t *c = t->v[t->reg_slots[s] - 1];
		if (c->status ==
			    FLOTILLA__NODE_STATUS__NODE_STATUS_INITIALIZING &&
		    strcmp(c->reg_id, reg_id) == 0)
			return c;
		s = (s + 1) & (t->nslots - 1);
	}
	return NULL;
}

static cnode_t *table_find(coord_nodes_t *t, const char *id)
{
	if (!t->nslots)
		return NULL;
	size_t s = hash_str(id) & (t->nslots - 1);
	while (t->slots[s]) {
		cnode_t *c = t->v[t->slots[s] - 1];
		if (strcmp(c->id, id) == 0)
			return c;
		s = (s + 1) & (t->nslots - 1);
	}
	return NULL;
}

static const char *status_name(Flotilla__NodeStatus s)
{
	switch (s) {
	case FLOTILLA__NODE_STATUS__NODE_STATUS_INITIALIZING:
		return "initializing";
	case FLOTILLA__NODE_STATUS__NODE_STATUS_READY: return "ready";
	case FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN: return "down";
	default: return "unknown";
	}
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
	pthread_mutex_init(&t->mtx, NULL);
	pthread_mutex_init(&t->snap_mtx, NULL);
	crypto_generichash(t->token_hash, sizeof(t->token_hash),
			   (const uint8_t *)o->join_token,
			   strlen(o->join_token), NULL, 0);
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
	free(t->slots);
	free(t->reg_slots);
	coord_fleet_snap_release(t->snap);
	pthread_mutex_destroy(&t->snap_mtx);
	pthread_mutex_destroy(&t->mtx);
	free(t);
}

size_t coord_nodes_count(coord_nodes_t *t, size_t *ready, size_t *down)
{
	size_t r = 0, d = 0;
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		r += t->v[i]->status ==
		     FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
		d += t->v[i]->status == FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN;
	}
	size_t n = t->n;
	pthread_mutex_unlock(&t->mtx);
	if (ready)
		*ready = r;
	if (down)
		*down = d;
	return n;
}

/* ---- persisting changes ---------------------------------------------- */

typedef struct update_op {
	coord_nodes_t *t;
	cnode_t *node;
	Flotilla__SyncRequest *attrs; /* new fingerprint and labels, or NULL */
	bool set_attrs; /* attrs carries a new fingerprint and labels */
	Flotilla__Inventory *inv; /* a new inventory to store, or NULL */
	flt_request_t *r; /* a Sync answered once the attributes are stored */
	Flotilla__NodeStatus written;
} update_op_t;

static void queue_update(coord_nodes_t *t, cnode_t *c,
			 Flotilla__SyncRequest *attrs, flt_request_t *r);
static void answer_sync(coord_nodes_t *t, flt_request_t *r, uint64_t idx,
			uint64_t known, const char *node_id);

static int update_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	update_op_t *u = arg;
	Flotilla__NodeRecord *rec;
	int rc = flt_txn_get_pb(txn, u->t->db, u->node->id,
				&flotilla__node_record__descriptor,
				(ProtobufCMessage **)&rec, err);
	if (rc < 0)
		return rc;

	pthread_mutex_lock(&u->t->mtx);
	u->written = u->node->status;
	rec->status = u->node->status;
	rec->status_changed_at_ms = u->node->status_changed_ms;
	pthread_mutex_unlock(&u->t->mtx);
	rec->modify_index = flt_txn_index(txn);

	if (u->inv && (rc = coord_inv_apply(u->t->inv, txn, u->node->id, u->inv,
					    err)) < 0) {
		flotilla__node_record__free_unpacked(rec, NULL);
		return rc;
	}
	/* Borrow the request's fingerprint and labels for the pack. */
	Flotilla__Fingerprint *old_fp = rec->fingerprint;
	size_t old_n = rec->n_labels;
	Flotilla__NodeRecord__LabelsEntry **old_l = rec->labels;
	Flotilla__NodeRecord__LabelsEntry *entries = NULL;
	Flotilla__NodeRecord__LabelsEntry **ptrs = NULL;
	if (u->set_attrs) {
		size_t n = u->attrs->n_labels;
		entries = flt_xcalloc(n, sizeof(*entries));
		ptrs = flt_xcalloc(n, sizeof(*ptrs));
		for (size_t i = 0; i < n; i++) {
			flotilla__node_record__labels_entry__init(&entries[i]);
			entries[i].key = u->attrs->labels[i]->key;
			entries[i].value = u->attrs->labels[i]->value;
			ptrs[i] = &entries[i];
		}
		rec->fingerprint = u->attrs->fingerprint;
		rec->n_labels = n;
		rec->labels = ptrs;
	}
	rc = flt_txn_put_pb(txn, u->t->db, u->node->id, &rec->base, err);
	rec->fingerprint = old_fp;
	rec->n_labels = old_n;
	rec->labels = old_l;
	free(entries);
	free(ptrs);
	flotilla__node_record__free_unpacked(rec, NULL);
	return rc;
}

static void update_done(void *arg, int rc, uint64_t index,
			const flt_error_t *err)
{
	update_op_t *u = arg;
	coord_nodes_t *t = u->t;
	cnode_t *c = u->node;
	(void)index;

	pthread_mutex_lock(&t->mtx);
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
	pthread_mutex_unlock(&t->mtx);
	if (rc == 0 && u->inv)
		coord_inv_commit(t->inv, c->id, steal_ptr(&u->inv));
	/* Step results after the inventory they were re-scanned with. */
	if (rc == 0 && u->attrs && t->camps && u->attrs->n_steps)
		coord_campaigns_report(t->camps, c->id, u->attrs->steps,
				       u->attrs->n_steps);
	if (u->r) {
		if (rc == 0)
			answer_sync(t, u->r, desired, u->attrs->known_index,
				    c->id);
		else
			flt_request_fail(u->r, -EAGAIN,
					 "node attributes not stored: %s",
					 err ? err->msg : "write failed");
	}
	if (u->inv)
		flotilla__inventory__free_unpacked(u->inv, NULL);
	if (u->attrs)
		flotilla__sync_request__free_unpacked(u->attrs, NULL);
	free(u);
	if (again)
		queue_update(t, c, NULL, NULL);
}

static void queue_update(coord_nodes_t *t, cnode_t *c,
			 Flotilla__SyncRequest *attrs, flt_request_t *r)
{
	update_op_t *u = flt_xcalloc(1, sizeof(*u));
	u->t = t;
	u->node = c;
	u->attrs = attrs;
	u->set_attrs = attrs && attrs->fingerprint;
	if (attrs && attrs->inventory && t->inv)
		u->inv = steal_ptr(&attrs->inventory);
	u->r = r;
	coord_writer_submit(t->o.writer, update_apply, update_done, u);
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

static int check_attrs(const Flotilla__Fingerprint *fp, size_t n,
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

/* ---- Register -------------------------------------------------------- */

typedef struct reg_op {
	coord_nodes_t *t;
	flt_request_t *r;
	Flotilla__RegisterRequest *req;
	cnode_t *node;
	bool retry; /* node exists: only its secret is issued anew */
	uint8_t secret[FLT_NODE_SECRET_LEN];
	uint8_t secret_hash[crypto_generichash_BYTES];
} reg_op_t;

/* A retried Register: the first one's reply was lost. */
static int reissue_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	reg_op_t *g = arg;
	Flotilla__NodeRecord *rec;
	int rc = flt_txn_get_pb(txn, g->t->db, g->node->id,
				&flotilla__node_record__descriptor,
				(ProtobufCMessage **)&rec, err);
	if (rc < 0)
		return rc;
	rec->secret_hash.data = g->secret_hash;
	rec->secret_hash.len = sizeof(g->secret_hash);
	rec->modify_index = flt_txn_index(txn);
	rc = flt_txn_put_pb(txn, g->t->db, g->node->id, &rec->base, err);
	/* The hash was borrowed: do not let free_unpacked release it. */
	rec->secret_hash.data = NULL;
	rec->secret_hash.len = 0;
	flotilla__node_record__free_unpacked(rec, NULL);
	return rc;
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
		flt_request_fail(g->r, rc, "registration not stored: %s",
				 err ? err->msg : "write failed");
		if (!g->retry)
			free(g->node);
	} else {
		atomic_fetch_add(&g->t->fleet_gen, 1);
		Flotilla__RegisterResponse resp =
			FLOTILLA__REGISTER_RESPONSE__INIT;
		resp.node_id = g->node->id;
		resp.node_secret.data = g->secret;
		resp.node_secret.len = sizeof(g->secret);
		resp.heartbeat_interval_ms = g->t->o.interval_ms;
		pthread_mutex_lock(&g->t->mtx);
		if (g->retry) {
			memcpy(g->node->secret_hash, g->secret_hash,
			       sizeof(g->secret_hash));
		} else {
			g->node->persisted = g->node->status;
			table_add(g->t, g->node);
		}
		g->node->last_hb_mono = flt_now_mono_ms();
		pthread_mutex_unlock(&g->t->mtx);
		flt_info("node %s node=%s name=%s index=%llu",
			 g->retry ? "registration retried" : "registered",
			 g->node->id, g->node->name, (unsigned long long)index);
		flt_request_reply(g->r, &resp.base);
	}
	sodium_memzero(g->secret, sizeof(g->secret));
	flotilla__register_request__free_unpacked(g->req, NULL);
	free(g);
}

static void handle_register(coord_nodes_t *t, flt_request_t *r)
{
	const flt_envelope_t *env = flt_request_envelope(r);
	const char *token =
		env->credentials ? env->credentials->join_token : "";
	uint8_t h[crypto_generichash_BYTES];
	flt_error_t err;

	/* Compare digests so neither content nor length leaks by timing. */
	crypto_generichash(h, sizeof(h), (const uint8_t *)token, strlen(token),
			   NULL, 0);
	if (!*token || sodium_memcmp(h, t->token_hash, sizeof(h)) != 0) {
		flt_warn("registration refused: wrong join token peer=%s",
			 flt_request_peer(r));
		flt_request_fail(r, FLT_EAUTH, "join token rejected");
		return;
	}
	Flotilla__RegisterRequest *req;
	if (flt_request_body(r, &flotilla__register_request__descriptor, &req) <
	    0)
		return;
	if (!flt_is_name(req->name, NAME_MAX_LEN)) {
		flt_request_fail(r, FLT_EPROTO,
				 "name: must be 1 to %d of [A-Za-z0-9._-]",
				 NAME_MAX_LEN);
		goto fail;
	}
	if (check_attrs(req->fingerprint, req->n_labels, ENTRIES(req->labels),
			&err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "%s", err.msg);
		goto fail;
	}
	if (*req->registration_id &&
	    !flt_is_name(req->registration_id, FLT_NODE_ID_MAX)) {
		flt_request_fail(r, FLT_EPROTO,
				 "registration_id: must be 1 to %u of "
				 "[A-Za-z0-9._-]",
				 FLT_NODE_ID_MAX);
		goto fail;
	}

	reg_op_t *g = flt_xcalloc(1, sizeof(*g));
	g->t = t;
	g->r = r;
	g->req = req;
	randombytes_buf(g->secret, sizeof(g->secret));
	crypto_generichash(g->secret_hash, sizeof(g->secret_hash), g->secret,
			   sizeof(g->secret), NULL, 0);

	/*
	 * The same registration id again, for a node that never synced: the
	 * agent did not get the first reply. Same node, new secret. A node
	 * that has synced is never handed out again this way.
	 */
	if (*req->registration_id) {
		pthread_mutex_lock(&t->mtx);
		g->node = table_find_unsynced(t, req->registration_id);
		pthread_mutex_unlock(&t->mtx);
	}
	if (g->node) {
		g->retry = true;
		flt_request_defer(r);
		coord_writer_submit(t->o.writer, reissue_apply, reg_done, g);
		return;
	}

	g->node = flt_xcalloc(1, sizeof(*g->node));
	snprintf(g->node->reg_id, sizeof(g->node->reg_id), "%s",
		 req->registration_id);
	flt_uuid_v4(g->node->id);
	snprintf(g->node->name, sizeof(g->node->name), "%s", req->name);
	memcpy(g->node->secret_hash, g->secret_hash, sizeof(g->secret_hash));
	g->node->status = FLOTILLA__NODE_STATUS__NODE_STATUS_INITIALIZING;
	g->node->status_changed_ms = flt_now_wall_ms();
	attr_hash(req->fingerprint, req->n_labels, ENTRIES(req->labels),
		  g->node->attr_hash);
	/* Answer only once the node is durable. */
	flt_request_defer(r);
	coord_writer_submit(t->o.writer, reg_apply, reg_done, g);
	return;
fail:
	flotilla__register_request__free_unpacked(req, NULL);
}

/* ---- authentication -------------------------------------------------- */

/* Returns the node whose secret the request proves, or NULL (answered). */
static cnode_t *authenticate(coord_nodes_t *t, flt_request_t *r)
{
	const Flotilla__Credentials *cr = flt_request_envelope(r)->credentials;
	uint8_t h[crypto_generichash_BYTES];
	cnode_t *c = NULL;

	if (cr && cr->node_secret.len == FLT_NODE_SECRET_LEN) {
		crypto_generichash(h, sizeof(h), cr->node_secret.data,
				   cr->node_secret.len, NULL, 0);
		pthread_mutex_lock(&t->mtx);
		c = table_find(t, cr->node_id);
		pthread_mutex_unlock(&t->mtx);
		if (c && sodium_memcmp(h, c->secret_hash, sizeof(h)) != 0)
			c = NULL;
	}
	if (!c) {
		/* One answer for unknown ids and wrong secrets alike. */
		flt_warn("node credentials rejected method=%s node=%s peer=%s",
			 flt_method_name(flt_request_envelope(r)->method),
			 cr ? cr->node_id : "", flt_request_peer(r));
		flt_request_fail(r, FLT_EAUTH, "node credentials rejected");
	}
	return c;
}

/* ---- Sync (the heartbeat) -------------------------------------------- */

static void handle_sync(coord_nodes_t *t, flt_request_t *r)
{
	Flotilla__SyncRequest *req;
	flt_error_t err;

	cnode_t *c = authenticate(t, r);
	if (!c)
		return;
	if (flt_request_body(r, &flotilla__sync_request__descriptor, &req) < 0)
		return;
	bool attrs_changed = false;
	if (req->fingerprint) {
		if (check_attrs(req->fingerprint, req->n_labels,
				ENTRIES(req->labels), &err) < 0) {
			flt_request_fail(r, FLT_EPROTO, "%s", err.msg);
			flotilla__sync_request__free_unpacked(req, NULL);
			return;
		}
	}
	const char *peer = flt_request_peer(r);
	/* Task states are the agent's to report: kept in memory, shown to
	 * operators, and the input of rollouts later. */
	Flotilla__NodeTasks nt = FLOTILLA__NODE_TASKS__INIT;
	nt.n_tasks = req->n_tasks;
	nt.tasks = req->tasks;
	size_t tlen = protobuf_c_message_get_packed_size(&nt.base);
	uint8_t *tbuf = flt_xmalloc(tlen);
	protobuf_c_message_pack(&nt.base, tbuf);

	pthread_mutex_lock(&t->mtx);
	free(c->tasks);
	c->tasks = tbuf;
	c->tasks_len = tlen;
	c->last_hb_mono = flt_now_mono_ms();
	c->last_hb_wall = flt_now_wall_ms();
	snprintf(c->addr, sizeof(c->addr), "%s", peer);
	bool came_up = c->status != FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	bool flush = set_status(t, c, FLOTILLA__NODE_STATUS__NODE_STATUS_READY);
	if (req->fingerprint) {
		uint8_t h[16];
		attr_hash(req->fingerprint, req->n_labels, ENTRIES(req->labels),
			  h);
		if (memcmp(h, c->attr_hash, sizeof(h)) != 0) {
			memcpy(c->attr_hash, h, sizeof(h));
			attrs_changed = true;
		}
	}
	uint64_t desired = c->desired_index;
	pthread_mutex_unlock(&t->mtx);

	if (t->engine) {
		coord_engine_report(t->engine, c->id, req->tasks, req->n_tasks);
		if (came_up)
			coord_engine_node_event(t->engine, c->id,
						COORD_NODE_UP);
	}
	uint64_t known = req->known_index;

	/*
	 * New attributes are acknowledged only once stored (the agent stops
	 * sending them on this reply); the write carries the status along.
	 * A status change alone needs no wait: the next heartbeat or tick
	 * decides it again if it is lost.
	 */
	/* So is a new inventory: a step's result is judged on it. */
	if (req->inventory && t->inv) {
		if (coord_inv_check(req->inventory, &err) < 0) {
			flt_warn("inventory refused node=%s: %s", c->id,
				 err.msg);
			flotilla__inventory__free_unpacked(req->inventory,
							   NULL);
			req->inventory = NULL;
		}
	}
	if (attrs_changed || (req->inventory && t->inv)) {
		if (!attrs_changed && req->fingerprint) {
			/* Unchanged: not stored again. */
			flotilla__fingerprint__free_unpacked(req->fingerprint,
							     NULL);
			req->fingerprint = NULL;
		}
		flt_request_defer(r);
		queue_update(t, c, steal_ptr(&req), r);
		return;
	}
	if (flush)
		queue_update(t, c, NULL, NULL);
	if (t->camps && req->n_steps)
		coord_campaigns_report(t->camps, c->id, req->steps,
				       req->n_steps);
	flotilla__sync_request__free_unpacked(req, NULL);
	answer_sync(t, r, desired, known, c->id);
}

/* An agent behind the node's index gets every allocation it must run. */
static void answer_sync(coord_nodes_t *t, flt_request_t *r, uint64_t idx,
			uint64_t known, const char *node_id)
{
	Flotilla__SyncResponse resp = FLOTILLA__SYNC_RESPONSE__INIT;
	resp.heartbeat_interval_ms = t->o.interval_ms;
	resp.index = idx;
	bool send = t->engine && known < idx;
	if (send)
		coord_engine_node_allocs(t->engine, node_id, &resp);
	char digest[FLT_INV_DIGEST_LEN] = "";
	if (t->inv)
		coord_inv_digest(t->inv, node_id, digest);
	resp.inventory_digest = digest;
	if (t->camps)
		coord_campaigns_node_steps(t->camps, node_id, &resp);
	flt_request_reply(r, &resp.base);
	if (t->camps)
		coord_campaigns_node_steps_free(&resp);
	if (send)
		coord_engine_node_allocs_free(&resp);
}

/* ---- Watch (the long-poll that carries prompt changes) --------------- */

static void answer_watch(flt_request_t *r, uint64_t index, bool changed)
{
	Flotilla__WatchResponse resp = FLOTILLA__WATCH_RESPONSE__INIT;
	resp.index = index;
	resp.changed = changed;
	flt_request_reply(r, &resp.base);
}

static void handle_watch(coord_nodes_t *t, flt_request_t *r)
{
	Flotilla__WatchRequest *req;

	cnode_t *c = authenticate(t, r);
	if (!c)
		return;
	if (flt_request_body(r, &flotilla__watch_request__descriptor, &req) < 0)
		return;
	uint32_t wait = req->max_wait_ms;
	uint64_t known = req->known_index;
	flotilla__watch_request__free_unpacked(req, NULL);
	if (wait > t->o.max_watch_ms)
		wait = t->o.max_watch_ms;

	flt_request_t *old = NULL;
	pthread_mutex_lock(&t->mtx);
	uint64_t idx = c->desired_index;
	if (idx > known || wait == 0) {
		pthread_mutex_unlock(&t->mtx);
		answer_watch(r, idx, idx > known);
		return;
	}
	if (t->closing) {
		pthread_mutex_unlock(&t->mtx);
		answer_watch(r, idx, false);
		return;
	}
	/* One long-poll per node: a newer one replaces the older. */
	old = c->watch;
	c->watch = r;
	c->watch_deadline = flt_now_mono_ms() + wait;
	flt_request_defer(r);
	pthread_mutex_unlock(&t->mtx);
	if (old)
		answer_watch(old, idx, false);
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

	pthread_mutex_lock(&t->mtx);
	if (t->closing) {
		pthread_mutex_unlock(&t->mtx);
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
	pthread_mutex_unlock(&t->mtx);
	for (size_t i = 0; i < nflush; i++)
		queue_update(t, flush[i], NULL, NULL);
	for (size_t i = 0; i < nwatch; i++)
		answer_watch(expired[i].r, expired[i].idx, false);
	for (size_t i = 0; i < ndown && t->engine; i++)
		coord_engine_node_event(t->engine, down[i]->id,
					COORD_NODE_DOWN);
	free(flush);
	free(down);
	free(expired);
}

void coord_nodes_shutdown(coord_nodes_t *t)
{
	pthread_mutex_lock(&t->mtx);
	t->closing = true;
	pthread_mutex_unlock(&t->mtx);
	coord_nodes_release_watches(t);
}

static bool closing(coord_nodes_t *t)
{
	pthread_mutex_lock(&t->mtx);
	bool c = t->closing;
	pthread_mutex_unlock(&t->mtx);
	return c;
}

void coord_nodes_release_watches(coord_nodes_t *t)
{
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		cnode_t *c = t->v[i];
		if (c->watch) {
			answer_watch(c->watch, c->desired_index, false);
			c->watch = NULL;
		}
	}
	pthread_mutex_unlock(&t->mtx);
}

void coord_nodes_handle_agent(flt_request_t *r, void *arg)
{
	coord_nodes_t *t = arg;
	if (closing(t)) {
		flt_request_fail(r, -EAGAIN, "coordinator is shutting down");
		return;
	}
	switch (flt_request_envelope(r)->method) {
	case FLOTILLA__METHOD__METHOD_REGISTER: handle_register(t, r); return;
	case FLOTILLA__METHOD__METHOD_SYNC: handle_sync(t, r); return;
	case FLOTILLA__METHOD__METHOD_WATCH: handle_watch(t, r); return;
	case FLOTILLA__METHOD__METHOD_FETCH_CHUNK:
		if (t->pkgs && authenticate(t, r))
			coord_pkgs_fetch_chunk(t->pkgs, r);
		else if (!t->pkgs)
			flt_request_fail(r, FLT_EMETHOD, "no package store");
		return;
	default:
		flt_request_fail(
			r, FLT_EMETHOD,
			"method %s is not served on the agent port",
			flt_method_name(flt_request_envelope(r)->method));
	}
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
	pthread_mutex_lock(&t->mtx);
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
	pthread_mutex_unlock(&t->mtx);
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

static void handle_list(coord_nodes_t *t, flt_request_t *r)
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

	pthread_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, q);
	if (c) {
		memcpy(id, c->id, 37);
		pthread_mutex_unlock(&t->mtx);
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
	pthread_mutex_unlock(&t->mtx);
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
	pthread_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, id);
	snprintf(name, name_len, "%s", c ? c->name : id);
	pthread_mutex_unlock(&t->mtx);
	return 0;
}

bool coord_nodes_ready(coord_nodes_t *t, const char *node_id)
{
	pthread_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	bool ready = c && c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	pthread_mutex_unlock(&t->mtx);
	return ready;
}

static void reply_node(coord_nodes_t *t, flt_request_t *r, const char *id);

static void handle_get(coord_nodes_t *t, flt_request_t *r)
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

static int edit_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	edit_op_t *o = arg;
	Flotilla__NodeRecord *rec;
	int rc = flt_txn_get_pb(txn, o->t->db, o->id,
				&flotilla__node_record__descriptor,
				(ProtobufCMessage **)&rec, err);
	if (rc < 0)
		return rc;
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
			flotilla__node_record__free_unpacked(rec, NULL);
			return 0;
		}
		rec->ineligible = !o->enable;
		break;
	case EDIT_DRAINED:
		if (!rec->draining) {
			flotilla__node_record__free_unpacked(rec, NULL);
			return 0;
		}
		rec->draining = false;
		rec->drain_deadline_ms = 0;
		break;
	}
	rec->modify_index = flt_txn_index(txn);
	rc = flt_txn_put_pb(txn, o->t->db, o->id, &rec->base, err);
	flotilla__node_record__free_unpacked(rec, NULL);
	return rc;
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
		if (o->t->engine && o->kind != EDIT_DRAINED)
			coord_engine_node_event(o->t->engine, o->id,
						o->kind == EDIT_DRAIN ||
								!o->enable
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

static void handle_edit(coord_nodes_t *t, flt_request_t *r)
{
	const flt_envelope_t *env = flt_request_envelope(r);
	edit_op_t o = { .t = t, .r = r };
	flt_error_t err;
	char query[256];
	if (env->method == FLOTILLA__METHOD__METHOD_NODE_DRAIN) {
		Flotilla__NodeDrainRequest *req;
		if (flt_request_body(r,
				     &flotilla__node_drain_request__descriptor,
				     &req) < 0)
			return;
		o.kind = EDIT_DRAIN;
		o.enable = req->enable;
		uint32_t d = req->deadline_ms ? req->deadline_ms : 3600000;
		o.deadline_ms = flt_now_wall_ms() + d;
		snprintf(query, sizeof(query), "%s", req->node);
		flotilla__node_drain_request__free_unpacked(req, NULL);
	} else {
		Flotilla__NodeEligibilityRequest *req;
		if (flt_request_body(
			    r, &flotilla__node_eligibility_request__descriptor,
			    &req) < 0)
			return;
		o.kind = EDIT_ELIGIBILITY;
		o.enable = req->eligible;
		snprintf(query, sizeof(query), "%s", req->node);
		flotilla__node_eligibility_request__free_unpacked(req, NULL);
	}
	int rc = *query ? resolve(t, query, o.id, &err)
			: flt_err(&err, FLT_EPROTO, "node: required");
	if (rc < 0) {
		flt_request_fail(r, rc, "%s", err.msg);
		return;
	}
	edit_op_t *op = flt_xmalloc(sizeof(*op));
	*op = o;
	flt_request_defer(r);
	coord_writer_submit(t->o.writer, edit_apply, edit_done, op);
}

void coord_nodes_push(coord_nodes_t *t, const char *node_id, uint64_t index)
{
	pthread_mutex_lock(&t->mtx);
	cnode_t *c = table_find(t, node_id);
	if (c && index > c->desired_index) {
		c->desired_index = index;
		if (c->watch) {
			answer_watch(c->watch, index, true);
			c->watch = NULL;
		}
	}
	pthread_mutex_unlock(&t->mtx);
}

void coord_nodes_drained(coord_nodes_t *t, const char *node_id)
{
	edit_op_t *o = flt_xcalloc(1, sizeof(*o));
	o->t = t;
	o->kind = EDIT_DRAINED;
	snprintf(o->id, sizeof(o->id), "%s", node_id);
	coord_writer_submit(t->o.writer, edit_apply, edit_done, o);
}

void coord_nodes_handle_api(flt_request_t *r, void *arg)
{
	coord_nodes_t *t = arg;
	Flotilla__Method m = flt_request_envelope(r)->method;
	if (t->engine && coord_engine_serves(m)) {
		coord_engine_handle_api(t->engine, r);
		return;
	}
	if (t->pkgs && coord_pkgs_serves(m)) {
		coord_pkgs_handle_api(t->pkgs, r);
		return;
	}
	if (t->inv && coord_inv_serves(m)) {
		coord_inv_handle_api(t->inv, t, r);
		return;
	}
	if (t->camps && coord_campaigns_serves(m)) {
		coord_campaigns_handle_api(t->camps, r);
		return;
	}
	switch (m) {
	case FLOTILLA__METHOD__METHOD_NODE_DRAIN:
	case FLOTILLA__METHOD__METHOD_NODE_ELIGIBILITY:
		handle_edit(t, r);
		return;
	case FLOTILLA__METHOD__METHOD_NODE_LIST: handle_list(t, r); return;
	case FLOTILLA__METHOD__METHOD_NODE_GET: handle_get(t, r); return;
	default:
		flt_request_fail(
			r, FLT_EMETHOD,
			"method %s is not served on the API port",
			flt_method_name(flt_request_envelope(r)->method));
	}
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
	pthread_mutex_lock(&x->t->mtx);
	cnode_t *c = table_find(x->t, rec->id);
	bool ready = c && c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	bool down = !c || c->status == FLOTILLA__NODE_STATUS__NODE_STATUS_DOWN;
	pthread_mutex_unlock(&x->t->mtx);
	size_t i = sched_fleet_add(x->f, rec->id, n, keys, vals,
				   fp ? fp->cpu_count * 100 : 0,
				   fp ? fp->memory_bytes >> 20 : 0, 4194304,
				   ready && !rec->ineligible && !rec->draining);
	sched_node_set_state(x->f, i, down, rec->draining,
			     rec->drain_deadline_ms);
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
	pthread_mutex_lock(&t->snap_mtx);
	coord_fleet_snap_t *s = t->snap;
	if (s && s->gen == gen) {
		atomic_fetch_add(&s->refs, 1);
		pthread_mutex_unlock(&t->snap_mtx);
		return s;
	}
	pthread_mutex_unlock(&t->snap_mtx);

	sched_fleet_t *f = coord_nodes_fleet(t, err);
	if (!f)
		return NULL;
	(void)sched_fleet_find(f, "");
	s = flt_xcalloc(1, sizeof(*s));
	s->fleet = f;
	s->gen = gen;
	atomic_init(&s->refs, 2); /* the caller's and the cache's */

	pthread_mutex_lock(&t->snap_mtx);
	coord_fleet_snap_t *old = NULL;
	if (!t->snap || t->snap->gen <= gen) {
		old = t->snap;
		t->snap = s;
	} else {
		atomic_fetch_sub(&s->refs, 1); /* a newer one is cached */
	}
	pthread_mutex_unlock(&t->snap_mtx);
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
