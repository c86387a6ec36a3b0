/*
 * Unit tests for common/regex.c: the bounds. Each pathological pattern is
 * refused or stopped within a bounded time and memory (glibc's regcomp
 * took 2 GB and 4.7 s on the first one); ordinary patterns match as
 * POSIX extended ones did.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "flotilla/regex.h"
#include "flotilla/util.h"

/* Generous for a loaded machine under ASan: the old failures took
 * seconds and gigabytes. */
#define CASE_MS_MAX 1000
#define CASE_RSS_KIB_MAX (32 * 1024)

static long maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *repeat(char c, size_t n, const char *tail)
{
	size_t t = strlen(tail);
	char *s = flt_xmalloc(n + t + 1);
	memset(s, c, n);
	memcpy(s + n, tail, t + 1);
	return s;
}

/*
 * Compiles re and, if that works, matches subject: returns what failed
 * (compile: its code; match: its code), or the match result, checking
 * the time and the growth of the peak RSS.
 */
static int bounded(const char *re, const char *subject, flt_error_t *err)
{
	long rss0 = maxrss_kib();
	int64_t t0 = mono_ms();
	flt_regex_t *rx = NULL;
	int rc = flt_regex_compile(re, &rx, err);
	if (rc == 0) {
		rc = flt_regex_match(rx, subject, err);
		flt_regex_free(rx);
	}
	int64_t ms = mono_ms() - t0;
	long grew = maxrss_kib() - rss0;
	if (ms > CASE_MS_MAX || grew > CASE_RSS_KIB_MAX)
		fail_msg("%.40s: %lld ms, peak RSS +%ld KiB", re, (long long)ms,
			 grew);
	return rc;
}

static void test_issue_pattern(void **state)
{
	flt_error_t err;
	(void)state;
	/* The issue's query: "{,n}" is glibc's, refused with a fix. */
	assert_int_equal(bounded("x{,30000}{,30000}y", "xxy", &err), -EINVAL);
	assert_string_equal(err.msg, "regular expression: at byte 1: \"{,n}\" "
				     "is not a repetition here: write "
				     "\"{0,n}\"");
	/* Written the PCRE2 way, nested counted repetitions pass the
	 * compiled-size limit. */
	assert_int_equal(bounded("(x{0,30000}){0,30000}y", "xxy", &err),
			 -EINVAL);
	assert_string_equal(err.msg, "regular expression: at byte 22: "
				     "regular expression is too large");
	assert_int_equal(bounded("((a{255}){255}){255}", "aaa", &err), -EINVAL);
	/* A quantifier on a quantifier is no repetition in PCRE2. */
	assert_int_equal(bounded("x{0,30000}{0,30000}y", "xxy", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "quantifier does not follow"));
}

static void test_catastrophic_backtracking(void **state)
{
	flt_error_t err;
	char *s = repeat('a', 40, "b");
	(void)state;
	/* 2^40 ways to split the a's: stopped by the match limit, with the
	 * JIT and without it. */
	assert_int_equal(bounded("(a+)+$", s, &err), -ERANGE);
	assert_string_equal(err.msg, "regular expression: match limit "
				     "exceeded (100000 steps)");
	assert_int_equal(bounded("(*NO_JIT)(a+)+$", s, &err), -ERANGE);
	assert_int_equal(bounded("(a|aa)+$", s, &err), -ERANGE);
	assert_int_equal(bounded("(*NO_JIT)(a|a?)+$", s, &err), -ERANGE);
	free(s);
}

static void test_nested_quantifiers(void **state)
{
	flt_error_t err;
	char *s = repeat('a', 64, "c");
	int rc;
	(void)state;
	/* Ten nested '+' (half a second of glibc's regcomp): completes or
	 * is stopped, both within the bounds. */
	rc = bounded("((((((((((a*)+)+)+)+)+)+)+)+)+)+b", s, &err);
	assert_true(rc == 0 || rc == -ERANGE);
	rc = bounded("(*NO_JIT)((((((((((a*)+)+)+)+)+)+)+)+)+)+b", s, &err);
	assert_true(rc == 0 || rc == -ERANGE);
	rc = bounded("((a|b|)*){999}", s, &err);
	assert_true(rc == -EINVAL || rc == -ERANGE || rc == 0);
	free(s);

	/* Deep backtracking on a long subject: the depth and heap limits
	 * stop the interpreter before it takes memory. */
	s = repeat('a', 200000, "");
	rc = bounded("(*NO_JIT)(a|b)*c", s, &err);
	assert_true(rc == 0 || rc == -ERANGE);
	rc = bounded("(a|b)*c", s, &err);
	assert_true(rc == 0 || rc == -ERANGE);
	free(s);

	/* Groups nested past 32 are refused at compile time. */
	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "(");
	strcat(deep, "a");
	for (int i = 0; i < 40; i++)
		strcat(deep, ")");
	assert_int_equal(bounded(deep, "a", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "parentheses are too deeply nested"));
}

static void test_long_pattern(void **state)
{
	flt_error_t err;
	char *re = repeat('a', 100 * 1024, "");
	(void)state;
	assert_int_equal(bounded(re, "a", &err), -EINVAL);
	assert_string_equal(err.msg,
			    "regular expression: longer than 1024 bytes");
	free(re);
	re = repeat('a', 1024, "");
	assert_int_equal(bounded(re, re, &err), 1);
	free(re);
}

static void test_ordinary_patterns(void **state)
{
	static const struct {
		const char *re, *s;
		int want;
	} t[] = {
		{ "^web-[0-9]+$", "web-12", 1 },
		{ "^web-[0-9]+$", "web-12x", 0 },
		{ "web", "my-web-1", 1 }, /* a search, not anchored */
		{ "^(eu|us)-[0-9]$", "us-3", 1 },
		{ "^(eu|us)-[0-9]$", "ap-3", 0 },
		{ "[[:digit:]]{2,3}", "a42", 1 },
		{ "^[[:alpha:]_]+$", "rack_a", 1 },
		{ "^5\\.1[0-9]", "5.15.0-91-amd64", 1 },
		{ "^5\\.1[0-9]", "5x15", 0 },
		{ "a{2}b?c*", "aa", 1 },
		{ "^$", "", 1 },
		{ ".", "", 0 },
		{ "(a)\\1", "aa", 1 }, /* back-references, bounded */
	};
	flt_error_t err;
	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		int rc = bounded(t[i].re, t[i].s, &err);
		if (rc != t[i].want)
			fail_msg("\"%s\" on \"%s\": %d, want %d (%s)", t[i].re,
				 t[i].s, rc, t[i].want, rc < 0 ? err.msg : "");
	}
	assert_int_equal(bounded("a(", "a", &err), -EINVAL);
	assert_string_equal(err.msg, "regular expression: at byte 2: "
				     "missing closing parenthesis");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_pattern),
		cmocka_unit_test(test_catastrophic_backtracking),
		cmocka_unit_test(test_nested_quantifiers),
		cmocka_unit_test(test_long_pattern),
		cmocka_unit_test(test_ordinary_patterns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
