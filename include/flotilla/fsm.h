/*
 * Lifecycles as tables, as s6-supervise dispatches actions[state][event]:
 * each lifecycle (an allocation, a deployment, a campaign...) is one
 * state x event table, and the code moves a record only through it. The
 * states are an enum of the proto, so a state's name is its JSON name
 * (flt_pb_enum_name) in the CLI, the logs and the API alike; the tables
 * are rendered into docs/lifecycles.md from the code (flotilla-docgen).
 */
#ifndef FLOTILLA_FSM_H
#define FLOTILLA_FSM_H

#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "flotilla/error.h"

/* Cells of a table other than a next state. */
enum {
	FLT_FSM_REFUSE = -1, /* the event is an error in this state */
	FLT_FSM_IGNORE = -2, /* the event changes nothing in this state */
};

typedef struct flt_fsm {
	const char *name; /* "deployment": in messages and the docs */
	const char *doc; /* one paragraph for the docs, or NULL */
	const ProtobufCEnumDescriptor *states; /* the proto enum */
	unsigned n_states; /* rows: enum values 0 .. n_states-1 */
	const char *const *events; /* event names: n_events of them */
	unsigned n_events;
	/* next[state * n_events + event]: the state the event moves a record
	 * to (possibly the same), FLT_FSM_REFUSE or FLT_FSM_IGNORE. Row 0,
	 * the proto's zero value, may hold the events that make a record. */
	const signed char *next;
} flt_fsm_t;

/* The cell of (state, event); FLT_FSM_REFUSE when either is out of range. */
int flt_fsm_next(const flt_fsm_t *f, int state, int event);

/*
 * Moves *state on event. Returns 1 when the state changed, 0 when the
 * event changes nothing here (FLT_FSM_IGNORE, or a cell naming the same
 * state), FLT_ECONFLICT when the table refuses it: err then says
 * "<name> <id>: cannot <event> when <state>" and *state is untouched.
 */
int flt_fsm_step(const flt_fsm_t *f, const char *id, int *state, int event,
		 flt_error_t *err);

/* A state's JSON name ("failed_offline"); "unknown" outside the enum. */
const char *flt_fsm_state_name(const flt_fsm_t *f, int state);

/*
 * Checks a table: every cell in range, every state but the first (the
 * proto's zero value) reachable from some other state or named in
 * `initial` (a -1 terminated list). Returns 0, or -EINVAL with the first
 * problem in err.
 */
int flt_fsm_check(const flt_fsm_t *f, const int *initial, flt_error_t *err);

/*
 * Writes the table as a Markdown section (a heading, doc, a grid). The
 * zero state's row shows as "(new)" when any of its cells is not refused:
 * the events that make a record.
 */
void flt_fsm_markdown(const flt_fsm_t *f, FILE *out);

#endif
