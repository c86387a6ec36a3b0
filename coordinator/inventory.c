/*
 * Inventories: what each node last reported (packages it manages, dpkg
 * packages, Java archives), stored in `inventory` (InventoryRecord per
 * node) and kept decoded in memory, items sorted by name, for queries.
 *
 * An agent sends its inventory only when its digest differs from the one
 * held here; the node table stores it with the node's other changes
 * (coord_inv_apply inside the writer's transaction, coord_inv_commit once
 * committed), so memory never runs ahead of the disk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "scheduler.h"
#include "flotilla/lock.h"
#include "flotilla/hash.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define MAX_ITEMS 50000

typedef struct inv_entry {
	char id[37];
	Flotilla__Inventory *inv;
} inv_entry_t;

struct coord_inv {
	flt_store_t *store;
	flt_db_t db;
	flt_advisories_t *adv;
	flt_rwlock_t lock;
	flt_map_t by_id; /* node id -> inv_entry_t */
};

/* Called with the lock held. */
static inv_entry_t *find(coord_inv_t *t, const char *id)
{
	return flt_map_get(&t->by_id, id);
}

/* Called with the write lock held; takes inv. */
static void put(coord_inv_t *t, const char *id, Flotilla__Inventory *inv)
{
	inv_entry_t *e = find(t, id);
	if (e) {
		flotilla__inventory__free_unpacked(e->inv, NULL);
		e->inv = inv;
		return;
	}
	e = flt_xcalloc(1, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->inv = inv;
	flt_map_put(&t->by_id, e->id, e);
}

static int load_one(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	coord_inv_t *t = arg;
	(void)key;
	(void)klen;
	Flotilla__InventoryRecord *rec =
		flotilla__inventory_record__unpack(NULL, vlen, val);
	if (!rec)
		return 0;
	if (rec->inventory && strlen(rec->node_id) < 37) {
		Flotilla__Inventory *inv = steal_ptr(&rec->inventory);
		if (inv->n_items > 1)
			qsort(inv->items, inv->n_items, sizeof(*inv->items),
			      flt_query_item_cmp);
		put(t, rec->node_id, inv);
	}
	flotilla__inventory_record__free_unpacked(rec, NULL);
	return 0;
}

int coord_inv_open(flt_store_t *store, const char *advisories,
		   coord_inv_t **out, flt_error_t *err)
{
	coord_inv_t *t = flt_xcalloc(1, sizeof(*t));
	t->store = store;
	flt_rwlock_init(&t->lock, COORD_LOCK_INVENTORY, "inventory");
	int rc = flt_store_db(store, "inventory", &t->db);
	if (rc < 0) {
		flt_err(err, rc, "opening the inventory database failed");
		goto fail;
	}
	if (advisories && advisories[0] &&
	    (rc = flt_advisories_load(advisories, &t->adv, err)) < 0) {
		flt_err_prefix(err, "--advisories %s", advisories);
		goto fail;
	}
	flt_txn_t *txn;
	if ((rc = flt_txn_begin(store, false, &txn, err)) < 0)
		goto fail;
	rc = flt_txn_foreach(txn, t->db, NULL, 0, load_one, t);
	flt_txn_abort(txn);
	if (rc < 0) {
		flt_err(err, rc, "reading inventories failed");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	coord_inv_close(t);
	return rc;
}

void coord_inv_close(coord_inv_t *t)
{
	if (!t)
		return;
	size_t pos = 0;
	void *v;
	while (flt_map_next(&t->by_id, &pos, NULL, &v)) {
		inv_entry_t *e = v;
		flotilla__inventory__free_unpacked(e->inv, NULL);
		free(e);
	}
	flt_map_free(&t->by_id);
	flt_advisories_free(t->adv);
	flt_rwlock_destroy(&t->lock);
	free(t);
}

const flt_advisories_t *coord_inv_advisories(coord_inv_t *t) { return t->adv; }

void coord_inv_digest(coord_inv_t *t, const char *node_id,
		      char out[FLT_INV_DIGEST_LEN])
{
	flt_rwlock_rdlock(&t->lock);
	inv_entry_t *e = find(t, node_id);
	snprintf(out, FLT_INV_DIGEST_LEN, "%s", e ? e->inv->digest : "");
	flt_rwlock_unlock(&t->lock);
}

void coord_inv_state(coord_inv_t *t, const char *node_id,
		     char digest[FLT_INV_DIGEST_LEN], int64_t *scanned_at_ms)
{
	flt_rwlock_rdlock(&t->lock);
	inv_entry_t *e = find(t, node_id);
	snprintf(digest, FLT_INV_DIGEST_LEN, "%s", e ? e->inv->digest : "");
	*scanned_at_ms = e ? e->inv->scanned_at_ms : 0;
	flt_rwlock_unlock(&t->lock);
}

int coord_inv_check(Flotilla__Inventory *inv, flt_error_t *err)
{
	if (inv->n_items > MAX_ITEMS)
		return flt_err(err, FLT_EPROTO,
			       "inventory.items: %zu items, at most %d",
			       inv->n_items, MAX_ITEMS);
	for (size_t i = 0; i < inv->n_items; i++) {
		const Flotilla__InventoryItem *it = inv->items[i];
		if (!it->name[0])
			return flt_err(err, FLT_EPROTO,
				       "inventory.items[%zu].name: empty", i);
	}
	if (strlen(inv->digest) != 64)
		return flt_err(err, FLT_EPROTO,
			       "inventory.digest: 64 hex digits expected");
	if (inv->n_items > 1)
		qsort(inv->items, inv->n_items, sizeof(*inv->items),
		      flt_query_item_cmp);
	return 0;
}

int coord_inv_apply(coord_inv_t *t, flt_txn_t *txn, const char *node_id,
		    Flotilla__Inventory *inv, flt_error_t *err)
{
	Flotilla__InventoryRecord rec = FLOTILLA__INVENTORY_RECORD__INIT;
	rec.node_id = (char *)node_id;
	rec.inventory = inv;
	rec.received_at_ms = flt_now_wall_ms();
	return flt_txn_put_pb(txn, t->db, node_id, &rec.base, err);
}

void coord_inv_commit(coord_inv_t *t, const char *node_id,
		      Flotilla__Inventory *inv)
{
	flt_rwlock_wrlock(&t->lock);
	put(t, node_id, inv);
	flt_rwlock_unlock(&t->lock);
}

/* ---- evaluation ------------------------------------------------------------ */

typedef struct host_ctx {
	const sched_fleet_t *f;
	size_t node;
} host_ctx_t;

static const char *host_attr(void *arg, const char *key)
{
	host_ctx_t *h = arg;
	return sched_node_attr(h->f, h->node, key);
}

/* Does node of f, whose inventory e holds, match q? As flt_query_match,
 * hits (room for e->inv->n_items) and *nh get the items that matched. */
static bool match_entry(const flt_query_t *q, const sched_fleet_t *f,
			size_t node, const inv_entry_t *e, size_t *hits,
			size_t *nh)
{
	host_ctx_t hc = { f, node };
	flt_query_host_t h = {
		.id = sched_node_id(f, node),
		.name = sched_node_attr(f, node, "node.name"),
		.attr = host_attr,
		.attr_arg = &hc,
		.items = e->inv->items,
		.n_items = e->inv->n_items,
	};
	return flt_query_match(q, &h, hits, nh);
}

/* Called with the lock held (read). */
static size_t eval_locked(coord_inv_t *t, const sched_fleet_t *f,
			  const flt_query_t *q, coord_inv_fn fn, void *arg,
			  size_t *unknown)
{
	size_t matched = 0, unk = 0, cap = 0;
	size_t *hits = NULL;
	for (size_t i = 0; i < sched_fleet_size(f); i++) {
		const char *id = sched_node_id(f, i);
		inv_entry_t *e = find(t, id);
		if (!e) {
			unk++;
			continue;
		}
		if (e->inv->n_items > cap) {
			cap = e->inv->n_items;
			hits = flt_xrealloc(hits, cap * sizeof(*hits));
		}
		size_t nh = 0;
		bool m = match_entry(q, f, i, e, hits, &nh);
		/* A bounded regexp gave up: the answer would be wrong. */
		if (flt_query_error(q, NULL) < 0)
			break;
		if (!m)
			continue;
		matched++;
		if (fn && fn(arg, i, e->inv, hits, nh) != 0)
			break;
	}
	free(hits);
	if (unknown)
		*unknown = unk;
	return matched;
}

size_t coord_inv_eval(coord_inv_t *t, const sched_fleet_t *f,
		      const flt_query_t *q, coord_inv_fn fn, void *arg,
		      size_t *unknown)
{
	flt_rwlock_rdlock(&t->lock);
	size_t n = eval_locked(t, f, q, fn, arg, unknown);
	flt_rwlock_unlock(&t->lock);
	return n;
}

bool coord_inv_match_node(coord_inv_t *t, const sched_fleet_t *f, size_t node,
			  const flt_query_t *q, char *versions, size_t vlen,
			  char *paths, size_t plen, bool *known)
{
	const char *id = sched_node_id(f, node);
	bool match = false;
	if (versions && vlen)
		versions[0] = 0;
	if (paths && plen)
		paths[0] = 0;
	flt_rwlock_rdlock(&t->lock);
	inv_entry_t *e = find(t, id);
	if (known)
		*known = e != NULL;
	if (e) {
		size_t *hits = flt_xcalloc(e->inv->n_items + 1, sizeof(*hits));
		size_t nh = 0;
		match = match_entry(q, f, node, e, hits, &nh);
		for (size_t k = 0; k < nh; k++) {
			const Flotilla__InventoryItem *it =
				e->inv->items[hits[k]];
			if (versions && vlen &&
			    !strstr(versions, it->version)) {
				size_t l = strlen(versions);
				snprintf(versions + l, vlen - l, "%s%s",
					 l ? ", " : "", it->version);
			}
			if (paths && plen) {
				size_t l = strlen(paths);
				snprintf(paths + l, plen - l, "%s%s",
					 l ? ", " : "",
					 it->path[0] ? it->path : it->name);
			}
		}
		free(hits);
	}
	flt_rwlock_unlock(&t->lock);
	return match;
}

/* The versions now on node of the items named like `names` (a ", " list of
 * versions is what callers keep; here the names come from the query's
 * hits before the change). */
void coord_inv_versions_of(coord_inv_t *t, const char *node_id,
			   const char *name, char *out, size_t len)
{
	out[0] = 0;
	flt_rwlock_rdlock(&t->lock);
	inv_entry_t *e = find(t, node_id);
	for (size_t i = 0; e && i < e->inv->n_items; i++) {
		const Flotilla__InventoryItem *it = e->inv->items[i];
		if (strcmp(it->name, name) != 0 || strstr(out, it->version))
			continue;
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%s", l ? ", " : "", it->version);
	}
	flt_rwlock_unlock(&t->lock);
}

/* ---- operator methods ------------------------------------------------------ */

typedef struct query_out {
	Flotilla__InventoryQueryResponse *resp;
	const sched_fleet_t *f;
	uint32_t limit;
	Flotilla__InventoryMatch **matches;
	size_t n, cap;
} query_out_t;

static int query_one(void *arg, size_t node, const Flotilla__Inventory *inv,
		     const size_t *hits, size_t n_hits)
{
	query_out_t *o = arg;
	o->resp->items_matched += (uint32_t)n_hits;
	for (size_t k = 0; k < n_hits; k++)
		if (inv->items[hits[k]]->jndi_lookup)
			o->resp->jndi_lookup++;
	if (o->limit && o->n >= o->limit)
		return 0;
	Flotilla__InventoryMatch *m = flt_xcalloc(1, sizeof(*m));
	flotilla__inventory_match__init(m);
	m->node_id = flt_xstrdup(sched_node_id(o->f, node));
	const char *name = sched_node_attr(o->f, node, "node.name");
	m->node_name = flt_xstrdup(name ? name : "");
	/* Borrowed items: the reply is packed under the read lock. */
	m->n_items = n_hits;
	m->items = flt_xcalloc(n_hits + 1, sizeof(*m->items));
	for (size_t k = 0; k < n_hits; k++)
		m->items[k] = inv->items[hits[k]];
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 64;
		o->matches =
			flt_xrealloc(o->matches, o->cap * sizeof(*o->matches));
	}
	o->matches[o->n++] = m;
	return 0;
}

static void matches_free(query_out_t *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->matches[i]->node_id);
		free(o->matches[i]->node_name);
		free(o->matches[i]->items);
		free(o->matches[i]);
	}
	free(o->matches);
}

