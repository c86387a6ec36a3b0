/* Lifecycle tables: stepping, checking and rendering (see fsm.h). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "flotilla/fsm.h"
#include "flotilla/pb.h"

int flt_fsm_next(const flt_fsm_t *f, int state, int event)
{
	if (state < 0 || (unsigned)state >= f->n_states || event < 0 ||
	    (unsigned)event >= f->n_events)
		return FLT_FSM_REFUSE;
	return f->next[(unsigned)state * f->n_events + (unsigned)event];
}

const char *flt_fsm_state_name(const flt_fsm_t *f, int state)
{
	return flt_pb_enum_name(f->states, state);
}

int flt_fsm_step(const flt_fsm_t *f, const char *id, int *state, int event,
		 flt_error_t *err)
{
	int next = flt_fsm_next(f, *state, event);
	if (next == FLT_FSM_IGNORE || next == *state)
		return 0;
	if (next < 0) {
		const char *ev = event >= 0 && (unsigned)event < f->n_events
					 ? f->events[event]
					 : "?";
		return flt_err(err, FLT_ECONFLICT, "%s %s: cannot %s when %s",
			       f->name, id ? id : "", ev,
			       flt_fsm_state_name(f, *state));
	}
	*state = next;
	return 1;
}

int flt_fsm_check(const flt_fsm_t *f, const int *initial, flt_error_t *err)
{
	bool reached[256] = { false };
	if (f->n_states > 256 || f->n_states == 0 || f->n_events == 0)
		return flt_err(err, -EINVAL, "%s: bad table size", f->name);
	for (unsigned s = 0; s < f->n_states; s++) {
		if (!flt_pb_enum_known(f->states, (int)s))
			return flt_err(err, -EINVAL,
				       "%s: state %u is not in enum %s",
				       f->name, s, f->states->name);
		for (unsigned e = 0; e < f->n_events; e++) {
			int n = f->next[s * f->n_events + e];
			if (n != FLT_FSM_REFUSE && n != FLT_FSM_IGNORE &&
			    (n < 0 || (unsigned)n >= f->n_states))
				return flt_err(err, -EINVAL,
					       "%s: %s x %s: no state %d",
					       f->name,
					       flt_fsm_state_name(f, (int)s),
					       f->events[e], n);
			if (n >= 0 && (unsigned)n != s)
				reached[n] = true;
		}
	}
	for (const int *i = initial; i && *i >= 0; i++)
		if ((unsigned)*i < f->n_states)
			reached[*i] = true;
	for (unsigned s = 1; s < f->n_states; s++)
		if (!reached[s])
			return flt_err(err, -EINVAL,
				       "%s: nothing reaches state %s", f->name,
				       flt_fsm_state_name(f, (int)s));
	return 0;
}

void flt_fsm_markdown(const flt_fsm_t *f, FILE *out)
{
	fprintf(out, "## %s\n\n", f->name);
	if (f->doc)
		fprintf(out, "%s\n\n", f->doc);
	fprintf(out, "| state \\ event |");
	for (unsigned e = 0; e < f->n_events; e++)
		fprintf(out, " %s |", f->events[e]);
	fprintf(out, "\n| --- |");
	for (unsigned e = 0; e < f->n_events; e++)
		fprintf(out, " --- |");
	fprintf(out, "\n");
	/* The zero state's row, where a table has one, makes records. */
	bool makes = false;
	for (unsigned e = 0; e < f->n_events; e++)
		makes = makes || f->next[e] != FLT_FSM_REFUSE;
	for (unsigned s = makes ? 0 : 1; s < f->n_states; s++) {
		if (s == 0)
			fprintf(out, "| *(new)* |");
		else
			fprintf(out, "| **%s** |",
				flt_fsm_state_name(f, (int)s));
		for (unsigned e = 0; e < f->n_events; e++) {
			int n = f->next[s * f->n_events + e];
			if (n == FLT_FSM_REFUSE)
				fprintf(out, " refused |");
			else if (n == FLT_FSM_IGNORE)
				fprintf(out, " · |");
			else if ((unsigned)n == s)
				fprintf(out, " stays |");
			else
				fprintf(out, " → %s |",
					flt_fsm_state_name(f, n));
		}
		fprintf(out, "\n");
	}
	fprintf(out, "\n");
}
