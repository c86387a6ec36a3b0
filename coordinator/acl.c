/*
 * Operator identity: ACL tokens and policies, and the check every
 * operator call passes before its handler decodes its body.
 *
 * A token is an accessor id (public, names it) and a secret id (the
 * bearer credential), stored only as its SHA-256; it is a management
 * token (everything) or a client token with policies. A policy grants
 * per namespace (read-job, submit-job, stop-job, read-logs, privileged;
 * "read" and "write" are shorthands) and fleet-wide (node, package,
 * inventory, campaign, audit). Grants add up over a token's policies;
 * "deny" overrides. With no token a call is anonymous: it holds what a
 * policy named "anonymous" grants, if one exists, and nothing otherwise.
 *
 * `acl bootstrap` works once and makes the first management token. To
 * bootstrap again (the token is lost) an operator with access to the
 * coordinator's host writes the reset index the refusal names into
 * <data-dir>/acl-bootstrap-reset.
 *
 * Memory mirrors the `acl_tokens` and `acl_policies` databases; changes
 * go through the writer and reach memory in its done callback.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "coordinator.h"
#include "flotilla/hash.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "acl-internal.h"

#define RESET_FILE "acl-bootstrap-reset"
#define POLICY_NAME_MAX 128
#define TOKEN_NAME_MAX 256
#define POLICIES_MAX 64
#define RULES_MAX 256

/* ---- permissions -------------------------------------------------------- */

enum kind { K_SPECIAL, K_FLEET, K_NS };

static const struct perm_row {
	const char *name;
	enum kind kind;
	int area; /* K_FLEET: enum fleet_area */
	unsigned need; /* K_FLEET: enum level; K_NS: the capability's bit */
} perms[COORD_PERM_COUNT] = {
	[COORD_PERM_JOIN] = { "join", K_SPECIAL, 0, 0 },
	[COORD_PERM_NODE_SELF] = { "node-self", K_SPECIAL, 0, 0 },
	[COORD_PERM_ANYONE] = { "anyone", K_SPECIAL, 0, 0 },
	[COORD_PERM_TOKEN] = { "token", K_SPECIAL, 0, 0 },
	[COORD_PERM_MANAGEMENT] = { "management", K_SPECIAL, 0, 0 },
	[COORD_PERM_NODE_READ] = { "node:read", K_FLEET, F_NODE, L_READ },
	[COORD_PERM_NODE_WRITE] = { "node:write", K_FLEET, F_NODE, L_WRITE },
	[COORD_PERM_PACKAGE_READ] = { "package:read", K_FLEET, F_PACKAGE,
				      L_READ },
	[COORD_PERM_PACKAGE_WRITE] = { "package:write", K_FLEET, F_PACKAGE,
				       L_WRITE },
	[COORD_PERM_INVENTORY_READ] = { "inventory:read", K_FLEET, F_INVENTORY,
					L_READ },
	[COORD_PERM_CAMPAIGN_READ] = { "campaign:read", K_FLEET, F_CAMPAIGN,
				       L_READ },
	[COORD_PERM_CAMPAIGN_WRITE] = { "campaign:write", K_FLEET, F_CAMPAIGN,
					L_WRITE },
	[COORD_PERM_AUDIT_READ] = { "audit:read", K_FLEET, F_AUDIT, L_READ },
	[COORD_PERM_NS_READ_JOB] = { "namespace:read-job", K_NS, 0,
				     NS_READ_JOB },
	[COORD_PERM_NS_SUBMIT_JOB] = { "namespace:submit-job", K_NS, 0,
				       NS_SUBMIT_JOB },
	[COORD_PERM_NS_STOP_JOB] = { "namespace:stop-job", K_NS, 0,
				     NS_STOP_JOB },
	[COORD_PERM_NS_READ_LOGS] = { "namespace:read-logs", K_NS, 0,
				      NS_READ_LOGS },
	[COORD_PERM_NS_PRIVILEGED] = { "namespace:privileged", K_NS, 0,
				       NS_PRIVILEGED },
};

const char *coord_perm_name(coord_perm_t p)
{
	return (unsigned)p < COORD_PERM_COUNT ? perms[p].name : "?";
}

