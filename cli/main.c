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
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

/*
 * How many edits away a command may be to be suggested for a typo: two,
 * or one for a word of three letters or fewer (any short word is two
 * edits from some command).
 */
#define CLI_SUGGEST_MAX(word) (strlen(word) <= 3 ? 1 : 2)

static const cli_cmd_t *const groups[] = {
	cli_node_cmds,     cli_job_cmds,
	cli_alloc_cmds,    cli_deployment_cmds,
	cli_package_cmds,  cli_inventory_cmds,
	cli_campaign_cmds, NULL,
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
		flt_client_opts_t o = { .url = c->address, .tls = &c->tls };
		int rc = flt_client_open(&o, &c->client, err);
		if (rc < 0)
			return rc;
	}
	return flt_client_call(c->client, method, NULL, req, resp_desc, resp,
			       (int)c->timeout_ms, err);
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
	return rc;
}