void coord_inv_query(coord_inv_t *t, coord_nodes_t *nodes, flt_request_t *r)
{
	Flotilla__InventoryQueryRequest *req;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__inventory_query_request__descriptor,
			     &req) < 0)
		return;
	flt_query_t *q = NULL;
	coord_fleet_snap_t *snap = NULL;
	sched_fleet_t *f = NULL;
	if (flt_query_parse(req->query, t->adv, &q, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "query: %s", err.msg);
		goto out;
	}
	if (!(snap = coord_nodes_snapshot(nodes, &err))) {
		flt_request_fail(r, FLT_ESTORE, "%s", err.msg);
		goto out;
	}
	f = coord_fleet_snap_fleet(snap);
	Flotilla__InventoryQueryResponse resp =
		FLOTILLA__INVENTORY_QUERY_RESPONSE__INIT;
	query_out_t o = { .resp = &resp, .f = f, .limit = req->limit };
	size_t unknown = 0;
	/* The items stay borrowed from memory: hold the lock until packed. */
	flt_rwlock_rdlock(&t->lock);
	resp.hosts_matched =
		(uint32_t)eval_locked(t, f, q, query_one, &o, &unknown);
	if (flt_query_error(q, &err) < 0) {
		flt_rwlock_unlock(&t->lock);
		flt_request_fail(r, FLT_EPROTO, "query: %s", err.msg);
		matches_free(&o);
		goto out;
	}
	resp.hosts_unknown = (uint32_t)unknown;
	resp.hosts_total = (uint32_t)(sched_fleet_size(f) - unknown);
	resp.query = (char *)flt_query_string(q);
	resp.n_matches = o.n;
	resp.matches = o.matches;
	flt_request_reply(r, &resp.base);
	flt_rwlock_unlock(&t->lock);
	matches_free(&o);
