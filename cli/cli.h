/* Internal interfaces of the flotilla CLI. */
#ifndef FLOTILLA_CLI_H
#define FLOTILLA_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "flotilla/flags.h"
#include "flotilla/tls.h"
#include "flotilla/wire.h"

typedef struct cli {
	const char *address;
	flt_tls_opts_t tls;
	long timeout_ms;
	const char *token; /* --token or $FLOTILLA_TOKEN */
	const char *token_file; /* --token-file or $FLOTILLA_TOKEN_FILE */
	char *secret; /* the token's secret id as sent; NULL: none */
	const char *namespace_; /* --namespace or $FLOTILLA_NAMESPACE */
	flt_client_t *client; /* opened on first use */
} cli_t;

/* The namespace calls name: --namespace, else ns (a job's own), else
 * none (the coordinator's "default"). Before the first call. */
void cli_use_namespace(cli_t *c, const char *ns);

/* One subcommand: "node list" is { "node", "list", ... }. */
typedef struct cli_cmd cli_cmd_t;
struct cli_cmd {
	const char *group;
	const char *name;
	const char *args; /* for usage: "NODE [--json]" */
	const char *help; /* one line */
	int (*run)(cli_t *c, const cli_cmd_t *cmd, int argc, char **argv);
};

extern const cli_cmd_t cli_node_cmds[];
extern const cli_cmd_t cli_job_cmds[];
extern const cli_cmd_t cli_alloc_cmds[];
extern const cli_cmd_t cli_deployment_cmds[];
extern const cli_cmd_t cli_package_cmds[];
extern const cli_cmd_t cli_inventory_cmds[];
extern const cli_cmd_t cli_campaign_cmds[];
extern const cli_cmd_t cli_acl_cmds[];
extern const cli_cmd_t cli_audit_cmds[];
extern const cli_cmd_t cli_system_cmds[];

/* Exit statuses. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1, /* runtime failure, or a rollout that failed */
	CLI_EXIT_USAGE = 2, /* bad command line */
	CLI_EXIT_INTERRUPTED = 130,
};

/* ---- main.c ------------------------------------------------------------ */

/* Calls the coordinator; on failure prints "flotilla: <reason>" and
 * returns non-zero. */
int cli_call(cli_t *c, Flotilla__Method method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc,
	     ProtobufCMessage **resp);

/* The same, silent: returns 0 or the negative code of flt_client_call
 * (FLT_ETRANSPORT, -ETIMEDOUT, FLT_ENOTFOUND...) with the reason in err. */
int cli_call_err(cli_t *c, Flotilla__Method method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *resp_desc,
		 ProtobufCMessage **resp, flt_error_t *err);

/* Prints a one-line error and returns the exit status 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* For a reply without the message it must carry: releases *resp (and
 * sets it to NULL), prints "flotilla: bad reply: no WHAT", returns 1. */
int cli_bad_reply(ProtobufCMessage **resp, const char *what);

/* Prints JSON (and a newline) to stdout and releases it. */
void cli_print_json(json_t *j);

/* The messages v[0..n) as a JSON array (a new reference). */
json_t *cli_json_array(ProtobufCMessage *const *v, size_t n);

/* ---- args.c: command lines ------------------------------------------- */

/* The "--json" flag, common to every command that prints something. */
#define CLI_FLAG_JSON(dest)                                                   \
	{                                                                     \
		"json", FLT_FLAG_BOOL, (dest), NULL, "print JSON", 0, 0, NULL \
	}
#define CLI_FLAG_END                                  \
	{                                             \
		NULL, 0, NULL, NULL, NULL, 0, 0, NULL \
	}

/*
 * Parses a subcommand's arguments (argv[0] is its name): flags from the
 * table anywhere among the operands ("job status web --json"), and between
 * min_ops and max_ops operands, stored in ops (unused slots NULL).
 * Returns -1 to go on, CLI_EXIT_OK after printing --help, or
 * CLI_EXIT_USAGE after printing a one-line usage error.
 */
int cli_args(const cli_cmd_t *cmd, const flt_flag_t *flags, int argc,
	     char **argv, int min_ops, int max_ops, const char **ops);

