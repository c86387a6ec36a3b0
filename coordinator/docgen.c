/*
 * flotilla-docgen: prints docs/lifecycles.md from the lifecycle tables the
 * coordinator dispatches through, after checking each of them (every cell
 * in range, every state reachable). Exits 1 on a bad table.
 */
#include <stdio.h>

#include "lifecycle.h"

int main(void)
{
	int status = 0;
	printf("# Lifecycles\n\n"
	       "Generated from the coordinator's tables by `flotilla-docgen`"
	       " (`coordinator/lifecycle.h`);\nthe test `docs.lifecycles`"
	       " fails when this page and the code differ.\nRegenerate it"
	       " with `build/coordinator/flotilla-docgen >"
	       " docs/lifecycles.md`.\n\n"
	       "Each row is a state, each column an event; a cell names the"
	       " state the event\nmoves a record to. *refused*: the event is"
	       " an error in that state, answered\nwith a message and"
	       " changing nothing; *·*: the event changes nothing;"
	       "\n*stays*: handled without a change of state; the *(new)* row:"
	       " the events that\nmake a record. State names are the ones"
	       " the CLI, the logs and the JSON API\nshow.\n\n");
	for (const flt_fsm_t *const *f = coord_lifecycles; *f; f++) {
		flt_error_t err;
		if (flt_fsm_check(*f, NULL, &err) < 0) {
			fprintf(stderr, "flotilla-docgen: %s\n", err.msg);
			status = 1;
		}
		flt_fsm_markdown(*f, stdout);
	}
	return status;
}
