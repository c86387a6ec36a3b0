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

/* ---- campaigns (campaign.c) ---------------------------------------------- */

/*
 * A campaign (Flotilla__CampaignState). pause, resume and abort come from
 * operators, and a refusal is their answer; the others from the campaign
 * thread: the failure gate trips (trip: pause, trip_abort: abort, per
 * on_failure), the canary wave is done and waits for a resume (hold), the
 * last wave is done (finish), an abort has nothing left in flight
 * (settle).
 */
enum coord_campaign_event {
	CAMP_EV_CREATE,
	CAMP_EV_PAUSE,
	CAMP_EV_RESUME,
	CAMP_EV_ABORT,
	CAMP_EV_TRIP,
	CAMP_EV_TRIP_ABORT,
	CAMP_EV_HOLD,
	CAMP_EV_FINISH,
	CAMP_EV_SETTLE,
	CAMP_EV_COUNT
};
extern const flt_fsm_t coord_campaign_fsm;

/*
 * A campaign's target, one host (Flotilla__TargetState): made when the
 * campaign is planned (plan) or when a host matches later (late); its wave
 * comes (dispatch, or skip when it no longer matches); its agent reports
 * the step started (start), succeeded with a re-scan that no longer
 * matches (succeed) or still does (stay_exposed), or failed (fail, also a
 * per-host timeout with the host up; fail_offline with it down); the
 * campaign aborts (abort).
 */
enum coord_target_event {
	TARGET_EV_PLAN,
	TARGET_EV_LATE,
	TARGET_EV_DISPATCH,
	TARGET_EV_SKIP,
	TARGET_EV_START,
	TARGET_EV_SUCCEED,
	TARGET_EV_STAY_EXPOSED,
	TARGET_EV_FAIL,
	TARGET_EV_FAIL_OFFLINE,
	TARGET_EV_ABORT,
	TARGET_EV_COUNT
};
extern const flt_fsm_t coord_target_fsm;

/* ---- the list ------------------------------------------------------------ */

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
