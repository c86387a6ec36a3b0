/* Internal interfaces of the flotilla CLI. */
#ifndef FLOTILLA_CLI_H
#define FLOTILLA_CLI_H

#include <stdbool.h>

#include "flotilla/tls.h"
#include "flotilla/wire.h"

typedef struct cli {
	const char *address;
	flt_tls_opts_t tls;
	long timeout_ms;
	flt_client_t *client; /* opened on first use */
} cli_t;

/* One subcommand: "node list" is { "node", "list", ... }. */
typedef struct cli_cmd {
	const char *group;
	const char *name;
	const char *args; /* for usage: "[--json]" */
	const char *help;
	int (*run)(cli_t *c, int argc, char **argv);
} cli_cmd_t;

extern const cli_cmd_t cli_node_cmds[];
extern const cli_cmd_t cli_job_cmds[];

/* Calls the coordinator; on failure prints "flotilla: <reason>" and
 * returns non-zero. */
int cli_call(cli_t *c, Flotilla__Method method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc,
	     ProtobufCMessage **resp);

/* Prints a one-line error and returns the exit status 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints JSON (and a newline) to stdout and releases it. */
void cli_print_json(json_t *j);

#endif
