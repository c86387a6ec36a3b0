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

#endif
