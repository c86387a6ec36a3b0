/*
 * Logging: one line per event, "level=... msg=... key=value" on stderr.
 * Under systemd (JOURNAL_STREAM set) each line is prefixed with the
 * "<N>" priority that journald understands. Thread-safe.
 */
#ifndef FLOTILLA_LOG_H
#define FLOTILLA_LOG_H

#include <stdbool.h>

typedef enum flt_log_level {
	FLT_LOG_ERROR = 3,
	FLT_LOG_WARN = 4,
	FLT_LOG_INFO = 6,
	FLT_LOG_DEBUG = 7,
} flt_log_level_t;

/* Sets the program name and the lowest level written. Call once from main. */
void flt_log_init(const char *program, flt_log_level_t level);

/* Parses "error", "warn", "info" or "debug"; returns -EINVAL otherwise. */
int flt_log_level_parse(const char *s, flt_log_level_t *out);

bool flt_log_enabled(flt_log_level_t level);

/* fmt is the message followed by optional " key=value" fields. */
void flt_log(flt_log_level_t level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define flt_error(...) flt_log(FLT_LOG_ERROR, __VA_ARGS__)
#define flt_warn(...) flt_log(FLT_LOG_WARN, __VA_ARGS__)
#define flt_info(...) flt_log(FLT_LOG_INFO, __VA_ARGS__)
#define flt_debug(...)                                       \
	do {                                                 \
		if (flt_log_enabled(FLT_LOG_DEBUG))          \
			flt_log(FLT_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
