/*
 * The ACL methods: bootstrap, tokens and policies. Reads answer from
 * memory; changes are applied by the writer (with their audit record in
 * the same transaction) and reach memory in its done callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "acl-internal.h"
#include "coordinator.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define TOKEN_NAME_MAX 256
#define TOKEN_POLICIES_MAX 64
#define TTL_MAX_MS (10LL * 365 * 24 * 3600 * 1000)

/* A token as it may be shown: without its secret's hash. */
static Flotilla__AclToken *shown_copy(const Flotilla__AclToken *t)
{
	Flotilla__AclToken *c = flt_pb_dup(&t->base);
	free(c->secret_hash.data);
	c->secret_hash.data = NULL;
	c->secret_hash.len = 0;
	return c;
}

static void reply_token(flt_request_t *r, const Flotilla__AclToken *t,
			const char *secret)
{
	Flotilla__AclTokenResponse resp = FLOTILLA__ACL_TOKEN_RESPONSE__INIT;
	cleanup_pb Flotilla__AclToken *c = shown_copy(t);
	resp.token = c;
	resp.secret_id = (char *)(secret ? secret : "");
	flt_request_reply(r, &resp.base);
}

/* ---- one write: a token or a policy put or deleted -------------------- */

typedef enum {
	W_BOOTSTRAP,
	W_TOKEN_PUT,
	W_TOKEN_DEL,
	W_POL_PUT,
	W_POL_DEL
} wkind_t;

typedef struct wop {
	coord_acl_t *a;
	flt_request_t *r;
	wkind_t kind;
	Flotilla__AclToken *tok; /* put: owned until memory takes it */
	Flotilla__AclPolicy *pol; /* put: likewise */
	char key[FLT_NAMESPACE_MAX + 130]; /* del: accessor id or name */
	char secret[37]; /* bootstrap and create: shown once */
	int rc; /* a refusal found inside the transaction */
	char why[FLT_ERROR_MSG_MAX];
	uint64_t reset_used; /* bootstrap: the reset index taken */
} wop_t;

static int put_msg(flt_txn_t *txn, flt_db_t db, const char *key,
		   const ProtobufCMessage *m, flt_error_t *err)
{
	return flt_txn_put_pb(txn, db, key, m, err);
}

static int bootstrap_apply(wop_t *o, flt_txn_t *txn, flt_error_t *err)
{
	coord_acl_t *a = o->a;
	Flotilla__AclBootstrapState *st = NULL;
	int rc = flt_txn_get_pb(txn, a->db_meta, "bootstrap",
				&flotilla__acl_bootstrap_state__descriptor,
				(ProtobufCMessage **)&st, err);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	Flotilla__AclBootstrapState ns = FLOTILLA__ACL_BOOTSTRAP_STATE__INIT;
	o->reset_used = 0;
	if (st && st->index) {
		uint64_t want = acl_reset_index(a);
		if (want != st->index || want == st->reset_index) {
			o->rc = FLT_ECONFLICT;
			snprintf(o->why, sizeof(o->why),
				 "ACL bootstrap already done (reset index: "
				 "%llu); to bootstrap again, write %llu into "
				 "%s/acl-bootstrap-reset on the coordinator",
				 (unsigned long long)st->index,
				 (unsigned long long)st->index, a->data_dir);
			flotilla__acl_bootstrap_state__free_unpacked(st, NULL);
			return 0;
		}
		o->reset_used = want;
		ns.reset_index = want;
	}
	if (st)
		flotilla__acl_bootstrap_state__free_unpacked(st, NULL);
	ns.index = flt_txn_index(txn);
	o->tok->create_index = o->tok->modify_index = ns.index;
	if ((rc = put_msg(txn, a->db_meta, "bootstrap", &ns.base, err)) < 0)
		return rc;
	return put_msg(txn, a->db_tokens, o->tok->accessor_id, &o->tok->base,
		       err);
}

static int policies_exist(coord_acl_t *a, flt_txn_t *txn,
			  const Flotilla__AclToken *t, char *why, size_t len)
{
	for (size_t i = 0; i < t->n_policies; i++) {
		const void *v;
		size_t vl;
		const char *n = t->policies[i];
		if (flt_txn_get(txn, a->db_policies, n, strlen(n), &v, &vl) <
		    0) {
			snprintf(why, len,
				 "policies[%zu]: no policy named \"%s\" "
				 "(flotilla acl policy apply)",
				 i, n);
			return FLT_ENOTFOUND;
		}
	}
	return 0;
}

