/* Unit tests for common/hash.c: the hash function and the string map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla/hash.h"

/* ---- flt_hash_* --------------------------------------------------------- */

static void test_hash_fnv1a(void **state)
{
	(void)state;
	/* FNV-1a 64 from the tree's start: the values must not change
	 * (task cgroup names derive from them). */
	assert_true(flt_hash_str("") == 0x14650fb0739d0383ull);
	assert_true(flt_hash_str("a") == 0x44bd8ad473cd9906ull);
	assert_true(flt_hash_str("foobar") == 0x88fad7c0a8ff07f2ull);
	/* From the published basis, the published test vector. */
	assert_true(flt_hash_bytes(14695981039346656037ull, "a", 1) ==
		    0xaf63dc4c8601ec8cull);
	/* Chained over pieces, the same as in one go. */
	uint64_t h = flt_hash_bytes(FLT_HASH_INIT, "foo", 3);
	assert_true(flt_hash_bytes(h, "bar", 3) == flt_hash_str("foobar"));
	assert_true(flt_hash_bytes(FLT_HASH_INIT, "x", 0) == FLT_HASH_INIT);
}

/* ---- flt_map ------------------------------------------------------------ */

static void test_map_basic(void **state)
{
	flt_map_t m = FLT_MAP_INIT;
	int a = 1, b = 2, c = 3;
	(void)state;

	/* Empty: nothing found, nothing deleted, nothing iterated. */
	assert_null(flt_map_get(&m, "a"));
	assert_null(flt_map_del(&m, "a"));
	size_t pos = 0;
	assert_false(flt_map_next(&m, &pos, NULL, NULL));

	flt_map_put(&m, "a", &a);
	flt_map_put(&m, "b", &b);
	assert_int_equal(flt_map_count(&m), 2);
	assert_ptr_equal(flt_map_get(&m, "a"), &a);
	assert_ptr_equal(flt_map_get(&m, "b"), &b);
	assert_null(flt_map_get(&m, "c"));

	/* Replacing keeps the count and the first key. */
	char key[] = "a";
	flt_map_put(&m, key, &c);
	assert_int_equal(flt_map_count(&m), 2);
	assert_ptr_equal(flt_map_get(&m, "a"), &c);
	const char *k = NULL;
	pos = 0;
	while (flt_map_next(&m, &pos, &k, NULL) && strcmp(k, "a") != 0)
		;
	assert_string_equal(k, "a");
	assert_ptr_not_equal(k, key);

	assert_ptr_equal(flt_map_del(&m, "a"), &c);
	assert_null(flt_map_get(&m, "a"));
	assert_null(flt_map_del(&m, "a"));
	assert_int_equal(flt_map_count(&m), 1);
	flt_map_free(&m);
	assert_int_equal(flt_map_count(&m), 0);
	assert_null(flt_map_get(&m, "b"));
	/* A freed map is empty and usable again. */
	flt_map_put(&m, "b", &b);
	assert_ptr_equal(flt_map_get(&m, "b"), &b);
	flt_map_free(&m);
}

#define MANY 20000

static char (*keys_make(size_t n))[16]
{
	char(*keys)[16] = calloc(n, sizeof(*keys));
	assert_non_null(keys);
	for (size_t i = 0; i < n; i++)
		snprintf(keys[i], sizeof(keys[i]), "node-%zu", i);
	return keys;
}

/* Every key of the map is found, with its value, and nothing else. */
static void check_all(const flt_map_t *m, char (*keys)[16], const bool *in,
		      size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		void *v = flt_map_get(m, keys[i]);
		if (in[i]) {
			assert_ptr_equal(v, keys[i]);
			count++;
		} else {
			assert_null(v);
		}
	}
	assert_int_equal(flt_map_count(m), count);
	/* Iteration gives each entry once. */
	size_t pos = 0, seen = 0;
	const char *k;
	void *v;
	while (flt_map_next(m, &pos, &k, &v)) {
		assert_ptr_equal(k, v);
		seen++;
	}
	assert_int_equal(seen, count);
	/* The table never gets more than half full. */
	assert_true(m->n * 2 <= m->nslots);
}