bool coord_perm_namespaced(coord_perm_t p)
{
	return (unsigned)p < COORD_PERM_COUNT && perms[p].kind == K_NS;
}

static const struct {
	const char *name;
	unsigned bits;
} ns_caps[] = {
	{ "read-job", NS_READ_JOB },     { "submit-job", NS_SUBMIT_JOB },
	{ "stop-job", NS_STOP_JOB },     { "read-logs", NS_READ_LOGS },
	{ "privileged", NS_PRIVILEGED }, { "deny", NS_DENY },
};

unsigned acl_ns_policy_bits(const char *policy)
{
	if (strcmp(policy, "read") == 0)
		return NS_READ_JOB;
	if (strcmp(policy, "write") == 0)
		return NS_READ_JOB | NS_SUBMIT_JOB | NS_STOP_JOB | NS_READ_LOGS;
	if (strcmp(policy, "deny") == 0)
		return NS_DENY;
	return 0;
}

static int ns_cap_bit(const char *name)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(ns_caps); i++)
		if (strcmp(ns_caps[i].name, name) == 0)
			return (int)ns_caps[i].bits;
	return -1;
}

static int level_of(const char *s)
{
	if (!*s)
		return L_NONE;
	if (strcmp(s, "read") == 0)
		return L_READ;
	if (strcmp(s, "write") == 0)
		return L_WRITE;
	if (strcmp(s, "deny") == 0)
		return L_DENY;
	return -1;
}

/* The fleet-wide fields of a policy, by area. */
static const char *fleet_field(const Flotilla__AclPolicy *p, int area)
{
	switch (area) {
	case F_NODE: return p->node;
	case F_PACKAGE: return p->package;
	case F_INVENTORY: return p->inventory;
	case F_CAMPAIGN: return p->campaign;
	case F_AUDIT: return p->audit;
	default: return "";
	}
}

static const char *const fleet_names[F_COUNT] = {
	[F_NODE] = "node",           [F_PACKAGE] = "package",
	[F_INVENTORY] = "inventory", [F_CAMPAIGN] = "campaign",
	[F_AUDIT] = "audit",
};

/* ---- checking a policy -------------------------------------------------- */

static bool rule_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > FLT_NAMESPACE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '*'))
			return false;
	return true;
}

int acl_policy_check(const Flotilla__AclPolicy *p, flt_error_t *err)
{
	if (!flt_is_name(p->name, POLICY_NAME_MAX))
		return flt_err(err, FLT_EPROTO,
			       "policy.name: 1 to %d of A-Z, a-z, 0-9, '.', "
			       "'_' and '-', not \"%s\"",
			       POLICY_NAME_MAX, p->name);
	if (p->n_namespaces > RULES_MAX)
		return flt_err(err, FLT_EPROTO,
			       "policy.namespaces: at most %d rules",
			       RULES_MAX);
	for (size_t i = 0; i < p->n_namespaces; i++) {
		const Flotilla__AclNamespaceRule *r = p->namespaces[i];
		if (!rule_name_ok(r->name))
			return flt_err(err, FLT_EPROTO,
				       "policy.namespaces[%zu].name: a "
				       "namespace or a glob of a-z, 0-9, '-' "
				       "and '*' (1 to %d), not \"%s\"",
				       i, FLT_NAMESPACE_MAX, r->name);
		if (*r->policy && !acl_ns_policy_bits(r->policy))
			return flt_err(err, FLT_EPROTO,
				       "policy.namespaces[%zu].policy: "
				       "\"deny\", \"read\" or \"write\", not "
				       "\"%s\"",
				       i, r->policy);
		if (!*r->policy && r->n_capabilities == 0)
			return flt_err(err, FLT_EPROTO,
				       "policy.namespaces[%zu]: grants "
				       "nothing (give a policy or "
				       "capabilities)",
				       i);
		for (size_t k = 0; k < r->n_capabilities; k++)
			if (ns_cap_bit(r->capabilities[k]) < 0)
				return flt_err(
					err, FLT_EPROTO,
					"policy.namespaces[%zu]."
					"capabilities[%zu]: \"%s\" is not one "
					"of read-job, submit-job, stop-job, "
					"read-logs, privileged, deny",
					i, k, r->capabilities[k]);
	}
	for (int a = 0; a < F_COUNT; a++) {
		const char *v = fleet_field(p, a);
		int l = level_of(v);
		bool read_only = a == F_INVENTORY || a == F_AUDIT;
		if (l < 0 || (read_only && l == L_WRITE))
			return flt_err(err, FLT_EPROTO,
				       "policy.%s: %s, not \"%s\"",
				       fleet_names[a],
				       read_only ? "\"deny\" or \"read\""
						 : "\"deny\", \"read\" or "
						   "\"write\"",
				       v);
	}
	return 0;
}

