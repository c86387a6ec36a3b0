/* Unit tests for common/query.c: parsing, advisories, matching. */
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

#include "flotilla/query.h"
#include "flotilla/util.h"

#ifndef FLT_SOURCE_DIR
#error "FLT_SOURCE_DIR must name the source tree"
#endif

#define ADVISORY_FILE FLT_SOURCE_DIR "/share/advisories/log4shell.json"

#define JAVA FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA
#define DPKG FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_DPKG
#define MANAGED FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_MANAGED

static flt_advisories_t *adv;

static int load_advisories(void **state)
{
	flt_error_t err = { 0 };

	(void)state;
	if (flt_advisories_load(ADVISORY_FILE, &adv, &err) < 0) {
		print_error("%s\n", err.msg);
		return -1;
	}
	return 0;
}

static int free_advisories(void **state)
{
	(void)state;
	flt_advisories_free(adv);
	return 0;
}

/* ---- synthetic hosts --------------------------------------------------- */

typedef struct item_spec {
	Flotilla__InventoryKind kind;
	const char *name, *version, *group;
} item_spec_t;

typedef struct host {
	Flotilla__InventoryItem items[32];
	Flotilla__InventoryItem *ptrs[32];
	const char *attrs[8][2]; /* key, value */
	flt_query_host_t h;
} host_t;

static const char *host_attr(void *arg, const char *key)
{
	host_t *h = arg;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(h->attrs) && h->attrs[i][0]; i++)
		if (!strcmp(h->attrs[i][0], key))
			return h->attrs[i][1];
	return NULL;
}

/* items end at a NULL name, attrs ("key", "value", ...) at NULL. */
static void host_init(host_t *h, const char *name, const item_spec_t *items,
		      ...)
{
	va_list ap;
	size_t n = 0, k = 0;

	memset(h, 0, sizeof(*h));
	for (; items && items[n].name; n++) {
		Flotilla__InventoryItem *it = &h->items[n];
		flotilla__inventory_item__init(it);
		it->kind = items[n].kind;
		it->name = (char *)items[n].name;
		it->version = (char *)items[n].version;
		if (items[n].group)
			it->group = (char *)items[n].group;
		h->ptrs[n] = it;
	}
	qsort(h->ptrs, n, sizeof(*h->ptrs), flt_query_item_cmp);
	va_start(ap, items);
	for (const char *key; (key = va_arg(ap, const char *)) && k < 8; k++) {
		h->attrs[k][0] = key;
		h->attrs[k][1] = va_arg(ap, const char *);
	}
	va_end(ap);
	h->h.id = "00000000-0000-4000-8000-000000000001";
	h->h.name = name;
	h->h.attr = host_attr;
	h->h.attr_arg = h;
	h->h.items = h->ptrs;
	h->h.n_items = n;
}

static flt_query_t *parse_ok(const char *text)
{
	flt_error_t err = { 0 };
	flt_query_t *q = NULL;

	if (flt_query_parse(text, adv, &q, &err) < 0)
		fail_msg("\"%s\": %s", text, err.msg);
	return q;
}

static bool matches(const char *text, const host_t *h)
{
	flt_query_t *q = parse_ok(text);
	size_t hits[32], n = 0;
	bool m = flt_query_match(q, &h->h, hits, &n);
	/* Without hits, the same answer. */
	assert_int_equal(flt_query_match(q, &h->h, NULL, NULL), m);
	flt_query_free(q);
	return m;
}

/* The versions of the items a query's hits name, as "v1 v2 ...". */
static void hit_versions(const char *text, const host_t *h, char *out,
			 size_t len)
{
	flt_query_t *q = parse_ok(text);
	size_t hits[32], n = 99;

	out[0] = '\0';
	if (!flt_query_match(q, &h->h, hits, &n))
		assert_int_equal(n, 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			assert_true(hits[i - 1] < hits[i]);
		assert_true(hits[i] < h->h.n_items);
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%s", l ? " " : "",
			 h->h.items[hits[i]]->version);
	}
	flt_query_free(q);
}

/* ---- parsing ----------------------------------------------------------- */