static int wop_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	wop_t *o = arg;
	coord_acl_t *a = o->a;
	int rc = 0;
	o->rc = 0;
	switch (o->kind) {
	case W_BOOTSTRAP: rc = bootstrap_apply(o, txn, err); break;
	case W_TOKEN_PUT:
		o->rc = policies_exist(a, txn, o->tok, o->why, sizeof(o->why));
		if (o->rc)
			return 0;
		o->tok->create_index = o->tok->modify_index =
			flt_txn_index(txn);
		rc = put_msg(txn, a->db_tokens, o->tok->accessor_id,
			     &o->tok->base, err);
		break;
	case W_TOKEN_DEL:
		rc = flt_txn_del(txn, a->db_tokens, o->key, strlen(o->key));
		if (rc == -ENOENT) {
			o->rc = FLT_ENOTFOUND;
			snprintf(o->why, sizeof(o->why),
				 "no ACL token with accessor id %s", o->key);
			return 0;
		}
		break;
	case W_POL_PUT: {
		Flotilla__AclPolicy *old = NULL;
		rc = flt_txn_get_pb(txn, a->db_policies, o->pol->name,
				    &flotilla__acl_policy__descriptor,
				    (ProtobufCMessage **)&old, err);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		o->pol->modify_index = flt_txn_index(txn);
		o->pol->create_index =
			old ? old->create_index : o->pol->modify_index;
		if (old)
			flotilla__acl_policy__free_unpacked(old, NULL);
		rc = put_msg(txn, a->db_policies, o->pol->name, &o->pol->base,
			     err);
		break;
	}
	case W_POL_DEL:
		rc = flt_txn_del(txn, a->db_policies, o->key, strlen(o->key));
		if (rc == -ENOENT) {
			o->rc = FLT_ENOTFOUND;
			snprintf(o->why, sizeof(o->why),
				 "no ACL policy named \"%s\"", o->key);
			return 0;
		}
		break;
	}
	if (rc < 0 || o->rc)
		return rc;
	return coord_audit_in_txn(txn, o->r, err);
}

static void wop_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	wop_t *o = arg;
	coord_acl_t *a = o->a;
	(void)index;
	if (rc < 0) {
		flt_request_fail(o->r, rc, "not stored: %s",
				 err ? err->msg : "write failed");
		goto out;
	}
	if (o->rc) {
		flt_request_fail(o->r, o->rc, "%s", o->why);
		goto out;
	}
	switch (o->kind) {
	case W_BOOTSTRAP:
	case W_TOKEN_PUT: {
		reply_token(o->r, o->tok, o->secret);
		flt_info("ACL token created accessor=%.8s name=\"%s\" "
			 "type=%s%s",
			 o->tok->accessor_id, o->tok->name, o->tok->type,
			 o->kind == W_BOOTSTRAP ? " (bootstrap)" : "");
		if (o->reset_used)
			acl_reset_remove(a);
		flt_rwlock_wrlock(&a->lock);
		acl_tok_put(a, o->tok);
		flt_rwlock_unlock(&a->lock);
		o->tok = NULL;
		break;
	}
	case W_TOKEN_DEL: {
		flt_rwlock_wrlock(&a->lock);
		acl_tok_t *t = flt_map_get(&a->tokens, o->key);
		Flotilla__AclToken *shown = t ? shown_copy(t->t) : NULL;
		acl_tok_del(a, o->key);
		flt_rwlock_unlock(&a->lock);
		if (shown) {
			reply_token(o->r, shown, NULL);
			protobuf_c_message_free_unpacked(&shown->base, NULL);
		} else {
			Flotilla__AclTokenResponse resp =
				FLOTILLA__ACL_TOKEN_RESPONSE__INIT;
			flt_request_reply(o->r, &resp.base);
		}
		flt_info("ACL token deleted accessor=%.8s", o->key);
		break;
	}
	case W_POL_PUT: {
		Flotilla__AclPolicyResponse resp =
			FLOTILLA__ACL_POLICY_RESPONSE__INIT;
		resp.policy = o->pol;
		flt_request_reply(o->r, &resp.base);
		flt_info("ACL policy applied name=%s", o->pol->name);
		flt_rwlock_wrlock(&a->lock);
		acl_pol_put(a, o->pol);
		flt_rwlock_unlock(&a->lock);
		o->pol = NULL;
		break;
	}
	case W_POL_DEL: {
		Flotilla__AclPolicyResponse resp =
			FLOTILLA__ACL_POLICY_RESPONSE__INIT;
		flt_rwlock_wrlock(&a->lock);
		Flotilla__AclPolicy *p = flt_map_get(&a->policies, o->key);
		Flotilla__AclPolicy *shown = p ? flt_pb_dup(&p->base) : NULL;
		acl_pol_del(a, o->key);
		flt_rwlock_unlock(&a->lock);
		resp.policy = shown;
		flt_request_reply(o->r, &resp.base);
		if (shown)
			protobuf_c_message_free_unpacked(&shown->base, NULL);
		flt_info("ACL policy deleted name=%s", o->key);
		break;
	}
	}