/* ---- what a token holds ------------------------------------------------- */

/* Under the lock: the bits a policy grants in ns (NS_DENY among them
 * when a matching rule denies). */
static unsigned policy_ns_bits(const Flotilla__AclPolicy *p, const char *ns)
{
	unsigned bits = 0;
	for (size_t i = 0; i < p->n_namespaces; i++) {
		const Flotilla__AclNamespaceRule *r = p->namespaces[i];
		if (fnmatch(r->name, ns, 0) != 0)
			continue;
		bits |= acl_ns_policy_bits(r->policy);
		for (size_t k = 0; k < r->n_capabilities; k++) {
			int b = ns_cap_bit(r->capabilities[k]);
			if (b > 0)
				bits |= (unsigned)b;
		}
	}
	return bits;
}

/* Whether any rule of p could grant bit in some namespace ("*" lists). */
static bool policy_any_ns(const Flotilla__AclPolicy *p, unsigned bit)
{
	for (size_t i = 0; i < p->n_namespaces; i++) {
		const Flotilla__AclNamespaceRule *r = p->namespaces[i];
		unsigned b = acl_ns_policy_bits(r->policy);
		for (size_t k = 0; k < r->n_capabilities; k++) {
			int c = ns_cap_bit(r->capabilities[k]);
			if (c > 0)
				b |= (unsigned)c;
		}
		if ((b & bit) && !(b & NS_DENY))
			return true;
	}
	return false;
}

/* Under the lock: whether the policies named grant p (in ns). */
static bool policies_grant(coord_acl_t *a, char *const *names, size_t n,
			   coord_perm_t p, const char *ns)
{
	const struct perm_row *row = &perms[p];
	if (row->kind == K_FLEET) {
		int best = L_NONE;
		for (size_t i = 0; i < n; i++) {
			const Flotilla__AclPolicy *pol =
				flt_map_get(&a->policies, names[i]);
			if (!pol)
				continue;
			int l = level_of(fleet_field(pol, row->area));
			if (l == L_DENY)
				return false;
			if (l > best)
				best = l;
		}
		return best >= (int)row->need;
	}
	if (row->kind != K_NS)
		return false;
	unsigned bits = 0;
	bool any = ns && strcmp(ns, "*") == 0;
	for (size_t i = 0; i < n; i++) {
		const Flotilla__AclPolicy *pol =
			flt_map_get(&a->policies, names[i]);
		if (!pol)
			continue;
		if (any) {
			if (policy_any_ns(pol, row->need))
				return true;
			continue;
		}
		bits |= policy_ns_bits(pol, ns);
	}
	return !any && !(bits & NS_DENY) && (bits & row->need);
}

/* Under the lock: the caller of a call, found again (its token may have
 * gone since the call began). */
static bool ident_grants(coord_acl_t *a, const acl_call_t *cl, coord_perm_t p,
			 const char *ns)
{
	if (cl->dev)
		return true;
	if (p == COORD_PERM_ANYONE)
		return true;
	if (!cl->accessor[0]) {
		if (p == COORD_PERM_TOKEN || p == COORD_PERM_MANAGEMENT)
			return false;
		char *anon = "anonymous";
		return policies_grant(a, &anon, 1, p, ns);
	}
	const acl_tok_t *t = flt_map_get(&a->tokens, cl->accessor);
	if (!t)
		return false;
	if (p == COORD_PERM_TOKEN)
		return true;
	if (strcmp(t->t->type, "management") == 0)
		return true;
	if (p == COORD_PERM_MANAGEMENT)
		return false;
	return policies_grant(a, t->t->policies, t->t->n_policies, p, ns);
}

