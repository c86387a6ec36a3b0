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

#endif
