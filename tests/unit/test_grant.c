/* Unit tests for common/grant.c: grants the coordinator signs for an
 * agent's API, and every way an agent refuses one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "flotilla/error.h"
#include "flotilla/grant.h"

#define ALLOC "0a1b2c3d-0000-4000-8000-000000000001"
#define OTHER "0a1b2c3d-0000-4000-8000-000000000002"
#define NODE "5f0c1d2e-0000-4000-8000-0000000000aa"
#define NOW 1765000000000LL

static uint8_t pk[32], sk[64], pk2[32], sk2[64];

typedef struct grant {
	ProtobufCBinaryData g, sig;
} grant_t;

static grant_t issue(const char *alloc, const char *node, int64_t at,
		     int64_t ttl, const uint8_t *key)
{
	grant_t t;
	flt_error_t err = { 0 };

	if (flt_grant_issue(alloc, node, "alice", at, ttl, key, &t.g, &t.sig,
			    &err) < 0)
		fail_msg("issue: %s", err.msg);
	return t;
}

static void grant_free(grant_t *t)
{
	free(t->g.data);
	free(t->sig.data);
}

/* Expects code and a message holding want. */
static void refused(grant_t *t, const uint8_t *key, const char *alloc,
		    const char *node, int64_t now, const char *want)
{
	flt_error_t err = { 0 };
	Flotilla__AllocLogsGrant *out = (void *)1;

	assert_int_equal(flt_grant_check(t->g, t->sig, key, alloc, node, now,
					 &out, &err),
			 FLT_EAUTH);
	assert_null(out);
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
	assert_int_equal(strncmp(err.msg, "agent logs: ", 12), 0);
}

static void test_issue_check(void **state)
{
	grant_t t = issue(ALLOC, NODE, NOW, FLT_GRANT_TTL_MS, sk);
	Flotilla__AllocLogsGrant *g = NULL;
	flt_error_t err = { 0 };

	(void)state;
	assert_int_equal(t.sig.len, crypto_sign_BYTES);
	assert_true(t.g.len > 0 && t.g.len <= FLT_GRANT_MAX_BYTES);
	assert_int_equal(
		flt_grant_check(t.g, t.sig, pk, ALLOC, NODE, NOW + 1, &g, &err),
		0);
	assert_string_equal(g->alloc_id, ALLOC);
	assert_string_equal(g->node_id, NODE);
	assert_string_equal(g->subject, "alice");
	assert_int_equal(g->issued_ms, NOW);
	assert_int_equal(g->expires_ms, NOW + FLT_GRANT_TTL_MS);
	assert_int_equal(g->nonce.len, FLT_GRANT_NONCE_LEN);
	flotilla__alloc_logs_grant__free_unpacked(g, NULL);
	/* Within the clock skew of its expiry, and with out NULL. */
	assert_int_equal(
		flt_grant_check(t.g, t.sig, pk, ALLOC, NODE,
				NOW + FLT_GRANT_TTL_MS + FLT_GRANT_SKEW_MS,
				NULL, &err),
		0);
	grant_free(&t);
}

/* The signature covers the context and the exact bytes: the same grant
 * encoded anew, or signed without the context, is no longer valid. */
static void test_signed_bytes(void **state)
{
	grant_t t = issue(ALLOC, NODE, NOW, FLT_GRANT_TTL_MS, sk);
	flt_error_t err = { 0 };

	(void)state;
	/* Two grants for the same thing differ (the nonce). */
	grant_t u = issue(ALLOC, NODE, NOW, FLT_GRANT_TTL_MS, sk);
	assert_true(t.g.len != u.g.len || memcmp(t.g.data, u.g.data, t.g.len));
	grant_free(&u);

	/* A plain signature of the bytes, without the context. */
	uint8_t bare[crypto_sign_BYTES];
	crypto_sign_detached(bare, NULL, t.g.data, t.g.len, sk);
	grant_t b = { t.g, { sizeof(bare), bare } };
	refused(&b, pk, ALLOC, NODE, NOW,
		"not signed by this agent's "
		"coordinator");

	/* An unknown field appended: the same message once parsed, other
	 * bytes once signed. */
	uint8_t *more = malloc(t.g.len + 3);
	memcpy(more, t.g.data, t.g.len);
	memcpy(more + t.g.len, "\xf8\x01\x01", 3); /* field 31, varint 1 */
	grant_t m = { { t.g.len + 3, more }, t.sig };
	refused(&m, pk, ALLOC, NODE, NOW,
		"not signed by this agent's "
		"coordinator");
	free(more);

	/* One bit of the grant, one of the signature. */
	t.g.data[t.g.len / 2] ^= 1;
	refused(&t, pk, ALLOC, NODE, NOW, "not signed");
	t.g.data[t.g.len / 2] ^= 1;
	t.sig.data[0] ^= 0x80;
	refused(&t, pk, ALLOC, NODE, NOW, "not signed");
	t.sig.data[0] ^= 0x80;
	assert_int_equal(
		flt_grant_check(t.g, t.sig, pk, ALLOC, NODE, NOW, NULL, &err),
		0);
	grant_free(&t);
}

