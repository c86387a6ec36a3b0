/* The list of the coordinator's lifecycle tables (see lifecycle.h). */
#include <stddef.h>

#include "lifecycle.h"

const flt_fsm_t *const coord_lifecycles[] = {
	NULL,
};
