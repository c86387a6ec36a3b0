/* flotilla acl ... and flotilla audit ...: operator identity. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define POLICY_FILE_MAX (1u << 20)
#define TTL_MAX_MS (10ull * 365 * 24 * 3600 * 1000)

/* v[0..n) joined by sep into buf (cut at its end). Returns buf. */
static const char *join(char *buf, size_t len, char *const *v, size_t n,
			const char *sep)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? sep : "",
				      v[i]);
	return buf;
}

static void print_token(const Flotilla__AclToken *t, const char *secret)
{
	char created[40], expires[40];
	flt_format_time(t->create_ms, created, sizeof(created));
	cli_kv("Accessor ID", "%s", t->accessor_id);
	if (secret && *secret)
		cli_kv("Secret ID", "%s", secret);
	cli_kv("Name", "%s", t->name);
	cli_kv("Type", "%s", t->type);
	char pols[1024];
	join(pols, sizeof(pols), t->policies, t->n_policies, ", ");
	cli_kv("Policies", "%s", cli_dash(pols));
	cli_kv("Created", "%s", created);
	if (t->expires_ms) {
		flt_format_time(t->expires_ms, expires, sizeof(expires));
		cli_kv("Expires", "%s%s", expires,
		       t->expires_ms <= flt_now_wall_ms() ? " (expired)" : "");
	} else {
		cli_kv("Expires", "never");
	}
}

static int token_reply(cli_t *c, Flotilla__Method m,
		       const ProtobufCMessage *req, bool json)
{
	cleanup_pb Flotilla__AclTokenResponse *resp = NULL;
	int rc = cli_call(c, m, req, &flotilla__acl_token_response__descriptor,
			  (ProtobufCMessage **)&resp);
	if (rc != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
		return 0;
	}
	if (!resp->token)
		return cli_bad_reply((ProtobufCMessage **)&resp, "token");
	print_token(resp->token, resp->secret_id);
	return 0;
}

static int acl_bootstrap(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AclBootstrapRequest req =
		FLOTILLA__ACL_BOOTSTRAP_REQUEST__INIT;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	return token_reply(c, FLOTILLA__METHOD__METHOD_ACL_BOOTSTRAP, &req.base,
			   json);
}

static int token_create(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AclTokenCreateRequest req =
		FLOTILLA__ACL_TOKEN_CREATE_REQUEST__INIT;
	const char *name = NULL, *type = NULL, *ttl = NULL;
	flt_strlist_t policies = { 0 };
	bool json = false;
	const flt_flag_t flags[] = {
		{ "name", FLT_FLAG_STRING, &name, "NAME",
		  "what the token is for (required)", 0, 0, NULL },
		{ "type", FLT_FLAG_STRING, &type, "client|management",
		  "client (default: the grants of its policies) or "
		  "management (everything)",
		  0, 0, NULL },
		{ "policy", FLT_FLAG_LIST, &policies, "NAME",
		  "a policy the token holds (repeatable)", 0, 0, NULL },
		{ "ttl", FLT_FLAG_STRING, &ttl, "DURATION",
		  "expire after this long (e.g. 8h, 30d; default: never)", 0, 0,
		  NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END
	};
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		goto out;
	if (!name || !*name) {
		rc = cli_usage_fail(cmd, "--name is required");
		goto out;
	}
	if (ttl) {
		uint64_t ms;
		flt_error_t err;
		if (flt_duration_parse(ttl, TTL_MAX_MS, &ms, &err) < 0) {
			rc = cli_usage_fail(cmd, "--ttl: %s", err.msg);
			goto out;
		}
		req.ttl_ms = ms;
	}
	req.name = (char *)name;
	req.type = (char *)(type ? type : "");
	req.n_policies = policies.n;
	req.policies = (char **)policies.v;
	rc = token_reply(c, FLOTILLA__METHOD__METHOD_ACL_TOKEN_CREATE,
			 &req.base, json);
out:
	free(policies.v);
	return rc;
}

typedef int (*reply_fn)(cli_t *c, Flotilla__Method m,
			const ProtobufCMessage *req, bool json);

/* A command on one token or policy: ACCESSOR or NAME [--json]. */
static int by_key(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv,
		  Flotilla__Method m, reply_fn reply)
{
	Flotilla__AclGetRequest req = FLOTILLA__ACL_GET_REQUEST__INIT;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, (const char **)&req.id);
	if (rc >= 0)
		return rc;
	return reply(c, m, &req.base, json);
}

