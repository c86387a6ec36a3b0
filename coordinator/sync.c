/*
 * The agent methods, the coordinator's side of agent/sync.c: Register (the
 * join token for a node id and secret), Sync (the heartbeat: task states,
 * attributes, inventory and step results in; desired allocations, steps
 * and the inventory digest out), Watch (the long-poll that carries prompt
 * changes) and FetchChunk. The node table keeps the state; this file
 * decides what each call does with it and answers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "coordinator.h"
#include "engine.h"
#include "flotilla/log.h"
#include "flotilla/util.h"

#define NAME_MAX_LEN 63

struct coord_sync {
	coord_sync_opts_t o;
	uint8_t token_hash[crypto_generichash_BYTES];
	coord_joinguard_t *joins;
};

int coord_sync_open(const coord_sync_opts_t *o, coord_sync_t **out,
		    flt_error_t *err)
{
	(void)err;
	coord_sync_t *s = flt_xcalloc(1, sizeof(*s));
	s->o = *o;
	crypto_generichash(s->token_hash, sizeof(s->token_hash),
			   (const uint8_t *)o->join_token,
			   strlen(o->join_token), NULL, 0);
	s->joins = coord_joinguard_new(NULL, NULL);
	*out = s;
	return 0;
}

void coord_sync_close(coord_sync_t *s)
{
	if (!s)
		return;
	sodium_memzero(s->token_hash, sizeof(s->token_hash));
	coord_joinguard_free(s->joins);
	free(s);
}

void coord_sync_tick(coord_sync_t *s)
{
	coord_joinguard_tick(s->joins, flt_now_mono_ms());
}

/* ---- Register -------------------------------------------------------- */

typedef struct reg_call {
	coord_sync_t *s;
	flt_request_t *r;
	Flotilla__RegisterRequest *req;
} reg_call_t;

static void registered(void *arg, int rc, const char *node_id,
		       const uint8_t *secret, const flt_error_t *err)
{
	reg_call_t *g = arg;
	if (rc == FLT_ECONFLICT) {
		flt_request_fail(g->r, rc, "%s", err->msg);
	} else if (rc < 0) {
		flt_request_fail(g->r, rc, "registration not stored: %s",
				 err ? err->msg : "write failed");
	} else {
		Flotilla__RegisterResponse resp =
			FLOTILLA__REGISTER_RESPONSE__INIT;
		resp.node_id = (char *)node_id;
		resp.node_secret.data = (uint8_t *)secret;
		resp.node_secret.len = FLT_NODE_SECRET_LEN;
		resp.heartbeat_interval_ms = g->s->o.interval_ms;
		if (g->s->o.grant_key) {
			resp.grant_key.data = (uint8_t *)g->s->o.grant_key;
			resp.grant_key.len = 32;
		}
		flt_request_reply(g->r, &resp.base);
	}
	flotilla__register_request__free_unpacked(g->req, NULL);
	free(g);
}

