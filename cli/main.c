/* flotilla: the command line for people and scripts. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flotilla/flags.h"
#include "flotilla/log.h"
#include "flotilla/util.h"

static cli_t cli = { .address = "tcp://127.0.0.1:4701", .timeout_ms = 10000 };

static const flt_flag_t flags[] = {
	{ "address", FLT_FLAG_STRING, &cli.address, "URL",
	  "the coordinator's API address", 0, 0, "FLOTILLA_ADDR" },
	{ "tls-ca", FLT_FLAG_STRING, &cli.tls.ca_file, "FILE",
	  "CA that signs the coordinator's certificate", 0, 0,
	  "FLOTILLA_TLS_CA" },
	{ "tls-cert", FLT_FLAG_STRING, &cli.tls.cert_file, "FILE",
	  "client certificate (PEM)", 0, 0, "FLOTILLA_TLS_CERT" },
	{ "tls-key", FLT_FLAG_STRING, &cli.tls.key_file, "FILE",
	  "client private key (PEM)", 0, 0, "FLOTILLA_TLS_KEY" },
	{ "timeout", FLT_FLAG_INT, &cli.timeout_ms, "MS",
	  "how long to wait for the coordinator (default 10000)", 1, 600000,
	  NULL },
	{ "token", FLT_FLAG_STRING, &cli.token, "SECRET",
	  "ACL token's secret id (prefer $FLOTILLA_TOKEN or --token-file: "
	  "a command line is visible to every user of the host)",
	  0, 0, "FLOTILLA_TOKEN" },
	{ "token-file", FLT_FLAG_STRING, &cli.token_file, "FILE",
	  "read the ACL token's secret id from FILE", 0, 0,
	  "FLOTILLA_TOKEN_FILE" },
	{ "namespace", FLT_FLAG_STRING, &cli.namespace_, "NAME",
	  "the namespace of jobs, allocations and deployments (default: "
	  "the job file's, else \"default\")",
	  0, 0, "FLOTILLA_NAMESPACE" },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

/*
 * How many edits away a command may be to be suggested for a typo: two,
 * or one for a word of three letters or fewer (any short word is two
 * edits from some command).
 */
#define CLI_SUGGEST_MAX(word) (strlen(word) <= 3 ? 1 : 2)

static const cli_cmd_t *const groups[] = {
	cli_node_cmds,
	cli_job_cmds,
	cli_alloc_cmds,
	cli_deployment_cmds,
	cli_package_cmds,
	cli_inventory_cmds,
	cli_campaign_cmds,
	cli_acl_cmds,
	cli_audit_cmds,
	cli_system_cmds,
	NULL,
};

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	/* What was printed so far comes first, even into one pipe. */
	fflush(stdout);
	fputs("flotilla: ", stderr);
	va_start(ap, fmt);
	cli_vprint_line(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_call_err(cli_t *c, Flotilla__Method method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc,
		 ProtobufCMessage **resp, flt_error_t *err)
{
	if (!c->client) {
		flt_client_opts_t o = { .url = c->address,
					.tls = &c->tls,
					.namespace_ = c->namespace_ };
		int rc = flt_client_open(&o, &c->client, err);
		if (rc < 0)
			return rc;
	}
	Flotilla__Credentials cr = FLOTILLA__CREDENTIALS__INIT;
	cr.token = c->secret;
	return flt_client_call(c->client, method, c->secret ? &cr : NULL, req,
			       resp_desc, resp, (int)c->timeout_ms, err);
}

void cli_use_namespace(cli_t *c, const char *ns)
{
	if (!c->namespace_ || !*c->namespace_)
		c->namespace_ = ns;
	if (c->client)
		flt_client_set_namespace(c->client, c->namespace_);
}

/* The token's secret id from --token, or the first line of --token-file
 * (surrounding white space dropped). */
static int load_secret(cli_t *c, flt_error_t *err)
{
	if (c->token && *c->token && c->token_file && *c->token_file)
		return flt_err(err, FLT_EUSAGE,
			       "--token and --token-file: give one of them");
	if (c->token && *c->token) {
		c->secret = flt_xstrdup(c->token);
	} else if (c->token_file && *c->token_file) {
		char *s = NULL;
		int rc = flt_read_file(c->token_file, 4096, &s);
		if (rc < 0)
			return flt_err(err, FLT_EUSAGE, "--token-file %s: %s",
				       c->token_file, flt_strerror(rc));
		char *b = s;
		while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
			b++;
		size_t n = strcspn(b, "\r\n");
		while (n && (b[n - 1] == ' ' || b[n - 1] == '\t'))
			n--;
		b[n] = '\0';
		c->secret = flt_xstrdup(b);
		explicit_bzero(s, strlen(s));
		free(s);
		if (!*c->secret)
			return flt_err(err, FLT_EUSAGE,
				       "--token-file %s: empty", c->token_file);
	}
	if (c->secret && strlen(c->secret) > FLT_TOKEN_MAX)
		return flt_err(err, FLT_EUSAGE,
			       "ACL token: at most %u characters",
			       FLT_TOKEN_MAX);
	if (c->namespace_ && *c->namespace_ &&
	    !flt_namespace_valid(c->namespace_) &&
	    strcmp(c->namespace_, "*") != 0)
		return flt_err(err, FLT_EUSAGE,
			       "--namespace %s: 1 to %d of a-z, 0-9 and '-', "
			       "not starting with '-'",
			       c->namespace_, FLT_NAMESPACE_MAX);
	return 0;
}

int cli_call(cli_t *c, Flotilla__Method method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc,
	     ProtobufCMessage **resp)
{
	flt_error_t err;
	if (cli_call_err(c, method, req, resp_desc, resp, &err) < 0)
		return cli_fail("%s", err.msg);
	return 0;
}

int cli_bad_reply(ProtobufCMessage **resp, const char *what)
{
	protobuf_c_message_free_unpacked(*resp, NULL);
	*resp = NULL;
	return cli_fail("bad reply: no %s", what);
}

void cli_print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
}

