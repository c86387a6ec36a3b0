/*
 * The operator ACL check (coordinator/acl.c) on a real server and store:
 * a test server authorises each call as the coordinator's front door
 * does and answers the allowed ones; tokens and policies are put into the
 * ACL's memory directly. Policy semantics: namespace globs, capability
 * lists, deny overriding, fleet-wide levels, the anonymous policy,
 * expiry, management, and the policy checks' messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl-internal.h"
#include "coordinator.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#define M(x) FLOTILLA__METHOD__METHOD_##x

typedef struct fx {
	char dir[64];
	flt_store_t *store;
	coord_writer_t *writer;
	coord_acl_t *acl;
	flt_server_t *srv;
	flt_client_t *cl;
	char url[96];
} fx_t;

static void handler(flt_request_t *r, void *arg)
{
	fx_t *fx = arg;
	const coord_method_t *row =
		coord_api_method(flt_request_envelope(r)->method);
	if (coord_acl_authorize(fx->acl, r, row) < 0)
		return;
	Flotilla__AclListRequest empty = FLOTILLA__ACL_LIST_REQUEST__INIT;
	flt_request_reply(r, &empty.base);
}

static int setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	flt_error_t err;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/flt-acl.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	static const char *const dbs[] = { "acl_tokens", "acl_policies",
					   "acl_meta", "audit", NULL };
	flt_store_opts_t so = { .dbs = dbs, .map_size = 64 << 20 };
	assert_int_equal(flt_store_open(fx->dir, &so, &fx->store, &err), 0);
	assert_int_equal(coord_writer_start(fx->store, &fx->writer, &err), 0);
	coord_acl_opts_t ao = { .store = fx->store,
				.writer = fx->writer,
				.data_dir = fx->dir,
				.enforce = true };
	assert_int_equal(coord_acl_open(&ao, &fx->acl, &err), 0);
	snprintf(fx->url, sizeof(fx->url), "ipc://%s/api.sock", fx->dir);
	flt_server_opts_t o = { .url = fx->url,
				.workers = 4,
				.handler = handler,
				.arg = fx,
				.name = "test" };
	assert_int_equal(flt_server_open(&o, &fx->srv, &err), 0);
	flt_client_opts_t co = { .url = fx->url };
	assert_int_equal(flt_client_open(&co, &fx->cl, &err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	flt_client_close(fx->cl);
	flt_server_close(fx->srv);
	coord_writer_stop(fx->writer);
	coord_acl_close(fx->acl);
	coord_writer_free(fx->writer);
	flt_store_close(fx->store);
	flt_rm_rf(fx->dir, 0);
	free(fx);
	return 0;
}

/* A token with these policies (NULL-ended), its secret in secret. */
static void token(fx_t *fx, const char *type, int64_t expires_ms,
		  char secret[37], ...)
{
	Flotilla__AclToken *t = calloc(1, sizeof(*t));
	flotilla__acl_token__init(t);
	char acc[37];
	flt_uuid_v4(acc);
	flt_uuid_v4(secret);
	t->accessor_id = strdup(acc);
	t->name = strdup("test");
	t->type = strdup(type);
	t->expires_ms = expires_ms;
	t->secret_hash.len = crypto_hash_sha256_BYTES;
	t->secret_hash.data = malloc(crypto_hash_sha256_BYTES);
	crypto_hash_sha256(t->secret_hash.data, (unsigned char *)secret,
			   strlen(secret));
	va_list ap;
	va_start(ap, secret);
	const char *p;
	while ((p = va_arg(ap, const char *))) {
		t->policies = realloc(t->policies,
				      (t->n_policies + 1) * sizeof(char *));
		t->policies[t->n_policies++] = strdup(p);
	}
	va_end(ap);
	acl_tok_put(fx->acl, t);
}

static void policy(fx_t *fx, const char *json)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	assert_non_null(j);
	Flotilla__AclPolicy *p;
	flt_error_t err;
	assert_int_equal(flt_pb_from_json(&flotilla__acl_policy__descriptor, j,
					  (ProtobufCMessage **)&p, &err),
			 0);
	json_decref(j);
	if (acl_policy_check(p, &err) < 0)
		fail_msg("policy %s: %s", json, err.msg);
	acl_pol_put(fx->acl, p);
}