static int token_info(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return by_key(c, cmd, argc, argv,
		      FLOTILLA__METHOD__METHOD_ACL_TOKEN_GET, token_reply);
}

static int token_delete(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return by_key(c, cmd, argc, argv,
		      FLOTILLA__METHOD__METHOD_ACL_TOKEN_DELETE, token_reply);
}

static int token_self(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AclListRequest req = FLOTILLA__ACL_LIST_REQUEST__INIT;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	return token_reply(c, FLOTILLA__METHOD__METHOD_ACL_TOKEN_SELF,
			   &req.base, json);
}

static int token_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AclListRequest req = FLOTILLA__ACL_LIST_REQUEST__INIT;
	cleanup_pb Flotilla__AclTokenListResponse *resp = NULL;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_ACL_TOKEN_LIST,
			   &req.base,
			   &flotilla__acl_token_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(
			cli_json_array((ProtobufCMessage *const *)resp->tokens,
				       resp->n_tokens));
		return 0;
	}
	cli_table_t t;
	cli_table_init(&t, 5, "ACCESSOR", "NAME", "TYPE", "POLICIES",
		       "EXPIRES");
	int64_t now = flt_now_wall_ms();
	for (size_t i = 0; i < resp->n_tokens; i++) {
		const Flotilla__AclToken *k = resp->tokens[i];
		char acc[9], pols[512], exp[48] = "never";
		snprintf(acc, sizeof(acc), "%.8s", k->accessor_id);
		join(pols, sizeof(pols), k->policies, k->n_policies, ",");
		if (k->expires_ms && k->expires_ms <= now)
			snprintf(exp, sizeof(exp), "expired");
		else if (k->expires_ms)
			flt_format_time(k->expires_ms, exp, sizeof(exp));
		cli_table_row(&t, acc, k->name, k->type, pols, exp);
	}
	cli_table_print(&t, "");
	return 0;
}

/* ---- policies ------------------------------------------------------------- */

static void print_policy(const Flotilla__AclPolicy *p)
{
	cli_kv("Name", "%s", p->name);
	cli_kv("Description", "%s", cli_dash(p->description));
	cli_kv("Node", "%s", cli_dash(p->node));
	cli_kv("Package", "%s", cli_dash(p->package));
	cli_kv("Inventory", "%s", cli_dash(p->inventory));
	cli_kv("Campaign", "%s", cli_dash(p->campaign));
	cli_kv("Audit", "%s", cli_dash(p->audit));
	if (!p->n_namespaces)
		return;
	cli_printf("\nNamespaces\n");
	cli_table_t t;
	cli_table_init(&t, 3, "NAME", "POLICY", "CAPABILITIES");
	for (size_t i = 0; i < p->n_namespaces; i++) {
		const Flotilla__AclNamespaceRule *r = p->namespaces[i];
		char caps[512];
		join(caps, sizeof(caps), r->capabilities, r->n_capabilities,
		     ",");
		cli_table_row(&t, r->name, r->policy, caps);
	}
	cli_table_print(&t, "");
}

static int policy_reply(cli_t *c, Flotilla__Method m,
			const ProtobufCMessage *req, bool json)
{
	cleanup_pb Flotilla__AclPolicyResponse *resp = NULL;
	int rc = cli_call(c, m, req, &flotilla__acl_policy_response__descriptor,
			  (ProtobufCMessage **)&resp);
	if (rc != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
		return 0;
	}
	if (!resp->policy)
		return cli_bad_reply((ProtobufCMessage **)&resp, "policy");
	print_policy(resp->policy);
	return 0;
}

/* A policy file: JSON with the fields of AclPolicy (flotilla.proto), its
 * name given on the command line. */
static int load_policy(const char *path, Flotilla__AclPolicy **out)
{
	cleanup_free char *text = NULL;
	int rc = flt_read_file(path, POLICY_FILE_MAX, &text);
	if (rc < 0)
		return cli_fail("%s: %s", path,
				rc == -EFBIG ? "larger than 1 MiB"
					     : strerror(-rc));
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		return cli_fail("%s: line %d: %s", path, je.line, je.text);
	flt_error_t err;
	rc = flt_pb_from_json(&flotilla__acl_policy__descriptor, j,
			      (ProtobufCMessage **)out, &err);
	json_decref(j);
	if (rc < 0)
		return cli_fail("%s: %s", path, err.msg);
	return 0;
}

