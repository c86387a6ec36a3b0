/*
 * Grants: short-lived permissions the coordinator signs (ed25519, its own
 * grant key) for a caller to present to an agent's API. A grant is an
 * AllocLogsGrant serialised once by the coordinator; the signature covers
 * FLT_GRANT_CONTEXT followed by those bytes, and the agent parses the
 * bytes it verified, so no re-encoding can change what was signed. Shared
 * by the coordinator (sign), the agent (check) and tests.
 */
#ifndef FLOTILLA_GRANT_H
#define FLOTILLA_GRANT_H

#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

/* What a signature covers before the grant's bytes: no signature made
 * for anything else (a package, another grant type) can pass for one. */
#define FLT_GRANT_CONTEXT "flotilla-grant-v1\n"
#define FLT_GRANT_NONCE_LEN 16
/* How long a grant the coordinator issues is valid, and the clock skew an
 * agent tolerates between its clock and the coordinator's. */
#define FLT_GRANT_TTL_MS 60000
#define FLT_GRANT_SKEW_MS 30000
/* An agent refuses a grant that claims to live longer than this: a
 * grant is short-lived by construction, never a standing key. */
#define FLT_GRANT_LIFETIME_MAX_MS (10 * 60 * 1000)
/* The largest serialised grant an agent looks at. */
#define FLT_GRANT_MAX_BYTES 1024

/*
 * A new grant for alloc_id on node_id, valid from now_ms (wall clock) for
 * ttl_ms, with a fresh nonce and subject (may be NULL or ""), serialised
 * into *grant and signed with sk into *sig (both malloc'd; free .data).
 * 0, or -EINVAL / -ENOMEM / -EIO with a message.
 */
int flt_grant_issue(const char *alloc_id, const char *node_id,
		    const char *subject, int64_t now_ms, int64_t ttl_ms,
		    const uint8_t sk[64], ProtobufCBinaryData *grant,
		    ProtobufCBinaryData *sig, flt_error_t *err);

/*
 * Checks a grant presented for alloc_id to the agent of node_id at now_ms
 * (wall clock), against pk, the coordinator's grant key; out (may be NULL)
 * receives the parsed grant (free with
 * flotilla__alloc_logs_grant__free_unpacked). FLT_EAUTH with what is
 * wrong, in this order: no grant ("a grant from the coordinator is
 * required"), a bad signature ("not signed by this agent's coordinator"),
 * bytes that do not parse, another allocation ("grant is for allocation
 * X"), another node, an expiry more than FLT_GRANT_SKEW_MS past ("grant
 * expired N s ago"), or a lifetime beyond FLT_GRANT_LIFETIME_MAX_MS.
 * Messages start with "agent logs: ".
 */
int flt_grant_check(ProtobufCBinaryData grant, ProtobufCBinaryData sig,
		    const uint8_t pk[32], const char *alloc_id,
		    const char *node_id, int64_t now_ms,
		    Flotilla__AllocLogsGrant **out, flt_error_t *err);

#endif
