#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>

#include "flotilla/log.h"
#include "flotilla/util.h"

/*
 * The only process-wide state of the library: set once by main before any
 * thread starts, read-only afterwards.
 */
static struct {
	const char *program;
	flt_log_level_t level;
	bool journal;
} logcfg = { "flotilla", FLT_LOG_INFO, false };

void flt_log_init(const char *program, flt_log_level_t level)
{
	logcfg.program = program;
	logcfg.level = level;
	logcfg.journal = getenv("JOURNAL_STREAM") != NULL;
}

int flt_log_level_parse(const char *s, flt_log_level_t *out)
{
	static const struct {
		const char *name;
		flt_log_level_t level;
	} names[] = { { "error", FLT_LOG_ERROR },
		      { "warn", FLT_LOG_WARN },
		      { "info", FLT_LOG_INFO },
		      { "debug", FLT_LOG_DEBUG } };
	for (size_t i = 0; i < FLT_ARRAY_SIZE(names); i++)
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	return -EINVAL;
}

bool flt_log_enabled(flt_log_level_t level) { return level <= logcfg.level; }

static const char *level_name(flt_log_level_t l)
{
	switch (l) {
	case FLT_LOG_ERROR: return "error";
	case FLT_LOG_WARN: return "warn";
	case FLT_LOG_INFO: return "info";
	default: return "debug";
	}
}

void flt_log(flt_log_level_t level, const char *fmt, ...)
{
	char line[2048], msg[2048];
	int n = 0;
	va_list ap;

	if (!flt_log_enabled(level))
		return;
	if (logcfg.journal) {
		n = snprintf(line, sizeof(line), "<%d>level=%s msg=", level,
			     level_name(level));
	} else {
		char ts[40];
		flt_format_time(flt_now_wall_ms(), ts, sizeof(ts));
		n = snprintf(line, sizeof(line), "%s %s level=%s msg=", ts,
			     logcfg.program, level_name(level));
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Values may come from the network: a newline or escape sequence
	 * must never forge a line (or a journald priority) of its own, nor
	 * write into the terminal of whoever reads the log. The format
	 * itself holds none of them, so the whole message is escaped. */
	flt_escape(msg, strlen(msg), 0, line + n, sizeof(line) - (size_t)n - 1);
	/* One write per line so concurrent threads never interleave. */
	size_t len = strlen(line);
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}