static int policy_apply(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AclPolicyApplyRequest req =
		FLOTILLA__ACL_POLICY_APPLY_REQUEST__INIT;
	const char *ops[2];
	const char *desc = NULL;
	bool json = false;
	const flt_flag_t flags[] = { { "description", FLT_FLAG_STRING, &desc,
				       "TEXT", "what the policy is for", 0, 0,
				       NULL },
				     CLI_FLAG_JSON(&json),
				     CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 2, 2, ops);
	if (rc >= 0)
		return rc;
	cleanup_pb Flotilla__AclPolicy *p = NULL;
	if ((rc = load_policy(ops[1], &p)) != 0)
		return rc;
	if (*p->name && strcmp(p->name, ops[0]) != 0)
		return cli_fail("%s: name \"%s\" differs from the command "
				"line's \"%s\"",
				ops[1], p->name, ops[0]);
	flt_pb_set_str(&p->name, ops[0]);
	if (desc)
		flt_pb_set_str(&p->description, desc);
	req.policy = p;
	return policy_reply(c, FLOTILLA__METHOD__METHOD_ACL_POLICY_APPLY,
			    &req.base, json);
}

static int policy_info(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return by_key(c, cmd, argc, argv,
		      FLOTILLA__METHOD__METHOD_ACL_POLICY_GET, policy_reply);
}

static int policy_delete(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return by_key(c, cmd, argc, argv,
		      FLOTILLA__METHOD__METHOD_ACL_POLICY_DELETE, policy_reply);
}

static int policy_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AclListRequest req = FLOTILLA__ACL_LIST_REQUEST__INIT;
	cleanup_pb Flotilla__AclPolicyListResponse *resp = NULL;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_ACL_POLICY_LIST,
			   &req.base,
			   &flotilla__acl_policy_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(cli_json_array(
			(ProtobufCMessage *const *)resp->policies,
			resp->n_policies));
		return 0;
	}
	cli_table_t t;
	cli_table_init(&t, 3, "NAME", "NAMESPACES", "DESCRIPTION");
	for (size_t i = 0; i < resp->n_policies; i++) {
		const Flotilla__AclPolicy *p = resp->policies[i];
		char ns[512] = "";
		size_t o = 0;
		for (size_t k = 0; k < p->n_namespaces && o < sizeof(ns); k++)
			o += (size_t)snprintf(ns + o, sizeof(ns) - o, "%s%s:%s",
					      k ? "," : "",
					      p->namespaces[k]->name,
					      *p->namespaces[k]->policy
						      ? p->namespaces[k]->policy
						      : "caps");
		cli_table_row(&t, p->name, ns, p->description);
	}
	cli_table_print(&t, "");
	return 0;
}

/* ---- audit --------------------------------------------------------------- */

static int audit_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AuditListRequest req = FLOTILLA__AUDIT_LIST_REQUEST__INIT;
	cleanup_pb Flotilla__AuditListResponse *resp = NULL;
	const char *since = NULL, *who = NULL;
	long limit = 0;
	bool json = false;
	const flt_flag_t flags[] = {
		{ "since", FLT_FLAG_STRING, &since, "DURATION|TIME",
		  "only records this recent (1h, 7d) or from this time "
		  "(2026-12-01T00:00:00Z)",
		  0, 0, NULL },
		{ "who", FLT_FLAG_STRING, &who, "WHO",
		  "only this caller: a token's accessor id (or prefix) or "
		  "name, or anonymous",
		  0, 0, NULL },
		{ "limit", FLT_FLAG_INT, &limit, "N",
		  "the newest N records (default 1000)", 1, 100000, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END
	};
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if (since) {
		uint64_t ms;
		flt_error_t err;
		int64_t at = cli_parse_time(since);
		if (at > 0)
			req.since_ms = at;
		else if (flt_duration_parse(since, TTL_MAX_MS, &ms, &err) == 0)
			req.since_ms = flt_now_wall_ms() - (int64_t)ms;
		else
			return cli_usage_fail(cmd,
					      "--since: a duration (1h, 7d) or "
					      "an RFC 3339 UTC time, not '%s'",
					      since);
	}
	req.who = (char *)(who ? who : "");
	req.limit = (uint32_t)limit;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_AUDIT_LIST, &req.base,
			   &flotilla__audit_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(
			cli_json_array((ProtobufCMessage *const *)resp->events,
				       resp->n_events));
		return 0;
	}
	cli_table_t t;
	cli_table_init(&t, 7, "TIME", "WHO", "METHOD", "NAMESPACE", "TARGET",
		       "RESULT", "PEER");
	for (size_t i = 0; i < resp->n_events; i++) {
		const Flotilla__AuditEvent *e = resp->events[i];
		char when[40], who_s[200], result[600];
		flt_format_time(e->time_ms, when, sizeof(when));
		if (*e->who_name)
			snprintf(who_s, sizeof(who_s), "%.14s (%s)", e->who,
				 e->who_name);
		else
			snprintf(who_s, sizeof(who_s), "%s", e->who);
		snprintf(result, sizeof(result), "%s%s%s",
			 e->ok ? "ok" : "refused", *e->error ? ": " : "",
			 e->error);
		cli_table_row(&t, when, who_s, e->method, e->namespace_,
			      e->target, result, e->peer);
	}
	cli_table_print(&t, "");
	return 0;
}