/* ---- the call's context -------------------------------------------------- */

static void call_free(acl_call_t *cl)
{
	if (!cl)
		return;
	free(cl->target);
	free(cl);
}

static void on_answer(flt_request_t *r, int code, const char *msg, void *arg)
{
	acl_call_t *cl = arg;
	if (code != -ECANCELED && cl->audited && !(code == 0 && cl->recorded))
		acl_audit_submit(cl->a, cl, r, code, msg);
	call_free(cl);
}

static acl_call_t *call_of(const flt_request_t *r)
{
	return flt_request_context(r);
}

const char *coord_call_namespace(const flt_request_t *r)
{
	const acl_call_t *cl = call_of(r);
	return cl ? cl->ns : FLT_NAMESPACE_DEFAULT;
}

const char *coord_call_who(const flt_request_t *r)
{
	const acl_call_t *cl = call_of(r);
	return cl ? cl->who : "";
}

bool coord_call_may(const flt_request_t *r, coord_perm_t p, const char *ns)
{
	const acl_call_t *cl = call_of(r);
	if (!cl)
		return false;
	if (cl->dev)
		return true;
	flt_rwlock_rdlock(&cl->a->lock);
	bool ok = ident_grants(cl->a, cl, p, ns);
	flt_rwlock_unlock(&cl->a->lock);
	return ok;
}

/* "token 1a2b3c4d (ci; policies team-a, ops)", "the anonymous caller". */
static void describe(coord_acl_t *a, const acl_call_t *cl, char *buf,
		     size_t len)
{
	if (!cl->accessor[0]) {
		snprintf(buf, len,
			 "the call carried no ACL token (flotilla --token, "
			 "$FLOTILLA_TOKEN or --token-file)");
		return;
	}
	flt_rwlock_rdlock(&a->lock);
	const acl_tok_t *t = flt_map_get(&a->tokens, cl->accessor);
	if (!t) {
		snprintf(buf, len, "token %.8s was deleted", cl->accessor);
	} else {
		size_t o = (size_t)snprintf(buf, len, "token %.8s (%s; ",
					    cl->accessor, t->t->name);
		if (t->t->n_policies == 0 && o < len)
			o += (size_t)snprintf(buf + o, len - o, "no policies");
		for (size_t i = 0; i < t->t->n_policies && o < len; i++)
			o += (size_t)snprintf(buf + o, len - o, "%s%s",
					      i ? ", " : "policies ",
					      t->t->policies[i]);
		if (o < len)
			snprintf(buf + o, len - o, ") does not grant it");
	}
	flt_rwlock_unlock(&a->lock);
}

void coord_call_deny(flt_request_t *r, coord_perm_t p, const char *ns,
		     const char *what)
{
	acl_call_t *cl = call_of(r);
	char who[384] = "";
	if (cl)
		describe(cl->a, cl, who, sizeof(who));
	if (coord_perm_namespaced(p))
		flt_request_fail(r, FLT_EDENIED,
				 "permission denied: %s needs %s in namespace "
				 "%s; %s",
				 what, coord_perm_name(p), ns, who);
	else
		flt_request_fail(r, FLT_EDENIED,
				 "permission denied: %s needs %s; %s", what,
				 coord_perm_name(p), who);
}

/* The method's name as people write it: "job register". */
static void method_words(Flotilla__Method m, char *buf, size_t len)
{
	snprintf(buf, len, "%s", flt_method_name(m));
	for (char *p = buf; *p; p++)
		if (*p == '_')
			*p = ' ';
}

