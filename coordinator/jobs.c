/*
 * Operator methods on jobs. For now JobPlan: the job checked as it would be
 * on submission, and the scheduler run against the fleet as it is, without
 * changing anything.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "coordinator.h"
#include "flotilla/job.h"
#include "flotilla/util.h"
#include "scheduler.h"

void coord_jobs_plan(coord_nodes_t *t, flt_request_t *r)
{
	Flotilla__JobPlanRequest *req;
	flt_error_t err;

	if (flt_request_body(r, &flotilla__job_plan_request__descriptor, &req) <
	    0)
		return;
	if (!req->job) {
		flotilla__job_plan_request__free_unpacked(req, NULL);
		flt_request_fail(r, FLT_EPROTO, "job: required");
		return;
	}
	/* The same checks as a file gets in the CLI: never trust a client. */
	if (flt_job_check(req->job, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "job %s: %s", req->job->name,
				 err.msg);
		flotilla__job_plan_request__free_unpacked(req, NULL);
		return;
	}
	sched_fleet_t *f = coord_nodes_fleet(t, &err);
	if (!f) {
		flt_request_fail(r, err.code, "%s", err.msg);
		flotilla__job_plan_request__free_unpacked(req, NULL);
		return;
	}

	const Flotilla__Job *job = req->job;
	Flotilla__JobPlanResponse resp = FLOTILLA__JOB_PLAN_RESPONSE__INIT;
	Flotilla__GroupPlan *plans = flt_xcalloc(job->n_groups, sizeof(*plans));
	Flotilla__GroupPlan **pp = flt_xcalloc(job->n_groups, sizeof(*pp));
	char ***names = flt_xcalloc(job->n_groups, sizeof(*names));
	resp.groups = pp;
	resp.nodes_considered = (uint32_t)sched_fleet_size(f);
	int rc = 0;
	for (size_t g = 0; g < job->n_groups && rc == 0; g++) {
		sched_request_t rq = { .job = job,
				       .group = job->groups[g],
				       .count = job->groups[g]->count,
				       .seed = flt_now_mono_ms() };
		sched_result_t res;
		if ((rc = sched_place(f, &rq, &res, &err)) < 0) {
			flt_request_fail(r, rc, "job %s: groups[%zu].%s",
					 job->name, g, err.msg);
			break;
		}
		Flotilla__GroupPlan *gp = &plans[g];
		flotilla__group_plan__init(gp);
		gp->group = job->groups[g]->name;
		gp->wanted = (uint32_t)res.nplaced + res.unplaced;
		gp->unplaced = res.unplaced;
		gp->why = flt_xstrdup(res.why);
		names[g] = flt_xcalloc(res.nplaced + 1, sizeof(char *));
		for (size_t a = 0; a < res.nplaced; a++)
			names[g][a] = (char *)sched_node_id(f, res.placed[a]);
		gp->nodes = names[g];
		gp->n_nodes = res.nplaced;
		pp[resp.n_groups++] = gp;
		sched_result_free(&res);
	}
	if (rc == 0)
		flt_request_reply(r, &resp.base);
	for (size_t g = 0; g < resp.n_groups; g++)
		free(plans[g].why);
	for (size_t g = 0; g < job->n_groups; g++)
		free(names[g]);
	free(names);
	free(pp);
	free(plans);
	sched_fleet_free(f);
	flotilla__job_plan_request__free_unpacked(req, NULL);
}