json_t *cli_json_array(ProtobufCMessage *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, flt_pb_to_json(v[i]));
	return a;
}

static void usage(FILE *f)
{
	char *text = NULL;
	size_t len = 0, w = 0;
	FILE *m = open_memstream(&text, &len);
	if (!m)
		return;
	for (size_t g = 0; groups[g]; g++)
		for (const cli_cmd_t *c = groups[g]; c->group; c++)
			if (strlen(c->group) + strlen(c->name) + 1 > w)
				w = strlen(c->group) + strlen(c->name) + 1;
	fprintf(m, "Usage: flotilla [OPTIONS] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t g = 0; groups[g]; g++)
		for (const cli_cmd_t *c = groups[g]; c->group; c++)
			fprintf(m, "  %s %-*s  %s\n", c->group,
				(int)(w - strlen(c->group) - 1), c->name,
				c->help);
	fprintf(m, "\n\"flotilla COMMAND --help\" shows a command's "
		   "arguments and options.");
	fclose(m);
	flt_flags_usage(f, text, flags);
	free(text);
}

/*
 * "unknown command" for group (and name when the group is known), with
 * the nearest command suggested when one is close enough to be a typo.
 */
static int unknown_command(const char *group, const char *name,
			   bool group_known)
{
	const char *cands[64];
	size_t n = 0;

	for (size_t g = 0; groups[g]; g++)
		for (const cli_cmd_t *c = groups[g];
		     c->group && n < FLT_ARRAY_SIZE(cands); c++) {
			if (group_known && strcmp(c->group, group) == 0)
				cands[n++] = c->name;
			else if (!group_known && c == groups[g])
				cands[n++] = c->group;
		}
	const char *word = group_known ? name : group;
	const char *near = flt_nearest(word, cands, n, CLI_SUGGEST_MAX(word));
	if (group_known && near)
		cli_fail("unknown command \"%s %s\"; did you mean \"%s %s\"?",
			 group, name, group, near);
	else if (group_known)
		cli_fail("unknown command \"%s %s\" (see flotilla --help)",
			 group, name);
	else if (near)
		cli_fail("unknown command \"%s\"; did you mean \"%s\"?", group,
			 near);
	else
		cli_fail("unknown command \"%s\" (see flotilla --help)", group);
	return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	flt_error_t err;
	int next;

	/* Library warnings (plain transport...) are for daemons' logs. */
	flt_log_init("flotilla", FLT_LOG_ERROR);
	int rc = flt_flags_parse(flags, argc, argv, &next, &err);
	if (rc == FLT_FLAGS_HELP) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (rc == FLT_FLAGS_VERSION) {
		printf("flotilla %s\n", FLT_VERSION);
		return CLI_EXIT_OK;
	}
	if (rc < 0) {
		cli_fail("%s", err.msg);
		return CLI_EXIT_USAGE;
	}
	if (next == argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (load_secret(&cli, &err) < 0) {
		cli_fail("%s", err.msg);
		return CLI_EXIT_USAGE;
	}
	const char *group = argv[next];
	const char *name = next + 1 < argc ? argv[next + 1] : NULL;
	rc = -1;
	bool group_known = false;
	for (size_t g = 0; groups[g] && rc < 0; g++)
		for (const cli_cmd_t *c = groups[g]; c->group; c++) {
			if (strcmp(c->group, group) != 0)
				continue;
			group_known = true;
			if (name && strcmp(c->name, name) == 0) {
				rc = c->run(&cli, c, argc - next - 1,
					    argv + next + 1);
				break;
			}
		}
	if (rc < 0 && group_known && !name) {
		cli_fail("missing command after \"%s\" (see flotilla --help)",
			 group);
		rc = CLI_EXIT_USAGE;
	} else if (rc < 0) {
		rc = unknown_command(group, name, group_known);
	}
	flt_client_close(cli.client);
	if (cli.secret) {
		explicit_bzero(cli.secret, strlen(cli.secret));
		free(cli.secret);
	}
	return rc;
}
