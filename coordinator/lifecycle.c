/* The list of the coordinator's lifecycle tables (see lifecycle.h). */
#include <stddef.h>

#include "lifecycle.h"

const flt_fsm_t *const coord_lifecycles[] = {
	/* the engine */
	&coord_alloc_fsm,
	&coord_deploy_fsm,
	&coord_eval_fsm,

	/* Campaigns (campaign.c). */
	&coord_campaign_fsm,
	&coord_target_fsm,

	NULL,
};