out:
	if (o->tok)
		protobuf_c_message_free_unpacked(&o->tok->base, NULL);
	if (o->pol)
		protobuf_c_message_free_unpacked(&o->pol->base, NULL);
	sodium_memzero(o->secret, sizeof(o->secret));
	free(o);
}

static void submit(wop_t *o)
{
	flt_request_defer(o->r);
	coord_writer_submit(o->a->writer, wop_apply, wop_done, o);
}

/* A new token with a fresh accessor and secret (in o->secret). */
static Flotilla__AclToken *new_token(wop_t *o, const char *name,
				     const char *type)
{
	Flotilla__AclToken *t = flt_xcalloc(1, sizeof(*t));
	flotilla__acl_token__init(t);
	char acc[37];
	flt_uuid_v4(acc);
	flt_uuid_v4(o->secret);
	t->accessor_id = flt_xstrdup(acc);
	t->name = flt_xstrdup(name);
	t->type = flt_xstrdup(type);
	t->create_ms = flt_now_wall_ms();
	t->secret_hash.len = crypto_hash_sha256_BYTES;
	t->secret_hash.data = flt_xmalloc(crypto_hash_sha256_BYTES);
	crypto_hash_sha256(t->secret_hash.data,
			   (const unsigned char *)o->secret, strlen(o->secret));
	return t;
}

void coord_acl_bootstrap(coord_acl_t *a, flt_request_t *r)
{
	Flotilla__AclBootstrapRequest *q;
	if (flt_request_body(r, &flotilla__acl_bootstrap_request__descriptor,
			     &q) < 0)
		return;
	flotilla__acl_bootstrap_request__free_unpacked(q, NULL);
	wop_t *o = flt_xcalloc(1, sizeof(*o));
	o->a = a;
	o->r = r;
	o->kind = W_BOOTSTRAP;
	o->tok = new_token(o, "Bootstrap Token", "management");
	submit(o);
}

void coord_acl_token_create(coord_acl_t *a, flt_request_t *r)
{
	Flotilla__AclTokenCreateRequest *q;
	if (flt_request_body(r, &flotilla__acl_token_create_request__descriptor,
			     &q) < 0)
		return;
	const char *type = *q->type ? q->type : "client";
	const char *bad = NULL;
	char why[256];
	if (!*q->name || strlen(q->name) > TOKEN_NAME_MAX ||
	    flt_text_check(q->name, strlen(q->name), 0, &bad) !=
		    strlen(q->name)) {
		snprintf(why, sizeof(why),
			 "name: 1 to %d characters of text, no control "
			 "characters",
			 TOKEN_NAME_MAX);
		goto refuse;
	}
	if (strcmp(type, "client") != 0 && strcmp(type, "management") != 0) {
		snprintf(why, sizeof(why),
			 "type: \"client\" or \"management\", not \"%s\"",
			 type);
		goto refuse;
	}
	if (strcmp(type, "management") == 0 && q->n_policies) {
		snprintf(why, sizeof(why),
			 "policies: a management token holds every "
			 "permission and takes no policies");
		goto refuse;
	}
	if (strcmp(type, "client") == 0 && !q->n_policies) {
		snprintf(why, sizeof(why),
			 "policies: a client token needs at least one "
			 "(--policy NAME)");
		goto refuse;
	}
	if (q->n_policies > TOKEN_POLICIES_MAX) {
		snprintf(why, sizeof(why), "policies: at most %d",
			 TOKEN_POLICIES_MAX);
		goto refuse;
	}
	if (q->ttl_ms > (uint64_t)TTL_MAX_MS) {
		snprintf(why, sizeof(why), "ttl: at most ten years");
		goto refuse;
	}
	for (size_t i = 0; i < q->n_policies; i++)
		if (!flt_is_name(q->policies[i], 128)) {
			snprintf(why, sizeof(why),
				 "policies[%zu]: not a policy name", i);
			goto refuse;
		}
	wop_t *o = flt_xcalloc(1, sizeof(*o));
	o->a = a;
	o->r = r;
	o->kind = W_TOKEN_PUT;
	o->tok = new_token(o, q->name, type);
	if (q->ttl_ms)
		o->tok->expires_ms = o->tok->create_ms + (int64_t)q->ttl_ms;
	o->tok->n_policies = q->n_policies;
	o->tok->policies = flt_xcalloc(q->n_policies + 1, sizeof(char *));
	for (size_t i = 0; i < q->n_policies; i++)
		o->tok->policies[i] = flt_xstrdup(q->policies[i]);
	flotilla__acl_token_create_request__free_unpacked(q, NULL);
	submit(o);
	return;
refuse:
	flotilla__acl_token_create_request__free_unpacked(q, NULL);
	flt_request_fail(r, FLT_EPROTO, "%s", why);
}

