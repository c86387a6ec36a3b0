/*
 * Regular expressions from clients (job constraints, inventory queries):
 * PCRE2 with bounds on everything a pattern can make the process spend.
 * glibc's regcomp has no memory bound ("x{,30000}{,30000}y" took 2 GB).
 *
 * Syntax: PCRE2's (Perl-compatible). A POSIX extended pattern means the
 * same, with two exceptions: "{,n}" (a GNU extension of glibc) is refused
 * with a message asking for "{0,n}", and a backslash inside brackets
 * escapes ("[\d]" is a digit, not "\" or "d"). Matching is a search, not
 * anchored, on bytes: anchor with ^ and $ as before.
 *
 * Bounds (the numbers are in regex.c and docs/operator-guide.md): the
 * pattern's length and group nesting, the compiled size (PCRE2's own
 * limit), and per match a match limit (steps), a depth limit and a heap
 * limit; the JIT, when it compiles the pattern, runs on its default
 * 32 KiB stack. A pattern that passes a bound fails with a message that
 * starts "regular expression: ".
 */
#ifndef FLOTILLA_REGEX_H
#define FLOTILLA_REGEX_H

#include <stdbool.h>

#include "flotilla/error.h"

typedef struct flt_regex flt_regex_t;

/*
 * Compiles re into *out (free with flt_regex_free). -EINVAL when re is
 * not a pattern or passes a bound, the message naming the reason and,
 * for PCRE2's compile errors, the byte offset: "regular expression: at
 * byte 3: missing closing parenthesis".
 */
int flt_regex_compile(const char *re, flt_regex_t **out, flt_error_t *err);

/*
 * Searches s: 1 when it matches, 0 when not, -ERANGE when a bound stops
 * the match ("regular expression: match limit exceeded"), another
 * negative errno on a PCRE2 failure. Thread-safe: one compiled pattern
 * may be matched from many threads at once (match data is per call).
 */
int flt_regex_match(const flt_regex_t *rx, const char *s, flt_error_t *err);

void flt_regex_free(flt_regex_t *rx);

#endif