int coord_acl_authorize(coord_acl_t *a, flt_request_t *r,
			const coord_method_t *row)
{
	const flt_envelope_t *env = flt_request_envelope(r);
	acl_call_t *cl = flt_xcalloc(1, sizeof(*cl));
	cl->a = a;
	cl->method = row->method;
	cl->request = row->request;
	cl->audited = row->mutates &&
		      row->method != FLOTILLA__METHOD__METHOD_CHUNK_PUT;
	cl->time_ms = flt_now_wall_ms();
	snprintf(cl->ns, sizeof(cl->ns), "%s",
		 *env->namespace_ ? env->namespace_ : FLT_NAMESPACE_DEFAULT);
	snprintf(cl->peer, sizeof(cl->peer), "%s", flt_request_peer(r));
	const char *secret = env->credentials ? env->credentials->token : "";
	flt_request_on_answer(r, on_answer, cl);

	char what[64];
	method_words(row->method, what, sizeof(what));
	if (strcmp(cl->ns, "*") == 0 &&
	    row->method != FLOTILLA__METHOD__METHOD_JOB_LIST) {
		flt_request_fail(r, FLT_EPROTO,
				 "namespace \"*\": only job list takes every "
				 "namespace; %s acts in one",
				 what);
		return -1;
	}
	if (!a->enforce) {
		cl->dev = true;
		snprintf(cl->who, sizeof(cl->who), "dev");
		return 0;
	}
	if (*secret) {
		int64_t expires = 0;
		flt_rwlock_rdlock(&a->lock);
		const acl_tok_t *t = acl_tok_by_secret(a, secret);
		if (t) {
			snprintf(cl->accessor, sizeof(cl->accessor), "%s",
				 t->t->accessor_id);
			snprintf(cl->who_name, sizeof(cl->who_name), "%s",
				 t->t->name);
			expires = t->t->expires_ms;
		}
		flt_rwlock_unlock(&a->lock);
		if (!cl->accessor[0]) {
			snprintf(cl->who, sizeof(cl->who), "unknown-token");
			flt_request_fail(r, FLT_EAUTH,
					 "ACL token not found: no token has "
					 "this secret id");
			return -1;
		}
		snprintf(cl->who, sizeof(cl->who), "token:%s", cl->accessor);
		if (expires && expires <= cl->time_ms) {
			char when[64];
			flt_format_time(expires, when, sizeof(when));
			flt_request_fail(r, FLT_EAUTH,
					 "ACL token %.8s (%s) expired at %s",
					 cl->accessor, cl->who_name, when);
			return -1;
		}
	} else {
		snprintf(cl->who, sizeof(cl->who), "anonymous");
	}
	flt_rwlock_rdlock(&a->lock);
	bool ok = ident_grants(a, cl, row->perm, cl->ns);
	flt_rwlock_unlock(&a->lock);
	if (!ok) {
		coord_call_deny(r, row->perm, cl->ns, what);
		return -1;
	}
	return 0;
}

/* ---- loading -------------------------------------------------------------- */

void acl_tok_free(acl_tok_t *t)
{
	if (!t)
		return;
	protobuf_c_message_free_unpacked(&t->t->base, NULL);
	free(t);
}

const acl_tok_t *acl_tok_by_secret(coord_acl_t *a, const char *secret)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return flt_map_get(&a->by_hash, hex);
}

/* Under the write lock (or before anyone else sees a): adds or replaces. */
void acl_tok_put(coord_acl_t *a, Flotilla__AclToken *tok)
{
	acl_tok_t *old = flt_map_get(&a->tokens, tok->accessor_id);
	if (old) {
		flt_map_del(&a->tokens, old->t->accessor_id);
		flt_map_del(&a->by_hash, old->hash);
		acl_tok_free(old);
	}
	acl_tok_t *t = flt_xcalloc(1, sizeof(*t));
	t->t = tok;
	sodium_bin2hex(t->hash, sizeof(t->hash), tok->secret_hash.data,
		       tok->secret_hash.len);
	flt_map_put(&a->tokens, tok->accessor_id, t);
	flt_map_put(&a->by_hash, t->hash, t);
}

void acl_tok_del(coord_acl_t *a, const char *accessor)
{
	acl_tok_t *old = flt_map_del(&a->tokens, accessor);
	if (!old)
		return;
	flt_map_del(&a->by_hash, old->hash);
	acl_tok_free(old);
}

void acl_pol_put(coord_acl_t *a, Flotilla__AclPolicy *p)
{
	Flotilla__AclPolicy *old = flt_map_del(&a->policies, p->name);
	if (old)
		protobuf_c_message_free_unpacked(&old->base, NULL);
	flt_map_put(&a->policies, p->name, p);
}

void acl_pol_del(coord_acl_t *a, const char *name)
{
	Flotilla__AclPolicy *old = flt_map_del(&a->policies, name);
	if (old)
		protobuf_c_message_free_unpacked(&old->base, NULL);
}