/* Under the read lock: the token whose accessor id is id or starts with
 * it (at least 4 characters); NULL with why set otherwise. */
static const acl_tok_t *find_token(coord_acl_t *a, const char *id, char *why,
				   size_t len)
{
	const acl_tok_t *t = flt_map_get(&a->tokens, id);
	if (t)
		return t;
	size_t n = strlen(id), pos = 0, found = 0;
	const char *k;
	void *v;
	if (n >= 4)
		while (flt_map_next(&a->tokens, &pos, &k, &v))
			if (strncmp(k, id, n) == 0) {
				t = v;
				found++;
			}
	if (found == 1)
		return t;
	snprintf(why, len,
		 found ? "accessor id prefix %s matches %zu tokens: give more "
			 "of it"
		       : "no ACL token with accessor id %s",
		 id, found);
	return NULL;
}

static void token_by_id(coord_acl_t *a, flt_request_t *r, bool del)
{
	Flotilla__AclGetRequest *q;
	if (flt_request_body(r, &flotilla__acl_get_request__descriptor, &q) < 0)
		return;
	char why[256];
	flt_rwlock_rdlock(&a->lock);
	const acl_tok_t *t = find_token(a, q->id, why, sizeof(why));
	Flotilla__AclToken *c = t ? shown_copy(t->t) : NULL;
	flt_rwlock_unlock(&a->lock);
	flotilla__acl_get_request__free_unpacked(q, NULL);
	if (!c) {
		flt_request_fail(r, FLT_ENOTFOUND, "%s", why);
		return;
	}
	if (!del) {
		reply_token(r, c, NULL);
		protobuf_c_message_free_unpacked(&c->base, NULL);
		return;
	}
	wop_t *o = flt_xcalloc(1, sizeof(*o));
	o->a = a;
	o->r = r;
	o->kind = W_TOKEN_DEL;
	snprintf(o->key, sizeof(o->key), "%s", c->accessor_id);
	protobuf_c_message_free_unpacked(&c->base, NULL);
	submit(o);
}

void coord_acl_token_get(coord_acl_t *a, flt_request_t *r)
{
	token_by_id(a, r, false);
}

void coord_acl_token_delete(coord_acl_t *a, flt_request_t *r)
{
	token_by_id(a, r, true);
}

static int by_create(const void *x, const void *y)
{
	const Flotilla__AclToken *a = *(Flotilla__AclToken *const *)x;
	const Flotilla__AclToken *b = *(Flotilla__AclToken *const *)y;
	if (a->create_index != b->create_index)
		return a->create_index < b->create_index ? -1 : 1;
	return strcmp(a->accessor_id, b->accessor_id);
}

