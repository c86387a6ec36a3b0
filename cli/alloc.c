/* flotilla alloc ...: allocations, and their logs from the agents. */
#include <string.h>

#include "cli.h"
#include "flotilla/util.h"

/* Bytes asked of the agent per call (the proto's cap). */
#define LOG_CHUNK (1u << 20)
#define LOG_POLL_MS 250

static int get_alloc(cli_t *c, const char *id, Flotilla__AllocGetResponse **r)
{
	Flotilla__AllocGetRequest req = FLOTILLA__ALLOC_GET_REQUEST__INIT;
	req.id = (char *)id;
	int rc = cli_call(c, FLOTILLA__METHOD__METHOD_ALLOC_GET, &req.base,
			  &flotilla__alloc_get_response__descriptor,
			  (ProtobufCMessage **)r);
	if (rc == 0 && !(*r)->alloc)
		return cli_bad_reply((ProtobufCMessage **)r, "allocation");
	return rc;
}

static void print_alloc(const Flotilla__Alloc *a)
{
	char created[32], modified[32];
	cli_age(a->create_ms, created, sizeof(created));
	cli_age(a->modify_ms, modified, sizeof(modified));
	cli_kv("ID", "%s", a->id);
	cli_kv("Name", "%s.%s[%u]", a->job, a->group, a->index);
	cli_kv("Job", "%s (version %llu)", a->job,
	       (unsigned long long)a->job_version);
	cli_kv("Node", "%s (%.8s)", cli_dash(a->node_name), a->node_id);
	cli_kv("Desired", "%s%s%s%s", CLI_ALLOC_DESIRED(a),
	       *a->desired_reason ? " (" : "", a->desired_reason,
	       *a->desired_reason ? ")" : "");
	cli_kv("Status", "%s%s%s", CLI_ALLOC_STATUS(a),
	       *a->client_message ? ": " : "", a->client_message);
	cli_kv("Health", "%s%s", cli_dash(CLI_ALLOC_HEALTH(a)),
	       a->canary ? " (canary)" : "");
	cli_kv("Deployment", "%.8s", cli_dash(a->deployment_id));
	cli_kv("Created", "%s", created);
	cli_kv("Modified", "%s", modified);
	if (*a->previous_alloc)
		cli_kv("Replaces", "%.8s", a->previous_alloc);
	if (*a->next_alloc)
		cli_kv("Replaced by", "%.8s", a->next_alloc);
	if (a->reschedule_attempts)
		cli_kv("Reschedules", "%u", a->reschedule_attempts);
	if (a->migrating)
		cli_kv("Migrating", "yes (off a draining node)");
}

static int alloc_status(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AllocGetResponse *resp;
	bool json = false;
	const char *id;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	if ((rc = get_alloc(c, id, &resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->alloc->base));
	} else {
		print_alloc(resp->alloc);
		if (resp->alloc->n_tasks) {
			cli_printf("\nTasks\n");
			cli_print_tasks(resp->alloc->tasks,
					resp->alloc->n_tasks);
		}
	}
	flotilla__alloc_get_response__free_unpacked(resp, NULL);
	return 0;
}

/* The transport's messages say "coordinator"; here the peer is an agent. */
static int agent_fail(const char *node, const flt_error_t *err)
{
	static const char who[] = "coordinator at ";
	const char *w = strstr(err->msg, who);
	if (!w)
		return cli_fail("agent of node %s: %s", node, err->msg);
	return cli_fail("%.*sagent of node %s at %s", (int)(w - err->msg),
			err->msg, node, w + strlen(who));
}

/*
 * A grant from the coordinator to read alloc a's logs from its agent, with
 * that agent's API address: the agent answers only such grants.
 */
static int get_grant(cli_t *c, const Flotilla__Alloc *a, const char *task,
		     bool stderr_, Flotilla__AllocLogsGrantResponse **out)
{
	Flotilla__AllocLogsGrantRequest req =
		FLOTILLA__ALLOC_LOGS_GRANT_REQUEST__INIT;
	req.alloc_id = a->id;
	req.task = (char *)(task ? task : "");
	req.stderr = stderr_;
	return cli_call(c, FLOTILLA__METHOD__METHOD_ALLOC_LOGS_GRANT, &req.base,
			&flotilla__alloc_logs_grant_response__descriptor,
			(ProtobufCMessage **)out);
}

typedef struct logs_opts {
	const char *task;
	bool stderr_;
	bool follow;
	bool raw;
	long tail;
} logs_opts_t;

/*
 * What a task writes goes to a terminal escaped (flt_escape, newlines and
 * tabs kept): any workload could otherwise retitle the operator's window,
 * clear the screen or rewrite what it shows.
 */
typedef struct log_out {
	bool escape;
	flt_escaper_t esc;
} log_out_t;

static void log_write(log_out_t *out, const uint8_t *data, size_t len)
{
	if (!out->escape) {
		fwrite(data, 1, len, stdout);
		return;
	}
	cleanup_free char *shown = flt_escaper_push(&out->esc, data, len);
	fputs(shown, stdout);
}

/* Shows what was held back (a character that will not be completed). */
static void log_end(log_out_t *out)
{
	if (out->escape) {
		cleanup_free char *shown = flt_escaper_end(&out->esc);
		fputs(shown, stdout);
	}
}

/* -f runs for hours and a grant lives a minute: a new one is asked for
 * every half minute, by this host's monotonic clock, so that neither
 * clock's offset from the coordinator's matters. */
#define GRANT_RENEW_MS 30000

