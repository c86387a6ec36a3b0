/* The list of the coordinator's lifecycle tables (see lifecycle.h). */
#include <stddef.h>

#include "lifecycle.h"

const flt_fsm_t *const coord_lifecycles[] = {
	/* Campaigns (campaign.c). */
	&coord_campaign_fsm,
	&coord_target_fsm,

	NULL,
};
