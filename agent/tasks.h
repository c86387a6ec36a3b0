/*
 * Task supervision in the agent: which tasks should run (for now, the
 * JSON specs in --task-dir), one detached flotilla-shim per task,
 * re-attachment to live shims after an agent restart, health checks, and
 * the TaskStatus list the agent reports in every Sync.
 */
#ifndef FLOTILLA_AGENT_TASKS_H
#define FLOTILLA_AGENT_TASKS_H

#include "flotilla.pb-c.h"
#include "flotilla/store.h"

typedef struct agent_tasks agent_tasks_t;

typedef struct agent_tasks_opts {
	flt_store_t *store;
	const char *data_dir;
	const char *spec_dir; /* NULL: no static tasks */
} agent_tasks_opts_t;

/* Loads the task records and re-attaches to every live shim; starts the
 * health-check thread. */
int agent_tasks_open(const agent_tasks_opts_t *o, agent_tasks_t **out,
		     flt_error_t *err);
/* Stops the health thread; tasks keep running under their shims. */
void agent_tasks_close(agent_tasks_t *t);

/* Reconciles specs with tasks and collects state changes. Main loop,
 * about once a second. */
void agent_tasks_tick(agent_tasks_t *t);

/* A snapshot for Sync: *out is an array of n statuses (free with
 * agent_tasks_status_free). Thread-safe. */
size_t agent_tasks_status(agent_tasks_t *t, Flotilla__TaskStatus ***out);
void agent_tasks_status_free(Flotilla__TaskStatus **v, size_t n);

#endif