/* Copies the log to stdout, then (follow) polls for more until SIGINT. */
static int copy_logs(cli_t *c, flt_client_t *agent, const Flotilla__Alloc *a,
		     const logs_opts_t *o,
		     Flotilla__AllocLogsGrantResponse **grant)
{
	long timeout_ms = c->timeout_ms;
	int64_t granted_ms = flt_now_mono_ms();
	Flotilla__AllocLogsRequest req = FLOTILLA__ALLOC_LOGS_REQUEST__INIT;
	flt_error_t err;

	req.alloc_id = a->id;
	req.task = (char *)(o->task ? o->task : "");
	req.stderr = o->stderr_;
	req.offset = o->tail ? -1 : 0;
	req.tail = (uint32_t)o->tail;
	req.max_bytes = LOG_CHUNK;
	log_out_t out = { .escape = !o->raw && isatty(STDOUT_FILENO),
			  .esc = { .flags = FLT_ESC_KEEP_LINES } };
	if (o->follow)
		cli_catch_interrupt();
	while (!cli_interrupted()) {
		Flotilla__AllocLogsResponse *resp;
		if (flt_now_mono_ms() - granted_ms >= GRANT_RENEW_MS) {
			Flotilla__AllocLogsGrantResponse *g = NULL;
			int rc = get_grant(c, a, o->task, o->stderr_, &g);
			if (rc != 0) {
				log_end(&out);
				return rc;
			}
			flotilla__alloc_logs_grant_response__free_unpacked(
				*grant, NULL);
			*grant = g;
			granted_ms = flt_now_mono_ms();
		}
		req.grant = (*grant)->grant;
		req.grant_signature = (*grant)->signature;
		if (flt_client_call(agent, FLOTILLA__METHOD__METHOD_AGENT_LOGS,
				    NULL, &req.base,
				    &flotilla__alloc_logs_response__descriptor,
				    (ProtobufCMessage **)&resp, (int)timeout_ms,
				    &err) < 0) {
			log_end(&out);
			return agent_fail(cli_dash(a->node_name), &err);
		}
		if (resp->data.len)
			log_write(&out, resp->data.data, resp->data.len);
		fflush(stdout);
		/* Read until a reply comes back empty: the agent may send
		 * less than asked. After a rotation the returned offset is
		 * in the new file. */
		bool more = resp->data.len > 0;
		req.offset = resp->offset;
		req.tail = 0;
		flotilla__alloc_logs_response__free_unpacked(resp, NULL);
		if (more)
			continue;
		if (!o->follow)
			break;
		cli_sleep_ms(LOG_POLL_MS);
	}
	log_end(&out);
	fflush(stdout);
	return CLI_EXIT_OK;
}

static int alloc_logs(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__AllocGetResponse *resp;
	logs_opts_t o = { 0 };
	const char *id;
	const flt_flag_t flags[] = {
		{ "task", FLT_FLAG_STRING, &o.task, "TASK",
		  "the task (default: the allocation's first)", 0, 0, NULL },
		{ "stderr", FLT_FLAG_BOOL, &o.stderr_, NULL,
		  "standard error instead of standard output", 0, 0, NULL },
		{ "follow", FLT_FLAG_BOOL, &o.follow, NULL,
		  "(-f) keep printing what the task writes, until Ctrl-C", 0, 0,
		  NULL },
		{ "raw", FLT_FLAG_BOOL, &o.raw, NULL,
		  "write the output as it is, control sequences and all, "
		  "also to a terminal",
		  0, 0, NULL },
		{ "tail", FLT_FLAG_INT, &o.tail, "BYTES",
		  "start this many bytes before the end (default: the whole "
		  "current file)",
		  1, 16 << 20, NULL },
		CLI_FLAG_END,
	};
	/* -f as in tail(1): the flag tables know long names only. */
	char *args[argc + 1];
	for (int i = 0; i < argc; i++)
		args[i] = strcmp(argv[i], "-f") == 0 ? (char *)"--follow"
						     : argv[i];
	args[argc] = NULL;
	int rc = cli_args(cmd, flags, argc, args, 1, 1, &id);
	if (rc >= 0)
		return rc;
	if ((rc = get_alloc(c, id, &resp)) != 0)
		return rc;
	Flotilla__AllocLogsGrantResponse *grant = NULL;
	flt_client_t *agent = NULL;
	flt_error_t err;
	if (!*resp->alloc->node_id)
		rc = cli_fail("allocation %.8s is not placed on a node",
			      resp->alloc->id);
	else if ((rc = get_grant(c, resp->alloc, o.task, o.stderr_, &grant)) ==
		 0) {
		flt_client_opts_t opts = { .url = grant->api_address,
					   .tls = &c->tls };
		if (flt_client_open(&opts, &agent, &err) < 0)
			rc = agent_fail(cli_dash(resp->alloc->node_name), &err);
		else
			rc = copy_logs(c, agent, resp->alloc, &o, &grant);
	}
	flt_client_close(agent);
	if (grant)
		flotilla__alloc_logs_grant_response__free_unpacked(grant, NULL);
	flotilla__alloc_get_response__free_unpacked(resp, NULL);
	return rc;
}

const cli_cmd_t cli_alloc_cmds[] = {
	{ "alloc", "status", "ID [--json]",
	  "show an allocation (id or unique id prefix) and its tasks",
	  alloc_status },
	{ "alloc", "logs",
	  "ID [--task TASK] [--stderr] [-f] [--tail BYTES] [--raw]",
	  "print a task's output, read from the agent that runs it with a "
	  "grant from the coordinator",
	  alloc_logs },
	{ NULL, NULL, NULL, NULL, NULL },
};
