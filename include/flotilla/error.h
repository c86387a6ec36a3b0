/* Errors: negative errno (or FLT_E* codes) plus a human message. */
#ifndef FLOTILLA_ERROR_H
#define FLOTILLA_ERROR_H

#include <stddef.h>

/* Project error codes, below -4096 so they never clash with errno. */
enum {
	FLT_EPROTO = -5001, /* malformed or invalid message */
	FLT_EAUTH = -5002, /* missing or wrong credentials */
	FLT_ENOTFOUND = -5003,
	FLT_EVERSION = -5004, /* unsupported protocol version */
	FLT_EMETHOD = -5005, /* unknown method */
	FLT_EREMOTE = -5006, /* the peer answered with an error */
	FLT_ESTORE = -5007, /* LMDB failure */
	FLT_ETRANSPORT = -5008,
	FLT_EUSAGE = -5009, /* bad command line or configuration */
	FLT_ECONFLICT = -5010,
	FLT_EDENIED = -5011, /* not allowed: a permission is missing */
};

#define FLT_ERROR_MSG_MAX 512

/*
 * Receives the reason of a failure. Functions that take a flt_error_t *
 * fill it on failure and leave it untouched on success; NULL is allowed.
 */
typedef struct flt_error {
	int code; /* the negative value the function returned */
	char msg[FLT_ERROR_MSG_MAX];
} flt_error_t;

/* Sets err (if not NULL) and returns code, for `return flt_err(...)`. */
int flt_err(flt_error_t *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with "prefix: ", keeping the code; returns err->code. */
int flt_err_prefix(flt_error_t *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Cuts an incomplete UTF-8 sequence off the end of s (after truncation). */
void flt_utf8_trim(char *s);

/* A short name for a code: strerror for errno values, ours for FLT_E*. */
const char *flt_strerror(int code);

/*
 * A failed write, sync or rename of a file under dir (code a negative
 * errno), as an operator must read it: a full disk is one whatever the
 * file system called it. A write that only partly fitted, or data the page
 * cache took and the disk then had no room for, may come back as EIO:
 * while the file system holding dir is (nearly) full, -EIO counts as
 * -ENOSPC. flt_write_errno returns the code to report (code, or -ENOSPC
 * for such an EIO); flt_write_strerror its reason: "no space left on
 * device", "disk quota exceeded", or strerror. Both call statvfs(dir) for
 * -EIO only, and keep errno.
 */
int flt_write_errno(int code, const char *dir);
const char *flt_write_strerror(int code, const char *dir);

#endif
