/* flotilla system ...: the coordinator itself. */
#include <stdio.h>

#include "cli.h"
#include "flotilla/pb.h"

static int system_gc(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv)
{
	Flotilla__SystemGcRequest req = FLOTILLA__SYSTEM_GC_REQUEST__INIT;
	Flotilla__GcResponse *resp;
	bool json = false;
	const flt_flag_t flags[] = { CLI_FLAG_JSON(&json), CLI_FLAG_END };
	int rc = cli_args(cmd, flags, argc, argv, 0, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = cli_call(c, FLOTILLA__METHOD__METHOD_SYSTEM_GC, &req.base,
			   &flotilla__gc_response__descriptor,
			   (ProtobufCMessage **)&resp)) != 0)
		return rc;
	if (json)
		cli_print_json(flt_pb_to_json(&resp->base));
	else
		cli_printf("garbage collected: %u jobs, %u versions, %u "
			   "allocations, %u evaluations, %u deployments\n",
			   resp->jobs, resp->versions, resp->allocs,
			   resp->evals, resp->deployments);
	flotilla__gc_response__free_unpacked(resp, NULL);
	return 0;
}

const cli_cmd_t cli_system_cmds[] = {
	{ "system", "gc", "[--json]",
	  "collect garbage now: what ended longer ago than the retention",
	  system_gc },
	{ NULL, NULL, NULL, NULL, NULL },
};
