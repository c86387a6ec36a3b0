/* Unit tests for agent/options.c. */
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

#include "options.h"

static int64_t interval(const char *s)
{
	int64_t ms = -1;
	int rc = agent_interval_parse(s, &ms);
	return rc < 0 ? rc : ms;
}

static void test_interval_units(void **state)
{
	(void)state;
	assert_int_equal(interval("90s"), 90000);
	assert_int_equal(interval("5m"), 300000);
	assert_int_equal(interval("1h30m"), 5400000);
	assert_int_equal(interval("1500ms"), 1500);
	/* "ms" is milliseconds, not minutes then seconds. */
	assert_int_equal(interval("1m500ms"), 60500);
	assert_int_equal(interval("1s1s"), 2000);
	assert_int_equal(interval("24h"), 86400000);
}

static void test_interval_bad(void **state)
{
	(void)state;
	assert_int_equal(interval(""), -EINVAL);
	assert_int_equal(interval("5"), -EINVAL);
	assert_int_equal(interval("m"), -EINVAL);
	assert_int_equal(interval("5 m"), -EINVAL);
	assert_int_equal(interval("-5m"), -EINVAL);
	assert_int_equal(interval("5d"), -EINVAL);
	assert_int_equal(interval("5mx"), -EINVAL);
}

static void test_interval_range(void **state)
{
	(void)state;
	assert_int_equal(interval("999ms"), -ERANGE);
	assert_int_equal(interval("0s"), -ERANGE);
	assert_int_equal(interval("24h1ms"), -ERANGE);
	assert_int_equal(interval("25h"), -ERANGE);
	/* Digits that would overflow are cut short, not wrapped. */
	assert_int_equal(interval("99999999999999999999999s"), -ERANGE);
	int64_t ms = 42;
	assert_int_equal(agent_interval_parse("1ms", &ms), -ERANGE);
	assert_int_equal(ms, 42);
}

static void test_default_name(void **state)
{
	char name[256], small[4];
	(void)state;
	agent_default_name(name, sizeof(name));
	assert_null(strchr(name, '.'));
	agent_default_name(small, sizeof(small));
	assert_true(strlen(small) < sizeof(small));
}

/* Builds allowances from the flags given; returns rc, message in msg. */
static int build(const char **caps, size_t ncaps, const char **vols,
		 size_t nvols, const char **sys, size_t nsys,
		 const char **users, size_t nusers, Flotilla__Allowances **out,
		 char *msg)
{
	flt_strlist_t c = { ncaps, caps }, v = { nvols, vols },
		      y = { nsys, sys }, u = { nusers, users };
	agent_allow_flags_t f = { .caps = &c,
				  .volumes = &v,
				  .syscalls = &y,
				  .users = &u,
				  .host_network = true };
	flt_error_t err = { 0 };
	int rc = agent_allowances_build(&f, "/var/lib/flotilla/agent", out,
					&err);
	snprintf(msg, FLT_ERROR_MSG_MAX, "%s", rc < 0 ? err.msg : "");
	return rc;
}

static void test_allowances(void **state)
{
	(void)state;
	char dir[] = "/tmp/flt-opt-XXXXXX", msg[FLT_ERROR_MSG_MAX];
	assert_non_null(mkdtemp(dir));
	char vol[600];
	snprintf(vol, sizeof(vol), "data=%s:rw", dir);
	const char *caps[] = { "net_admin", "CAP_NET_BIND_SERVICE",
			       "NET_ADMIN" };
	const char *vols[] = { vol };
	const char *sys[] = { "ptrace", "keyctl" };
	const char *users[] = { "1000:1000", "app" };
	Flotilla__Allowances *a = NULL;
	assert_int_equal(build(caps, 3, vols, 1, sys, 2, users, 2, &a, msg), 0);
	/* Normalised, without duplicates, sorted. */
	assert_int_equal(a->n_capabilities, 2);
	assert_string_equal(a->capabilities[0], "CAP_NET_ADMIN");
	assert_string_equal(a->capabilities[1], "CAP_NET_BIND_SERVICE");
	assert_int_equal(a->n_syscalls, 2);
	assert_string_equal(a->syscalls[0], "keyctl");
	assert_int_equal(a->n_users, 2);
	assert_string_equal(a->users[0], "1000:1000");
	assert_int_equal(a->n_host_volumes, 1);
	assert_string_equal(a->host_volumes[0]->name, "data");
	assert_true(a->host_volumes[0]->writable);
	assert_true(a->host_network);
	assert_false(a->seccomp_unconfined);
	flotilla__allowances__free_unpacked(a, NULL);

	/* Refused, each with the flag and the reason. */
	struct {
		const char *cap, *vol, *sys, *user, *want;
	} bad[] = {
		{ "SYS_MODULE", NULL, NULL, NULL,
		  "--allow-cap SYS_MODULE: CAP_SYS_MODULE is never granted" },
		{ "cap_syslog", NULL, NULL, NULL,
		  "CAP_SYSLOG is never granted" },
		{ "FLY", NULL, NULL, NULL, "not a Linux capability" },
		{ NULL, NULL, "open_by_handle_at", NULL,
		  "--allow-syscall open_by_handle_at: never granted" },
		{ NULL, NULL, "finit_module", NULL, "never granted" },
		{ NULL, NULL, "no_such_syscall", NULL, "not a system call" },
		{ NULL, "r=/run", NULL, NULL, "/run is never granted" },
		{ NULL, "v=/var", NULL, NULL, "/var is never granted" },
		{ NULL, "s=/var/lib/flotilla/agent/allocs", NULL, NULL,
		  "never granted" },
		{ NULL, "rel=srv", NULL, NULL, "PATH must be absolute" },
		{ NULL, "noeq", NULL, NULL, "expected NAME=PATH" },
		{ NULL, "x=/no/such/dir/here", NULL, NULL, "No such file" },
		{ NULL, NULL, NULL, "root", "never a task user" },
		{ NULL, NULL, NULL, "0", "never a task user" },
		{ NULL, NULL, NULL, "1000:0", "never a task user" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *c[] = { bad[i].cap }, *v[] = { bad[i].vol },
			   *y[] = { bad[i].sys }, *u[] = { bad[i].user };
		a = NULL;
		int rc = build(c, bad[i].cap != NULL, v, bad[i].vol != NULL, y,
			       bad[i].sys != NULL, u, bad[i].user != NULL, &a,
			       msg);
		if (rc >= 0 || !strstr(msg, bad[i].want))
			fail_msg("case %zu: rc %d, \"%s\" lacks \"%s\"", i, rc,
				 msg, bad[i].want);
		assert_null(a);
	}
	/* The same volume twice. */
	const char *twice[] = { vol, vol };
	assert_true(build(NULL, 0, twice, 2, NULL, 0, NULL, 0, &a, msg) < 0);
	assert_non_null(strstr(msg, "given twice"));
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval_units),
		cmocka_unit_test(test_interval_bad),
		cmocka_unit_test(test_interval_range),
		cmocka_unit_test(test_default_name),
		cmocka_unit_test(test_allowances),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
