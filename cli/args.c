/* Command lines of the subcommands: flags among operands, durations. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"
#include "flotilla/util.h"

int cli_usage_fail(const cli_cmd_t *cmd, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("flotilla: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
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
		if (rc == 1) {
			help(cmd, flags);
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

static const struct {
	const char *name;
	uint64_t ms;
} units[] = {
	{ "ms", 1 },      { "s", 1000 },     { "m", 60000 },
	{ "h", 3600000 }, { "d", 86400000 },
};

/* The unit at the start of s (longest name first: "ms" before "m"). */
static int unit_at(const char *s, size_t *len)
{
	int best = -1;
	size_t best_len = 0;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(units); i++) {
		size_t l = strlen(units[i].name);
		if (l > best_len && strncmp(s, units[i].name, l) == 0) {
			best = (int)i;
			best_len = l;
		}
	}
	*len = best_len;
	return best;
}

int cli_parse_duration(const char *s, uint64_t max_ms, uint64_t *ms,
		       flt_error_t *err)
{
	uint64_t total = 0;
	const char *p = s;

	if (!*p)
		return flt_err(err, -EINVAL,
			       "empty duration (e.g. 30s, 5m, 1h)");
	while (*p) {
		uint64_t v = 0;
		size_t ulen;
		if (*p < '0' || *p > '9')
			return flt_err(err, -EINVAL,
				       "\"%s\": not a duration (e.g. 30s, 5m, "
				       "1h30m)",
				       s);
		for (; *p >= '0' && *p <= '9'; p++) {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > max_ms)
				goto too_long;
		}
		int u = unit_at(p, &ulen);
		if (u < 0)
			return flt_err(err, -EINVAL,
				       "\"%s\": %s (units: ms, s, m, h, d)", s,
				       *p ? "unknown unit" : "missing unit");
		if (v > max_ms / units[u].ms)
			goto too_long;
		total += v * units[u].ms;
		if (total > max_ms)
			goto too_long;
		p += ulen;
	}
	if (total == 0)
		return flt_err(err, -EINVAL, "\"%s\": must be more than 0", s);
	*ms = total;
	return 0;
too_long:
	return flt_err(err, -EINVAL, "\"%s\": longer than %llu hours", s,
		       (unsigned long long)(max_ms / 3600000));
}