static const cli_cmd_t token_cmds[] = {
	{ "acl token", "create",
	  "--name NAME [--type client|management] [--policy NAME]... "
	  "[--ttl DURATION] [--json]",
	  "create an ACL token (prints its secret id once)", token_create },
	{ "acl token", "list", "[--json]", "list the ACL tokens", token_list },
	{ "acl token", "info", "ACCESSOR [--json]", "show one ACL token",
	  token_info },
	{ "acl token", "delete", "ACCESSOR [--json]",
	  "delete an ACL token: it stops working at once", token_delete },
	{ "acl token", "self", "[--json]", "show the token this call carries",
	  token_self },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const cli_cmd_t policy_cmds[] = {
	{ "acl policy", "apply", "NAME FILE [--description TEXT] [--json]",
	  "create or replace an ACL policy from a JSON file", policy_apply },
	{ "acl policy", "list", "[--json]", "list the ACL policies",
	  policy_list },
	{ "acl policy", "info", "NAME [--json]", "show one ACL policy",
	  policy_info },
	{ "acl policy", "delete", "NAME [--json]", "delete an ACL policy",
	  policy_delete },
	{ NULL, NULL, NULL, NULL, NULL },
};

/* "acl token create ...": argv[0] is "token", argv[1] the command. */
static int sub(cli_t *c, const cli_cmd_t *cmd, const cli_cmd_t *tab, int argc,
	       char **argv)
{
	const char *names[16];
	size_t n = 0;
	for (const cli_cmd_t *t = tab; t->group && n < 16; t++)
		names[n++] = t->name;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		FILE *f = argc < 2 ? stderr : stdout;
		fprintf(f,
			"Usage: flotilla %s %s COMMAND [ARGS] (COMMAND "
			"--help shows one)\n\nCommands:\n",
			cmd->group, cmd->name);
		for (const cli_cmd_t *t = tab; t->group; t++)
			fprintf(f, "  flotilla %s %s %s\n      %s\n", t->group,
				t->name, t->args, t->help);
		if (argc < 2)
			cli_fail("missing command after \"%s %s\"", cmd->group,
				 cmd->name);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	for (const cli_cmd_t *t = tab; t->group; t++)
		if (strcmp(t->name, argv[1]) == 0)
			return t->run(c, t, argc - 1, argv + 1);
	const char *near = flt_nearest(argv[1], names, n, 2);
	if (near)
		cli_fail("unknown command \"%s %s %s\"; did you mean \"%s %s "
			 "%s\"?",
			 cmd->group, cmd->name, argv[1], cmd->group, cmd->name,
			 near);
	else
		cli_fail("unknown command \"%s %s %s\" (see flotilla %s %s "
			 "--help)",
			 cmd->group, cmd->name, argv[1], cmd->group, cmd->name);
	return CLI_EXIT_USAGE;
}

static int acl_token(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return sub(c, cmd, token_cmds, argc, argv);
}

static int acl_policy(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	return sub(c, cmd, policy_cmds, argc, argv);
}

const cli_cmd_t cli_acl_cmds[] = {
	{ "acl", "bootstrap", "[--json]",
	  "create the first management token (works once)", acl_bootstrap },
	{ "acl", "token", "create|list|info|delete|self ...",
	  "ACL tokens (flotilla acl token --help)", acl_token },
	{ "acl", "policy", "apply|list|info|delete ...",
	  "ACL policies (flotilla acl policy --help)", acl_policy },
	{ NULL, NULL, NULL, NULL, NULL },
};

const cli_cmd_t cli_audit_cmds[] = {
	{ "audit", "list",
	  "[--since DURATION|TIME] [--who WHO] [--limit N] [--json]",
	  "the audit trail of state-changing calls", audit_list },
	{ NULL, NULL, NULL, NULL, NULL },
};
