/* flotilla job ...: jobs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flotilla/job.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

/* Monitoring limits when --wait is not given. */
#define WAIT_DEPLOYMENT_S 300
#define WAIT_ALLOCS_S 60

/* Reads and checks a job file: errors name the file and the field. */
static int load_job(const char *path, Flotilla__Job **out)
{
	cleanup_free char *text = NULL;
	flt_error_t err;
	int rc = flt_read_file(path, FLT_JOB_SPEC_MAX, &text);
	if (rc < 0)
		return cli_fail("%s: %s", path,
				rc == -EFBIG ? "larger than 1 MiB"
					     : strerror(-rc));
	if (flt_job_parse(text, strlen(text), out, &err) < 0)
		return cli_fail("%s: %s", path, err.msg);
	return 0;
}

static int job_plan(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobPlanRequest req = FLOTILLA__JOB_PLAN_REQUEST__INIT;
	Flotilla__JobPlanResponse *resp;
	bool json = false;
	const char *file;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &file);
	if (rc >= 0)
		return rc;
	if ((rc = load_job(file, &req.job)) != 0)
		return rc;
	cli_use_namespace(c, req.job->namespace_);
	rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_PLAN, &req.base,
		      &flotilla__job_plan_response__descriptor,
		      (ProtobufCMessage **)&resp);
	flotilla__job__free_unpacked(req.job, NULL);
	if (rc != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
	} else {
		cli_printf("%-16s %-7s %-7s %s\n", "GROUP", "WANTED", "PLACED",
			   "NODES");
		for (size_t g = 0; g < resp->n_groups; g++) {
			const Flotilla__GroupPlan *p = resp->groups[g];
			cli_printf("%-16s %-7u %-7zu", p->group, p->wanted,
				   p->n_nodes);
			for (size_t i = 0; i < p->n_nodes; i++)
				cli_printf("%s%.8s", i ? "," : " ",
					   p->nodes[i]);
			cli_printf("\n");
			if (p->unplaced)
				cli_printf("  %s\n", FLT_ESC(p->why));
		}
		cli_printf("(dry run over %u nodes: nothing was changed)\n",
			   resp->nodes_considered);
	}
	bool short_of = false;
	for (size_t g = 0; g < resp->n_groups; g++)
		short_of = short_of || resp->groups[g]->unplaced;
	flotilla__job_plan_response__free_unpacked(resp, NULL);
	/* As `nomad job plan`: 0 when everything fits, 1 when not. */
	return short_of ? 1 : 0;
}

/* What job run and job stop print and follow after the coordinator took
 * the change. */
static int follow(cli_t *c, const char *job, const char *verb,
		  const Flotilla__JobRegisterResponse *r, bool detach,
		  long wait_s)
{
	if (r->unchanged)
		cli_printf("job %s unchanged (version %llu)\n", job,
			   (unsigned long long)r->job_version);
	else
		cli_printf("job %s version %llu %s (eval %.8s)\n", job,
			   (unsigned long long)r->job_version, verb,
			   cli_dash(r->eval_id));
	/* The reason names the group and counts ("web: 1 of 4 allocations
	 * not placed: ..."). */
	if (r->unplaced && *r->why)
		cli_puts(r->why);
	else if (r->unplaced)
		cli_printf("%u allocation%s not placed\n", r->unplaced,
			   r->unplaced == 1 ? "" : "s");
	fflush(stdout);
	if (detach)
		return CLI_EXIT_OK;
	if (*r->deployment_id)
		return cli_watch_deployment(c, r->deployment_id,
					    wait_s ? wait_s
						   : WAIT_DEPLOYMENT_S);
	return cli_watch_allocs(c, job, r->eval_id,
				wait_s ? wait_s : WAIT_ALLOCS_S);
}

#define FOLLOW_FLAGS(detach, wait)                                          \
	{ "detach",                                                         \
	  FLT_FLAG_BOOL,                                                    \
	  (detach),                                                         \
	  NULL,                                                             \
	  "return once the coordinator took the change",                    \
	  0,                                                                \
	  0,                                                                \
	  NULL },                                                           \
	{                                                                   \
		"wait", FLT_FLAG_INT, (wait), "SECONDS",                    \
			"how long to follow the rollout (default 300 with " \
			"a deployment, else 60)",                           \
			1, 86400, NULL                                      \
	}

