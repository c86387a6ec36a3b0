/* Unit tests for common/vercmp.c: dpkg, Maven and semver ordering. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flotilla/util.h"
#include "flotilla/vercmp.h"

typedef struct vpair {
	const char *a, *b;
	int want; /* -1, 0 or 1 */
} vpair_t;

static int sgn(int c) { return (c > 0) - (c < 0); }

static int cmp_in(flt_vscheme_t s, const char *a, const char *b)
{
	flt_error_t err = { 0 };
	int c = 99;

	if (flt_version_cmp(s, a, b, &c, &err) < 0)
		fail_msg("%s: %s vs %s: %s", flt_vscheme_name(s), a, b,
			 err.msg);
	return sgn(c);
}

/* Each pair both ways round; every failure is printed before failing. */
static void check_pairs(flt_vscheme_t s, const vpair_t *p, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		int ab = cmp_in(s, p[i].a, p[i].b);
		int ba = cmp_in(s, p[i].b, p[i].a);
		if (ab != p[i].want || ba != -p[i].want) {
			print_error(
				"%s: \"%s\" vs \"%s\": got %d (reversed %d), "
				"want %d\n",
				flt_vscheme_name(s), p[i].a, p[i].b, ab, ba,
				p[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* Every version of v sorts strictly before every later one. */
static void check_order(flt_vscheme_t s, const char *const *v, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int want = i < j ? -1 : i > j ? 1 : 0;
			int got = cmp_in(s, v[i], v[j]);
			if (got != want) {
				print_error("%s: \"%s\" vs \"%s\": got %d, "
					    "want %d\n",
					    flt_vscheme_name(s), v[i], v[j],
					    got, want);
				bad++;
			}
		}
	assert_int_equal(bad, 0);
}

static void check_equal(flt_vscheme_t s, const char *const *v, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (cmp_in(s, v[i], v[j]) != 0) {
				print_error("%s: \"%s\" != \"%s\"\n",
					    flt_vscheme_name(s), v[i], v[j]);
				bad++;
			}
	assert_int_equal(bad, 0);
}

/* ---- schemes by name ---------------------------------------------------- */

static void test_scheme_names(void **state)
{
	flt_vscheme_t s;

	(void)state;
	assert_true(flt_vscheme_parse("dpkg", &s));
	assert_int_equal(s, FLT_VS_DPKG);
	assert_true(flt_vscheme_parse("maven", &s));
	assert_int_equal(s, FLT_VS_MAVEN);
	assert_true(flt_vscheme_parse("semver", &s));
	assert_int_equal(s, FLT_VS_SEMVER);
	assert_false(flt_vscheme_parse("rpm", &s));
	assert_false(flt_vscheme_parse("", &s));
	assert_false(flt_vscheme_parse("Maven", &s));
	assert_string_equal(flt_vscheme_name(FLT_VS_DPKG), "dpkg");
	assert_string_equal(flt_vscheme_name(FLT_VS_MAVEN), "maven");
	assert_string_equal(flt_vscheme_name(FLT_VS_SEMVER), "semver");
}

/* ---- dpkg --------------------------------------------------------------- */

static void test_dpkg_table(void **state)
{
	static const vpair_t t[] = {
		/* the reference's example chain */
		{ "1.0~rc1", "1.0", -1 },
		{ "1.0", "1.0a", -1 },
		{ "1.0a", "1.0+b1", -1 },
		{ "1.0~rc1", "1.0+b1", -1 },
		/* '~' before everything, even the end */
		{ "1.0~", "1.0", -1 },
		{ "1.0~~", "1.0~", -1 },
		{ "1.0~~a", "1.0~", -1 },
		{ "1.0~", "1.0~a", -1 },
		{ "1.0~a", "1.0", -1 },
		{ "~", "", -1 },
		{ "~~", "~", -1 },
		{ "1-1~", "1-1", -1 },
		{ "3.0.11-1~deb12u1", "3.0.11-1", -1 },
		{ "3.0.11-1~deb12u1", "3.0.10-1", 1 },
		{ "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", -1 },
		/* letters before other characters, ASCII within each */
		{ "1.0a", "1.0+", -1 },
		{ "1.0z", "1.0.", -1 },
		{ "1.0A", "1.0a", -1 },
		{ "1.0Z", "1.0a", -1 },
		{ "1.0+", "1.0.", -1 },
		{ "1.0a", "1.0", 1 },
		{ "1.0.", "1.0", 1 },
		{ "1a", "1.", -1 },
		/* digit runs as numbers */
		{ "1.2", "1.10", -1 },
		{ "1.01", "1.1", 0 },
		{ "1.001", "1.1", 0 },
		{ "000", "0", 0 },
		{ "1.0", "1.00", 0 },
		{ "2", "10", -1 },
		{ "10", "9", 1 },
		/* far beyond 64 bits */
		{ "1.123456789012345678901234567890",
		  "1.123456789012345678901234567889", 1 },
		{ "99999999999999999999", "100000000000000000000", -1 },
		{ "18446744073709551616", "18446744073709551615", 1 },
		{ "0018446744073709551616", "18446744073709551616", 0 },
		/* epochs */
		{ "1:1.0", "2.0", 1 },
		{ "0:1.0", "1.0", 0 },
		{ "00:1.0", "1.0", 0 },
		{ "1:0.1", "0:9.9", 1 },
		{ "10:1", "9:1", 1 },
		{ "2:1", "10:1", -1 },
		{ "99999999999999999999:1", "9:1", 1 },
		{ "1:1.0-1", "1:1.0-2", -1 },
		/* an epoch takes the first ':', the upstream may hold more */
		{ "1:2:3", "1:2:4", -1 },
		{ "1:2:3-1", "1:2:3-0", 1 },
		/* revisions: after the last hyphen; absent is like "0" */
		{ "1.0-0", "1.0", 0 },
		{ "1.0-", "1.0", 0 },
		{ "1.0-1", "1.0", 1 },
		{ "1.0-1", "1.0-01", 0 },
		{ "1.0-1-2", "1.0-2", 1 },
		{ "1.0-1-2", "1.0-1-1", 1 },
		{ "1.0-a", "1.0-0", 1 },
		{ "1.0-~", "1.0", -1 },
		{ "1.0-1.1", "1.0-1", 1 },
		{ "1.0-1+b1", "1.0-1", 1 },
		{ "1.0-1+b1", "1.0-1.1", -1 },
		{ "1.0-2", "1.0-10", -1 },
		/* upstream decides before the revision */
		{ "1.1-1", "1.0-9", 1 },
		{ "1.0-9", "1.0.0-1", -1 },
		/* real package versions */
		{ "2.36-9+deb12u4", "2.36-9+deb12u10", -1 },
		{ "7.88.1-10+deb12u5", "7.88.1-10", 1 },
		{ "1:9.2p1-2+deb12u2", "1:9.2p1-2", 1 },
		{ "1:9.2p1-2", "9.3p1-1", 1 },
		{ "252.22-1~deb12u1", "252.19-1~deb12u1", 1 },
		/* blanks around are dropped, as dpkg does */
		{ " 1.0 ", "1.0", 0 },
		/* identical */
		{ "1.2.3-4", "1.2.3-4", 0 },
		{ "", "", 0 },
		{ "", "0", 0 },
	};

	(void)state;
	check_pairs(FLT_VS_DPKG, t, FLT_ARRAY_SIZE(t));
	assert_true(flt_dpkg_cmp("1.0~rc1", "1.0") < 0);
	assert_true(flt_dpkg_cmp("1.0+b1", "1.0a") > 0);
}

/* A long ascending chain, each step checked against every other. */
static void test_dpkg_chain(void **state)
{
	static const char *const v[] = {
		"~~",   "~",     "0~",   "0",         "0a",    "0.0~",
		"0.a",  "1~~",   "1~",   "1~a",       "1",     "1-0.1",
		"1-1",  "1-1.1", "1a",   "1a-1",      "1b",    "1+",
		"1.0~", "1.0",   "1.0a", "1.0+b1",    "1.1",   "1.10",
		"2",    "10",    "1:0",  "1:1.0~rc1", "1:1.0", "2:0",
	};

	(void)state;
	check_order(FLT_VS_DPKG, v, FLT_ARRAY_SIZE(v));
}

/* ---- Maven -------------------------------------------------------------- */

static void test_maven_examples(void **state)
{
	static const vpair_t t[] = {
		/* the specification's examples */
		{ "1-snapshot", "1", -1 },
		{ "1", "1-sp", -1 },
		{ "1-snapshot", "1-sp", -1 },
		{ "1-foo2", "1-foo10", -1 },
		{ "1.ga", "1-0", 0 },
		{ "1-0", "1", 0 },
		{ "1.ga", "1", 0 },
		{ "1-ga", "1", 0 },
		{ "1.0", "1", 0 },
		{ "1-a1", "1-alpha-1", 0 },
		{ "2.0-beta9", "2.0-rc1", -1 },
		{ "2.0-rc1", "2.0", -1 },
		{ "2.0", "2.0.1", -1 },
		{ "2.0-beta9", "2.0.1", -1 },
		{ "1", "1.1", -1 },
		{ "1-sp", "1-ga", 1 },
		{ "1-sp.1", "1-ga.1", 1 },
		/* log4j's releases */
		{ "2.14.1", "2.15.0", -1 },
		{ "2.15.0", "2.17.1", -1 },
		{ "2.14.1", "2.17.1", -1 },
		{ "2.12.4", "2.13.0", -1 },
		{ "2.3.2", "2.4", -1 },
		{ "2.3.2", "2.4.0", -1 },
		{ "2.4", "2.4.0", 0 },
		{ "2.0-beta8", "2.0-beta9", -1 },
		{ "2.0-alpha7", "2.0-beta7", -1 },
		{ "2.0-beta9", "2.0", -1 },
		{ "2.0-rc2", "2.0", -1 },
		{ "2.0-beta10", "2.0-beta9", 1 },
		{ "2.12.2", "2.12.10", -1 },
		/* .qualifier = -qualifier < -number < .number */
		{ "1.foo", "1-foo", 0 },
		{ "1-foo", "1-1", -1 },
		{ "1-1", "1.1", -1 },
		{ "1.foo", "1.1", -1 },
		{ "1.0.RC2", "1.0-RC3", -1 },
		{ "1.0-RC3", "1.0.1", -1 },
		{ "1.0.0.rc1", "1.0.0-rc2", -1 },
		/* padding and trimming */
		{ "1.0.0", "1", 0 },
		{ "1.", "1", 0 },
		{ "1-", "1", 0 },
		{ "1.0.0-foo.0.0", "1-foo", 0 },
		{ "1.0.0-0.0.0", "1", 0 },
		{ "1.0-0", "1", 0 },
		{ "1.0.1", "1", 1 },
		{ "1-0.1", "1", 1 },
		{ "1-0.alpha", "1", -1 },
		{ "1-0.alpha", "1-0.beta", -1 },
		{ "1..1", "1.0.1", 0 },
		{ "", "0", 0 },
		{ "", "1", -1 },
		/* sp, unknown qualifiers (alphabetical, after sp) */
		{ "1-sp", "1-sp2", -1 },
		{ "1-sp", "1-abc", -1 },
		{ "1-abc", "1-def", -1 },
		{ "1-def", "1-1", -1 },
		{ "2.0.1-klm", "2.0.1-lmn", -1 },
		{ "2.0.1", "2.0.1-xyz", -1 },
		{ "2.0.1-xyz", "2.0.1-123", -1 },
		{ "1-zzz", "1-zzzz", -1 },
		{ "1-rc", "1-cr", 0 },
		{ "1cr", "1rc", 0 },
		{ "1-final", "1", 0 },
		{ "1-RELEASE", "1", 0 },
		{ "1-release", "1-final", 0 },
		{ "1-release", "1-sp", -1 },
		{ "1-release", "1-snapshot", 1 },
		/* Spring's releases up to 5.2 carry ".RELEASE" */
		{ "5.2.20.RELEASE", "5.2.20", 0 },
		{ "5.2.19.RELEASE", "5.2.20", -1 },
		{ "5.2.20.RELEASE", "5.2.21", -1 },
		{ "5.2.20.RELEASE", "5.3.0", -1 },
		{ "5.2.0.RC1", "5.2.0.RELEASE", -1 },
		{ "5.2.0.M3", "5.2.0.RC1", -1 },
		{ "5.2.0.BUILD-SNAPSHOT", "5.2.0.RELEASE", 1 },
		/* a, b, m only as a letter directly before a number */
		{ "1a1", "1alpha1", 0 },
		{ "1b2", "1-beta-2", 0 },
		{ "1m3", "1-milestone-3", 0 },
		{ "1-a", "1-alpha", 1 },
		{ "1-b", "1-a", 1 },
		/* case */
		{ "1X", "1x", 0 },
		{ "1-SNAPSHOT", "1-snapshot", 0 },
		{ "1Final", "1", 0 },
		{ "1GA", "1", 0 },
		{ "1m3", "1MILESTONE3", 0 },
		{ "1-abcdefghijklmnopqrstuvwxyz",
		  "1-ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0 },
		/* underscores separate as hyphens do */
		{ "2.7.7_5", "2.7.7-5", 0 },
		{ "2.7.7_5", "2.7.7.5", -1 },
		/* numbers of any length, leading zeros ignored */
		{ "1.123456789012345678901234567890",
		  "1.123456789012345678901234567889", 1 },
		{ "20190126.230843", "1234567890.12345", -1 },
		{ "1234567890.12345", "123456789012345.1H.5-beta", -1 },
		{ "123456789012345.1H.5-beta", "12345678901234567890.1H.5-beta",
		  -1 },
		{ "0000000000000000001", "1", 0 },
		{ "0000000000000000000", "0", 0 },
		{ "1.010", "1.10", 0 },
		/* MNG-5568 */
		{ "6.1.0rc3", "6.1.0", -1 },
		{ "6.1.0rc3", "6.1H.5-beta", -1 },
		{ "6.1.0", "6.1H.5-beta", -1 },
		/* other orders from Maven's own tests */
		{ "1.0-alpha-1", "1.0-alpha-2", -1 },
		{ "1.0-beta-1", "1.0-SNAPSHOT", -1 },
		{ "1.0-alpha-1-SNAPSHOT", "1.0-alpha-1", -1 },
		{ "1.0", "1.0-1", -1 },
		{ "1.0.0", "1.0-1", -1 },
		{ "2.0-1", "2.0.1", -1 },
	};

	(void)state;
	check_pairs(FLT_VS_MAVEN, t, FLT_ARRAY_SIZE(t));
}

static void test_maven_chains(void **state)
{
	/* Maven's own ordering tables. */
	static const char *const qualifiers[] = {
		"1-alpha2snapshot",
		"1-alpha2",
		"1-alpha-123",
		"1-beta-2",
		"1-beta123",
		"1-m2",
		"1-m11",
		"1-rc",
		"1-cr2",
		"1-rc123",
		"1-SNAPSHOT",
		"1",
		"1-sp",
		"1-sp2",
		"1-sp123",
		"1-abc",
		"1-def",
		"1-pom-1",
		"1-1-snapshot",
		"1-1",
		"1-2",
		"1-123",
	};
	static const char *const numbers[] = {
		"2.0",    "2.0.a", "2-1",    "2.0.2", "2.0.123", "2.1.0",
		"2.1-a",  "2.1b",  "2.1-c",  "2.1-1", "2.1.0.1", "2.2",
		"2.123",  "11.a2", "11.a11", "11.b2", "11.b11",  "11.m2",
		"11.m11", "11",    "11.a",   "11b",   "11c",     "11m",
	};
	static const char *const log4j[] = {
		"2.0-alpha1", "2.0-alpha7", "2.0-beta7", "2.0-beta8",
		"2.0-beta9",  "2.0-rc1",    "2.0-rc2",   "2.0",
		"2.0.1",      "2.0.2",      "2.1",       "2.3",
		"2.3.1",      "2.3.2",      "2.4",       "2.4.1",
		"2.8.2",      "2.10.0",     "2.11.2",    "2.12.0",
		"2.12.1",     "2.12.2",     "2.12.3",    "2.12.4",
		"2.13.0",     "2.13.3",     "2.14.0",    "2.14.1",
		"2.15.0",     "2.16.0",     "2.17.0",    "2.17.1",
		"2.17.2",     "2.18.0",     "2.20.0",    "2.23.1",
	};
	static const char *const same[] = {
		"1",    "1.0",     "1.0.0", "1-0",         "1.0-0", "1.ga",
		"1-ga", "1.final", "1GA",   "1.0.0-0.0.0", "01",    "1.",
	};
	/* Maven's own equality cases */
	static const char *const same_ga[] = {
		"1ga",       "1GA",       "1-ga",     "1.0",    "1-final",
		"1-release", "1.RELEASE", "1Release", "1.0.ga", "1.0-final",
	};
	static const char *const same_rc[] = { "1cr", "1rc", "1-cr", "1.RC",
					       "1-rc" };
	static const char *const same_a1[] = { "1a1", "1-alpha-1", "1alpha1",
					       "1-a1" };
	static const char *const same_b2[] = { "1b2", "1-beta-2", "1beta2" };
	static const char *const same_m3[] = { "1m3", "1-milestone-3",
					       "1milestone3" };
	static const char *const same_x[] = {
		"1x", "1-x", "1.0-x", "1.0.0-x", "1.0x", "1.0.0x", "1.x",
	};

	(void)state;
	check_order(FLT_VS_MAVEN, qualifiers, FLT_ARRAY_SIZE(qualifiers));
	check_order(FLT_VS_MAVEN, numbers, FLT_ARRAY_SIZE(numbers));
	check_order(FLT_VS_MAVEN, log4j, FLT_ARRAY_SIZE(log4j));
	check_equal(FLT_VS_MAVEN, same, FLT_ARRAY_SIZE(same));
	check_equal(FLT_VS_MAVEN, same_x, FLT_ARRAY_SIZE(same_x));
	check_equal(FLT_VS_MAVEN, same_ga, FLT_ARRAY_SIZE(same_ga));
	check_equal(FLT_VS_MAVEN, same_rc, FLT_ARRAY_SIZE(same_rc));
	check_equal(FLT_VS_MAVEN, same_a1, FLT_ARRAY_SIZE(same_a1));
	check_equal(FLT_VS_MAVEN, same_b2, FLT_ARRAY_SIZE(same_b2));
	check_equal(FLT_VS_MAVEN, same_m3, FLT_ARRAY_SIZE(same_m3));
}

/* MNG-7644: 1.0.0.X1 < 1.0.0-X2, and 2-X = 2.0.X = 2.0.0.X, for any X. */
static void test_maven_dot_qualifier(void **state)
{
	static const char *const xs[] = { "abc", "alpha",     "a", "beta", "b",
					  "def", "milestone", "m", "RC" };
	char a[64], b[64], c[64];

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(xs); i++) {
		snprintf(a, sizeof(a), "1.0.0.%s1", xs[i]);
		snprintf(b, sizeof(b), "1.0.0-%s2", xs[i]);
		assert_int_equal(cmp_in(FLT_VS_MAVEN, a, b), -1);
		assert_int_equal(cmp_in(FLT_VS_MAVEN, b, a), 1);
		snprintf(a, sizeof(a), "2-%s", xs[i]);
		snprintf(b, sizeof(b), "2.0.%s", xs[i]);
		snprintf(c, sizeof(c), "2.0.0.%s", xs[i]);
		const char *const eq[] = { a, b, c };
		check_equal(FLT_VS_MAVEN, eq, 3);
	}
}

/* Any bytes compare, and consistently. */
static void test_maven_total(void **state)
{
	static const char *const odd[] = {
		"",
		".",
		"-",
		"_",
		"..",
		"--",
		"-.-",
		"a",
		"A",
		"~",
		"1~",
		"é",
		"1.é",
		"\x80\xff",
		"1-+",
		"+",
		"1..-..2",
		"abc123def456",
		"1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a",
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(odd); i++)
		for (size_t j = 0; j < FLT_ARRAY_SIZE(odd); j++) {
			int ab = sgn(flt_maven_cmp(odd[i], odd[j]));
			int ba = sgn(flt_maven_cmp(odd[j], odd[i]));
			if (ab != -ba || (i == j && ab != 0)) {
				print_error("maven: \"%s\" vs \"%s\": %d, %d\n",
					    odd[i], odd[j], ab, ba);
				bad++;
			}
			ab = sgn(flt_dpkg_cmp(odd[i], odd[j]));
			ba = sgn(flt_dpkg_cmp(odd[j], odd[i]));
			if (ab != -ba || (i == j && ab != 0)) {
				print_error("dpkg: \"%s\" vs \"%s\": %d, %d\n",
					    odd[i], odd[j], ab, ba);
				bad++;
			}
		}
	assert_int_equal(bad, 0);

	/* A long version goes past the parser's on-stack room. */
	char *long_a = flt_xmalloc(4001), *long_b = flt_xmalloc(4001);
	for (int i = 0; i < 4000; i++)
		long_a[i] = long_b[i] = "1a."[i % 3];
	long_a[4000] = long_b[4000] = '\0';
	long_b[3999] = '2'; /* the last number, 1 -> 2 */
	assert_int_equal(sgn(flt_maven_cmp(long_a, long_b)), -1);
	assert_int_equal(sgn(flt_maven_cmp(long_b, long_a)), 1);
	free(long_a);
	free(long_b);
}

/* ---- semver ------------------------------------------------------------- */

static void test_semver(void **state)
{
	static const char *const chain[] = {
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
		"1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
		"1.0.0-rc.1",  "1.0.0",         "1.0.1",
		"1.1.0",       "2.0.0-0",       "2.0.0",
		"10.0.0",      "10.0.1-rc.1",   "10.0.1",
	};
	static const vpair_t t[] = {
		{ "1.0.0+build.1", "1.0.0", 0 },
		{ "1.0.0-rc.1+x", "1.0.0-rc.1+y", 0 },
		{ "1.2", "1.2.0", 0 },
		{ "v1.2.3", "1.2.3", 0 },
		{ "1.0.0-1", "1.0.0-a", -1 },
		{ "1.0.0-2", "1.0.0-10", -1 },
		{ "1.0.0-a.b", "1.0.0-a", 1 },
		{ "1.9.0", "1.10.0", -1 },
	};
	flt_error_t err = { 0 };
	int c = 42;

	(void)state;
	check_order(FLT_VS_SEMVER, chain, FLT_ARRAY_SIZE(chain));
	check_pairs(FLT_VS_SEMVER, t, FLT_ARRAY_SIZE(t));

	assert_int_equal(
		flt_version_cmp(FLT_VS_SEMVER, "1.x", "1.0.0", &c, &err),
		-EINVAL);
	assert_string_equal(err.msg, "\"1.x\" is not a semantic version");
	assert_int_equal(c, 42);
	assert_int_equal(
		flt_version_cmp(FLT_VS_SEMVER, "1.0.0", "2.0.0.1", &c, &err),
		-EINVAL);
	assert_string_equal(err.msg, "\"2.0.0.1\" is not a semantic version");
	/* dpkg and Maven never fail. */
	assert_int_equal(flt_version_cmp(FLT_VS_DPKG, "x", "", &c, &err), 0);
	assert_int_equal(flt_version_cmp(FLT_VS_MAVEN, "x", "", &c, &err), 0);
}

/* ---- dpkg itself as the oracle ------------------------------------------ */

#define ORACLE_PAIRS 3200

static uint64_t rng_state = 0x5eed0f10ff11aULL;

static uint64_t rng(void)
{
	/* splitmix64: fixed seed, same pairs every run */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned pick(unsigned n) { return (unsigned)(rng() % n); }

static bool is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/*
 * What dpkg accepts without a warning: a numeric epoch (short enough for
 * an int), an upstream part starting with a digit made of alphanumerics
 * and ".+~-:", a non-empty revision of alphanumerics and ".+~".
 */
static bool dpkg_valid(const char *v)
{
	const char *colon = strchr(v, ':'), *up = v;
	if (colon) {
		if (colon == v || colon - v > 8)
			return false;
		for (const char *p = v; p < colon; p++)
			if (*p < '0' || *p > '9')
				return false;
		up = colon + 1;
	}
	const char *hyphen = strrchr(up, '-');
	const char *up_end = hyphen ? hyphen : up + strlen(up);
	if (up == up_end || *up < '0' || *up > '9')
		return false;
	for (const char *p = up; p < up_end; p++)
		if (!is_alnum(*p) && !strchr(".+~-:", *p))
			return false;
	if (!colon && memchr(up, ':', (size_t)(up_end - up)))
		return false;
	if (hyphen) {
		if (!hyphen[1])
			return false;
		for (const char *p = hyphen + 1; *p; p++)
			if (!is_alnum(*p) && !strchr(".+~", *p))
				return false;
	}
	return true;
}

/* Characters weighted toward the ones that make comparisons close. */
static char rand_char(bool upstream)
{
	static const char up_chars[] = "0001112399..~~++aabzAZ-";
	static const char rev_chars[] = "0001112399..~~++aabzAZ";
	return upstream ? up_chars[pick(sizeof(up_chars) - 1)]
			: rev_chars[pick(sizeof(rev_chars) - 1)];
}

static void rand_version(char *buf, size_t size)
{
	size_t n = 0;

	do {
		n = 0;
		if (pick(4) == 0) {
			static const char *const epochs[] = { "0", "1", "2",
							      "10", "01" };
			n += (size_t)snprintf(buf + n, size - n,
					      "%s:", epochs[pick(5)]);
		}
		buf[n++] = (char)('0' + pick(10));
		for (unsigned k = pick(9); k > 0 && n + 12 < size; k--)
			buf[n++] = rand_char(true);
		if (pick(2)) {
			buf[n++] = '-';
			buf[n++] = pick(4) ? (char)('0' + pick(10))
					   : rand_char(false);
			for (unsigned k = pick(5); k > 0 && n + 2 < size; k--)
				buf[n++] = rand_char(false);
		}
		buf[n] = '\0';
	} while (!dpkg_valid(buf));
}

/* A version close to a: the same, or one small edit away. */
static void near_version(const char *a, char *buf, size_t size)
{
	static const char *const suffixes[] = {
		"~", "~rc1", "0", ".0", "a", "+b1", "-0", "-1", "~~", "."
	};
	for (int tries = 0; tries < 100; tries++) {
		size_t n = strlen(a);
		snprintf(buf, size, "%s", a);
		switch (pick(8)) {
		case 0: break;
		case 1: /* one character changed */
			buf[pick((unsigned)n)] = rand_char(true);
			break;
		case 2:
			snprintf(buf, size, "%s%s", a, suffixes[pick(10)]);
			break;
		case 3: /* last character dropped */
			if (n > 1)
				buf[n - 1] = '\0';
			break;
		case 4: { /* a leading zero added to a digit run */
			size_t i = pick((unsigned)n);
			if (buf[i] >= '0' && buf[i] <= '9' && n + 2 < size) {
				memmove(buf + i + 1, buf + i, n - i + 1);
				buf[i] = '0';
			}
			break;
		}
		case 5:
			if (strchr(a, ':'))
				snprintf(buf, size, "%s", strchr(a, ':') + 1);
			else
				snprintf(buf, size, "0:%s", a);
			break;
		case 6: /* a digit bumped */
			for (size_t i = n; i-- > 0;)
				if (buf[i] >= '0' && buf[i] < '9') {
					buf[i]++;
					break;
				}
			break;
		default: rand_version(buf, size); break;
		}
		if (dpkg_valid(buf))
			return;
	}
	snprintf(buf, size, "%s", a);
}

static void test_dpkg_oracle(void **state)
{
	static char va[ORACLE_PAIRS][40], vb[ORACLE_PAIRS][40];
	char script[] = "/tmp/flt-vercmp-XXXXXX";
	char cmd[128], line[256];
	int bad = 0, fd;
	size_t n = 0;
	FILE *f, *p;

	(void)state;
	if (access("/usr/bin/dpkg", X_OK) != 0 &&
	    system("command -v dpkg >/dev/null 2>&1") != 0) {
		print_message("dpkg not found: the oracle test is skipped\n");
		skip();
	}
	for (size_t i = 0; i < ORACLE_PAIRS; i++) {
		rand_version(va[i], sizeof(va[i]));
		if (pick(3) == 0)
			rand_version(vb[i], sizeof(vb[i]));
		else
			near_version(va[i], vb[i], sizeof(vb[i]));
	}

	/* One shell runs every comparison: one or two dpkg runs a pair. */
	fd = mkstemp(script);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	for (size_t i = 0; i < ORACLE_PAIRS; i++)
		fprintf(f,
			"if dpkg --compare-versions '%s' lt '%s'; then echo lt; "
			"elif dpkg --compare-versions '%s' eq '%s'; then "
			"echo eq; else echo gt; fi\n",
			va[i], vb[i], va[i], vb[i]);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "/bin/sh %s 2>&1", script);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		if (n >= ORACLE_PAIRS ||
		    (strcmp(line, "lt") && strcmp(line, "eq") &&
		     strcmp(line, "gt"))) {
			print_error("dpkg said: %s\n", line);
			bad++;
			continue;
		}
		int want = line[0] == 'l' ? -1 : line[0] == 'e' ? 0 : 1;
		int got = sgn(flt_dpkg_cmp(va[n], vb[n]));
		int rev = sgn(flt_dpkg_cmp(vb[n], va[n]));
		if (got != want || rev != -want) {
			print_error("dpkg: \"%s\" vs \"%s\": dpkg says %s, "
				    "flt_dpkg_cmp %d (reversed %d)\n",
				    va[n], vb[n], line, got, rev);
			bad++;
		}
		n++;
	}
	pclose(p);
	unlink(script);
	size_t eq = 0;
	for (size_t i = 0; i < ORACLE_PAIRS; i++)
		eq += flt_dpkg_cmp(va[i], vb[i]) == 0;
	print_message("dpkg oracle: %zu pairs, %zu equal, %d mismatches\n", n,
		      eq, bad);
	assert_int_equal(n, ORACLE_PAIRS);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scheme_names),
		cmocka_unit_test(test_dpkg_table),
		cmocka_unit_test(test_dpkg_chain),
		cmocka_unit_test(test_maven_examples),
		cmocka_unit_test(test_maven_chains),
		cmocka_unit_test(test_maven_dot_qualifier),
		cmocka_unit_test(test_maven_total),
		cmocka_unit_test(test_semver),
		cmocka_unit_test(test_dpkg_oracle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