/* Calls m as secret (NULL: none) in ns: 0 when allowed, else the code;
 * the message in msg. */
static int call(fx_t *fx, Flotilla__Method m, const char *secret,
		const char *ns, char *msg)
{
	Flotilla__Credentials cr = FLOTILLA__CREDENTIALS__INIT;
	cr.token = (char *)(secret ? secret : "");
	flt_client_set_namespace(fx->cl, ns);
	Flotilla__AclListRequest empty = FLOTILLA__ACL_LIST_REQUEST__INIT;
	flt_error_t err = { 0 };
	int rc = flt_client_call(fx->cl, m, secret ? &cr : NULL, &empty.base,
				 NULL, NULL, 5000, &err);
	if (msg)
		snprintf(msg, FLT_ERROR_MSG_MAX, "%s", rc ? err.msg : "");
	return rc;
}

static void namespaces_globs_and_deny(void **state)
{
	fx_t *fx = *state;
	char s[37], msg[FLT_ERROR_MSG_MAX];
	policy(fx, "{\"name\": \"teams\", \"namespaces\": ["
		   "{\"name\": \"team-*\", \"policy\": \"write\"},"
		   "{\"name\": \"team-secret\", \"policy\": \"deny\"},"
		   "{\"name\": \"ops\", \"capabilities\": [\"read-job\","
		   " \"read-logs\"]}]}");
	token(fx, "client", 0, s, "teams", NULL);
	assert_int_equal(call(fx, M(JOB_REGISTER), s, "team-x", msg), 0);
	assert_int_equal(call(fx, M(JOB_STOP), s, "team-x", msg), 0);
	assert_int_equal(call(fx, M(JOB_REGISTER), s, "team-secret", msg),
			 FLT_EDENIED);
	assert_non_null(strstr(msg, "job register needs namespace:submit-job "
				    "in namespace team-secret"));
	assert_int_equal(call(fx, M(JOB_GET), s, "team-secret", msg),
			 FLT_EDENIED);
	assert_int_equal(call(fx, M(JOB_GET), s, "ops", msg), 0);
	assert_int_equal(call(fx, M(JOB_STOP), s, "ops", msg), FLT_EDENIED);
	assert_int_equal(call(fx, M(JOB_GET), s, "default", msg), FLT_EDENIED);
	assert_int_equal(call(fx, M(JOB_GET), s, NULL, msg), FLT_EDENIED);
	assert_non_null(strstr(msg, "in namespace default"));
	/* Fleet-wide: nothing granted. */
	assert_int_equal(call(fx, M(NODE_LIST), s, "team-x", msg), FLT_EDENIED);
	assert_non_null(strstr(msg, "needs node:read"));
	assert_non_null(strstr(msg, "policies teams) does not grant it"));
	/* "*" lists what may be read, and only for job list. */
	assert_int_equal(call(fx, M(JOB_LIST), s, "*", msg), 0);
	assert_int_equal(call(fx, M(JOB_GET), s, "*", msg), FLT_EPROTO);
	assert_non_null(strstr(msg, "only job list takes every namespace"));
	/* Privileged is never part of write. */
	assert_int_equal(call(fx, M(ACL_TOKEN_SELF), s, NULL, msg), 0);
}

static void fleet_levels_and_deny_wins(void **state)
{
	fx_t *fx = *state;
	char s[37], both[37], msg[FLT_ERROR_MSG_MAX];
	policy(fx, "{\"name\": \"nodes-w\", \"node\": \"write\","
		   " \"campaign\": \"read\"}");
	policy(fx, "{\"name\": \"no-nodes\", \"node\": \"deny\"}");
	token(fx, "client", 0, s, "nodes-w", NULL);
	token(fx, "client", 0, both, "nodes-w", "no-nodes", NULL);
	assert_int_equal(call(fx, M(NODE_DRAIN), s, NULL, msg), 0);
	assert_int_equal(call(fx, M(NODE_LIST), s, NULL, msg), 0);
	assert_int_equal(call(fx, M(CAMPAIGN_LIST), s, NULL, msg), 0);
	assert_int_equal(call(fx, M(CAMPAIGN_CREATE), s, NULL, msg),
			 FLT_EDENIED);
	assert_non_null(strstr(msg, "needs campaign:write"));
	assert_int_equal(call(fx, M(NODE_LIST), both, NULL, msg), FLT_EDENIED);
	assert_int_equal(call(fx, M(ACL_TOKEN_CREATE), s, NULL, msg),
			 FLT_EDENIED);
	assert_non_null(strstr(msg, "needs management"));
}