static int job_run(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobRegisterRequest req = FLOTILLA__JOB_REGISTER_REQUEST__INIT;
	Flotilla__JobRegisterResponse *resp;
	bool json = false, detach = false;
	long wait_s = 0;
	const char *file;
	const flt_flag_t flags[] = { FOLLOW_FLAGS(&detach, &wait_s),
				     CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &file);
	if (rc >= 0)
		return rc;
	if ((rc = load_job(file, &req.job)) != 0)
		return rc;
	cli_use_namespace(c, req.job->namespace_);
	rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_REGISTER, &req.base,
		      &flotilla__job_register_response__descriptor,
		      (ProtobufCMessage **)&resp);
	if (rc == 0) {
		if (json)
			cli_print_json(flt_pb_to_json(&resp->base));
		else
			rc = follow(c, req.job->name, "submitted", resp, detach,
				    wait_s);
		flotilla__job_register_response__free_unpacked(resp, NULL);
	}
	flotilla__job__free_unpacked(req.job, NULL);
	return rc;
}

static int job_stop(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobStopRequest req = FLOTILLA__JOB_STOP_REQUEST__INIT;
	Flotilla__JobRegisterResponse *resp;
	bool json = false, detach = false;
	long wait_s = 0;
	const flt_flag_t flags[] = { FOLLOW_FLAGS(&detach, &wait_s),
				     CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.name);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_STOP, &req.base,
			   &flotilla__job_register_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else
		rc = follow(c, req.name, "stopped", resp, detach, wait_s);
	flotilla__job_register_response__free_unpacked(resp, NULL);
	return rc;
}

static int job_purge(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobStopRequest req = FLOTILLA__JOB_STOP_REQUEST__INIT;
	Flotilla__GcResponse *resp;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.name);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_PURGE, &req.base,
			   &flotilla__gc_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else
		cli_printf("job %s purged: %u versions, %u allocations, %u "
			   "evaluations, %u deployments deleted\n",
			   req.name, resp->versions, resp->allocs, resp->evals,
			   resp->deployments);
	flotilla__gc_response__free_unpacked(resp, NULL);
	return 0;
}

/* The latest evaluation, if any. */
static const Flotilla__Eval *latest_eval(const Flotilla__JobGetResponse *r)
{
	const Flotilla__Eval *e = NULL;
	for (size_t i = 0; i < r->n_evals; i++)
		if (!e || r->evals[i]->create_index > e->create_index)
			e = r->evals[i];
	return e;
}

static void print_summary(const Flotilla__JobGetResponse *r)
{
	const Flotilla__JobSummary *s = r->summary;
	char when[40], age[32];
	flt_format_time(s->submitted_ms, when, sizeof(when));
	cli_age(s->submitted_ms, age, sizeof(age));
	cli_kv("Name", "%s", s->name);
	cli_kv("Namespace", "%s", cli_dash(s->namespace_));
	cli_kv("Type", "%s", s->type);
	cli_kv("Version", "%llu", (unsigned long long)s->version);
	cli_kv("Status", "%s%s", s->status,
	       r->record && r->record->stopped ? " (stopped)" : "");
	cli_kv("Submitted", "%s (%s)", when, age);
	cli_kv("Allocations",
	       "%u desired, %u running, %u healthy, %u pending, %u failed",
	       s->desired, s->running, s->healthy, s->pending, s->failed);
	const Flotilla__Eval *e = latest_eval(r);
	if (e && e->unplaced)
		cli_kv("Unplaced", "%s",
		       *e->why ? e->why : "(no reason given)");
	if (r->deployment) {
		char line[1024];
		cli_deployment_line(r->deployment, line, sizeof(line));
		cli_kv("Deployment", "%s", line + strlen("deployment "));
	} else {
		cli_kv("Deployment", "-");
	}
}

static int job_status(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobGetRequest req = FLOTILLA__JOB_GET_REQUEST__INIT;
	Flotilla__JobGetResponse *resp;
	bool json = false, all = false;
	const flt_flag_t flags[] = {
		{ "all", FLT_FLAG_BOOL, &all, NULL,
		  "show every stopped allocation, not only the last 10", 0, 0,
		  NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.name);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_GET, &req.base,
			   &flotilla__job_get_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (!resp->summary)
		return cli_bad_reply((ProtobufCMessage **)&resp, "job summary");
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
	} else {
		print_summary(resp);
		cli_printf("\nAllocations\n");
		cli_print_allocs(resp->allocs, resp->n_allocs, all);
	}
	flotilla__job_get_response__free_unpacked(resp, NULL);
	return 0;
}

