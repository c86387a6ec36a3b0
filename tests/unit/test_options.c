/* Unit tests for agent/options.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval_units),
		cmocka_unit_test(test_interval_bad),
		cmocka_unit_test(test_interval_range),
		cmocka_unit_test(test_default_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