/* Prints a one-line usage error about cmd and returns CLI_EXIT_USAGE. */
int cli_usage_fail(const cli_cmd_t *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- render.c: what people read -------------------------------------- */

/* s, or "-" when it is NULL or empty. */
const char *cli_dash(const char *s);

/* Unix ms of an RFC 3339 UTC time as the coordinator writes it; 0 for "". */
int64_t cli_parse_time(const char *s);

/* "3.2s ago" for Unix ms (flt_format_age against now); "-" for 0. */
void cli_age(int64_t unix_ms, char *buf, size_t len);

/* "1h02m" style, for durations (not ages). */
void cli_format_duration(int64_t ms, char *buf, size_t len);

/* "512 B", "3.2 MiB": sizes in binary units. */
void cli_format_size(uint64_t bytes, char *buf, size_t len);

/*
 * Terminal safety. Everything the CLI shows a person goes through
 * flt_escape (see flotilla/util.h), so that no string from outside (a
 * label, a name, a message, check output, a fingerprint) can write control
 * sequences into the terminal or reorder a line: table cells, cli_kv
 * values, progress lines and error messages are escaped whole (newlines
 * and tabs too); cli_printf escapes what it prints but keeps newlines and
 * tabs, for lines of the CLI's own with values in them (which should
 * still pass free text through FLT_ESC). JSON (--json) is escaped by its
 * encoder and task logs by alloc logs itself.
 */
void cli_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints s escaped whole (one line) and a newline. */
void cli_puts(const char *s);
/* Writes fmt, formatted and escaped whole, to f. */
void cli_vprint_line(FILE *f, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Prints "Key            = value" (key padded to a fixed width), the
 * value escaped. */
void cli_kv(const char *key, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * A table: cells are copied in escaped, columns sized to their widest
 * cell, empty cells shown as "-", the last column not padded.
 */
typedef struct cli_table {
	size_t ncols, ncells, cap;
	char **cells;
} cli_table_t;

/* Starts a table with ncols column headers (const char *). */
void cli_table_init(cli_table_t *t, size_t ncols, ...);
/* Adds one row of t->ncols cells (const char *). */
void cli_table_row(cli_table_t *t, ...);
/* Prints every line prefixed by indent, and releases the table. */
void cli_table_print(cli_table_t *t, const char *indent);

/* "yes" or "no". */
static inline const char *cli_yes(bool b) { return b ? "yes" : "no"; }

/*
 * A state's name: its JSON name ("running", flt_pb_enum_name), the one
 * spelling of the API, the logs and the CLI; "" for the enum's zero value
 * (no state yet: undecided health, no deployment), which cli_dash and
 * tables show as "-".
 */
const char *cli_state(const ProtobufCEnumDescriptor *d, int v);
#define CLI_ALLOC_STATUS(a)                                   \
	cli_state(&flotilla__alloc_client_status__descriptor, \
		  (a)->client_status)
#define CLI_ALLOC_DESIRED(a) \
	cli_state(&flotilla__alloc_desired_status__descriptor, (a)->desired)
#define CLI_ALLOC_HEALTH(a) \
	cli_state(&flotilla__alloc_health__descriptor, (a)->health)
#define CLI_DEPLOYMENT_STATUS(v) \
	cli_state(&flotilla__deployment_status__descriptor, (v))

/* A task state's name ("running"). */

/* The tasks table of node status and alloc status (ALLOC column when any
 * task belongs to an allocation). */
void cli_print_tasks(Flotilla__TaskStatus *const *tasks, size_t n);

/*
 * The allocations table of job status: live allocations first (by group
 * and index), then those told to stop that have finished (newest first),
 * of which only the last 10 unless all. Sorts allocs in place.
 */
void cli_print_allocs(Flotilla__Alloc **allocs, size_t n, bool all);

/* True for the final client statuses: complete, failed, lost. */
bool cli_alloc_finished(const Flotilla__Alloc *a);

/* One line about a node: "node web-1 (1a2b3c4d): ready, eligible, ...". */
void cli_print_node_line(const Flotilla__Node *n);

/* "deployment 1a2b3c4d (web version 3) running: <description>". */
void cli_deployment_line(const Flotilla__Deployment *d, char *buf, size_t len);

/* True for successful, failed and cancelled. */
bool cli_deployment_done(const Flotilla__Deployment *d);

/*
 * Live progress of a deployment: one header line and one line per group.
 * On a terminal the lines are redrawn in place (with a progress bar);
 * otherwise a line is printed only when it changes.
 */
typedef struct cli_progress {
	bool tty;
	int drawn; /* lines drawn last time (terminal) */
	size_t nlast; /* lines printed last time */
	char **last;
} cli_progress_t;

void cli_progress_init(cli_progress_t *p, FILE *f);
void cli_progress_draw(cli_progress_t *p, const Flotilla__Deployment *d);
/* The same for any progress: draws n lines (malloc'd strings, taken with
 * the array) as the new state. */
void cli_progress_lines(cli_progress_t *p, char **lines, size_t n);
void cli_progress_end(cli_progress_t *p);

/* "[#######-------] ": done of total as a bar (and a space) in buf. */
#define CLI_BAR_WIDTH 14
#define CLI_BAR_SIZE (CLI_BAR_WIDTH + 4)
void cli_progress_bar(char buf[CLI_BAR_SIZE], unsigned done, unsigned total);

/* ---- monitor.c: following a rollout ------------------------------------ */

/* Catches SIGINT from now on: waits return early and cli_interrupted()
 * says so. */
void cli_catch_interrupt(void);
bool cli_interrupted(void);

/* Sleeps ms, or less when SIGINT arrives. */
void cli_sleep_ms(int ms);

/*
 * One poll of a watch. A coordinator that is away (restarting, unreachable,
 * busy) is retried until deadline (flt_now_mono_ms), saying so once (and
 * making p, when not NULL, start its lines again below); any other error
 * ends the watch. Returns 0, or 1 after printing why.
 */
int cli_poll_call(cli_t *c, Flotilla__Method m, const ProtobufCMessage *req,
		  const ProtobufCMessageDescriptor *desc,
		  ProtobufCMessage **resp, int64_t deadline, cli_progress_t *p);

/*
 * Shows the progress of deployment id until it is successful (returns 0),
 * failed or cancelled (1), or wait_s seconds have passed (1); SIGINT
 * returns CLI_EXIT_INTERRUPTED.
 */
int cli_watch_deployment(cli_t *c, const char *id, long wait_s);

/*
 * Waits until evaluation eval_id (may be NULL or "") is done, every
 * allocation of job that is to run has started (or finished) and every one
 * told to stop has finished, or wait_s seconds, then prints the
 * allocations table. Returns 0, or 1 when an allocation failed or the wait
 * ran out; SIGINT returns CLI_EXIT_INTERRUPTED.
 */
int cli_watch_allocs(cli_t *c, const char *job, const char *eval_id,
		     long wait_s);

#endif