static int job_list(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobListRequest req = FLOTILLA__JOB_LIST_REQUEST__INIT;
	Flotilla__JobListResponse *resp;
	bool json = false, all = false;
	const flt_flag_t flags[] = {
		{ "all-namespaces", FLT_FLAG_BOOL, &all, NULL,
		  "every namespace the token may read", 0, 0, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END
	};
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if (all) {
		c->namespace_ = NULL;
		cli_use_namespace(c, "*");
	}
	all = c->namespace_ && strcmp(c->namespace_, "*") == 0;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_LIST, &req.base,
			   &flotilla__job_list_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(cli_json_array(
			(ProtobufCMessage *const *)resp->jobs, resp->n_jobs));
		flotilla__job_list_response__free_unpacked(resp, NULL);
		return 0;
	}
	cli_table_t t;
	if (all)
		cli_table_init(&t, 9, "NAMESPACE", "NAME", "TYPE", "VERSION",
			       "STATUS", "RUNNING", "HEALTHY", "DEPLOYMENT",
			       "SUBMITTED");
	else
		cli_table_init(&t, 8, "NAME", "TYPE", "VERSION", "STATUS",
			       "RUNNING", "HEALTHY", "DEPLOYMENT", "SUBMITTED");
	for (size_t i = 0; i < resp->n_jobs; i++) {
		const Flotilla__JobSummary *s = resp->jobs[i];
		char version[24], running[32], healthy[16], age[32];
		snprintf(version, sizeof(version), "%llu",
			 (unsigned long long)s->version);
		snprintf(running, sizeof(running), "%u/%u", s->running,
			 s->desired);
		snprintf(healthy, sizeof(healthy), "%u", s->healthy);
		cli_age(s->submitted_ms, age, sizeof(age));
		if (all)
			cli_table_row(
				&t, s->namespace_, s->name, s->type, version,
				s->status, running, healthy,
				CLI_DEPLOYMENT_STATUS(s->deployment_status),
				age);
		else
			cli_table_row(
				&t, s->name, s->type, version, s->status,
				running, healthy,
				CLI_DEPLOYMENT_STATUS(s->deployment_status),
				age);
	}
	cli_table_print(&t, "");
	flotilla__job_list_response__free_unpacked(resp, NULL);
	return 0;
}

/* ---- History: what changed from one version to the next ---------------- */

typedef struct buf {
	char *s;
	size_t len, off;
} buf_t;

static void __attribute__((format(printf, 2, 3)))
say(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	if (b->off >= b->len)
		return;
	if (b->off)
		b->off +=
			(size_t)snprintf(b->s + b->off, b->len - b->off, ", ");
	if (b->off >= b->len)
		return;
	va_start(ap, fmt);
	b->off += (size_t)vsnprintf(b->s + b->off, b->len - b->off, fmt, ap);
	va_end(ap);
}

static const Flotilla__TaskGroup *find_group(const Flotilla__Job *j,
					     const char *name)
{
	for (size_t i = 0; j && i < j->n_groups; i++)
		if (strcmp(j->groups[i]->name, name) == 0)
			return j->groups[i];
	return NULL;
}

static const Flotilla__TaskSpec *find_task(const Flotilla__TaskGroup *g,
					   const char *name)
{
	for (size_t i = 0; g && i < g->n_tasks; i++)
		if (strcmp(g->tasks[i]->name, name) == 0)
			return g->tasks[i];
	return NULL;
}

static bool args_same(const Flotilla__TaskSpec *a, const Flotilla__TaskSpec *b)
{
	if (strcmp(a->command, b->command) != 0 || a->n_args != b->n_args)
		return false;
	for (size_t i = 0; i < a->n_args; i++)
		if (strcmp(a->args[i], b->args[i]) != 0)
			return false;
	return true;
}

/* "/bin/app -v --port 80", cut to fit. */
static void cmdline(const Flotilla__TaskSpec *t, char *s, size_t len)
{
	size_t off = (size_t)snprintf(s, len, "%s", t->command);
	for (size_t i = 0; i < t->n_args && off < len; i++)
		off += (size_t)snprintf(s + off, len - off, " %s", t->args[i]);
	if (off >= len && len > 4)
		memcpy(s + len - 4, "...", 4);
}

static void task_changes(buf_t *b, const Flotilla__TaskGroup *g,
			 const Flotilla__TaskGroup *old)
{
	for (size_t i = 0; i < g->n_tasks; i++) {
		const Flotilla__TaskSpec *t = g->tasks[i];
		const Flotilla__TaskSpec *o = find_task(old, t->name);
		char cmd[48];
		cmdline(t, cmd, sizeof(cmd));
		if (!o)
			say(b, "+task %s.%s: %s", g->name, t->name, cmd);
		else if (!args_same(t, o))
			say(b, "%s.%s: %s", g->name, t->name, cmd);
		else if (!flt_pb_equal(&t->base, &o->base))
			say(b, "%s.%s settings", g->name, t->name);
	}
	for (size_t i = 0; i < old->n_tasks; i++)
		if (!find_task(g, old->tasks[i]->name))
			say(b, "-task %s.%s", g->name, old->tasks[i]->name);
}

