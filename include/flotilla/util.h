/* Small helpers shared by every program: memory, cleanup, time, strings. */
#ifndef FLOTILLA_UTIL_H
#define FLOTILLA_UTIL_H

#include <errno.h>
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

/* A namespace name: 1 to FLT_NAMESPACE_MAX of [a-z0-9-], not starting
 * with '-'. "default" is where jobs live unless they say otherwise. */
#define FLT_NAMESPACE_MAX 63
#define FLT_NAMESPACE_DEFAULT "default"
bool flt_namespace_valid(const char *s);

/*
 * Text rules. Strings from outside are valid UTF-8 without NUL; where
 * FLT_TEXT_CONTROLS is not given, also without control characters (C0
 * but tab and newline, DEL, C1 U+0080-U+009F). flt_text_check returns the
 * offset of the first byte breaking them, with *why set to "invalid
 * UTF-8", "NUL character" or "control character", or len (*why NULL) when
 * s holds none: messages say "invalid UTF-8 at byte 3".
 */
enum { FLT_TEXT_CONTROLS = 1 };
size_t flt_text_check(const char *s, size_t len, unsigned flags,
		      const char **why);

/* True when len bytes of s are text without control characters. */
bool flt_is_text(const char *s, size_t len);

/*
 * The length of the valid UTF-8 sequence of two to four bytes at p (of
 * len), or 0: overlong forms, surrogates, code points past U+10FFFF and
 * C1 controls (U+0080-U+009F) are not valid here (flt_is_text's rules).
 */
size_t flt_utf8_seq(const unsigned char *p, size_t len);

/*
 * Terminal safety: the one way every string from outside (names, labels,
 * messages, check output, fingerprints, task output) is shown to a person.
 * Kept as they are: printable ASCII and valid UTF-8. Escaped, so that
 * nothing can move the cursor, retitle a window, clear a screen or
 * reorder a line: C0 controls and DEL as \xNN ("\x1b"), NUL included;
 * C1 controls (U+0080-U+009F) and bidirectional controls (U+202A-U+202E,
 * U+2066-U+2069, U+200E, U+200F, U+061C) as \uNNNN ("\u202e"); each
 * byte of invalid UTF-8 as \xNN. With FLT_ESC_KEEP_LINES, newline and
 * tab are kept (logs); otherwise they are escaped too (one-line fields).
 * Backslashes are not escaped: the form is for reading, not for parsing.
 */
enum { FLT_ESC_KEEP_LINES = 1 };

/*
 * Writes the escaped form of len bytes of s (NULL reads as "") into buf of
 * size bytes, NUL-terminated and cut between two characters when it does
 * not fit; returns the length of the whole escaped form (snprintf's
 * contract: it fits when the result is below size; buf may be NULL when
 * size is 0).
 */
size_t flt_escape(const char *s, size_t len, unsigned flags, char *buf,
		  size_t size);

/* The escaped form of len bytes of s, malloc'd (the caller frees it);
 * aborts on OOM. */
char *flt_escape_dup(const char *s, size_t len, unsigned flags);

/*
 * For printf-style use: the escaped form of the string s (NULL reads as
 * ""), newlines and tabs escaped, in buf of size bytes (at least 4),
 * ending in "..." when cut. Returns buf. FLT_ESC(s) does so in a buffer
 * living to the end of the enclosing block:
 * printf("node %s\n", FLT_ESC(name)).
 */
const char *flt_esc(const char *s, char *buf, size_t size);
#define FLT_ESC_MAX 1024
#define FLT_ESC(s) flt_esc((s), (char[FLT_ESC_MAX]){ 0 }, FLT_ESC_MAX)

/*
 * Escaping a stream that arrives in pieces (a task's output): a UTF-8
 * character cut at the end of one piece is held back (at most 3 bytes)
 * and shown whole with the next, not as the escapes of its bytes.
 * flt_escaper_push returns the escaped form of what can be shown of
 * the len bytes of data so far (malloc'd, the caller frees it; aborts on
 * OOM); flt_escaper_end returns what was held back, escaped, and resets
 * the state. Zero-initialise, with flags as for flt_escape.
 */
