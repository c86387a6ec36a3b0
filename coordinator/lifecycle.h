/*
 * The coordinator's lifecycles, each one state x event table (see
 * flotilla/fsm.h). The states are enums of flotilla.proto; the events and
 * the tables are declared here and defined beside the code that moves the
 * records (engine: allocations, deployments, evaluations; campaign.c:
 * campaigns and their targets). docs/lifecycles.md is rendered from them.
 */
#ifndef FLOTILLA_COORD_LIFECYCLE_H
#define FLOTILLA_COORD_LIFECYCLE_H

#include "flotilla/fsm.h"

/* Every table, NULL-terminated, in the order of the docs. */
extern const flt_fsm_t *const coord_lifecycles[];

/* ---- the engine: allocations, deployments, evaluations ------------------ */

/* An allocation's client status (AllocClientStatus), moved by what its
 * node reports and by the node going down (reconcile.c). */
enum coord_alloc_event {
	COORD_ALLOC_PLACE, /* placed on a node */
	COORD_ALLOC_WAIT, /* its tasks are not all running (yet) */
	COORD_ALLOC_RUN, /* every task runs */
	COORD_ALLOC_COMPLETE, /* every task exited well, or stopped as told */
	COORD_ALLOC_FAIL, /* a task failed */
	COORD_ALLOC_LOSE, /* its node is down */
	COORD_ALLOC_NEVENTS
};
extern const flt_fsm_t coord_alloc_fsm;

/* A deployment's status (DeploymentStatus), moved by its progress and by
 * operators (deploy.c). */
enum coord_deploy_event {
	COORD_DEPLOY_START, /* a new job version to roll out */
	COORD_DEPLOY_PAUSE, /* operator */
	COORD_DEPLOY_RESUME, /* operator */
	COORD_DEPLOY_PROMOTE, /* operator, or automatic: the canaries are good */
	COORD_DEPLOY_SUCCEED, /* every allocation of the version healthy */
	COORD_DEPLOY_FAIL, /* unhealthy allocations, deadline, or operator */
	COORD_DEPLOY_CANCEL, /* a newer version, or the job stopped */
	COORD_DEPLOY_NEVENTS
};
extern const flt_fsm_t coord_deploy_fsm;

/* An evaluation's status (EvalStatus), moved by the cycle (engine.c). */
enum coord_eval_event {
	COORD_EVAL_CREATE, /* a job to evaluate */
	COORD_EVAL_COMPLETE, /* its plan is made */
	COORD_EVAL_FAIL, /* no plan could be made */
	COORD_EVAL_NEVENTS
};
extern const flt_fsm_t coord_eval_fsm;

#endif