static void test_map_many(void **state)
{
	flt_map_t m = FLT_MAP_INIT;
	char(*keys)[16] = keys_make(MANY);
	bool *in = calloc(MANY, sizeof(bool));
	(void)state;
	assert_non_null(in);

	/* Growing from empty through many doublings. */
	for (size_t i = 0; i < MANY; i++) {
		flt_map_put(&m, keys[i], keys[i]);
		in[i] = true;
	}
	check_all(&m, keys, in, MANY);

	/* Deleting every third key shifts entries back into the holes:
	 * every remaining chain must stay whole. */
	for (size_t i = 0; i < MANY; i += 3) {
		assert_ptr_equal(flt_map_del(&m, keys[i]), keys[i]);
		in[i] = false;
	}
	check_all(&m, keys, in, MANY);

	/* Put back, then delete all in another order. */
	for (size_t i = 0; i < MANY; i += 3) {
		flt_map_put(&m, keys[i], keys[i]);
		in[i] = true;
	}
	check_all(&m, keys, in, MANY);
	for (size_t i = MANY; i-- > 0;) {
		if (i % 2)
			continue;
		assert_ptr_equal(flt_map_del(&m, keys[i]), keys[i]);
		in[i] = false;
	}
	check_all(&m, keys, in, MANY);
	for (size_t i = 0; i < MANY; i++) {
		if (in[i])
			assert_ptr_equal(flt_map_del(&m, keys[i]), keys[i]);
		in[i] = false;
	}
	check_all(&m, keys, in, MANY);
	flt_map_free(&m);
	free(in);
	free(keys);
}

/*
 * Deletion in crowded chains that wrap around the end of the table: a
 * small table, keys put and deleted at random against a plain array.
 */
static void test_map_churn(void **state)
{
	enum { N = 64, ROUNDS = 200000 };
	flt_map_t m = FLT_MAP_INIT;
	char(*keys)[16] = keys_make(N);
	bool in[N] = { false };
	unsigned seed = 12345;
	(void)state;

	for (int r = 0; r < ROUNDS; r++) {
		seed = seed * 1103515245u + 12345u;
		size_t i = (seed >> 8) % N;
		if ((seed >> 20) & 1) {
			flt_map_put(&m, keys[i], keys[i]);
			in[i] = true;
		} else {
			void *v = flt_map_del(&m, keys[i]);
			assert_ptr_equal(v, in[i] ? keys[i] : NULL);
			in[i] = false;
		}
		if (r % 1000 == 0)
			check_all(&m, keys, in, N);
	}
	check_all(&m, keys, in, N);
	flt_map_free(&m);
	free(keys);
}

/* Iterating while replacing values is allowed. */
static void test_map_iterate_update(void **state)
{
	flt_map_t m = FLT_MAP_INIT;
	char(*keys)[16] = keys_make(100);
	int one = 1;
	(void)state;
	for (size_t i = 0; i < 100; i++)
		flt_map_put(&m, keys[i], keys[i]);
	size_t pos = 0, n = 0;
	const char *k;
	while (flt_map_next(&m, &pos, &k, NULL)) {
		flt_map_put(&m, k, &one);
		n++;
	}
	assert_int_equal(n, 100);
	for (size_t i = 0; i < 100; i++)
		assert_ptr_equal(flt_map_get(&m, keys[i]), &one);
	flt_map_free(&m);
	free(keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_fnv1a),
		cmocka_unit_test(test_map_basic),
		cmocka_unit_test(test_map_many),
		cmocka_unit_test(test_map_churn),
		cmocka_unit_test(test_map_iterate_update),
	};
	return cmocka_run_group_tests_name("unit.hash", tests, NULL, NULL);
}
