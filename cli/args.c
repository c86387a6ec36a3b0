/* Command lines of the subcommands: flags among operands. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "flotilla/util.h"

int cli_usage_fail(const cli_cmd_t *cmd, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("flotilla: ", stderr);
	va_start(ap, fmt);
	cli_vprint_line(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (usage: flotilla %s %s %s)\n", cmd->group, cmd->name,
		cmd->args);
	return CLI_EXIT_USAGE;
}

static void help(const cli_cmd_t *cmd, const flt_flag_t *flags)
{
	char text[512];
	snprintf(text, sizeof(text), "Usage: flotilla %s %s %s\n\n%c%s.",
		 cmd->group, cmd->name, cmd->args, toupper(cmd->help[0]),
		 cmd->help + 1);
	flt_flags_usage(stdout, text, flags);
}

/* "missing NAME": the first operand of cmd->args not given. */
static int missing(const cli_cmd_t *cmd, int given)
{
	const char *p = cmd->args;
	for (int i = 0; i < given && *p; i++) {
		p += strcspn(p, " ");
		p += strspn(p, " ");
	}
	return cli_usage_fail(cmd, "missing %.*s", (int)strcspn(p, " "), p);
}

int cli_args(const cli_cmd_t *cmd, const flt_flag_t *flags, int argc,
	     char **argv, int min_ops, int max_ops, const char **ops)
{
	flt_error_t err;
	int n = 0, pos = 0;

	for (int i = 0; i < max_ops; i++)
		ops[i] = NULL;
	/*
	 * flt_flags_parse stops at the first operand; parsing again from
	 * there (the operand taking argv[0]'s place) lets flags follow it.
	 */
	while (pos < argc) {
		int next;
		int rc = flt_flags_parse(flags, argc - pos, argv + pos, &next,
					 &err);
		if (rc == FLT_FLAGS_HELP) {
			help(cmd, flags);
			return CLI_EXIT_OK;
		}
		if (rc == FLT_FLAGS_VERSION) {
			printf("flotilla %s\n", FLT_VERSION);
			return CLI_EXIT_OK;
		}
		if (rc < 0)
			return cli_usage_fail(cmd, "%s", err.msg);
		pos += next;
		if (pos >= argc)
			break;
		if (n == max_ops)
			return cli_usage_fail(cmd, "unexpected argument \"%s\"",
					      argv[pos]);
		ops[n++] = argv[pos];
	}
	if (n < min_ops)
		return missing(cmd, n);
	return -1;
}
