/* Grants the coordinator signs for an agent's API (see grant.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "flotilla/grant.h"
#include "flotilla/util.h"

#define SHOWN_MAX 64

/* The signed message: the context, then the grant's bytes. */
static uint8_t *signed_message(const uint8_t *data, size_t len, size_t *n)
{
	size_t ctx = strlen(FLT_GRANT_CONTEXT);
	uint8_t *m = malloc(ctx + len + 1);

	if (!m)
		return NULL;
	memcpy(m, FLT_GRANT_CONTEXT, ctx);
	if (len)
		memcpy(m + ctx, data, len);
	*n = ctx + len;
	return m;
}

int flt_grant_issue(const char *alloc_id, const char *node_id,
		    const char *subject, int64_t now_ms, int64_t ttl_ms,
		    const uint8_t sk[64], ProtobufCBinaryData *grant,
		    ProtobufCBinaryData *sig, flt_error_t *err)
{
	Flotilla__AllocLogsGrant g = FLOTILLA__ALLOC_LOGS_GRANT__INIT;
	uint8_t nonce[FLT_GRANT_NONCE_LEN];
	cleanup_free uint8_t *msg = NULL;
	uint8_t *bytes, *s;
	size_t len, n;

	if (!alloc_id || !*alloc_id || !node_id || !*node_id || !sk ||
	    ttl_ms <= 0)
		return flt_err(err, -EINVAL,
			       "grant: missing allocation, node, key or "
			       "lifetime");
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "grant: libsodium failed to "
			       "initialize");
	randombytes_buf(nonce, sizeof(nonce));
	g.alloc_id = (char *)alloc_id;
	g.node_id = (char *)node_id;
	g.subject = (char *)(subject ? subject : "");
	g.issued_ms = now_ms;
	g.expires_ms = now_ms + ttl_ms;
	g.nonce.data = nonce;
	g.nonce.len = sizeof(nonce);
	len = protobuf_c_message_get_packed_size(&g.base);
	bytes = malloc(len ? len : 1);
	s = malloc(crypto_sign_BYTES);
	if (!bytes || !s) {
		free(bytes);
		free(s);
		return flt_err(err, -ENOMEM, "grant: out of memory");
	}
	protobuf_c_message_pack(&g.base, bytes);
	msg = signed_message(bytes, len, &n);
	if (!msg) {
		free(bytes);
		free(s);
		return flt_err(err, -ENOMEM, "grant: out of memory");
	}
	crypto_sign_detached(s, NULL, msg, n, sk);
	grant->data = bytes;
	grant->len = len;
	sig->data = s;
	sig->len = crypto_sign_BYTES;
	return 0;
}

int flt_grant_check(ProtobufCBinaryData grant, ProtobufCBinaryData sig,
		    const uint8_t pk[32], const char *alloc_id,
		    const char *node_id, int64_t now_ms,
		    Flotilla__AllocLogsGrant **out, flt_error_t *err)
{
	cleanup_free uint8_t *msg = NULL;
	Flotilla__AllocLogsGrant *g;
	char b1[72], b2[72];
	size_t n;
	int rc = 0;

	if (out)
		*out = NULL;
	if (grant.len == 0 && sig.len == 0)
		return flt_err(err, FLT_EAUTH,
			       "agent logs: a grant from the coordinator is "
			       "required (flotilla alloc logs asks for one)");
	if (!pk)
		return flt_err(err, FLT_EAUTH,
			       "agent logs: this agent holds no grant key of "
			       "its coordinator yet (it gets one when it "
			       "registers or syncs)");
	if (grant.len > FLT_GRANT_MAX_BYTES || sig.len != crypto_sign_BYTES)
		return flt_err(err, FLT_EAUTH,
			       "agent logs: grant: malformed (%zu bytes, "
			       "signature %zu bytes)",
			       grant.len, sig.len);
	if (sodium_init() < 0)
		return flt_err(err, -EIO,
			       "agent logs: libsodium failed to "
			       "initialize");
	msg = signed_message(grant.data, grant.len, &n);
	if (!msg)
		return flt_err(err, -ENOMEM, "agent logs: out of memory");
	/* The signature first: nothing an outsider wrote gets parsed. */
	if (crypto_sign_verify_detached(sig.data, msg, n, pk) != 0)
		return flt_err(err, FLT_EAUTH,
			       "agent logs: grant: not signed by this agent's "
			       "coordinator");
	g = flotilla__alloc_logs_grant__unpack(NULL, grant.len, grant.data);
	if (!g)
		return flt_err(err, FLT_EAUTH,
			       "agent logs: grant: signed but does not parse");
	flt_shown(g->alloc_id, SHOWN_MAX, b1, sizeof(b1));
	if (!alloc_id || strcmp(g->alloc_id, alloc_id))
		rc = flt_err(err, FLT_EAUTH,
			     "agent logs: grant is for allocation %s, not %s",
			     b1,
			     flt_shown(alloc_id, SHOWN_MAX, b2, sizeof(b2)));
	else if (!node_id || strcmp(g->node_id, node_id))
		rc = flt_err(err, FLT_EAUTH,
			     "agent logs: grant is for node %s, not this one "
			     "(%s)",
			     flt_shown(g->node_id, SHOWN_MAX, b2, sizeof(b2)),
			     node_id ? node_id : "not registered");
	else if (now_ms > g->expires_ms + FLT_GRANT_SKEW_MS)
		rc = flt_err(err, FLT_EAUTH,
			     "agent logs: grant expired %" PRId64
			     " s ago (ask the coordinator for a new one)",
			     (now_ms - g->expires_ms) / 1000);
	else if (g->expires_ms - g->issued_ms > FLT_GRANT_LIFETIME_MAX_MS ||
		 g->issued_ms > now_ms + FLT_GRANT_SKEW_MS ||
		 g->expires_ms - now_ms >
			 FLT_GRANT_LIFETIME_MAX_MS + FLT_GRANT_SKEW_MS)
		rc = flt_err(err, FLT_EAUTH,
			     "agent logs: grant: valid for longer than an "
			     "agent accepts (%d s at most)",
			     FLT_GRANT_LIFETIME_MAX_MS / 1000);
	if (rc < 0 || !out)
		flotilla__alloc_logs_grant__free_unpacked(g, NULL);
	else
		*out = g;
	return rc;
}