static void test_parse_canonical(void **state)
{
	static const char *const t[][2] = {
		{ "log4j-core < 2.17.1", "log4j-core < 2.17.1" },
		{ "log4j-core<2.17.1", "log4j-core < 2.17.1" },
		{ "maven:log4j-core >= 2.0-beta9, < 2.17.1",
		  "maven:log4j-core >= 2.0-beta9, < 2.17.1" },
		{ "log4j-core in [2.0-beta9, 2.3.2) | [2.4, 2.12.4) ∪ "
		  "[2.13.0,2.17.1)",
		  "log4j-core in [2.0-beta9, 2.3.2) | [2.4, 2.12.4) | "
		  "[2.13.0, 2.17.1)" },
		{ "openssl in [, 3.0.11)", "openssl in [, 3.0.11)" },
		/* Empty in dpkg's order, not in Maven's: a real range for
		 * Java archives. */
		{ "log4j-core in [2.15.0-rc1, 2.15.0)",
		  "log4j-core in [2.15.0-rc1, 2.15.0)" },
		{ "openssl IN (3.0.11 , ]", "openssl in (3.0.11, ]" },
		{ "dpkg:openssl < 3.0.11-1~deb12u1 and label.zone = eu-1",
		  "dpkg:openssl < 3.0.11-1~deb12u1 and label.zone = eu-1" },
		{ "(java:log4j-core or managed:log4j-core) and not node.name = "
		  "db1",
		  "(java:log4j-core or managed:log4j-core) and not node.name = "
		  "db1" },
		{ "Maven:log4j-core", "maven:log4j-core" },
		{ "org.apache.logging.log4j:log4j-core == 2.14.1",
		  "org.apache.logging.log4j:log4j-core = 2.14.1" },
		{ "java:org.apache.logging.log4j:log4j-core != 2.14.1",
		  "java:org.apache.logging.log4j:log4j-core != 2.14.1" },
		{ "semver:myapp >= 1.2.0", "semver:myapp >= 1.2.0" },
		{ "a or b and c", "a or b and c" },
		{ "(a or b) and c", "(a or b) and c" },
		{ "a and (b or c)", "a and (b or c)" },
		{ "((a))", "a" },
		{ "not (a and b)", "not (a and b)" },
		{ "NOT a AND b OR c", "not a and b or c" },
		{ "not not a", "not not a" },
		{ "ALL", "all" },
		{ "all and not label.drain = yes",
		  "all and not label.drain = yes" },
		{ "node.name ~ '^web-[0-9]+$'", "node.name ~ ^web-[0-9]+$" },
		{ "NODE.ID = abc", "node.id = abc" },
		{ "attr.os_id != windows", "attr.os_id != windows" },
		{ "label.team = \"data science\"",
		  "label.team = \"data science\"" },
		{ "label.x = ''", "label.x = \"\"" },
		{ "label.quote = 'say \"hi\"'", "label.quote = 'say \"hi\"'" },
		{ "x = '1.0 beta'", "x = \"1.0 beta\"" },
		{ "x in [\"1,0\", 2)", "x in [\"1,0\", 2)" },
		{ "advisory:CVE-2021-44228",
		  "maven:log4j-core in [2.0-beta9, 2.3.1) | [2.4, 2.12.2) | "
		  "[2.13.0, 2.15.0)" },
		{ "ADVISORY:ghsa-JFH8-c2jp-5v3q",
		  "maven:log4j-core in [2.0-beta9, 2.3.1) | [2.4, 2.12.2) | "
		  "[2.13.0, 2.15.0)" },
		{ "advisory:CVE-2021-45046",
		  "maven:log4j-core in [2.0-beta9, 2.12.2) | [2.13.0, 2.16.0)" },
		{ "advisory:CVE-2021-45105",
		  "maven:log4j-core in [2.0-beta9, 2.3.1) | [2.4, 2.12.3) | "
		  "[2.13.0, 2.17.0)" },
		{ "advisory:cve-2021-44832 and label.zone ~ ^eu",
		  "maven:log4j-core in [2.0-beta7, 2.3.2) | [2.4, 2.12.4) | "
		  "[2.13.0, 2.17.1) and label.zone ~ ^eu" },
		{ "  log4j-core\t<\n2.17.1  ", "log4j-core < 2.17.1" },
	};

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		flt_query_t *q = parse_ok(t[i][0]);
		assert_string_equal(flt_query_string(q), t[i][1]);
		/* The canonical form reads back as itself. */
		flt_query_t *again = parse_ok(flt_query_string(q));
		assert_string_equal(flt_query_string(again), t[i][1]);
		flt_query_free(again);
		flt_query_free(q);
	}
}

