/* flotilla node ...: the fleet's nodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flotilla/privilege.h"
#include "flotilla/util.h"

/* NodeDrainRequest.deadline_ms is a uint32. */
#define DRAIN_DEADLINE_MAX_MS 0xffffffffull

static void labels_str(const Flotilla__Node *n, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n->n_labels && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s=%s",
					i ? "," : "", n->labels[i]->key,
					n->labels[i]->value);
}

static int by_name(const void *a, const void *b)
{
	const Flotilla__Node *x = *(Flotilla__Node *const *)a;
	const Flotilla__Node *y = *(Flotilla__Node *const *)b;
	int r = strcmp(x->name, y->name);
	return r ? r : strcmp(x->id, y->id);
}

static void print_nodes(const Flotilla__NodeListResponse *r, bool verbose)
{
	cli_table_t t;
	cli_table_init(&t, 8, "ID", "NAME", "STATUS", "ELIGIBLE", "DRAIN",
		       "ADDRESS", "LAST HEARTBEAT", "LABELS");
	for (size_t i = 0; i < r->n_nodes; i++) {
		const Flotilla__Node *n = r->nodes[i];
		char id[40], age[32], labels[512];
		snprintf(id, sizeof(id), "%.*s", verbose ? 36 : 8, n->id);
		cli_age(cli_parse_time(n->last_heartbeat), age, sizeof(age));
		labels_str(n, labels, sizeof(labels));
		cli_table_row(&t, id, n->name, n->status, cli_yes(n->eligible),
			      cli_yes(n->draining), n->address, age, labels);
	}
	cli_table_print(&t, "");
}

static int node_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__NodeListRequest req = FLOTILLA__NODE_LIST_REQUEST__INIT;
	Flotilla__NodeListResponse *resp;
	bool json = false, verbose = false;
	const flt_flag_t flags[] = {
		CLI_FLAG_JSON(&json),
		{ "verbose", FLT_FLAG_BOOL, &verbose, NULL, "print full ids", 0,
		  0, NULL },
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_NODE_LIST, &req.base,
			   &flotilla__node_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (resp->n_nodes > 1)
		qsort(resp->nodes, resp->n_nodes, sizeof(*resp->nodes),
		      by_name);
	if (json) {
		cli_print_json(cli_json_array(
			(ProtobufCMessage *const *)resp->nodes, resp->n_nodes));
	} else {
		print_nodes(resp, verbose);
	}
	flotilla__node_list_response__free_unpacked(resp, NULL);
	return 0;
}

static void print_attributes(const Flotilla__Fingerprint *f)
{
	cli_printf("\nAttributes\n");
	cli_printf("  hostname        = %s\n", FLT_ESC(f->hostname));
	cli_printf("  os              = %s (%s %s)\n", FLT_ESC(f->os_name),
		   FLT_ESC(f->os_id), FLT_ESC(f->os_version));
	cli_printf("  kernel          = %s\n", FLT_ESC(f->kernel));
	cli_printf("  arch            = %s\n", FLT_ESC(f->arch));
	cli_printf("  cpu.count       = %u\n", f->cpu_count);
	cli_printf("  memory          = %.1f GiB\n",
		   (double)f->memory_bytes / (1 << 30));
	cli_printf("  cgroup          = %s\n", FLT_ESC(f->cgroup_version));
	cli_printf("  agent.version   = %s\n", FLT_ESC(f->agent_version));
	cleanup_free char *allow = flt_allowances_text(f->allowances);
	cli_printf("  allowances      = %s\n",
		   *allow ? FLT_ESC(allow) : "none");
}

