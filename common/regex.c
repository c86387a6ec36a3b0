#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "flotilla/regex.h"
#include "flotilla/util.h"

/*
 * The bounds. Values a pattern is matched against are short (names,
 * labels and attributes of at most 255 bytes), and a legitimate pattern
 * needs a few hundred steps on them. 100,000 steps stop catastrophic
 * backtracking ("(a+)+$" against "aaa...b") in well under a millisecond
 * with the JIT, a few ms without; at 10^8 it takes 0.7 s. The heap limit
 * (KiB) bounds the interpreter's backtracking frames, the depth limit
 * their nesting; the JIT keeps its frames on a 32 KiB stack of its own.
 * The length and nesting limits keep compiling cheap; PCRE2 itself
 * refuses a compiled pattern over 64 KiB ("regular expression is too
 * large"), which is what stops nested counted repetitions.
 */
#define REGEX_LEN_MAX 1024
#define REGEX_NEST_MAX 32
#define REGEX_MATCH_LIMIT 100000
#define REGEX_DEPTH_LIMIT 5000
#define REGEX_HEAP_LIMIT_KIB 1024

struct flt_regex {
	pcre2_code *code;
	pcre2_match_context *mctx;
};

/* "{,n}" repeats in glibc and is literal text in PCRE2 10.42: refused
 * rather than silently meaning something else. */
static const char *gnu_interval(const char *re)
{
	for (const char *p = re; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (p[0] == '{' && p[1] == ',' && p[2] >= '0' && p[2] <= '9')
			return p;
	}
	return NULL;
}

int flt_regex_compile(const char *re, flt_regex_t **out, flt_error_t *err)
{
	const char *at;
	int code;
	PCRE2_SIZE off;

	*out = NULL;
	if (strlen(re) > REGEX_LEN_MAX)
		return flt_err(err, -EINVAL,
			       "regular expression: longer than %d bytes",
			       REGEX_LEN_MAX);
	if ((at = gnu_interval(re)))
		return flt_err(err, -EINVAL,
			       "regular expression: at byte %zu: \"{,n}\" is "
			       "not a repetition here: write \"{0,n}\"",
			       (size_t)(at - re));

	pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
	if (!cctx)
		return flt_err(err, -ENOMEM, "regular expression: no memory");
	pcre2_set_max_pattern_length(cctx, REGEX_LEN_MAX);
	pcre2_set_parens_nest_limit(cctx, REGEX_NEST_MAX);
	pcre2_code *c =
		pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
			      PCRE2_NEVER_BACKSLASH_C, &code, &off, cctx);
	pcre2_compile_context_free(cctx);
	if (!c) {
		PCRE2_UCHAR msg[160];
		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			strcpy((char *)msg, "not a valid pattern");
		return flt_err(err, -EINVAL,
			       "regular expression: at byte %zu: %s",
			       (size_t)off, (const char *)msg);
	}
	/* Without a JIT (not built in, or no executable memory allowed) the
	 * interpreter runs under the same limits. */
	(void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);

	pcre2_match_context *m = pcre2_match_context_create(NULL);
	if (!m) {
		pcre2_code_free(c);
		return flt_err(err, -ENOMEM, "regular expression: no memory");
	}
	pcre2_set_match_limit(m, REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(m, REGEX_DEPTH_LIMIT);
	pcre2_set_heap_limit(m, REGEX_HEAP_LIMIT_KIB);

	flt_regex_t *rx = flt_xcalloc(1, sizeof(*rx));
	rx->code = c;
	rx->mctx = m;
	*out = rx;
	return 0;
}

int flt_regex_match(const flt_regex_t *rx, const char *s, flt_error_t *err)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	if (!md)
		return flt_err(err, -ENOMEM, "regular expression: no memory");
	int rc = pcre2_match(rx->code, (PCRE2_SPTR)s, strlen(s), 0, 0, md,
			     rx->mctx);
	pcre2_match_data_free(md);
	if (rc >= 0)
		return 1;
	switch (rc) {
	case PCRE2_ERROR_NOMATCH: return 0;
	case PCRE2_ERROR_MATCHLIMIT:
		return flt_err(err, -ERANGE,
			       "regular expression: match limit exceeded "
			       "(%d steps)",
			       REGEX_MATCH_LIMIT);
	case PCRE2_ERROR_DEPTHLIMIT:
		return flt_err(err, -ERANGE,
			       "regular expression: depth limit exceeded");
	case PCRE2_ERROR_HEAPLIMIT:
		return flt_err(err, -ERANGE,
			       "regular expression: heap limit exceeded "
			       "(%d KiB)",
			       REGEX_HEAP_LIMIT_KIB);
	case PCRE2_ERROR_JIT_STACKLIMIT:
		return flt_err(err, -ERANGE,
			       "regular expression: JIT stack limit exceeded");
	case PCRE2_ERROR_NOMEMORY:
		return flt_err(err, -ENOMEM, "regular expression: no memory");
	default: {
		PCRE2_UCHAR msg[160];
		if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
			strcpy((char *)msg, "match failed");
		return flt_err(err, -EINVAL, "regular expression: %s",
			       (const char *)msg);
	}
	}
}

void flt_regex_free(flt_regex_t *rx)
{
	if (!rx)
		return;
	pcre2_match_context_free(rx->mctx);
	pcre2_code_free(rx->code);
	free(rx);
}