static void test_parse_errors(void **state)
{
	static const char *const t[][2] = {
		{ "", "column 1: expected a term, found the end of the query" },
		{ "   ",
		  "column 4: expected a term, found the end of the query" },
		{ "log4j-core <",
		  "column 13: expected a version, found the end of the query" },
		{ "log4j-core =< 2",
		  "column 13: expected a version, found \"<\"" },
		{ "log4j-core 2.14.1",
		  "column 12: expected an operator (=, !=, <, <=, >, >=), "
		  "\"in\", \"and\", \"or\" or the end of the query, found "
		  "\"2.14.1\"" },
		{ "log4j-core 1234567890123456789012345678901234567890",
		  "column 12: expected an operator (=, !=, <, <=, >, >=), "
		  "\"in\", \"and\", \"or\" or the end of the query, found "
		  "\"12345678901234567890123456789012...\"" },
		{ "log4j-core < 2.17.1,",
		  "column 21: expected an operator (=, !=, <, <=, >, >=), found "
		  "the end of the query" },
		{ "log4j-core < 2.17.1, 2.0",
		  "column 22: expected an operator (=, !=, <, <=, >, >=), found "
		  "\"2.0\"" },
		{ "log4j-core < 2.17.1 log4j-api",
		  "column 21: expected \"and\", \"or\" or the end of the query, "
		  "found \"log4j-api\"" },
		{ "log4j-core < 2.17.1 and",
		  "column 24: expected a term, found the end of the query" },
		{ "log4j-core in 2.0",
		  "column 15: expected a range such as [2.0, 2.3.1), found "
		  "\"2.0\"" },
		{ "log4j-core in [2.0 2.3)",
		  "column 20: expected \",\", found \"2.3\"" },
		{ "log4j-core in [2.0, 2.3",
		  "column 24: expected \")\" or \"]\", found the end of the "
		  "query" },
		{ "log4j-core in [2.0, 2.3) or [2.4, 2.5)",
		  "column 29: expected a term, found \"[\" (ranges are joined "
		  "with \"|\", not \"or\")" },
		{ "log4j-core in [2.0, 2.3) | ",
		  "column 28: expected a range such as [2.0, 2.3.1), found the "
		  "end of the query" },
		{ "maven:x in [2.0, 1.0)",
		  "column 12: empty range: 2.0 is not below 1.0" },
		{ "maven:x in [2.0, 2.0)",
		  "column 12: empty range: 2.0 is not below 2.0" },
		/* without an ecosystem: empty in every order it may meet */
		{ "spring-beans in [5.3.18, 5.3.0)",
		  "column 17: empty range: 5.3.18 is not below 5.3.0" },
		{ "x in [2.0, 1.0)",
		  "column 6: empty range: 2.0 is not below 1.0" },
		{ "x in (2.0, 2.0]",
		  "column 6: empty range: 2.0 is not below 2.0" },
		{ "x in [1, 2) | [3, 2)",
		  "column 15: empty range: 3 is not below 2" },
		{ "java:x in [2.0, 1.0)",
		  "column 11: empty range: 2.0 is not below 1.0" },
		{ "dpkg:x in [1.0-rc1, 1.0)",
		  "column 11: empty range: 1.0-rc1 is not below 1.0" },
		{ "(log4j-core",
		  "column 12: expected \"and\", \"or\" or \")\", found the end of "
		  "the query" },
		{ "log4j-core)",
		  "column 11: expected the end of the query (this \")\" closes "
		  "nothing), found \")\"" },
		{ "not",
		  "column 4: expected a term, found the end of the query" },
		{ "a and or b", "column 7: expected a term, found \"or\"" },
		{ "node.host = x",
		  "column 1: expected node.name or node.id, found \"node.host\"" },
		{ "label. = x", "column 1: expected a key after \"label.\"" },
		{ "attr. = x", "column 1: expected a key after \"attr.\"" },
		{ "in", "column 1: expected a term, found \"in\"" },
		{ "label.zone < 3",
		  "column 12: expected =, != or ~, found \"<\"" },
		{ "label.zone =",
		  "column 13: expected a value, found the end of the query" },
		/* PCRE2 refuses a repeated repetition, and copies of counted
		 * repetitions past its 64 KiB compiled size */
		{ "node.name ~ 'x{1000}{1000}'",
		  "column 13: regular expression: at byte 12: quantifier does "
		  "not follow a repeatable item" },
		{ "node.name ~ '((a{255}){255}){255}'",
		  "column 13: regular expression: at byte 20: regular "
		  "expression is too large" },
		{ "node.name ~ 'r+++++++++++++++++++++++++++++'",
		  "column 13: regular expression: at byte 3: quantifier does "
		  "not follow a repeatable item" },
		/* glibc's "{,n}" means {0,n}; PCRE2 10.42 reads it as text */
		{ "label.rack ~ x{,30000}{,30000}y",
		  "column 14: regular expression: at byte 1: \"{,n}\" is not a "
		  "repetition here: write \"{0,n}\"" },
		{ "advisory:CVE-1999-0001",
		  "column 1: unknown advisory \"CVE-1999-0001\"" },
		{ "advisory:",
		  "column 10: expected an advisory id, found the end of the "
		  "query" },
		{ "semver:myapp < 1.x",
		  "column 16: \"1.x\" is not a semantic version" },
		{ "semver:myapp in [1.0.0, 2.x)",
		  "column 25: \"2.x\" is not a semantic version" },
		{ "dpkg:grp:openssl",
		  "column 6: dpkg packages have no group: expected a name" },
		{ "a:b:c",
		  "column 1: expected a name or group:artifact, found \"a:b:c\"" },
		{ "maven:",
		  "column 7: expected a package name, found the end of the "
		  "query" },
		{ "x = 'abc", "column 5: unterminated string" },
		{ "x = ''", "column 5: expected a version, found \"\"" },
		{ "a\x01", "column 2: control character 0x01" },
		{ "a\r\nb", "column 2: control character 0x0d" },
		{ "a \xff", "query: invalid UTF-8 at byte 2" },
		{ "a \xc2\x9b", "query: control character at byte 2" },
		{ "é = 1", "column 1: expected a term, found \"é\"" },
		{ "log4j-core < 2 ∪ 3",
		  "column 16: expected \"and\", \"or\" or the end of the query, "
		  "found \"∪\"" },
	};
	flt_error_t err;
	flt_query_t *q;

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		memset(&err, 0, sizeof(err));
		q = NULL;
		assert_int_equal(flt_query_parse(t[i][0], adv, &q, &err),
				 -EINVAL);
		assert_null(q);
		assert_int_equal(err.code, -EINVAL);
		if (strcmp(err.msg, t[i][1]) != 0)
			fail_msg("\"%s\":\n got  %s\n want %s", t[i][0],
				 err.msg, t[i][1]);
	}

	/* A bad regular expression, in PCRE2's words, at its offset. */
	assert_int_equal(flt_query_parse("node.name ~ 'a('", adv, &q, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "column 13: regular expression: at byte "
				     "2: missing closing parenthesis");

	/* Without advisories, advisory terms are refused by name. */
	assert_int_equal(
		flt_query_parse("advisory:CVE-2021-44228", NULL, &q, &err),
		-EINVAL);
	assert_string_equal(err.msg, "column 1: advisory:CVE-2021-44228: no "
				     "advisories are loaded");
}