typedef struct flt_escaper {
	unsigned flags;
	size_t nheld;
	unsigned char held[4];
} flt_escaper_t;
char *flt_escaper_push(flt_escaper_t *e, const void *data, size_t len);
char *flt_escaper_end(flt_escaper_t *e);

/*
 * A string fit to quote in a message (err->msg, a log line) whatever it
 * holds: at most max bytes (of the escaped form) of s (NULL reads as ""),
 * escaped as flt_escape does with '"' as \x22 too, cut between two
 * characters, and "..." after it when it was cut. Writes buf (len bytes,
 * at least 4; max shrinks to len - 4 when larger) and returns it.
 */
const char *flt_shown(const char *s, size_t max, char *buf, size_t len);

/*
 * Writes all len bytes of buf to fd, retrying on EINTR and short writes.
 * Returns 0 or a negative errno (-EIO when write returns 0); *written (if
 * not NULL) receives the bytes written, also on failure.
 */
static inline int flt_write_all(int fd, const void *buf, size_t len,
				size_t *written)
{
	/* Inline: the statically linked shim has none of the library but
	 * its error and allocation files. */
	const char *p = buf;
	size_t done = 0;
	int rc = 0;
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (written)
		*written = done;
	return rc;
}

/* The same at offset off, with pwrite (the file offset is not moved). */
int flt_pwrite_all(int fd, const void *buf, size_t len, off_t off);

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
 * Daemons serve one descriptor per connection: flt_nofile_raise, called
 * by flt_program_start once logging is set up, raises RLIMIT_NOFILE's soft limit
 * to the hard limit and logs the value (a warning when it cannot).
 * flt_nofile_restore, in a forked child before exec (it only calls
 * setrlimit: async-signal-safe), gives the child the soft limit the
 * process started with, for programs that expect the usual 1024 (select).
 */
void flt_nofile_raise(void);
void flt_nofile_restore(void);

/*
 * Daemons: flt_signals_block, called in main before any thread starts,
 * blocks SIGINT and SIGTERM in every thread (threads inherit the mask) and
 * ignores SIGPIPE; flt_signal_fd then returns a non-blocking signalfd on
 * which they arrive as events of the main loop.
 */
void flt_signals_block(void);
int flt_signal_fd(void);

/* Reads the signal poll found on sfd (from flt_signal_fd): true when one
 * came, logged as the reason the daemon shuts down. */
bool flt_signal_stop(int sfd);

/* mkdir -p with mode for the last component. */
int flt_mkdir_p(const char *path, unsigned mode);

/*
 * rm -rf: deletes path, or dfd/name, and everything below it, never
 * following a symlink (a symlink is deleted, not what it points to;
 * components before the last one are resolved as usual). With
 * FLT_RM_ONE_FS, it crosses no mount: a directory on another file system,
 * or that is a mount point (bind mounts included), is left with what
 * leads to it. Deletes what it can; returns 0 when nothing is left
 * (absent counts), else the first negative errno (-EXDEV for a mount
 * left, -ELOOP past FLT_RM_DEPTH_MAX levels). Not for trees others are
 * writing into at the same time: new entries may survive.
 */
enum { FLT_RM_ONE_FS = 1 };
#define FLT_RM_DEPTH_MAX 256
int flt_rm_rf(const char *path, unsigned flags);
int flt_rm_rf_at(int dfd, const char *name, unsigned flags);

/*
 * Bounds a daemon's shutdown: unless the process has exited within
 * seconds, logs the step last named by flt_shutdown_step and exits with
 * status 1. A socket that will not close must not keep a daemon from
 * stopping; what must survive is in LMDB.
 */
void flt_shutdown_guard(unsigned seconds);
void flt_shutdown_step(const char *step);

#endif