void coord_acl_token_list(coord_acl_t *a, flt_request_t *r)
{
	Flotilla__AclListRequest *q;
	if (flt_request_body(r, &flotilla__acl_list_request__descriptor, &q) <
	    0)
		return;
	flotilla__acl_list_request__free_unpacked(q, NULL);
	flt_rwlock_rdlock(&a->lock);
	size_t n = flt_map_count(&a->tokens), i = 0, pos = 0;
	Flotilla__AclToken **v = flt_xcalloc(n + 1, sizeof(*v));
	const char *k;
	void *val;
	while (flt_map_next(&a->tokens, &pos, &k, &val))
		v[i++] = shown_copy(((acl_tok_t *)val)->t);
	flt_rwlock_unlock(&a->lock);
	qsort(v, n, sizeof(*v), by_create);
	Flotilla__AclTokenListResponse resp =
		FLOTILLA__ACL_TOKEN_LIST_RESPONSE__INIT;
	resp.n_tokens = n;
	resp.tokens = v;
	flt_request_reply(r, &resp.base);
	for (i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

void coord_acl_token_self(coord_acl_t *a, flt_request_t *r)
{
	const flt_envelope_t *env = flt_request_envelope(r);
	const char *secret = env->credentials ? env->credentials->token : "";
	if (!a->enforce && !*secret) {
		flt_request_fail(r, FLT_ENOTFOUND,
				 "ACLs are off (--dev): calls carry no token");
		return;
	}
	flt_rwlock_rdlock(&a->lock);
	const acl_tok_t *t = acl_tok_by_secret(a, secret);
	Flotilla__AclToken *c = t ? shown_copy(t->t) : NULL;
	flt_rwlock_unlock(&a->lock);
	if (!c) {
		flt_request_fail(r, FLT_EAUTH,
				 "ACL token not found: no token has this "
				 "secret id");
		return;
	}
	reply_token(r, c, NULL);
	protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* ---- policies ------------------------------------------------------------ */

void coord_acl_policy_apply(coord_acl_t *a, flt_request_t *r)
{
	Flotilla__AclPolicyApplyRequest *q;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__acl_policy_apply_request__descriptor,
			     &q) < 0)
		return;
	if (!q->policy) {
		flt_request_fail(r, FLT_EPROTO, "policy: missing");
		flotilla__acl_policy_apply_request__free_unpacked(q, NULL);
		return;
	}
	if (acl_policy_check(q->policy, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "%s", err.msg);
		flotilla__acl_policy_apply_request__free_unpacked(q, NULL);
		return;
	}
	wop_t *o = flt_xcalloc(1, sizeof(*o));
	o->a = a;
	o->r = r;
	o->kind = W_POL_PUT;
	o->pol = flt_pb_dup(&q->policy->base);
	flotilla__acl_policy_apply_request__free_unpacked(q, NULL);
	submit(o);
}

static void policy_by_name(coord_acl_t *a, flt_request_t *r, bool del)
{
	Flotilla__AclGetRequest *q;
	if (flt_request_body(r, &flotilla__acl_get_request__descriptor, &q) < 0)
		return;
	flt_rwlock_rdlock(&a->lock);
	Flotilla__AclPolicy *p = flt_map_get(&a->policies, q->id);
	Flotilla__AclPolicy *c = p ? flt_pb_dup(&p->base) : NULL;
	flt_rwlock_unlock(&a->lock);
	if (!c) {
		flt_request_fail(r, FLT_ENOTFOUND, "no ACL policy named \"%s\"",
				 q->id);
	} else if (!del) {
		Flotilla__AclPolicyResponse resp =
			FLOTILLA__ACL_POLICY_RESPONSE__INIT;
		resp.policy = c;
		flt_request_reply(r, &resp.base);
	} else {
		wop_t *o = flt_xcalloc(1, sizeof(*o));
		o->a = a;
		o->r = r;
		o->kind = W_POL_DEL;
		snprintf(o->key, sizeof(o->key), "%s", c->name);
		submit(o);
	}
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	flotilla__acl_get_request__free_unpacked(q, NULL);
}

void coord_acl_policy_get(coord_acl_t *a, flt_request_t *r)
{
	policy_by_name(a, r, false);
}

void coord_acl_policy_delete(coord_acl_t *a, flt_request_t *r)
{
	policy_by_name(a, r, true);
}

static int by_name(const void *x, const void *y)
{
	const Flotilla__AclPolicy *a = *(Flotilla__AclPolicy *const *)x;
	const Flotilla__AclPolicy *b = *(Flotilla__AclPolicy *const *)y;
	return strcmp(a->name, b->name);
}

void coord_acl_policy_list(coord_acl_t *a, flt_request_t *r)
{
	Flotilla__AclListRequest *q;
	if (flt_request_body(r, &flotilla__acl_list_request__descriptor, &q) <
	    0)
		return;
	flotilla__acl_list_request__free_unpacked(q, NULL);
	flt_rwlock_rdlock(&a->lock);
	size_t n = flt_map_count(&a->policies), i = 0, pos = 0;
	Flotilla__AclPolicy **v = flt_xcalloc(n + 1, sizeof(*v));
	const char *k;
	void *val;
	while (flt_map_next(&a->policies, &pos, &k, &val))
		v[i++] = flt_pb_dup(val);
	flt_rwlock_unlock(&a->lock);
	qsort(v, n, sizeof(*v), by_name);
	Flotilla__AclPolicyListResponse resp =
		FLOTILLA__ACL_POLICY_LIST_RESPONSE__INIT;
	resp.n_policies = n;
	resp.policies = v;
	flt_request_reply(r, &resp.base);
	for (i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}
