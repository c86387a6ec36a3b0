/*
 * Unit tests for coordinator/joinguard.c on a simulated clock: the
 * back-off per source, the global cap, the bounded logs and the bounded
 * table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator.h"

typedef struct lines {
	size_t n;
	char last[256];
} lines_t;

static void count_line(void *arg, const char *line)
{
	lines_t *l = arg;
	l->n++;
	snprintf(l->last, sizeof(l->last), "%s", line);
}

/* One guess: 1 when the token was looked at (and was wrong). */
static int guess(coord_joinguard_t *g, const char *peer, int64_t now)
{
	if (coord_joinguard_admit(g, peer, now, NULL) < 0)
		return 0;
	coord_joinguard_failed(g, peer, now, "wrong join token");
	return 1;
}

static void test_backoff_doubles(void **state)
{
	lines_t l = { 0 };
	coord_joinguard_t *g = coord_joinguard_new(count_line, &l);
	flt_error_t err;
	int64_t t = 1000000;
	(void)state;

	assert_int_equal(coord_joinguard_admit(g, "10.0.0.7:4000", t, &err), 0);
	coord_joinguard_failed(g, "10.0.0.7:4000", t, "wrong join token");
	assert_int_equal(l.n, 1);
	assert_string_equal(l.last, "registration refused: wrong join token "
				    "peer=10.0.0.7");
	/* Another port of the same address is the same source. */
	assert_int_equal(
		coord_joinguard_admit(g, "10.0.0.7:4001", t + 50, &err),
		-EAGAIN);
	assert_string_equal(err.msg, "too many failed joins from 10.0.0.7: "
				     "retry in 0.1 s");
	/* Another address is not. */
	assert_int_equal(coord_joinguard_admit(g, "10.0.0.8:1", t + 50, NULL),
			 0);
	assert_int_equal(coord_joinguard_admit(g, "10.0.0.7:1", t + 100, NULL),
			 0);

	/* 100, 200, 400 ... ms after the 1st, 2nd, 3rd ... failure in a
	 * row, at most 30 s. */
	coord_joinguard_t *h = coord_joinguard_new(count_line, &l);
	int64_t want = 100;
	t = 5000000;
	for (int k = 1; k <= 12; k++) {
		assert_int_equal(coord_joinguard_admit(h, "[::1]:9", t, NULL),
				 0);
		coord_joinguard_failed(h, "[::1]:10", t, "wrong join token");
		assert_int_equal(
			coord_joinguard_admit(h, "[::1]:9", t + want - 1, &err),
			-EAGAIN);
		assert_int_equal(
			coord_joinguard_admit(h, "[::1]:9", t + want, NULL), 0);
		t += want;
		want = want * 2 > 30000 ? 30000 : want * 2;
	}
	assert_string_equal(err.msg, "too many failed joins from [::1]: "
				     "retry in 0.1 s");

	/* A success forgets the failures: the next one starts at 100 ms. */
	coord_joinguard_succeeded(h, "[::1]:11", t);
	coord_joinguard_failed(h, "[::1]:11", t, "wrong join token");
	assert_int_equal(coord_joinguard_admit(h, "[::1]:9", t + 100, NULL), 0);
	coord_joinguard_free(h);
	coord_joinguard_free(g);
}

/* The attack: one connection guessing 8,000 times a second for
 * 20 s. */
static void test_guessing_collapses(void **state)
{
	lines_t l = { 0 };
	coord_joinguard_t *g = coord_joinguard_new(count_line, &l);
	int64_t t0 = 1000000;
	size_t checked = 0, first_second = 0, refused = 0;
	(void)state;

	for (int64_t us = 0; us < 20 * 1000000; us += 125) {
		int64_t now = t0 + us / 1000;
		int c = guess(g, "192.0.2.1:5555", now);
		checked += (size_t)c;
		refused += (size_t)!c;
		if (us < 1000000)
			first_second += (size_t)c;
		if (us % 100000 == 0)
			coord_joinguard_tick(g, now);
	}
	/* 0, 0.1, 0.3, 0.7 s: 4 guesses in the first second (not 8,000),
	 * then 1.5, 3.1, 6.3 and 12.7 s: 8 of 160,000 attempts. */
	assert_int_equal(first_second, 4);
	assert_int_equal(checked, 8);
	assert_int_equal(refused, 160000 - 8);
	/* The first refusal, then a summary every 10 s. */
	assert_true(l.n <= 3);
	assert_non_null(strstr(l.last, "more refused joins from 192.0.2.1 in "
				       "the last"));
	coord_joinguard_free(g);
}

static void test_global_cap_and_bounded_table(void **state)
{
	lines_t l = { 0 };
	coord_joinguard_t *g = coord_joinguard_new(count_line, &l);
	flt_error_t err;
	char peer[64];
	size_t checked = 0;
	int64_t t0 = 2000000; /* a whole second */
	(void)state;

	/* 5,000 addresses, one guess each, in one second: 50 get checked,
	 * the table keeps 1024 of them, the log 20 lines. */
	for (int i = 0; i < 5000; i++) {
		snprintf(peer, sizeof(peer), "10.%d.%d.%d:1", i >> 16,
			 (i >> 8) & 255, i & 255);
		checked += (size_t)guess(g, peer, t0 + i / 10);
	}
	assert_int_equal(checked, 50);
	assert_int_equal(
		coord_joinguard_admit(g, "198.51.100.1:1", t0 + 600, &err),
		-EAGAIN);
	assert_string_equal(err.msg, "too many failed joins on this "
				     "coordinator: retry in 400 ms");
	assert_int_equal(l.n, 20);
	/* The next second admits again. */
	assert_int_equal(
		coord_joinguard_admit(g, "198.51.100.1:1", t0 + 1000, NULL), 0);

	/* 100,000 failures from 100,000 addresses over 2,000 s: the log
	 * stays within 20 lines per 10 s plus one summary. */
	l.n = 0;
	for (int i = 0; i < 100000; i++) {
		int64_t now = t0 + 10000 + (int64_t)i * 20;
		snprintf(peer, sizeof(peer), "172.16.%d.%d:2", i >> 8, i & 255);
		guess(g, peer, now);
		if (i % 50 == 0)
			coord_joinguard_tick(g, now);
	}
	assert_true(l.n <= 200 * 21);
	coord_joinguard_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles),
		cmocka_unit_test(test_guessing_collapses),
		cmocka_unit_test(test_global_cap_and_bounded_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
