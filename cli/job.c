/* flotilla job ...: jobs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flotilla/flags.h"
#include "flotilla/job.h"
#include "flotilla/util.h"

static bool json_out;

static const flt_flag_t plan_flags[] = {
	{ "json", FLT_FLAG_BOOL, &json_out, NULL, "print JSON", 0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

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

static int job_plan(cli_t *c, int argc, char **argv)
{
	static const char usage[] = "Usage: flotilla job plan FILE [--json]";
	Flotilla__JobPlanRequest req = FLOTILLA__JOB_PLAN_REQUEST__INIT;
	Flotilla__JobPlanResponse *resp;
	int rc;
	const char *file = NULL;

	/* FILE and --json in either order. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json_out = true;
		else if (strcmp(argv[i], "--help") == 0) {
			flt_flags_usage(stdout, usage, plan_flags);
			return 0;
		} else if (!file && argv[i][0] != '-')
			file = argv[i];
		else
			return cli_fail("%s", usage) + 1;
	}
	if (!file)
		return cli_fail("%s", usage) + 1;
	if ((rc = load_job(file, &req.job)) != 0)
		return rc;
	rc = cli_call(c, FLOTILLA__METHOD__METHOD_JOB_PLAN, &req.base,
		      &flotilla__job_plan_response__descriptor,
		      (ProtobufCMessage **)&resp);
	flotilla__job__free_unpacked(req.job, NULL);
	if (rc != 0)
		return rc;
	if (json_out) {
		cli_print_json(flt_pb_to_json(&resp->base));
	} else {
		printf("%-16s %-7s %-7s %s\n", "GROUP", "WANTED", "PLACED",
		       "NODES");
		for (size_t g = 0; g < resp->n_groups; g++) {
			const Flotilla__GroupPlan *p = resp->groups[g];
			printf("%-16s %-7u %-7zu", p->group, p->wanted,
			       p->n_nodes);
			for (size_t i = 0; i < p->n_nodes; i++)
				printf("%s%.8s", i ? "," : " ", p->nodes[i]);
			printf("\n");
			if (p->unplaced)
				printf("  %s\n", p->why);
		}
		printf("(dry run over %u nodes: nothing was changed)\n",
		       resp->nodes_considered);
	}
	bool short_of = false;
	for (size_t g = 0; g < resp->n_groups; g++)
		short_of = short_of || resp->groups[g]->unplaced;
	flotilla__job_plan_response__free_unpacked(resp, NULL);
	/* As `nomad job plan`: 0 when everything fits, 1 when not. */
	return short_of ? 1 : 0;
}

const cli_cmd_t cli_job_cmds[] = {
	{ "job", "plan", "FILE [--json]",
	  "show where a job's allocations would go (changes nothing)",
	  job_plan },
	{ NULL, NULL, NULL, NULL, NULL },
};
