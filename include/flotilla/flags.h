/*
 * Command-line flags, declared as a table: parsing (getopt_long underneath),
 * validation of ranges and key=value pairs, environment fallbacks and the
 * --help text all come from it.
 */
#ifndef FLOTILLA_FLAGS_H
#define FLOTILLA_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flotilla/error.h"

typedef enum flt_flag_type {
	FLT_FLAG_STRING, /* const char *: points into argv or environ */
	FLT_FLAG_INT, /* long, checked against [min, max] */
	FLT_FLAG_BOOL, /* bool, takes no argument */
	FLT_FLAG_LIST, /* flt_strlist_t, repeatable */
	FLT_FLAG_KV, /* flt_strlist_t of "key=value", repeatable, checked */
} flt_flag_type_t;

typedef struct flt_strlist {
	size_t n;
	const char **v; /* owned array; elements point into argv */
} flt_strlist_t;

typedef struct flt_flag {
	const char *name; /* long name without "--"; NULL ends the table */
	flt_flag_type_t type;
	void *dest;
	const char *metavar; /* "URL", "DIR"...: for --help */
	const char *help;
	long min, max; /* FLT_FLAG_INT only; both 0 means no bounds */
	const char *env; /* environment variable used when the flag is absent */
} flt_flag_t;

/* What flt_flags_parse returns, besides 0 and a negative error. */
#define FLT_FLAGS_HELP 1 /* "--help" or "-h" */
#define FLT_FLAGS_VERSION 2 /* "--version" */

/*
 * Parses argv from argv[1] up to the first non-flag argument (or "--"),
 * and sets *next to its index. "--help"/"-h" returns FLT_FLAGS_HELP and
 * "--version" FLT_FLAGS_VERSION, and neither parses anything more (a
 * flag of the table named "help" or "version" is its own). Errors
 * (FLT_EUSAGE) name the flag: "--heartbeat-ttl: must be between 1 and
 * 3600", "--address: needs a value", "--bogus: unknown flag".
 */
int flt_flags_parse(const flt_flag_t *flags, int argc, char **argv, int *next,
		    flt_error_t *err);

/* The exit status of every program for a bad command line. */
#define FLT_FLAGS_EXIT_USAGE 2

void flt_flags_usage(FILE *f, const char *usage, const flt_flag_t *flags);

/*
 * The flags of a program's main: parses argv; "--help" prints usage and
 * the flags' help to stdout, "--version" prints "program FLT_VERSION"; a
 * bad flag, or an operand when operands is false, prints "program:
 * reason" to stderr. Returns -1 when the program goes on (its operands
 * from argv[*next]), else its exit status: 0 after --help or --version,
 * FLT_FLAGS_EXIT_USAGE after an error.
 */
int flt_flags_main(const flt_flag_t *flags, int argc, char **argv, int *next,
		   const char *program, const char *usage, bool operands);

/*
 * The edit distance between a and b: how many insertions, deletions,
 * substitutions of one byte and swaps of two neighbouring bytes turn a
 * into b (the optimal string alignment distance), or max + 1 when it is
 * more than max. For "did you mean" suggestions.
 */
size_t flt_edit_distance(const char *a, const char *b, size_t max);

/*
 * Of the n candidates, the one nearest to s within max edits (the first
 * of equals), or NULL when none is; NULL candidates are skipped.
 */
const char *flt_nearest(const char *s, const char *const *candidates, size_t n,
			size_t max);

/* Frees the arrays of every list flag in the table. */
void flt_flags_free(const flt_flag_t *flags);

/* Splits "key=value" at the first '='; the key must be a valid label key. */
int flt_kv_split(const char *s, char *key, size_t keylen, const char **value,
		 flt_error_t *err);

/*
 * Parses a duration such as "90s", "5m", "1h30m" or "250ms" (units ms, s,
 * m, h, d; at least one; no sign, no fraction) into milliseconds, at most
 * max_ms. Returns 0; -EINVAL when s is no such duration, -ERANGE when it
 * is 0 or longer than max_ms, with the reason in err (*ms is left alone).
 */
int flt_duration_parse(const char *s, uint64_t max_ms, uint64_t *ms,
		       flt_error_t *err);

#endif