static void test_parse_bounds(void **state)
{
	char text[5000], outer[5000];
	flt_error_t err;
	flt_query_t *q = NULL;
	size_t n = 0;

	(void)state;
	/* 32 levels of parentheses are fine, 33 are not. */
	for (int i = 0; i < 32; i++)
		text[n++] = '(';
	text[n++] = 'x';
	for (int i = 0; i < 32; i++)
		text[n++] = ')';
	text[n] = '\0';
	flt_query_free(parse_ok(text));
	snprintf(outer, sizeof(outer), "(%s)", text);
	assert_int_equal(flt_query_parse(outer, adv, &q, &err), -EINVAL);
	assert_string_equal(err.msg, "column 33: nested deeper than 32");

	n = 0;
	for (int i = 0; i < 33; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "not ");
	snprintf(text + n, sizeof(text) - n, "x");
	assert_int_equal(flt_query_parse(text, adv, &q, &err), -EINVAL);
	assert_string_equal(err.msg, "column 129: nested deeper than 32");

	/* 256 terms are fine, 257 are not. */
	n = 0;
	for (int i = 0; i < 255; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "a or ");
	snprintf(text + n, sizeof(text) - n, "a");
	flt_query_free(parse_ok(text));
	snprintf(text + n, sizeof(text) - n, "a or b");
	assert_int_equal(flt_query_parse(text, adv, &q, &err), -EINVAL);
	assert_string_equal(err.msg, "column 1281: more than 256 terms");

	/* 4096 bytes are fine, 4097 are not. */
	memset(text, ' ', 4096);
	text[0] = 'a';
	text[4096] = '\0';
	flt_query_free(parse_ok(text));
	text[4096] = ' ';
	text[4097] = '\0';
	assert_int_equal(flt_query_parse(text, adv, &q, &err), -EINVAL);
	assert_string_equal(err.msg, "query: 4097 bytes, at most 4096");
	assert_null(q);
}

static void test_has_package_term(void **state)
{
	static const struct {
		const char *text;
		bool has;
	} t[] = {
		{ "log4j-core", true },
		{ "advisory:CVE-2021-44228", true },
		{ "label.zone = eu and not openssl", true },
		{ "label.zone = eu", false },
		{ "all", false },
		{ "not node.name = db1 or all", false },
	};

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		flt_query_t *q = parse_ok(t[i].text);
		assert_int_equal(flt_query_has_package_term(q), t[i].has);
		flt_query_free(q);
	}
}

/* ---- advisories -------------------------------------------------------- */

static void test_advisories_file(void **state)
{
	const flt_advisory_t *a;

	(void)state;
	assert_int_equal(flt_advisories_count(adv), 4);
	a = flt_advisories_find(adv, "cve-2021-44228");
	assert_non_null(a);
	assert_string_equal(a->id, "CVE-2021-44228");
	assert_int_equal(a->n_aliases, 1);
	assert_string_equal(a->aliases[0], "GHSA-jfh8-c2jp-5v3q");
	assert_string_equal(a->severity, "critical");
	assert_true(a->cvss == 10.0);
	assert_string_equal(a->ecosystem, "maven");
	assert_string_equal(a->group, "org.apache.logging.log4j");
	assert_string_equal(a->name, "log4j-core");
	assert_int_equal(a->n_affected, 3);
	assert_string_equal(a->affected[0], "[2.0-beta9, 2.3.1)");
	assert_int_equal(a->n_fixed, 3);
	assert_string_equal(a->fixed[0], "2.15.0");
	assert_non_null(strstr(a->source, "logging.apache.org"));
	assert_ptr_equal(flt_advisories_find(adv, "GHSA-JFH8-C2JP-5V3Q"), a);
	assert_ptr_equal(flt_advisories_at(adv, 0), a);

	static const struct {
		const char *id, *severity;
		double cvss;
		const char *last_fixed;
	} want[] = {
		{ "CVE-2021-44228", "critical", 10.0, "2.3.1" },
		{ "CVE-2021-45046", "critical", 9.0, "2.12.2" },
		{ "CVE-2021-45105", "moderate", 5.9, "2.3.1" },
		{ "CVE-2021-44832", "moderate", 6.6, "2.3.2" },
	};
	for (size_t i = 0; i < FLT_ARRAY_SIZE(want); i++) {
		a = flt_advisories_at(adv, i);
		assert_string_equal(a->id, want[i].id);
		assert_string_equal(a->severity, want[i].severity);
		assert_true(a->cvss == want[i].cvss);
		assert_string_equal(a->fixed[a->n_fixed - 1],
				    want[i].last_fixed);
		assert_true(*a->notes);
		/* Every fixed version is outside the affected ranges. */
		char text[64];
		snprintf(text, sizeof(text), "advisory:%s", a->id);
		for (size_t k = 0; k < a->n_fixed; k++) {
			item_spec_t it[] = {
				{ JAVA, "log4j-core", a->fixed[k], NULL },
				{ 0, NULL, NULL, NULL },
			};
			host_t h;
			host_init(&h, "h", it, NULL);
			if (matches(text, &h))
				fail_msg("%s flags its fix %s", a->id,
					 a->fixed[k]);
		}
	}
	assert_null(flt_advisories_at(adv, 4));
	assert_null(flt_advisories_find(adv, "CVE-2021-4422"));
	assert_null(flt_advisories_find(adv, ""));
}