static int load_token(const void *key, size_t klen, const void *val,
		      size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	Flotilla__AclToken *t = flotilla__acl_token__unpack(NULL, vlen, val);
	if (!t || t->secret_hash.len != crypto_hash_sha256_BYTES) {
		flt_warn("skipping an unreadable ACL token record");
		if (t)
			flotilla__acl_token__free_unpacked(t, NULL);
		return 0;
	}
	acl_tok_put(arg, t);
	return 0;
}

static int load_policy(const void *key, size_t klen, const void *val,
		       size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	Flotilla__AclPolicy *p = flotilla__acl_policy__unpack(NULL, vlen, val);
	if (!p) {
		flt_warn("skipping an unreadable ACL policy record");
		return 0;
	}
	acl_pol_put(arg, p);
	return 0;
}

int coord_acl_open(const coord_acl_opts_t *o, coord_acl_t **out,
		   flt_error_t *err)
{
	coord_acl_t *a = flt_xcalloc(1, sizeof(*a));
	a->store = o->store;
	a->writer = o->writer;
	a->data_dir = flt_xstrdup(o->data_dir ? o->data_dir : ".");
	a->enforce = o->enforce;
	a->audit_max = o->audit_max_events ? o->audit_max_events : 100000;
	a->audit_max_age_ms = o->audit_max_age_ms ? o->audit_max_age_ms
						  : 365LL * 24 * 3600 * 1000;
	flt_rwlock_init(&a->lock, COORD_LOCK_ACL, "acl");
	int rc;
	if ((rc = flt_store_db(a->store, "acl_tokens", &a->db_tokens)) < 0 ||
	    (rc = flt_store_db(a->store, "acl_policies", &a->db_policies)) <
		    0 ||
	    (rc = flt_store_db(a->store, "acl_meta", &a->db_meta)) < 0 ||
	    (rc = flt_store_db(a->store, "audit", &a->db_audit)) < 0) {
		coord_acl_close(a);
		return flt_err(err, rc, "opening the ACL databases failed");
	}
	flt_txn_t *txn;
	if ((rc = flt_txn_begin(a->store, false, &txn, err)) < 0) {
		coord_acl_close(a);
		return rc;
	}
	flt_txn_foreach(txn, a->db_tokens, NULL, 0, load_token, a);
	flt_txn_foreach(txn, a->db_policies, NULL, 0, load_policy, a);
	acl_audit_load(a, txn);
	flt_txn_abort(txn);
	if (!a->enforce)
		flt_warn("ACLs are off (--dev): every operator call may do "
			 "everything, without a token");
	else
		flt_info("ACLs enforced tokens=%zu policies=%zu",
			 flt_map_count(&a->tokens),
			 flt_map_count(&a->policies));
	*out = a;
	return 0;
}

void coord_acl_close(coord_acl_t *a)
{
	if (!a)
		return;
	size_t pos = 0;
	const char *k;
	void *v;
	while (flt_map_next(&a->tokens, &pos, &k, &v))
		acl_tok_free(v);
	pos = 0;
	while (flt_map_next(&a->policies, &pos, &k, &v))
		protobuf_c_message_free_unpacked(v, NULL);
	flt_map_free(&a->tokens);
	flt_map_free(&a->by_hash);
	flt_map_free(&a->policies);
	flt_rwlock_destroy(&a->lock);
	free(a->data_dir);
	free(a);
}

/* ---- reset file -------------------------------------------------------- */

/* The index written in <data-dir>/acl-bootstrap-reset, or 0. */
uint64_t acl_reset_index(coord_acl_t *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", a->data_dir, RESET_FILE);
	cleanup_free char *s = NULL;
	if (flt_read_file(path, 64, &s) < 0)
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	while (*end == '\n' || *end == ' ' || *end == '\r')
		end++;
	if (errno || *end || end == s)
		return 0;
	return v;
}

void acl_reset_remove(coord_acl_t *a)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", a->data_dir, RESET_FILE);
	if (unlink(path) != 0 && errno != ENOENT)
		flt_warn("could not remove %s: %s", path, strerror(errno));
}