static void test_refusals(void **state)
{
	grant_t t = issue(ALLOC, NODE, NOW, FLT_GRANT_TTL_MS, sk);
	grant_t none = { { 0, NULL }, { 0, NULL } };

	(void)state;
	refused(&none, pk, ALLOC, NODE, NOW,
		"a grant from the coordinator is required (flotilla alloc "
		"logs asks for one)");
	refused(&t, NULL, ALLOC, NODE, NOW, "no grant key of its coordinator");
	refused(&t, pk2, ALLOC, NODE, NOW,
		"not signed by this agent's "
		"coordinator");
	refused(&t, pk, OTHER, NODE, NOW,
		"grant is for allocation " ALLOC ", not " OTHER);
	refused(&t, pk, ALLOC, "another-node", NOW,
		"grant is for node " NODE ", not this one (another-node)");
	refused(&t, pk, ALLOC, NULL, NOW, "not this one (not registered)");
	refused(&t, pk, ALLOC, NODE,
		NOW + FLT_GRANT_TTL_MS + FLT_GRANT_SKEW_MS + 1000,
		"grant expired 31 s ago");
	grant_t half = { t.g, { 10, t.sig.data } };
	refused(&half, pk, ALLOC, NODE, NOW, "malformed");
	grant_free(&t);

	/* Forged with another key: its own signature, not the coordinator's. */
	t = issue(ALLOC, NODE, NOW, FLT_GRANT_TTL_MS, sk2);
	refused(&t, pk, ALLOC, NODE, NOW,
		"not signed by this agent's "
		"coordinator");
	grant_free(&t);

	/* Signed, but living too long, or issued in the future. */
	t = issue(ALLOC, NODE, NOW, FLT_GRANT_LIFETIME_MAX_MS + 1, sk);
	refused(&t, pk, ALLOC, NODE, NOW,
		"valid for longer than an agent "
		"accepts");
	grant_free(&t);
	t = issue(ALLOC, NODE, NOW + 3600000, FLT_GRANT_TTL_MS, sk);
	refused(&t, pk, ALLOC, NODE, NOW, "valid for longer");
	grant_free(&t);

	/* Signed bytes that are not a grant. */
	uint8_t junk[] = { 0xff, 0xff, 0xff };
	uint8_t sig[crypto_sign_BYTES];
	uint8_t msg[sizeof(FLT_GRANT_CONTEXT) - 1 + sizeof(junk)];
	memcpy(msg, FLT_GRANT_CONTEXT, sizeof(FLT_GRANT_CONTEXT) - 1);
	memcpy(msg + sizeof(FLT_GRANT_CONTEXT) - 1, junk, sizeof(junk));
	crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
	grant_t j = { { sizeof(junk), junk }, { sizeof(sig), sig } };
	refused(&j, pk, ALLOC, NODE, NOW, "signed but does not parse");
}

static void test_issue_errors(void **state)
{
	ProtobufCBinaryData g, s;
	flt_error_t err = { 0 };

	(void)state;
	assert_int_equal(
		flt_grant_issue("", NODE, NULL, NOW, 1000, sk, &g, &s, &err),
		-EINVAL);
	assert_int_equal(
		flt_grant_issue(ALLOC, NULL, NULL, NOW, 1000, sk, &g, &s, &err),
		-EINVAL);
	assert_int_equal(
		flt_grant_issue(ALLOC, NODE, NULL, NOW, 0, sk, &g, &s, &err),
		-EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_check),
		cmocka_unit_test(test_signed_bytes),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_issue_errors),
	};

	if (sodium_init() < 0)
		return 1;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