/* Writes text to a temporary file and loads it: the error, or "". */
static const char *load_text(const char *text, flt_error_t *err)
{
	char path[] = "/tmp/flt-advisories-XXXXXX";
	int fd = mkstemp(path);
	flt_advisories_t *a = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	memset(err, 0, sizeof(*err));
	int rc = flt_advisories_load(path, &a, err);
	unlink(path);
	if (rc == 0) {
		flt_advisories_free(a);
		return "";
	}
	assert_int_equal(rc, -EINVAL);
	/* Past the path, which differs every run. */
	const char *msg = strstr(err->msg, ": ");
	assert_non_null(msg);
	return msg + 2;
}

#define ENTRY(extra_pkg, extra)                                           \
	"{\"id\": \"CVE-X\", \"summary\": \"s\", \"severity\": \"low\", " \
	"\"cvss\": 1.5, \"package\": {\"ecosystem\": \"maven\", "         \
	"\"name\": \"p\"" extra_pkg "}, \"source\": \"here\"" extra "}"

static void test_advisories_malformed(void **state)
{
	static const char *const t[][2] = {
		{ "{\"advisories\": [" ENTRY(
			  "", ", \"affected\": [\"[1, 2)\"]") "]}",
		  "" },
		{ "{\"advisories\": [" ENTRY("", "") "]}",
		  "advisories[0] (CVE-X): affected: missing" },
		{ "{\"advisories\": [" ENTRY("", ", \"affected\": []") "]}",
		  "advisories[0] (CVE-X): affected: empty" },
		{ "{\"advisories\": [" ENTRY("", ", \"affected\": [\"[2.0, "
						 "2.3\"]") "]}",
		  "advisories[0] (CVE-X): affected[0]: column 10: expected "
		  "\")\" or \"]\", found the end of the range" },
		{ "{\"advisories\": [" ENTRY("", ", \"affected\": [\"[1, 2)\", "
						 "\"[3, 2)\"]") "]}",
		  "advisories[0] (CVE-X): affected[1]: column 1: empty range: "
		  "3 is not below 2" },
		{ "{\"advisories\": [" ENTRY(
			  "", ", \"affected\": [\"[1, 2) x\"]") "]}",
		  "advisories[0] (CVE-X): affected[0]: column 8: expected \"|\" "
		  "or the end of the range, found \"x\"" },
		{ "{\"advisories\": [" ENTRY("", ", \"affected\": [7]") "]}",
		  "advisories[0] (CVE-X): affected[0]: must be a non-empty "
		  "string" },
		{ "{\"advisories\": [" ENTRY(
			  "", ", \"afected\": [\"[1, 2)\"]") "]}",
		  "advisories[0] (CVE-X): afected: unknown field" },
		{ "{\"advisories\": [" ENTRY(
			  ", \"version\": \"1\"",
			  ", \"affected\": [\"[1, 2)\"]") "]}",
		  "advisories[0] (CVE-X): package.version: unknown field" },
		{ "{\"advisories\": [{\"id\": \"CVE-X\", \"summary\": \"s\", "
		  "\"severity\": \"low\", \"cvss\": 1, \"package\": "
		  "{\"ecosystem\": \"maven\"}, \"source\": \"s\", "
		  "\"affected\": [\"[1, 2)\"]}]}",
		  "advisories[0] (CVE-X): package.name: missing" },
		{ "{\"advisories\": [{\"id\": \"CVE-X\", \"summary\": \"s\", "
		  "\"severity\": \"low\", \"cvss\": 1, \"package\": "
		  "{\"ecosystem\": \"rpm\", \"name\": \"p\"}, \"source\": \"s\", "
		  "\"affected\": [\"[1, 2)\"]}]}",
		  "advisories[0] (CVE-X): package.ecosystem: \"rpm\": expected "
		  "maven, dpkg or semver" },
		{ "{\"advisories\": [{\"summary\": \"s\"}]}",
		  "advisories[0]: id: missing" },
		{ "{\"advisories\": [{\"id\": \"CVE X\"}]}",
		  "advisories[0]: id: \"CVE X\" is not an id (letters, digits, "
		  "'.', '_', '-', '+', '/', '@'; at most 64)" },
		{ "{\"advisories\": [{\"id\": \"CVE-X\", \"summary\": \"s\", "
		  "\"severity\": \"urgent\"}]}",
		  "advisories[0] (CVE-X): severity: \"urgent\": expected "
		  "critical, high, moderate, medium or low" },
		{ "{\"advisories\": [{\"id\": \"CVE-X\", \"summary\": \"s\", "
		  "\"severity\": \"low\", \"cvss\": 11}]}",
		  "advisories[0] (CVE-X): cvss: must be a number from 0 to 10" },
		{ "{\"advisories\": [{\"id\": \"CVE-X\", \"summary\": \"\"}]}",
		  "advisories[0] (CVE-X): summary: empty" },
		{ "{\"advisories\": [" ENTRY("", ", \"affected\": [\"[1, 2)\"]") ", " ENTRY(
			  "", ", \"affected\": [\"[1, 2)\"]") "]}",
		  "advisories[1] (CVE-X): id: \"CVE-X\" is given twice" },
		{ "{\"advisories\": [" ENTRY("",
					     ", \"affected\": [\"[1, 2)\"], "
					     "\"aliases\": [\"cve-x\"]") "]}",
		  "advisories[0] (CVE-X): aliases: \"cve-x\" is given twice" },
		{ "{\"advisories\": [{\"id\": \"A\", \"summary\": \"s\", "
		  "\"severity\": \"low\", \"cvss\": 1, \"package\": "
		  "{\"ecosystem\": \"semver\", \"name\": \"p\"}, \"source\": "
		  "\"s\", \"affected\": [\"[1.0.0, 2.x)\"]}]}",
		  "advisories[0] (A): affected[0]: column 9: \"2.x\" is not a "
		  "semantic version" },
		{ "{\"advisories\": [7]}",
		  "advisories[0]: entry: must be an object" },
		{ "{\"advisories\": {}}", "advisories: must be an array" },
		{ "{\"list\": []}", "expected an object with \"advisories\"" },
		{ "{\"advisories\": [], \"x\": 1}", "x: unknown field" },
	};
	flt_error_t err;

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		const char *got = load_text(t[i][0], &err);
		if (strcmp(got, t[i][1]) != 0)
			fail_msg("%s:\n got  %s\n want %s", t[i][0], got,
				 t[i][1]);
	}

	/* Not JSON: where. */
	load_text("{\"advisories\": [", &err);
	assert_non_null(strstr(err.msg, ": line 1, column 16: "));

	/* Not there: the errno. */
	flt_advisories_t *a = NULL;
	assert_int_equal(
		flt_advisories_load("/nonexistent/advisories.json", &a, &err),
		-ENOENT);
	assert_null(a);
	assert_non_null(strstr(err.msg, "/nonexistent/advisories.json"));
}