static void print_node(const Flotilla__Node *n)
{
	char age[32], labels[512];
	cli_age(cli_parse_time(n->last_heartbeat), age, sizeof(age));
	labels_str(n, labels, sizeof(labels));
	cli_kv("ID", "%s", n->id);
	cli_kv("Name", "%s", n->name);
	cli_kv("Status", "%s (since %s)", n->status, n->status_changed_at);
	cli_kv("Eligible", "%s", cli_yes(n->eligible));
	if (n->draining)
		cli_kv("Draining", "yes (deadline %s)",
		       cli_dash(n->drain_deadline));
	else
		cli_kv("Draining", "no");
	cli_kv("Last heartbeat", "%s", age);
	cli_kv("Address", "%s", cli_dash(n->address));
	cli_kv("Agent API", "%s", cli_dash(n->api_address));
	cli_kv("Registered", "%s", n->registered_at);
	cli_kv("Labels", "%s", cli_dash(labels));
	if (n->attributes)
		print_attributes(n->attributes);
	if (n->n_tasks) {
		cli_printf("\nTasks\n");
		cli_print_tasks(n->tasks, n->n_tasks);
	}
}

/* Prints the node a NodeGetResponse carries, as JSON or as one line
 * (long: every field), and releases the reply. */
static int show_node(Flotilla__NodeGetResponse *resp, bool json, bool long_)
{
	const Flotilla__Node *n = resp->node;
	int rc = 0;
	if (!n)
		rc = cli_fail("bad reply: no node");
	else if (json)
		cli_print_json(flt_pb_to_json(&n->base));
	else if (long_)
		print_node(n);
	else
		cli_print_node_line(n);
	flotilla__node_get_response__free_unpacked(resp, NULL);
	return rc;
}

static int node_status(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__NodeGetRequest req = FLOTILLA__NODE_GET_REQUEST__INIT;
	Flotilla__NodeGetResponse *resp;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.node);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_NODE_GET, &req.base,
			   &flotilla__node_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	return show_node(resp, json, true);
}

static int node_drain(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__NodeDrainRequest req = FLOTILLA__NODE_DRAIN_REQUEST__INIT;
	Flotilla__NodeGetResponse *resp;
	bool json = false, disable = false;
	const char *deadline = NULL;
	const flt_flag_t flags[] = {
		{ "deadline", FLT_FLAG_STRING, &deadline, "DURATION",
		  "stop what is left after this long (30s, 5m, 1h; default "
		  "1h)",
		  0, 0, NULL },
		{ "disable", FLT_FLAG_BOOL, &disable, NULL,
		  "cancel a drain (the node stays ineligible)", 0, 0, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.node);
	if (rc >= 0)
		return rc;
	if (deadline && disable)
		return cli_usage_fail(cmd, "--deadline: not with --disable");
	if (deadline) {
		uint64_t ms;
		flt_error_t err;
		if (flt_duration_parse(deadline, DRAIN_DEADLINE_MAX_MS, &ms,
				       &err) < 0)
			return cli_usage_fail(cmd, "--deadline: %s", err.msg);
		req.deadline_ms = (uint32_t)ms;
	}
	req.enable = !disable;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_NODE_DRAIN, &req.base,
			   &flotilla__node_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	return show_node(resp, json, false);
}

static int node_eligibility(cli_t *c, const cli_cmd_t *cmd, int argc,
			    char **argv)
{
	Flotilla__NodeEligibilityRequest req =
		FLOTILLA__NODE_ELIGIBILITY_REQUEST__INIT;
	Flotilla__NodeGetResponse *resp;
	bool json = false;
	const char *ops[2];
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 2, 2, ops);
	if (rc >= 0)
		return rc;
	if (strcmp(ops[1], "on") == 0)
		req.eligible = true;
	else if (strcmp(ops[1], "off") != 0)
		return cli_usage_fail(cmd, "\"%s\": expected on or off",
				      ops[1]);
	req.node = (char *)ops[0];
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_NODE_ELIGIBILITY,
			   &req.base, &flotilla__node_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	return show_node(resp, json, false);
}

const cli_cmd_t cli_node_cmds[] = {
	{ "node", "list", "[--json] [--verbose]", "list the fleet's nodes",
	  node_list },
	{ "node", "status", "NODE [--json]",
	  "show one node (id, id prefix or name)", node_status },
	{ "node", "drain", "NODE [--deadline DURATION] [--disable] [--json]",
	  "move a node's allocations elsewhere and keep new ones off it",
	  node_drain },
	{ "node", "eligibility", "NODE on|off [--json]",
	  "let the scheduler place new allocations on a node, or not",
	  node_eligibility },
	{ NULL, NULL, NULL, NULL, NULL },
};