static void anonymous_expired_management(void **state)
{
	fx_t *fx = *state;
	char m[37], old[37], msg[FLT_ERROR_MSG_MAX];
	assert_int_equal(call(fx, M(NODE_LIST), NULL, NULL, msg), FLT_EDENIED);
	assert_non_null(strstr(msg, "the call carried no ACL token"));
	assert_int_equal(call(fx, M(ACL_BOOTSTRAP), NULL, NULL, msg), 0);
	policy(fx, "{\"name\": \"anonymous\", \"node\": \"read\"}");
	assert_int_equal(call(fx, M(NODE_LIST), NULL, NULL, msg), 0);
	assert_int_equal(call(fx, M(NODE_DRAIN), NULL, NULL, msg), FLT_EDENIED);
	assert_int_equal(call(fx, M(ACL_TOKEN_SELF), NULL, NULL, msg),
			 FLT_EDENIED);
	token(fx, "management", 0, m, NULL);
	size_t n;
	const coord_method_t *rows = coord_api_methods(&n);
	for (size_t i = 0; i < n; i++) {
		const coord_method_t *row = &rows[i];
		if (row->port != COORD_PORT_OPERATOR)
			continue;
		if (call(fx, row->method, m, "any", msg) != 0)
			fail_msg("%s refused to management: %s",
				 flt_method_name(row->method), msg);
	}
	token(fx, "client", flt_now_wall_ms() - 1000, old, "anonymous", NULL);
	assert_int_equal(call(fx, M(NODE_LIST), old, NULL, msg), FLT_EAUTH);
	assert_non_null(strstr(msg, "expired at"));
	assert_int_equal(call(fx, M(NODE_LIST), "no-such-secret", NULL, msg),
			 FLT_EAUTH);
	assert_non_null(strstr(msg, "ACL token not found"));
}

static void policy_checks(void **state)
{
	(void)state;
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "{\"name\": \"x y\"}", "policy.name" },
		{ "{\"name\": \"p\", \"namespaces\": [{\"name\": \"A\","
		  " \"policy\": \"read\"}]}",
		  "policy.namespaces[0].name" },
		{ "{\"name\": \"p\", \"namespaces\": [{\"name\": \"a\","
		  " \"policy\": \"all\"}]}",
		  "policy.namespaces[0].policy" },
		{ "{\"name\": \"p\", \"namespaces\": [{\"name\": \"a\"}]}",
		  "grants nothing" },
		{ "{\"name\": \"p\", \"namespaces\": [{\"name\": \"a\","
		  " \"capabilities\": [\"read-job\", \"exec\"]}]}",
		  "capabilities[1]: \"exec\" is not one of" },
		{ "{\"name\": \"p\", \"inventory\": \"write\"}",
		  "policy.inventory: \"deny\" or \"read\"" },
		{ "{\"name\": \"p\", \"node\": \"all\"}", "policy.node" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i].json, 0, NULL);
		Flotilla__AclPolicy *p;
		flt_error_t err;
		assert_int_equal(
			flt_pb_from_json(&flotilla__acl_policy__descriptor, j,
					 (ProtobufCMessage **)&p, &err),
			0);
		json_decref(j);
		assert_int_equal(acl_policy_check(p, &err), FLT_EPROTO);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].json,
				 err.msg, bad[i].msg);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(namespaces_globs_and_deny,
						setup, teardown),
		cmocka_unit_test_setup_teardown(fleet_levels_and_deny_wins,
						setup, teardown),
		cmocka_unit_test_setup_teardown(anonymous_expired_management,
						setup, teardown),
		cmocka_unit_test(policy_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