/* ---- matching ---------------------------------------------------------- */

static void test_match_log4shell(void **state)
{
	/* version, naive < 2.17.1, 44228, 45046, 45105, 44832 */
	static const struct {
		const char *version;
		bool naive, a44228, a45046, a45105, a44832;
	} t[] = {
		{ "2.0-alpha1", true, false, false, false, false },
		{ "2.0-beta7", true, false, false, false, true },
		{ "2.0-beta8", true, false, false, false, true },
		{ "2.0-beta9", true, true, true, true, true },
		{ "2.0-rc1", true, true, true, true, true },
		{ "2.0", true, true, true, true, true },
		{ "2.3", true, true, true, true, true },
		{ "2.3.1", true, false, true, false, true },
		{ "2.3.2", true, false, true, false, false },
		{ "2.4", true, true, true, true, true },
		{ "2.8.2", true, true, true, true, true },
		{ "2.12.1", true, true, true, true, true },
		{ "2.12.2", true, false, false, true, true },
		{ "2.12.3", true, false, false, false, true },
		{ "2.12.4", true, false, false, false, false },
		{ "2.13.0", true, true, true, true, true },
		{ "2.14.1", true, true, true, true, true },
		{ "2.15.0", true, false, true, true, true },
		{ "2.16.0", true, false, false, true, true },
		{ "2.17.0", true, false, false, false, true },
		{ "2.17.1", false, false, false, false, false },
		{ "2.17.2", false, false, false, false, false },
		{ "2.20.0", false, false, false, false, false },
	};
	int bad = 0;

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		item_spec_t items[] = {
			{ DPKG, "openssl", "3.0.11-1~deb12u2", NULL },
			{ JAVA, "log4j-api", "2.14.1",
			  "org.apache.logging.log4j" },
			{ JAVA, "log4j-core", t[i].version,
			  "org.apache.logging.log4j" },
			{ 0, NULL, NULL, NULL },
		};
		const struct {
			const char *q;
			bool want;
		} qs[] = {
			{ "log4j-core < 2.17.1", t[i].naive },
			{ "advisory:CVE-2021-44228", t[i].a44228 },
			{ "advisory:CVE-2021-45046", t[i].a45046 },
			{ "advisory:CVE-2021-45105", t[i].a45105 },
			{ "advisory:CVE-2021-44832", t[i].a44832 },
		};
		host_t h;
		host_init(&h, "web1", items, NULL);
		for (size_t k = 0; k < FLT_ARRAY_SIZE(qs); k++)
			if (matches(qs[k].q, &h) != qs[k].want) {
				print_error("%s on log4j-core %s: got %d\n",
					    qs[k].q, t[i].version, !qs[k].want);
				bad++;
			}
	}
	assert_int_equal(bad, 0);
}

