/*
 * flotilla-docgen: renders pages of docs/ from the coordinator's own
 * tables, so that they cannot drift from the code:
 *   flotilla-docgen lifecycles  > docs/lifecycles.md  (after checking each
 *                                 table: cells in range, states reachable)
 *   flotilla-docgen methods     > docs/methods.md
 * Exits 1 on a bad table, 2 on a bad command line.
 */
#include <stdio.h>
#include <string.h>

#include "coordinator.h"
#include "flotilla/pb.h"
#include "lifecycle.h"

static int lifecycles(void)
{
	int status = 0;
	printf("# Lifecycles\n\n"
	       "Generated from the coordinator's tables by `flotilla-docgen"
	       " lifecycles`\n(`coordinator/lifecycle.h`); the test"
	       " `docs.lifecycles` fails when this page\nand the code differ."
	       " Regenerate it with\n`build/coordinator/flotilla-docgen"
	       " lifecycles > docs/lifecycles.md`.\n\n"
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

static int methods(void)
{
	size_t n;
	const coord_method_t *m = coord_api_methods(&n);
	printf("# Methods\n\n"
	       "Generated from the coordinator's method table"
	       " (`coordinator/api.c`) by\n`flotilla-docgen methods`; the"
	       " test `docs.methods` fails when this page and\nthe code"
	       " differ.\n\n"
	       "Every call is one protobuf `Envelope` (`proto/flotilla.proto`)"
	       " naming the\nmethod. *Port*: `agent` is the coordinator's"
	       " `--listen` address, `api` its\n`--api` address; a method is"
	       " refused on the other port. *Permission*: what the\ncaller"
	       " needs (`join`: the join token; `node-self`: a node's own"
	       " secret;\n`anyone`: no token; `token`: any valid ACL token;"
	       " `management`: a\nmanagement token; `namespace:*`: granted per"
	       " namespace, the call's own;\nthe others fleet-wide; see"
	       " docs/security.md). It is checked before the\nbody is"
	       " decoded. *Changes state*: whether a call may change what is"
	       "\nstored; such calls are recorded in the audit trail.\n\n"
	       "| method | port | permission | changes state | request |"
	       " reply |\n| --- | --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < n; i++)
		printf("| `%s` | %s | %s | %s | `%s` | `%s` |\n",
		       flt_pb_enum_name(&flotilla__method__descriptor,
					m[i].method),
		       m[i].port == COORD_PORT_AGENT ? "agent" : "api",
		       coord_perm_name(m[i].perm), m[i].mutates ? "yes" : "no",
		       m[i].request->short_name, m[i].response->short_name);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "lifecycles") == 0)
		return lifecycles();
	if (argc == 2 && strcmp(argv[1], "methods") == 0)
		return methods();
	fprintf(stderr, "usage: flotilla-docgen lifecycles|methods\n");
	return 2;
}