out:
	coord_fleet_snap_release(snap);
	flt_query_free(q);
	flotilla__inventory_query_request__free_unpacked(req, NULL);
}

void coord_inv_get(coord_inv_t *t, coord_nodes_t *nodes, flt_request_t *r)
{
	Flotilla__InventoryGetRequest *req;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__inventory_get_request__descriptor,
			     &req) < 0)
		return;
	char id[37], name[128];
	if (coord_nodes_resolve(nodes, req->node, id, name, sizeof(name),
				&err) < 0) {
		flt_request_fail(r, err.code, "%s", err.msg);
		goto out;
	}
	flt_rwlock_rdlock(&t->lock);
	inv_entry_t *e = find(t, id);
	if (!e) {
		flt_rwlock_unlock(&t->lock);
		flt_request_fail(r, FLT_ENOTFOUND,
				 "node %s has not reported an inventory yet",
				 name);
		goto out;
	}
	Flotilla__InventoryGetResponse resp =
		FLOTILLA__INVENTORY_GET_RESPONSE__INIT;
	resp.node_id = id;
	resp.node_name = name;
	resp.inventory = e->inv;
	flt_request_reply(r, &resp.base);
	flt_rwlock_unlock(&t->lock);
out:
	flotilla__inventory_get_request__free_unpacked(req, NULL);
}