static void test_match_kinds_and_schemes(void **state)
{
	static const item_spec_t items[] = {
		{ DPKG, "openssl", "3.0.11-1~deb12u1", NULL },
		{ DPKG, "libssl3", "3.0.9-1", NULL },
		{ MANAGED, "myapp", "1.5.0", NULL },
		{ MANAGED, "oddapp", "not-a-version", NULL },
		{ JAVA, "log4j-core", "2.14.1", "org.apache.logging.log4j" },
		{ DPKG, "log4j-core", "2.14.1-1", NULL },
		{ 0, NULL, NULL, NULL },
	};
	static const struct {
		const char *q;
		bool want;
	} t[] = {
		/* dpkg order for dpkg items, prefixed or not */
		{ "dpkg:openssl < 3.0.11-1~deb12u2", true },
		{ "dpkg:openssl < 3.0.11-1~deb12u1", false },
		{ "dpkg:openssl <= 3.0.11-1~deb12u1", true },
		{ "dpkg:openssl = 3.0.11-1~deb12u1", true },
		{ "openssl < 3.0.11-1", true },
		{ "openssl < 3.0.11", false }, /* the revision counts */
		{ "dpkg:openssl < 3.0.11", false },
		{ "dpkg:openssl in [3.0.0, 3.0.11-1)", true },
		{ "dpkg:openssl in [3.0.0, 3.0.11-1~)", false },
		{ "dpkg:libssl3 < 3.0.11", true },
		{ "openssl", true },
		{ "dpkg:openssl", true },
		{ "java:openssl", false },
		{ "maven:openssl", false },
		{ "managed:openssl", false },
		/* managed items order as Maven unless told semver */
		{ "myapp >= 1.5", true },
		{ "managed:myapp < 1.5.0-rc1", false },
		{ "semver:myapp >= 1.5.0", true },
		{ "semver:myapp < 2.0.0-alpha", true },
		{ "java:myapp", false },
		/* a version semver cannot read never matches semver: */
		{ "semver:oddapp < 9.0.0", false },
		{ "semver:oddapp != 9.0.0", false },
		{ "oddapp < 9.0.0", true }, /* Maven orders anything */
		/* maven: keeps the dpkg item named log4j-core out */
		{ "maven:log4j-core", true },
		{ "maven:log4j-core = 2.14.1-1", false },
		{ "log4j-core = 2.14.1-1", true }, /* the dpkg one */
		{ "dpkg:log4j-core = 2.14.1-1", true },
		{ "java:log4j-core = 2.14.1", true },
		{ "no-such-package", false },
		{ "not no-such-package", true },
	};
	host_t h;
	int bad = 0;

	(void)state;
	host_init(&h, "db1", items, NULL);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++)
		if (matches(t[i].q, &h) != t[i].want) {
			print_error("%s: got %d\n", t[i].q, !t[i].want);
			bad++;
		}
	assert_int_equal(bad, 0);
}

static void test_match_group(void **state)
{
	static const item_spec_t items[] = {
		{ JAVA, "log4j-core", "2.14.1", "org.apache.logging.log4j" },
		{ JAVA, "log4j-core", "2.12.1", "com.example.shaded" },
		{ JAVA, "log4j-core", "2.11.0", NULL }, /* from a file name */
		{ JAVA, "log4j", "1.2.17", "log4j" },
		{ 0, NULL, NULL, NULL },
	};
	char v[256];
	host_t h;

	(void)state;
	host_init(&h, "app1", items, NULL);
	hit_versions("org.apache.logging.log4j:log4j-core", &h, v, sizeof(v));
	assert_string_equal(v, "2.14.1");
	hit_versions("com.example.shaded:log4j-core < 2.17.1", &h, v,
		     sizeof(v));
	assert_string_equal(v, "2.12.1");
	hit_versions("com.example:log4j-core", &h, v, sizeof(v));
	assert_string_equal(v, "");
	hit_versions("log4j-core", &h, v, sizeof(v));
	assert_string_equal(v, "2.11.0 2.12.1 2.14.1");
	/* An advisory names the artifact: the group does not narrow it. */
	hit_versions("advisory:CVE-2021-44228", &h, v, sizeof(v));
	assert_string_equal(v, "2.11.0 2.12.1 2.14.1");
	hit_versions("maven:log4j:log4j < 2", &h, v, sizeof(v));
	assert_string_equal(v, "1.2.17");
	hit_versions("log4j", &h, v, sizeof(v));
	assert_string_equal(v, "1.2.17");
}

