/* Unit tests for common/flags.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla/error.h"
#include "flotilla/flags.h"

#define TTL_ENV "FLT_UNIT_HEARTBEAT_TTL"
#define URL_ENV "FLT_UNIT_URL"
#define LABEL_ENV "FLT_UNIT_LABEL"

/* Destinations of the flag table, reset before every test. */
typedef struct opts {
	const char *url;
	const char *name;
	long ttl;
	long count;
	bool verbose;
	flt_strlist_t peers;
	flt_strlist_t labels;
	flt_flag_t table[8];
} opts_t;

static int opts_setup(void **state)
{
	opts_t *o = calloc(1, sizeof(*o));
	if (!o)
		return -1;
	o->ttl = -1;
	o->count = -1;
	const flt_flag_t table[] = {
		{ "url", FLT_FLAG_STRING, &o->url, "URL", "coordinator", 0, 0,
		  URL_ENV },
		{ "name", FLT_FLAG_STRING, &o->name, "NAME", "node name", 0, 0,
		  NULL },
		{ "heartbeat-ttl", FLT_FLAG_INT, &o->ttl, "SECONDS", "ttl", 1,
		  3600, TTL_ENV },
		{ "count", FLT_FLAG_INT, &o->count, "N", "unbounded", 0, 0,
		  NULL },
		{ "verbose", FLT_FLAG_BOOL, &o->verbose, NULL, "chatty", 0, 0,
		  NULL },
		{ "peer", FLT_FLAG_LIST, &o->peers, "ADDR", "peers", 0, 0,
		  NULL },
		{ "label", FLT_FLAG_KV, &o->labels, "KEY=VALUE", "labels", 0, 0,
		  LABEL_ENV },
		{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
	};
	memcpy(o->table, table, sizeof(table));
	unsetenv(TTL_ENV);
	unsetenv(URL_ENV);
	unsetenv(LABEL_ENV);
	*state = o;
	return 0;
}

static int opts_teardown(void **state)
{
	opts_t *o = *state;
	flt_flags_free(o->table);
	free(o);
	unsetenv(TTL_ENV);
	unsetenv(URL_ENV);
	unsetenv(LABEL_ENV);
	return 0;
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* Parses argv (NULL-ended) with o's table; err is reset first. */
static int parse(opts_t *o, char **argv, int *next, flt_error_t *err)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	memset(err, 0, sizeof(*err));
	*next = -1;
	return flt_flags_parse(o->table, argc, argv, next, err);
}

static void test_all_types(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *argv[] = { "prog",
			 "--url",
			 "tcp://10.0.0.1:4700",
			 "--name=web-1",
			 "--heartbeat-ttl",
			 "30",
			 "--count=-12",
			 "--verbose",
			 "--peer",
			 "a:1",
			 "--label",
			 "zone=eu-west",
			 "--peer=b:2",
			 "--label",
			 "rack=r12",
			 "--label",
			 "empty=",
			 "--label",
			 "eq=a=b",
			 NULL };

	assert_int_equal(parse(o, argv, &next, &err), 0);
	assert_int_equal(next, ARGC(argv));
	assert_string_equal(o->url, "tcp://10.0.0.1:4700");
	assert_string_equal(o->name, "web-1");
	assert_int_equal(o->ttl, 30);
	assert_int_equal(o->count, -12);
	assert_true(o->verbose);
	assert_int_equal(o->peers.n, 2);
	assert_string_equal(o->peers.v[0], "a:1");
	assert_string_equal(o->peers.v[1], "b:2");
	assert_int_equal(o->labels.n, 4);
	assert_string_equal(o->labels.v[0], "zone=eu-west");
	assert_string_equal(o->labels.v[1], "rack=r12");
	assert_string_equal(o->labels.v[2], "empty=");
	assert_string_equal(o->labels.v[3], "eq=a=b");
}

static void test_absent_flags_untouched(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *argv[] = { "prog", NULL };

	assert_int_equal(parse(o, argv, &next, &err), 0);
	assert_int_equal(next, 1);
	assert_null(o->url);
	assert_null(o->name);
	assert_int_equal(o->ttl, -1);
	assert_int_equal(o->count, -1);
	assert_false(o->verbose);
	assert_int_equal(o->peers.n, 0);
	assert_null(o->peers.v);
	assert_int_equal(o->labels.n, 0);
}

static void test_int_range(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *low[] = { "prog", "--heartbeat-ttl", "0", NULL };
	char *high[] = { "prog", "--heartbeat-ttl=3601", NULL };
	char *neg[] = { "prog", "--heartbeat-ttl", "-5", NULL };
	char *min[] = { "prog", "--heartbeat-ttl", "1", NULL };
	char *max[] = { "prog", "--heartbeat-ttl", "3600", NULL };

	assert_int_equal(parse(o, low, &next, &err), FLT_EUSAGE);
	assert_int_equal(err.code, FLT_EUSAGE);
	assert_string_equal(err.msg,
			    "--heartbeat-ttl: must be between 1 and 3600");
	assert_int_equal(o->ttl, -1);

	assert_int_equal(parse(o, high, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg,
			    "--heartbeat-ttl: must be between 1 and 3600");
	assert_int_equal(parse(o, neg, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg,
			    "--heartbeat-ttl: must be between 1 and 3600");
	assert_int_equal(o->ttl, -1);

	assert_int_equal(parse(o, min, &next, &err), 0);
	assert_int_equal(o->ttl, 1);
	assert_int_equal(parse(o, max, &next, &err), 0);
	assert_int_equal(o->ttl, 3600);
}

static void test_int_not_a_number(void **state)
{
	opts_t *o = *state;
	const char *bad[] = { "abc", "12x",  "",
			      "1.5", "0x10", "99999999999999999999999" };
	flt_error_t err;
	int next;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "prog", "--heartbeat-ttl", (char *)bad[i],
				 NULL };
		char want[128];
		snprintf(want, sizeof(want),
			 "--heartbeat-ttl: \"%s\" is not a whole number",
			 bad[i]);
		assert_int_equal(parse(o, argv, &next, &err), FLT_EUSAGE);
		assert_int_equal(err.code, FLT_EUSAGE);
		assert_string_equal(err.msg, want);
		assert_int_equal(o->ttl, -1);
	}

	/* Unbounded ints take any long. */
	char *big[] = { "prog", "--count", "-9223372036854775808", NULL };
	assert_int_equal(parse(o, big, &next, &err), 0);
	assert_int_equal(o->count, (long)(-9223372036854775807L - 1));
}

static void test_unknown_flag(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *argv[] = { "prog", "--verbose", "--no-such-flag", "x", NULL };
	char *shortf[] = { "prog", "-q", NULL };

	assert_int_equal(parse(o, argv, &next, &err), FLT_EUSAGE);
	assert_int_equal(err.code, FLT_EUSAGE);
	assert_string_equal(err.msg, "--no-such-flag: unknown flag");
	assert_int_equal(next, -1);

	assert_int_equal(parse(o, shortf, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "-q: unknown flag");
}

static void test_missing_value(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *argv[] = { "prog", "--verbose", "--name", NULL };
	char *empty[] = { "prog", "--name=", NULL };

	assert_int_equal(parse(o, argv, &next, &err), FLT_EUSAGE);
	assert_int_equal(err.code, FLT_EUSAGE);
	assert_string_equal(err.msg, "--name: needs a value");
	assert_null(o->name);

	assert_int_equal(parse(o, empty, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "--name: must not be empty");
	assert_null(o->name);
}

static void test_help(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *lng[] = { "prog", "--verbose", "--help", "--name", "x", NULL };
	char *shrt[] = { "prog", "-h", NULL };
	char *late[] = { "prog", "--help", "--no-such-flag", NULL };

	assert_int_equal(parse(o, lng, &next, &err), 1);
	assert_null(o->name); /* nothing after --help is parsed */
	assert_int_equal(parse(o, shrt, &next, &err), 1);
	assert_int_equal(parse(o, late, &next, &err), 1);

	/* The help text lists every flag with its metavar and variable. */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	flt_flags_usage(f, "usage: prog [flags]", o->table);
	fclose(f);
	assert_non_null(strstr(text, "usage: prog [flags]\n"));
	assert_non_null(strstr(text, "--heartbeat-ttl SECONDS"));
	assert_non_null(strstr(text, "[$" TTL_ENV "]"));
	assert_non_null(strstr(text, "--verbose "));
	assert_non_null(strstr(text, "--help"));
	free(text);
}

static void test_version(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *lng[] = { "prog", "--verbose", "--version", "--name", "x", NULL };
	char *late[] = { "prog", "--version", "--no-such-flag", NULL };
	char *value[] = { "prog", "--version=1", NULL };
	char *hvalue[] = { "prog", "--help=1", NULL };
	char *shrt[] = { "prog", "-V", NULL };
	char *operand[] = { "prog", "sub", "--version", NULL };

	assert_int_equal(parse(o, lng, &next, &err), FLT_FLAGS_VERSION);
	assert_null(o->name); /* nothing after --version is parsed */
	assert_int_equal(parse(o, late, &next, &err), FLT_FLAGS_VERSION);
	assert_int_equal(parse(o, value, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "--version: takes no value");
	assert_int_equal(parse(o, hvalue, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "--help: takes no value");
	assert_int_equal(parse(o, shrt, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "-V: unknown flag");
	/* After an operand, --version is the operand's business. */
	assert_int_equal(parse(o, operand, &next, &err), 0);
	assert_int_equal(next, 1);

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	flt_flags_usage(f, "usage: prog [flags]", o->table);
	fclose(f);
	assert_non_null(strstr(text, "--version"));
	free(text);

	/* A table's own "version" flag is that flag. */
	long v = -1;
	const flt_flag_t own[] = {
		{ "version", FLT_FLAG_INT, &v, "V", "envelope version", 0, 9,
		  NULL },
		{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
	};
	char *set[] = { "prog", "--version", "3", NULL };
	assert_int_equal(flt_flags_parse(own, 3, set, &next, &err), 0);
	assert_int_equal(v, 3);
	assert_int_equal(next, 3);
}

static void test_edit_distance(void **state)
{
	(void)state;
	assert_int_equal(flt_edit_distance("node", "node", 2), 0);
	assert_int_equal(flt_edit_distance("nod", "node", 2), 1);
	/* A swap of two neighbours is one edit. */
	assert_int_equal(flt_edit_distance("ndoe", "node", 2), 1);
	assert_int_equal(flt_edit_distance("jbo", "job", 2), 1);
	assert_int_equal(flt_edit_distance("ca", "abc", 5), 3);
	assert_int_equal(flt_edit_distance("lsti", "list", 2), 2);
	assert_int_equal(flt_edit_distance("", "job", 5), 3);
	assert_int_equal(flt_edit_distance("kitten", "sitting", 5), 3);
	/* Anything beyond max is max + 1. */
	assert_int_equal(flt_edit_distance("kitten", "sitting", 2), 3);
	assert_int_equal(flt_edit_distance("a", "deployment", 2), 3);
	assert_int_equal(flt_edit_distance("bogus", "node", 2), 3);

	const char *const cands[] = { "node", NULL, "job", "jobs", "alloc" };
	assert_string_equal(flt_nearest("nod", cands, 5, 2), "node");
	assert_string_equal(flt_nearest("jbo", cands, 5, 1), "job");
	/* The nearest wins over the first within reach. */
	assert_string_equal(flt_nearest("jobs", cands, 5, 2), "jobs");
	assert_string_equal(flt_nearest("alloc", cands, 5, 0), "alloc");
	assert_null(flt_nearest("bogus", cands, 5, 2));
	assert_null(flt_nearest("nod", cands, 0, 2));
}

static void test_env_fallback(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *none[] = { "prog", NULL };
	char *given[] = { "prog",  "--heartbeat-ttl", "5",
			  "--url", "ipc://x",         NULL };

	setenv(TTL_ENV, "30", 1);
	setenv(URL_ENV, "tcp://from-env:1", 1);
	setenv(LABEL_ENV, "zone=env", 1);
	assert_int_equal(parse(o, none, &next, &err), 0);
	assert_int_equal(o->ttl, 30);
	assert_string_equal(o->url, "tcp://from-env:1");
	assert_int_equal(o->labels.n, 1);
	assert_string_equal(o->labels.v[0], "zone=env");
	flt_flags_free(o->table);

	/* The flag wins over the environment. */
	o->ttl = -1;
	o->url = NULL;
	assert_int_equal(parse(o, given, &next, &err), 0);
	assert_int_equal(o->ttl, 5);
	assert_string_equal(o->url, "ipc://x");
	flt_flags_free(o->table);

	/* An empty variable counts as absent. */
	o->ttl = -1;
	setenv(TTL_ENV, "", 1);
	assert_int_equal(parse(o, none, &next, &err), 0);
	assert_int_equal(o->ttl, -1);
	flt_flags_free(o->table);

	/* Unset: nothing. */
	unsetenv(TTL_ENV);
	unsetenv(URL_ENV);
	unsetenv(LABEL_ENV);
	o->url = NULL;
	assert_int_equal(parse(o, none, &next, &err), 0);
	assert_int_equal(o->ttl, -1);
	assert_null(o->url);
	assert_int_equal(o->labels.n, 0);
}

static void test_env_invalid(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *none[] = { "prog", NULL };
	char *given[] = { "prog", "--heartbeat-ttl", "7", NULL };

	/* A bad variable is an error naming the variable... */
	setenv(TTL_ENV, "9999", 1);
	assert_int_equal(parse(o, none, &next, &err), FLT_EUSAGE);
	assert_int_equal(err.code, FLT_EUSAGE);
	assert_non_null(strstr(err.msg, TTL_ENV));
	assert_non_null(strstr(err.msg, "must be between 1 and 3600"));
	assert_int_equal(o->ttl, -1);

	/* ...but is never looked at when the flag is given. */
	assert_int_equal(parse(o, given, &next, &err), 0);
	assert_int_equal(o->ttl, 7);

	setenv(LABEL_ENV, "no value", 1);
	o->ttl = -1;
	unsetenv(TTL_ENV);
	assert_int_equal(parse(o, none, &next, &err), FLT_EUSAGE);
	assert_non_null(strstr(err.msg, LABEL_ENV));
	assert_int_equal(o->labels.n, 0);
}

static void test_kv_rejects(void **state)
{
	opts_t *o = *state;
	char longkey[80];
	const char *bad[] = { "novalue", "=x",       "bad key=x", "a/b=x",
			      longkey,   "k=bell\a", "" };
	flt_error_t err;
	int next;

	memset(longkey, 'k', 64);
	strcpy(longkey + 64, "=v");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "prog", "--label", (char *)bad[i], NULL };
		char prefix[128];
		snprintf(prefix, sizeof(prefix), "--label: \"%s\": ", bad[i]);
		assert_int_equal(parse(o, argv, &next, &err), FLT_EUSAGE);
		assert_int_equal(err.code, FLT_EUSAGE);
		assert_memory_equal(err.msg, prefix, strlen(prefix));
		assert_int_equal(o->labels.n, 0);
	}

	/* Label values may hold any text but control characters (U+202E
	 * is text: shown escaped); the message says what and where. */
	char *bell[] = { "prog", "--label", "k=bell\a", NULL };
	assert_int_equal(parse(o, bell, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "--label: \"k=bell\a\": value: control "
				     "character at byte 4");
	char *inv[] = { "prog", "--label", "k=a\xff", NULL };
	assert_int_equal(parse(o, inv, &next, &err), FLT_EUSAGE);
	assert_string_equal(err.msg, "--label: \"k=a\xff\": value: invalid "
				     "UTF-8 at byte 1");
	char *rtl[] = { "prog", "--label",
			"k=\xe2\x80\xae"
			"evil",
			NULL };
	assert_int_equal(parse(o, rtl, &next, &err), 0);
	assert_int_equal(o->labels.n, 1);
	o->labels.n = 0; /* elements point into argv: nothing to free */

	/* 63 bytes is the longest key. */
	longkey[63] = '=';
	longkey[64] = 'v';
	longkey[65] = '\0';
	char *ok[] = { "prog", "--label", longkey, NULL };
	assert_int_equal(parse(o, ok, &next, &err), 0);
	assert_int_equal(o->labels.n, 1);
	assert_string_equal(o->labels.v[0], longkey);
}

static void test_kv_split(void **state)
{
	char key[64];
	const char *value = NULL;
	flt_error_t err = { 0 };
	(void)state;

	assert_int_equal(
		flt_kv_split("zone=eu=1", key, sizeof(key), &value, &err), 0);
	assert_string_equal(key, "zone");
	assert_string_equal(value, "eu=1");

	assert_int_equal(
		flt_kv_split("novalue", key, sizeof(key), &value, &err),
		-EINVAL);
	assert_string_equal(err.msg, "\"novalue\": expected key=value");
	/* A key that does not fit the caller's buffer is refused. */
	assert_int_equal(flt_kv_split("abcd=1", key, 4, &value, &err), -EINVAL);
	assert_int_equal(flt_kv_split("abc=1", key, 4, &value, &err), 0);
	assert_string_equal(key, "abc");
}

static void test_stops_at_operand(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *argv[] = { "prog", "--verbose", "node", "--name", "x", NULL };
	char *dashes[] = { "prog", "--count", "3", "--", "--name", NULL };
	char *first[] = { "prog", "list", "--verbose", NULL };

	assert_int_equal(parse(o, argv, &next, &err), 0);
	assert_int_equal(next, 2);
	assert_string_equal(argv[next], "node");
	assert_true(o->verbose);
	assert_null(o->name);
	/* argv is not permuted. */
	assert_string_equal(argv[3], "--name");

	assert_int_equal(parse(o, dashes, &next, &err), 0);
	assert_int_equal(o->count, 3);
	assert_int_equal(next, 4);
	assert_string_equal(dashes[next], "--name");
	assert_null(o->name);

	o->verbose = false;
	assert_int_equal(parse(o, first, &next, &err), 0);
	assert_int_equal(next, 1);
	assert_false(o->verbose);
}

static void test_reparse(void **state)
{
	opts_t *o = *state;
	flt_error_t err;
	int next;
	char *a[] = { "prog",    "--peer", "p1",  "--peer", "p2",
		      "--label", "k=v",    "sub", NULL };
	char *b[] = { "prog", "--peer", "p3", NULL };

	/* Parsing twice works: optind is reset by every call. */
	assert_int_equal(parse(o, a, &next, &err), 0);
	assert_int_equal(next, 7);
	assert_int_equal(o->peers.n, 2);
	assert_int_equal(o->labels.n, 1);

	flt_flags_free(o->table);
	assert_int_equal(o->peers.n, 0);
	assert_null(o->peers.v);
	assert_int_equal(o->labels.n, 0);
	assert_null(o->labels.v);

	assert_int_equal(parse(o, b, &next, &err), 0);
	assert_int_equal(next, 3);
	assert_int_equal(o->peers.n, 1);
	assert_string_equal(o->peers.v[0], "p3");
	assert_int_equal(o->labels.n, 0);

	/* Freeing twice, or a table with nothing to free, is harmless. */
	flt_flags_free(o->table);
	flt_flags_free(o->table);
	assert_null(o->peers.v);
}

static void test_main(void **state)
{
	opts_t *o = *state;
	int next = -1;
	char *help[] = { "prog", "--help", NULL };
	char *bad[] = { "prog", "--nope", NULL };
	char *op[] = { "prog", "--name", "n1", "sub", NULL };
	char *none[] = { "prog", "--verbose", NULL };
	char *version[] = { "prog", "--version", NULL };
	char *novalue[] = { "prog", "--name", NULL };
	char *badvalue[] = { "prog", "--heartbeat-ttl", "0", NULL };

	/* --help: usage on stdout, exit status 0. */
	assert_int_equal(flt_flags_main(o->table, 2, help, &next, "prog",
					"Usage: prog", false),
			 0);
	/* A bad flag, or an operand where none is expected: status 2. */
	assert_int_equal(flt_flags_main(o->table, 2, bad, &next, "prog",
					"Usage: prog", true),
			 2);
	assert_int_equal(flt_flags_main(o->table, 4, op, &next, "prog",
					"Usage: prog", false),
			 2);
	/* --version: "prog VERSION" on stdout, exit status 0. */
	assert_int_equal(flt_flags_main(o->table, 2, version, &next, "prog",
					"Usage: prog", false),
			 0);
	/* A flag without its value, or with a bad one: status 2. */
	assert_int_equal(flt_flags_main(o->table, 2, novalue, &next, "prog",
					"Usage: prog", true),
			 FLT_FLAGS_EXIT_USAGE);
	assert_int_equal(flt_flags_main(o->table, 3, badvalue, &next, "prog",
					"Usage: prog", true),
			 FLT_FLAGS_EXIT_USAGE);
	/* Otherwise the program goes on, at its operands. */
	assert_int_equal(flt_flags_main(o->table, 4, op, &next, "prog",
					"Usage: prog", true),
			 -1);
	assert_int_equal(next, 3);
	assert_string_equal(o->name, "n1");
	assert_int_equal(flt_flags_main(o->table, 2, none, &next, "prog",
					"Usage: prog", false),
			 -1);
	assert_int_equal(next, 2);
	assert_true(o->verbose);
}

static void test_duration(void **state)
{
	flt_error_t err;
	uint64_t ms = 7;
	(void)state;

	assert_int_equal(flt_duration_parse("1h30m", 86400000, &ms, &err), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(flt_duration_parse("1m500ms", 86400000, &ms, &err), 0);
	assert_int_equal(ms, 60500);
	assert_int_equal(flt_duration_parse("2d", 3 * 86400000ull, &ms, &err),
			 0);
	assert_int_equal(ms, 2 * 86400000ull);

	ms = 7;
	assert_int_equal(flt_duration_parse("", 1000, &ms, &err), -EINVAL);
	assert_int_equal(flt_duration_parse("5", 1000, &ms, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "\"5\": missing unit (units: ms, s, m, h, d)");
	assert_int_equal(flt_duration_parse("5x", 1000, &ms, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "\"5x\": unknown unit (units: ms, s, m, h, d)");
	assert_int_equal(flt_duration_parse("-1s", 1000, &ms, &err), -EINVAL);
	assert_int_equal(flt_duration_parse("0s", 1000, &ms, &err), -ERANGE);
	assert_string_equal(err.msg, "\"0s\": must be more than 0");
	assert_int_equal(flt_duration_parse("2h", 3600000, &ms, &err), -ERANGE);
	assert_string_equal(err.msg, "\"2h\": longer than 1 hours");
	assert_int_equal(
		flt_duration_parse("99999999999999999999s", 3600000, &ms, NULL),
		-ERANGE);
	assert_int_equal(ms, 7);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, opts_setup, opts_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_all_types),
		T(test_absent_flags_untouched),
		T(test_int_range),
		T(test_int_not_a_number),
		T(test_unknown_flag),
		T(test_missing_value),
		T(test_help),
		T(test_version),
		cmocka_unit_test(test_edit_distance),
		T(test_env_fallback),
		T(test_env_invalid),
		T(test_kv_rejects),
		cmocka_unit_test(test_kv_split),
		T(test_stops_at_operand),
		T(test_reparse),
		T(test_main),
		cmocka_unit_test(test_duration),
	};
	return cmocka_run_group_tests_name("unit.flags", tests, NULL, NULL);
}