void coord_sync_register(coord_sync_t *s, flt_request_t *r)
{
	const flt_envelope_t *env = flt_request_envelope(r);
	const char *token =
		env->credentials ? env->credentials->join_token : "";
	const char *peer = flt_request_peer(r);
	uint8_t h[crypto_generichash_BYTES];
	flt_error_t err;

	/* A source backing off is answered at once, its token unread. */
	if (coord_joinguard_admit(s->joins, peer, flt_now_mono_ms(), &err) <
	    0) {
		flt_request_fail(r, err.code, "%s", err.msg);
		return;
	}
	/* Compare digests so neither content nor length leaks by timing. */
	crypto_generichash(h, sizeof(h), (const uint8_t *)token, strlen(token),
			   NULL, 0);
	if (!*token || sodium_memcmp(h, s->token_hash, sizeof(h)) != 0) {
		coord_joinguard_failed(s->joins, peer, flt_now_mono_ms(),
				       "wrong join token");
		flt_request_fail(r, FLT_EAUTH, "join token rejected");
		return;
	}
	coord_joinguard_succeeded(s->joins, peer, flt_now_mono_ms());
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
	if (coord_nodes_check_attrs(req->fingerprint, req->n_labels,
				    (ProtobufCMessage *const *)req->labels,
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
	reg_call_t *g = flt_xcalloc(1, sizeof(*g));
	g->s = s;
	g->r = r;
	g->req = req;
	/* Answer only once the node is durable. */
	flt_request_defer(r);
	coord_nodes_register(s->o.nodes, req, env->credentials, registered, g);
	return;
fail:
	flotilla__register_request__free_unpacked(req, NULL);
}

/* ---- authentication -------------------------------------------------- */

/* The node id the request's secret proves, or NULL (answered). */
static const char *authenticate(coord_sync_t *s, flt_request_t *r)
{
	const Flotilla__Credentials *cr = flt_request_envelope(r)->credentials;
	if (coord_nodes_authenticate(s->o.nodes, cr) == 0)
		return cr->node_id;
	flt_warn("node credentials rejected method=%s node=%s peer=%s",
		 flt_method_name(flt_request_envelope(r)->method),
		 cr ? cr->node_id : "", flt_request_peer(r));
	flt_request_fail(r, FLT_EAUTH, "node credentials rejected");
	return NULL;
}

/* ---- Sync (the heartbeat) -------------------------------------------- */

/* An agent behind the node's index gets every allocation it must run. */
static void answer_sync(coord_sync_t *s, flt_request_t *r, uint64_t idx,
			uint64_t known, const char *node_id)
{
	Flotilla__SyncResponse resp = FLOTILLA__SYNC_RESPONSE__INIT;
	resp.heartbeat_interval_ms = s->o.interval_ms;
	resp.index = idx;
	if (s->o.grant_key) {
		resp.grant_key.data = (uint8_t *)s->o.grant_key;
		resp.grant_key.len = 32;
	}
	bool send = s->o.engine && known < idx;
	if (send)
		coord_engine_node_allocs(s->o.engine, node_id, &resp);
	char digest[FLT_INV_DIGEST_LEN] = "";
	if (s->o.inv)
		coord_inv_digest(s->o.inv, node_id, digest);
	resp.inventory_digest = digest;
	if (s->o.camps)
		coord_campaigns_node_steps(s->o.camps, node_id, &resp);
	flt_request_reply(r, &resp.base);
	if (s->o.camps)
		coord_campaigns_node_steps_free(&resp);
	if (send)
		coord_engine_node_allocs_free(&resp);
}

/* A Sync whose attributes or inventory are being stored. */
typedef struct sync_call {
	coord_sync_t *s;
	flt_request_t *r;
	Flotilla__SyncRequest *req;
	Flotilla__Inventory *inv; /* a new inventory to store, or NULL */
	char node_id[37];
} sync_call_t;

static int store_inventory(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	sync_call_t *c = arg;
	return coord_inv_apply(c->s->o.inv, txn, c->node_id, c->inv, err);
}

static void stored(void *arg, int rc, uint64_t desired, const flt_error_t *err)
{
	sync_call_t *c = arg;
	coord_sync_t *s = c->s;
	if (rc == 0 && c->inv)
		coord_inv_commit(s->o.inv, c->node_id, steal_ptr(&c->inv));
	/* Step results after the inventory they were re-scanned with. */
	if (rc == 0 && s->o.camps && c->req->n_steps)
		coord_campaigns_report(s->o.camps, c->node_id, c->req->steps,
				       c->req->n_steps);
	if (rc == 0)
		answer_sync(s, c->r, desired, c->req->known_index, c->node_id);
	else
		flt_request_fail(c->r, -EAGAIN,
				 "node attributes not stored: %s",
				 err ? err->msg : "write failed");
	if (c->inv)
		flotilla__inventory__free_unpacked(c->inv, NULL);
	flotilla__sync_request__free_unpacked(c->req, NULL);
	free(c);
}

void coord_sync_heartbeat(coord_sync_t *s, flt_request_t *r)
{
	Flotilla__SyncRequest *req;
	coord_heartbeat_t hb;
	flt_error_t err;

	const char *id = authenticate(s, r);
	if (!id)
		return;
	if (flt_request_body(r, &flotilla__sync_request__descriptor, &req) < 0)
		return;
	if (req->fingerprint &&
	    coord_nodes_check_attrs(req->fingerprint, req->n_labels,
				    (ProtobufCMessage *const *)req->labels,
				    &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "%s", err.msg);
		flotilla__sync_request__free_unpacked(req, NULL);
		return;
	}
	if (coord_nodes_heartbeat(s->o.nodes, id, flt_request_peer(r), req,
				  &hb) < 0) {
		flt_request_fail(r, FLT_EAUTH, "node credentials rejected");
		flotilla__sync_request__free_unpacked(req, NULL);
		return;
	}
	if (s->o.engine) {
		coord_engine_report(s->o.engine, id, req->tasks, req->n_tasks);
		if (hb.came_up)
			coord_engine_node_event(s->o.engine, id, COORD_NODE_UP);
	}

	/*
	 * New attributes are acknowledged only once stored (the agent stops
	 * sending them on this reply); the write carries the status along.
	 * So is a new inventory: a step's result is judged on it. A status
	 * change alone needs no wait: the next heartbeat or tick decides it
	 * again if it is lost.
	 */
	if (req->inventory && s->o.inv &&
	    coord_inv_check(req->inventory, &err) < 0) {
		flt_warn("inventory refused node=%s: %s", id, err.msg);
		flotilla__inventory__free_unpacked(req->inventory, NULL);
		req->inventory = NULL;
	}
	if (hb.attrs_changed || (req->inventory && s->o.inv)) {
		if (!hb.attrs_changed && req->fingerprint) {
			/* Unchanged: not stored again. */
			flotilla__fingerprint__free_unpacked(req->fingerprint,
							     NULL);
			req->fingerprint = NULL;
		}
		sync_call_t *c = flt_xcalloc(1, sizeof(*c));
		c->s = s;
		c->r = r;
		c->req = req;
		if (s->o.inv)
			c->inv = steal_ptr(&req->inventory);
		snprintf(c->node_id, sizeof(c->node_id), "%s", id);
		flt_request_defer(r);
		coord_nodes_store(s->o.nodes, c->node_id, req,
				  c->inv ? store_inventory : NULL, stored, c);
		return;
	}
	if (hb.flush)
		coord_nodes_store(s->o.nodes, id, NULL, NULL, NULL, NULL);
	if (s->o.camps && req->n_steps)
		coord_campaigns_report(s->o.camps, id, req->steps,
				       req->n_steps);
	uint64_t known = req->known_index;
	answer_sync(s, r, hb.desired_index, known, id);
	flotilla__sync_request__free_unpacked(req, NULL);
}

/* ---- Watch ----------------------------------------------------------- */

void coord_sync_answer_watch(flt_request_t *r, uint64_t index, bool changed)
{
	Flotilla__WatchResponse resp = FLOTILLA__WATCH_RESPONSE__INIT;
	resp.index = index;
	resp.changed = changed;
	flt_request_reply(r, &resp.base);
}

void coord_sync_watch(coord_sync_t *s, flt_request_t *r)
{
	Flotilla__WatchRequest *req;

	const char *id = authenticate(s, r);
	if (!id)
		return;
	if (flt_request_body(r, &flotilla__watch_request__descriptor, &req) < 0)
		return;
	uint32_t wait = req->max_wait_ms;
	uint64_t known = req->known_index, idx;
	flotilla__watch_request__free_unpacked(req, NULL);
	if (wait > s->o.max_watch_ms)
		wait = s->o.max_watch_ms;
	if (!coord_nodes_watch(s->o.nodes, id, known, wait, r, &idx))
		coord_sync_answer_watch(r, idx, idx > known);
}

/* ---- FetchChunk ------------------------------------------------------ */

void coord_sync_fetch_chunk(coord_sync_t *s, flt_request_t *r)
{
	if (!s->o.pkgs)
		flt_request_fail(r, FLT_EMETHOD, "no package store");
	else if (authenticate(s, r))
		coord_pkgs_fetch_chunk(s->o.pkgs, r);
}