static void test_match_nodes(void **state)
{
	static const item_spec_t items[] = {
		{ JAVA, "log4j-core", "2.14.1", "org.apache.logging.log4j" },
		{ DPKG, "openssl", "3.0.9-1", NULL },
		{ 0, NULL, NULL, NULL },
	};
	static const struct {
		const char *q;
		bool eu1, us1;
	} t[] = {
		{ "all", true, true },
		{ "not all", false, false },
		{ "label.zone = eu-1", true, false },
		{ "label.zone != eu-1", false, true },
		{ "label.zone ~ ^eu-", true, false },
		{ "label.zone ~ '^(eu|us)-[0-9]$'", true, true },
		{ "label.rack = r1", false, false }, /* no such label */
		{ "label.rack != r1", true, true },
		{ "label.rack ~ .", false, false },
		{ "attr.os_id = debian", true, true },
		{ "attr.os_id != debian", false, false },
		{ "node.name = web1", true, false },
		{ "node.name ~ '^(web|db)'", true, true },
		{ "not node.name = db1", true, false },
		{ "node.id = 00000000-0000-4000-8000-000000000001", true,
		  true },
		{ "log4j-core < 2.17.1 and label.zone = eu-1", true, false },
		{ "log4j-core < 2.17.1 and not label.zone = eu-1", false,
		  true },
		{ "(java:log4j-core or managed:log4j-core) and not node.name = "
		  "db1",
		  true, false },
		{ "label.zone = eu-1 or openssl < 3.0.9", true, false },
		{ "label.zone = eu-1 or openssl <= 3.0.9-1", true, true },
		{ "not (label.zone = eu-1 or openssl)", false, false },
		{ "not label.zone = eu-1 and openssl", false, true },
		{ "label.zone = us-1 or label.zone = eu-1 and attr.os_id = x",
		  false, true },
		{ "(label.zone = us-1 or label.zone = eu-1) and attr.os_id = x",
		  false, false },
	};
	host_t eu, us;
	int bad = 0;

	(void)state;
	host_init(&eu, "web1", items, "label.zone", "eu-1", "attr.os_id",
		  "debian", NULL);
	host_init(&us, "db1", items, "label.zone", "us-1", "attr.os_id",
		  "debian", NULL);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		if (matches(t[i].q, &eu) != t[i].eu1) {
			print_error("%s on web1 (eu-1): got %d\n", t[i].q,
				    !t[i].eu1);
			bad++;
		}
		if (matches(t[i].q, &us) != t[i].us1) {
			print_error("%s on db1 (us-1): got %d\n", t[i].q,
				    !t[i].us1);
			bad++;
		}
	}
	assert_int_equal(bad, 0);

	/* node.name and node.id come from the callback when not given. */
	eu.h.name = NULL;
	eu.h.id = NULL;
	eu.attrs[2][0] = "node.name";
	eu.attrs[2][1] = "web9";
	assert_true(matches("node.name = web9", &eu));
	assert_false(matches("node.id = x", &eu));
	assert_true(matches("node.id != x", &eu));
	eu.h.attr = NULL;
	assert_false(matches("label.zone = eu-1", &eu));
	assert_true(matches("label.zone != eu-1", &eu));
}

static void test_match_hits(void **state)
{
	static const item_spec_t items[] = {
		{ JAVA, "log4j-core", "2.14.1", "org.apache.logging.log4j" },
		{ JAVA, "log4j-core", "2.17.1", "org.apache.logging.log4j" },
		{ MANAGED, "log4j-core", "2.12.4", NULL },
		{ JAVA, "log4j-api", "2.14.1", "org.apache.logging.log4j" },
		{ DPKG, "openssl", "3.0.9-1", NULL },
		{ DPKG, "zlib1g", "1:1.2.13.dfsg-1", NULL },
		{ 0, NULL, NULL, NULL },
	};
	static const char *const t[][2] = {
		{ "log4j-core", "2.12.4 2.14.1 2.17.1" },
		{ "log4j-core < 2.17.1", "2.12.4 2.14.1" },
		{ "advisory:CVE-2021-44832", "2.14.1" },
		{ "java:log4j-core", "2.14.1 2.17.1" },
		{ "managed:log4j-core", "2.12.4" },
		{ "log4j-core >= 2.14, < 2.17", "2.14.1" },
		{ "log4j-core in (, 2.13) | [2.17.1, ]", "2.12.4 2.17.1" },
		/* positive paths only, each item once, in inventory order */
		{ "log4j-core or log4j-core < 2.17.1", "2.12.4 2.14.1 2.17.1" },
		{ "openssl or log4j-api", "2.14.1 3.0.9-1" },
		{ "openssl and not log4j-core", "" },
		{ "openssl and not log4j-api < 2", "3.0.9-1" },
		{ "zlib1g and label.zone = eu-1", "1:1.2.13.dfsg-1" },
		{ "(log4j-core and label.zone = us-1) or openssl", "3.0.9-1" },
		{ "(log4j-core = 2.17.1 and label.zone = eu-1) or openssl",
		  "2.17.1 3.0.9-1" },
		{ "label.zone = eu-1", "" },
		{ "all", "" },
		{ "no-such", "" },
		{ "not not openssl", "" },
	};
	char v[256];
	host_t h;

	(void)state;
	host_init(&h, "web1", items, "label.zone", "eu-1", NULL);
	for (size_t i = 0; i < FLT_ARRAY_SIZE(t); i++) {
		hit_versions(t[i][0], &h, v, sizeof(v));
		if (strcmp(v, t[i][1]) != 0)
			fail_msg("%s: hits \"%s\", want \"%s\"", t[i][0], v,
				 t[i][1]);
	}

	/* An empty inventory: no items, no hits, and no writes to hits. */
	host_t empty;
	host_init(&empty, "new1", NULL, NULL);
	flt_query_t *q = parse_ok("log4j-core or all");
	size_t n = 7;
	assert_true(flt_query_match(q, &empty.h, NULL, &n));
	assert_int_equal(n, 0);
	flt_query_free(q);
	assert_false(matches("log4j-core", &empty));
	assert_true(matches("not log4j-core", &empty));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_canonical),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_has_package_term),
		cmocka_unit_test(test_advisories_file),
		cmocka_unit_test(test_advisories_malformed),
		cmocka_unit_test(test_match_log4shell),
		cmocka_unit_test(test_match_kinds_and_schemes),
		cmocka_unit_test(test_match_group),
		cmocka_unit_test(test_match_nodes),
		cmocka_unit_test(test_match_hits),
	};
	return cmocka_run_group_tests(tests, load_advisories, free_advisories);
}