static void group_changes(buf_t *b, const Flotilla__TaskGroup *g,
			  const Flotilla__TaskGroup *old)
{
	if (!old) {
		say(b, "+group %s (count %u)", g->name, g->count);
		return;
	}
	if (g->count != old->count)
		say(b, "%s count %u -> %u", g->name, old->count, g->count);
	task_changes(b, g, old);
	if (g->n_constraints != old->n_constraints ||
	    g->n_spreads != old->n_spreads ||
	    !flt_pb_equal((const ProtobufCMessage *)g->reschedule,
			  (const ProtobufCMessage *)old->reschedule))
		say(b, "%s placement", g->name);
}

/* "web count 2 -> 3, web.srv command /bin/app" (the first version: its
 * groups). */
static void job_changes(const Flotilla__Job *j, const Flotilla__Job *old,
			char *s, size_t len)
{
	buf_t b = { s, len, 0 };
	s[0] = '\0';
	if (!j)
		return;
	if (!old) {
		for (size_t i = 0; i < j->n_groups; i++)
			say(&b, "%s x%u", j->groups[i]->name,
			    j->groups[i]->count);
		return;
	}
	for (size_t i = 0; i < j->n_groups; i++)
		group_changes(&b, j->groups[i],
			      find_group(old, j->groups[i]->name));
	for (size_t i = 0; i < old->n_groups; i++)
		if (!find_group(j, old->groups[i]->name))
			say(&b, "-group %s", old->groups[i]->name);
	if (strcmp(j->type, old->type) != 0 || j->priority != old->priority ||
	    !flt_pb_equal((const ProtobufCMessage *)j->update,
			  (const ProtobufCMessage *)old->update) ||
	    j->n_constraints != old->n_constraints ||
	    j->n_spreads != old->n_spreads)
		say(&b, "job settings");
	if (!b.off && !flt_pb_equal(&j->base, &old->base))
		say(&b, "other settings");
}

static int job_history(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__JobGetRequest req = FLOTILLA__JOB_GET_REQUEST__INIT;
	Flotilla__JobHistoryResponse *resp;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1,
			  (const char **)&req.name);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_HISTORY, &req.base,
			   &flotilla__job_history_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
		flotilla__job_history_response__free_unpacked(resp, NULL);
		return 0;
	}
	cli_table_t t;
	cli_table_init(&t, 5, "VERSION", "STABLE", "SUBMITTED", "DESCRIPTION",
		       "CHANGES");
	for (size_t i = 0; i < resp->n_versions; i++) {
		const Flotilla__JobRecord *v = resp->versions[i];
		const Flotilla__JobRecord *older =
			i + 1 < resp->n_versions ? resp->versions[i + 1] : NULL;
		char version[24], age[32], changes[512];
		snprintf(version, sizeof(version), "%llu",
			 (unsigned long long)v->version);
		cli_age(v->submitted_ms, age, sizeof(age));
		job_changes(v->job, older ? older->job : NULL, changes,
			    sizeof(changes));
		cli_table_row(&t, version, cli_yes(v->stable), age,
			      v->description, changes);
	}
	cli_table_print(&t, "");
	flotilla__job_history_response__free_unpacked(resp, NULL);
	return 0;
}

const cli_cmd_t cli_job_cmds[] = {
	{ "job", "run", "FILE [--detach] [--wait SECONDS] [--json]",
	  "submit a job and follow its rollout", job_run },
	{ "job", "plan", "FILE [--json]",
	  "show where a job's allocations would go (changes nothing)",
	  job_plan },
	{ "job", "status", "NAME [--all] [--json]",
	  "show a job, its latest deployment and its allocations", job_status },
	{ "job", "stop", "NAME [--detach] [--wait SECONDS] [--json]",
	  "stop every allocation of a job", job_stop },
	{ "job", "purge", "NAME [--json]",
	  "delete a stopped job now, with its allocations and history",
	  job_purge },
	{ "job", "list", "[--all-namespaces] [--json]",
	  "list the jobs (of one namespace, or all)", job_list },
	{ "job", "history", "NAME [--json]",
	  "list a job's versions and what each changed", job_history },
	{ NULL, NULL, NULL, NULL, NULL },
};
