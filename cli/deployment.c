/* flotilla deployment ...: rollouts of a job version. */
#include <string.h>

#include "cli.h"
#include "flotilla/util.h"

#define WAIT_DEFAULT_S 300

/* Calls one of the DeploymentGetRequest -> DeploymentGetResponse methods. */
static int deployment_call(cli_t *c, Flotilla__Method m, const char *id,
			   Flotilla__DeploymentGetResponse **resp)
{
	Flotilla__DeploymentGetRequest req =
		FLOTILLA__DEPLOYMENT_GET_REQUEST__INIT;
	req.id = (char *)id;
	int rc = cli_call(c, m, &req.base,
			  &flotilla__deployment_get_response__descriptor,
			  (ProtobufCMessage **)resp);
	if (rc == 0 && !(*resp)->deployment)
		return cli_bad_reply((ProtobufCMessage **)resp, "deployment");
	return rc;
}

static void print_groups(const Flotilla__Deployment *d)
{
	cli_table_t t;
	cli_table_init(&t, 7, "GROUP", "DESIRED", "CANARIES", "PROMOTED",
		       "PLACED", "HEALTHY", "UNHEALTHY");
	for (size_t i = 0; i < d->n_groups; i++) {
		const Flotilla__DeploymentGroup *g = d->groups[i];
		char desired[16], canaries[32], placed[16], healthy[16],
			unhealthy[16];
		snprintf(desired, sizeof(desired), "%u", g->desired_total);
		snprintf(canaries, sizeof(canaries), "%zu/%u", g->n_canaries,
			 g->desired_canaries);
		snprintf(placed, sizeof(placed), "%u", g->placed);
		snprintf(healthy, sizeof(healthy), "%u", g->healthy);
		snprintf(unhealthy, sizeof(unhealthy), "%u", g->unhealthy);
		cli_table_row(&t, g->group, desired,
			      g->desired_canaries ? canaries : "",
			      g->desired_canaries ? cli_yes(g->promoted) : "",
			      placed, healthy, unhealthy);
	}
	cli_table_print(&t, "  ");
}

static void print_deployment(const Flotilla__Deployment *d)
{
	char created[32], by[32] = "-";
	cli_age(d->create_ms, created, sizeof(created));
	bool paused = d->status ==
		      FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_PAUSED;
	if (paused)
		/* The deadline stands still: what is left of it then. */
		cli_format_duration(d->progress_by_ms - d->paused_ms, by,
				    sizeof(by));
	else if (d->progress_by_ms && !cli_deployment_done(d))
		cli_format_duration(d->progress_by_ms - flt_now_wall_ms(), by,
				    sizeof(by));
	cli_kv("ID", "%s", d->id);
	cli_kv("Job", "%s (version %llu)", d->job,
	       (unsigned long long)d->job_version);
	cli_kv("Status", "%s", CLI_DEPLOYMENT_STATUS(d->status));
	cli_kv("Description", "%s", cli_dash(d->status_description));
	cli_kv("Created", "%s", created);
	cli_kv("Progress by", "%s%s", by,
	       paused            ? " after it resumes"
	       : strcmp(by, "-") ? " from now"
				 : "");
	cli_kv("Auto revert", "%s", cli_yes(d->auto_revert));
	cli_kv("Auto promote", "%s", cli_yes(d->auto_promote));
	if (d->reverted_to)
		cli_kv("Reverted to", "version %llu",
		       (unsigned long long)d->reverted_to);
	cli_printf("\nGroups\n");
	print_groups(d);
}

static int deployment_status(cli_t *c, const cli_cmd_t *cmd, int argc,
			     char **argv)
{
	Flotilla__DeploymentGetResponse *resp;
	bool json = false, watch = false;
	long wait_s = WAIT_DEFAULT_S;
	const char *id;
	const flt_flag_t flags[] = {
		{ "watch", FLT_FLAG_BOOL, &watch, NULL,
		  "follow the progress until the deployment ends", 0, 0, NULL },
		{ "wait", FLT_FLAG_INT, &wait_s, "SECONDS",
		  "with --watch: give up after this long (default 300)", 1,
		  86400, NULL },
		CLI_FLAG_JSON(&json),
		CLI_FLAG_END,
	};
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	if (watch && json)
		return cli_usage_fail(cmd, "--watch and --json do not mix");
	if (watch)
		return cli_watch_deployment(c, id, wait_s);
	if ((rc = deployment_call(c, FLOTILLA__METHOD__METHOD_DEPLOYMENT_GET,
				  id, &resp)) != 0)
		return rc;
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else
		print_deployment(resp->deployment);
	flotilla__deployment_get_response__free_unpacked(resp, NULL);
	return 0;
}

/* promote, fail, pause, resume: one call, then the deployment's line. */
static int deployment_act(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv,
			  Flotilla__Method m)
{
	Flotilla__DeploymentGetResponse *resp;
	bool json = false;
	const char *id;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 1, 1, &id);
	if (rc >= 0)
		return rc;
	if ((rc = deployment_call(c, m, id, &resp)) != 0)
		return rc;
	if (json) {
		cli_print_json(flt_pb_to_json(&resp->base));
	} else {
		char line[1024];
		cli_deployment_line(resp->deployment, line, sizeof(line));
		cli_puts(line);
	}
	flotilla__deployment_get_response__free_unpacked(resp, NULL);
	return 0;
}

static int deployment_promote(cli_t *c, const cli_cmd_t *cmd, int argc,
			      char **argv)
{
	return deployment_act(c, cmd, argc, argv,
			      FLOTILLA__METHOD__METHOD_DEPLOYMENT_PROMOTE);
}

static int deployment_fail(cli_t *c, const cli_cmd_t *cmd, int argc,
			   char **argv)
{
	return deployment_act(c, cmd, argc, argv,
			      FLOTILLA__METHOD__METHOD_DEPLOYMENT_FAIL);
}

static int deployment_pause(cli_t *c, const cli_cmd_t *cmd, int argc,
			    char **argv)
{
	return deployment_act(c, cmd, argc, argv,
			      FLOTILLA__METHOD__METHOD_DEPLOYMENT_PAUSE);
}

static int deployment_resume(cli_t *c, const cli_cmd_t *cmd, int argc,
			     char **argv)
{
	return deployment_act(c, cmd, argc, argv,
			      FLOTILLA__METHOD__METHOD_DEPLOYMENT_RESUME);
}

const cli_cmd_t cli_deployment_cmds[] = {
	{ "deployment", "status", "ID [--watch] [--wait SECONDS] [--json]",
	  "show a deployment (id, id prefix, or a job name for its latest)",
	  deployment_status },
	{ "deployment", "promote", "ID [--json]",
	  "promote a deployment's canaries: the rollout goes on",
	  deployment_promote },
	{ "deployment", "fail", "ID [--json]",
	  "fail a running deployment (and revert, if its job says so)",
	  deployment_fail },
	{ "deployment", "pause", "ID [--json]",
	  "pause a running deployment: it places nothing new until resumed",
	  deployment_pause },
	{ "deployment", "resume", "ID [--json]", "resume a paused deployment",
	  deployment_resume },
	{ NULL, NULL, NULL, NULL, NULL },
};
