/* Small helpers shared by every program: memory, cleanup, time, strings. */
#ifndef FLOTILLA_UTIL_H
#define FLOTILLA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Allocation of small fixed sizes: aborts on OOM. Never for network sizes. */
void *flt_xmalloc(size_t n);
void *flt_xcalloc(size_t n, size_t size);
void *flt_xrealloc(void *p, size_t n);
char *flt_xstrdup(const char *s);

static inline void flt_freep(void *p) { free(*(void **)p); }
static inline void flt_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define cleanup_free __attribute__((cleanup(flt_freep)))
#define cleanup_close __attribute__((cleanup(flt_closep)))

/* Returns *pp and sets it to NULL: hands ownership out of a cleanup local. */
static inline void *flt_steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_ptr(pp) flt_steal_ptr(pp)

#define FLT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds on CLOCK_MONOTONIC and on the wall clock (Unix epoch). */
int64_t flt_now_mono_ms(void);
int64_t flt_now_wall_ms(void);

/* Formats Unix ms as RFC 3339 UTC ("2026-11-22T01:53:32.123Z"). */
void flt_format_time(int64_t unix_ms, char *buf, size_t len);

/* Human "3.2s ago" style age; buf gets "-" when unix_ms is 0. */
void flt_format_age(int64_t unix_ms, int64_t now_ms, char *buf, size_t len);

/* Fills buf (37 bytes) with a random RFC 4122 version 4 UUID. */
void flt_uuid_v4(char buf[37]);

/* True for a non-empty string of at most max bytes, all in [A-Za-z0-9._-]. */
bool flt_is_name(const char *s, size_t max);

/* True when s holds only printable ASCII or valid UTF-8, no control chars. */
bool flt_is_text(const char *s, size_t len);

/* Reads a whole small file (at most max bytes); trailing newline trimmed. */
int flt_read_file(const char *path, size_t max, char **out);

/*
 * The start of a daemon's main after its flags: log level (as given to
 * --log-level), logging, libsodium. Prints "program: reason" and returns
 * the exit status (2 for a bad level, 1 otherwise) on failure, 0 on
 * success.
 */
int flt_program_start(const char *program, const char *log_level);

/*
 * Daemons: flt_signals_block, called in main before any thread starts,
 * blocks SIGINT and SIGTERM in every thread (threads inherit the mask) and
 * ignores SIGPIPE; flt_signal_fd then returns a non-blocking signalfd on
 * which they arrive as events of the main loop.
 */
void flt_signals_block(void);
int flt_signal_fd(void);

/* mkdir -p with mode for the last component. */
int flt_mkdir_p(const char *path, unsigned mode);

/*
 * Bounds a daemon's shutdown: unless the process has exited within
 * seconds, logs the step last named by flt_shutdown_step and exits with
 * status 1. A socket that will not close must not keep a daemon from
 * stopping; what must survive is in LMDB.
 */
void flt_shutdown_guard(unsigned seconds);
void flt_shutdown_step(const char *step);

#endif
