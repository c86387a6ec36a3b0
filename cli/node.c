/* flotilla node ...: the fleet's nodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "flotilla/flags.h"
#include "flotilla/util.h"

static bool json_out;
static bool verbose;

static const flt_flag_t list_flags[] = {
	{ "json", FLT_FLAG_BOOL, &json_out, NULL, "print JSON", 0, 0, NULL },
	{ "verbose", FLT_FLAG_BOOL, &verbose, NULL, "print full ids", 0, 0,
	  NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static int parse(const char *usage, int argc, char **argv, int want_args,
		 int *next)
{
	flt_error_t err;
	int rc = flt_flags_parse(list_flags, argc, argv, next, &err);
	if (rc == 1) {
		flt_flags_usage(stdout, usage, list_flags);
		return 0;
	}
	if (rc < 0)
		return cli_fail("%s", err.msg) + 1;
	/* Flags may also follow the operand: "node status web-1 --json". */
	if (*next < argc && want_args) {
		int op = *next;
		int rest;
		rc = flt_flags_parse(list_flags, argc - op, argv + op, &rest,
				     &err);
		if (rc < 0)
			return cli_fail("%s", err.msg) + 1;
		if (op + rest != argc)
			return cli_fail("unexpected argument \"%s\"",
					argv[op + rest]) + 1;
		*next = op;
		/* One operand, then only flags. */
		return want_args == 1 ? -1 : cli_fail("%s", usage) + 1;
	}
	if (argc - *next != want_args)
		return cli_fail("%s", usage) + 1;
	return -1;
}

static void labels_str(const Flotilla__Node *n, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n->n_labels && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s=%s",
					i ? "," : "", n->labels[i]->key,
					n->labels[i]->value);
	if (!n->n_labels)
		snprintf(buf, len, "-");
}

static int64_t parse_time(const char *s)
{
	struct tm tm = { 0 };
	int ms = 0;
	if (!*s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	const char *dot = strchr(s, '.');
	if (dot)
		ms = atoi(dot + 1);
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static int by_name(const void *a, const void *b)
{
	const Flotilla__Node *x = *(Flotilla__Node *const *)a;
	const Flotilla__Node *y = *(Flotilla__Node *const *)b;
	int r = strcmp(x->name, y->name);
	return r ? r : strcmp(x->id, y->id);
}

static int node_list(cli_t *c, int argc, char **argv)
{
	Flotilla__NodeListRequest req = FLOTILLA__NODE_LIST_REQUEST__INIT;
	Flotilla__NodeListResponse *resp;
	int next;
	int rc = parse("Usage: flotilla node list [--json] [--verbose]", argc,
		       argv, 0, &next);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_NODE_LIST, &req.base,
			   &flotilla__node_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (resp->n_nodes > 1)
		qsort(resp->nodes, resp->n_nodes, sizeof(*resp->nodes), by_name);
	if (json_out) {
		json_t *a = json_array();
		for (size_t i = 0; i < resp->n_nodes; i++)
			json_array_append_new(
				a, flt_pb_to_json(&resp->nodes[i]->base));
		cli_print_json(a);
	} else {
		int64_t now = flt_now_wall_ms();
		int idw = verbose ? 36 : 8;
		printf("%-*s  %-20s  %-12s  %-22s  %-14s  %s\n", idw, "ID",
		       "NAME", "STATUS", "ADDRESS", "LAST HEARTBEAT",
		       "LABELS");
		for (size_t i = 0; i < resp->n_nodes; i++) {
			const Flotilla__Node *n = resp->nodes[i];
			char age[32], labels[512];
			flt_format_age(parse_time(n->last_heartbeat), now, age,
				       sizeof(age));
			labels_str(n, labels, sizeof(labels));
			printf("%-*.*s  %-20s  %-12s  %-22s  %-14s  %s\n", idw,
			       idw, n->id, n->name, n->status,
			       *n->address ? n->address : "-", age, labels);
		}
	}
	flotilla__node_list_response__free_unpacked(resp, NULL);
	return 0;
}

static int node_status(cli_t *c, int argc, char **argv)
{
	Flotilla__NodeGetRequest req = FLOTILLA__NODE_GET_REQUEST__INIT;
	Flotilla__NodeGetResponse *resp;
	int next;
	int rc = parse("Usage: flotilla node status NODE [--json]", argc, argv,
		       1, &next);
	if (rc >= 0)
		return rc;
	req.node = argv[next];
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_NODE_GET, &req.base,
			   &flotilla__node_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	const Flotilla__Node *n = resp->node;
	if (!n) {
		flotilla__node_get_response__free_unpacked(resp, NULL);
		return cli_fail("bad reply: no node");
	}
	if (json_out) {
		cli_print_json(flt_pb_to_json(&n->base));
	} else {
		char age[32], labels[512];
		flt_format_age(parse_time(n->last_heartbeat),
			       flt_now_wall_ms(), age, sizeof(age));
		labels_str(n, labels, sizeof(labels));
		printf("ID              = %s\n", n->id);
		printf("Name            = %s\n", n->name);
		printf("Status          = %s (since %s)\n", n->status,
		       n->status_changed_at);
		printf("Last heartbeat  = %s\n", age);
		printf("Address         = %s\n", *n->address ? n->address : "-");
		printf("Registered      = %s\n", n->registered_at);
		printf("Labels          = %s\n", labels);
		const Flotilla__Fingerprint *f = n->attributes;
		if (f) {
			printf("\nAttributes\n");
			printf("  hostname        = %s\n", f->hostname);
			printf("  os              = %s (%s %s)\n", f->os_name,
			       f->os_id, f->os_version);
			printf("  kernel          = %s\n", f->kernel);
			printf("  arch            = %s\n", f->arch);
			printf("  cpu.count       = %u\n", f->cpu_count);
			printf("  memory          = %.1f GiB\n",
			       (double)f->memory_bytes / (1 << 30));
			printf("  cgroup          = %s\n", f->cgroup_version);
			printf("  agent.version   = %s\n", f->agent_version);
		}
		if (n->n_tasks) {
			static const char *const states[] = {
				"unknown", "pending", "running", "restarting",
				"exited",  "failed",  "stopped"
			};
			printf("\nTasks\n  %-20s %-11s %-8s %-8s %-6s %s\n",
			       "NAME", "STATE", "HEALTHY", "RESTARTS", "EXIT",
			       "MESSAGE");
			for (size_t i = 0; i < n->n_tasks; i++) {
				const Flotilla__TaskStatus *t = n->tasks[i];
				char exit_s[16] = "-";
				if (t->exit_signal)
					snprintf(exit_s, sizeof(exit_s), "sig%d",
						 t->exit_signal);
				else if (t->exit_code >= 0)
					snprintf(exit_s, sizeof(exit_s), "%d",
						 t->exit_code);
				unsigned st = (unsigned)t->state < 7
						      ? (unsigned)t->state
						      : 0;
				printf("  %-20s %-11s %-8s %-8u %-6s %s\n",
				       t->name, states[st],
				       t->healthy ? "yes" : "no", t->restarts,
				       exit_s, t->message);
			}
		}
	}
	flotilla__node_get_response__free_unpacked(resp, NULL);
	return 0;
}

const cli_cmd_t cli_node_cmds[] = {
	{ "node", "list", "[--json]", "list the fleet's nodes", node_list },
	{ "node", "status", "NODE [--json]",
	  "show one node (id, id prefix or name)", node_status },
	{ NULL, NULL, NULL, NULL, NULL },
};
