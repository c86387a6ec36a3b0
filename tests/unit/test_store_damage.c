/*
 * Unit tests for the damage checks of common/store.c: record checksums,
 * the marker beside a store, the meta pages against the file's size, the
 * walk at open, and stores written before checksums.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/store.h"
#include "flotilla/util.h"
#include "testutil.h"

static const char *const db_names[] = { "nodes", "jobs", NULL };
static const flt_store_opts_t opts = { .dbs = db_names, .map_size = 16u << 20 };

typedef struct fixture {
	char top[64];
	char dir[96];
	char data[128];
	char marker[128];
} fixture_t;

static int fx_setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	strcpy(fx->top, "/tmp/flt-unit-damage-XXXXXX");
	if (!mkdtemp(fx->top)) {
		free(fx);
		return -1;
	}
	snprintf(fx->dir, sizeof(fx->dir), "%s/data", fx->top);
	snprintf(fx->data, sizeof(fx->data), "%s/data.mdb", fx->dir);
	snprintf(fx->marker, sizeof(fx->marker), "%s/store-id", fx->dir);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	fixture_t *fx = *state;
	int rc = flt_rm_rf(fx->top, 0);
	free(fx);
	return rc;
}

static flt_store_t *open_ok(const fixture_t *fx)
{
	flt_error_t err = { 0 };
	flt_store_t *s = NULL;
	if (flt_store_open(fx->dir, &opts, &s, &err) < 0)
		fail_msg("open %s: %s", fx->dir, err.msg);
	return s;
}

/* Opening fails, and the message holds want. */
static void open_refused(const fixture_t *fx, const char *want)
{
	flt_error_t err = { 0 };
	flt_store_t *s = NULL;
	int rc = flt_store_open(fx->dir, &opts, &s, &err);
	if (rc >= 0) {
		flt_store_close(s);
		fail_msg("a damaged store opened; wanted \"%s\"", want);
	}
	if (!strstr(err.msg, want))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, want);
	assert_null(s);
}

static void put(flt_store_t *s, const char *db, const char *key,
		const char *val)
{
	flt_error_t err = { 0 };
	flt_db_t d;
	flt_txn_t *t;
	assert_int_equal(flt_store_db(s, db, &d), 0);
	assert_int_equal(flt_txn_begin(s, true, &t, &err), 0);
	assert_int_equal(
		flt_txn_put(t, d, key, strlen(key), val, strlen(val), &err), 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
}

/* Flips bit 0 of byte at of every copy of needle in path; returns copies. */
static int flip_all(const char *path, const char *needle, size_t at)
{
	cleanup_close int fd = open(path, O_RDWR);
	struct stat st;
	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	unsigned char *buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	size_t n = strlen(needle);
	int copies = 0;
	for (size_t i = 0; i + n <= (size_t)st.st_size; i++) {
		if (memcmp(buf + i, needle, n) != 0)
			continue;
		unsigned char b = buf[i + at] ^ 1;
		assert_int_equal(pwrite(fd, &b, 1, (off_t)(i + at)), 1);
		copies++;
	}
	free(buf);
	return copies;
}

static void test_roundtrip_and_marker(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	put(s, "jobs", "web", "spec-of-web");
	flt_store_close(s);

	char *text = NULL;
	assert_int_equal(flt_read_file(fx->marker, 4096, &text), 0);
	assert_non_null(strstr(text, "id="));
	assert_non_null(strstr(text, "format=2"));
	assert_non_null(strstr(text, "index=1"));
	free(text);

	s = open_ok(fx);
	flt_db_t jobs;
	flt_txn_t *t;
	const void *v;
	size_t vl;
	assert_int_equal(flt_store_db(s, "jobs", &jobs), 0);
	assert_int_equal(flt_txn_begin(s, false, &t, NULL), 0);
	assert_int_equal(flt_txn_get(t, jobs, "web", 3, &v, &vl), 0);
	/* The checksum is the store's: readers see the value alone. */
	assert_int_equal(vl, strlen("spec-of-web"));
	assert_memory_equal(v, "spec-of-web", vl);
	flt_txn_abort(t);
	assert_int_equal(flt_store_index(s), 1);
	flt_store_close(s);
}

/* A bit flipped under an open store: reads refuse the record by name. */
static void test_checksum_on_read(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	put(s, "jobs", "web", "spec-of-web-0123456789");
	put(s, "nodes", "n1", "node-one");
	assert_true(flip_all(fx->data, "spec-of-web-0123456789", 5) >= 1);

	flt_db_t jobs, nodes;
	assert_int_equal(flt_store_db(s, "jobs", &jobs), 0);
	assert_int_equal(flt_store_db(s, "nodes", &nodes), 0);
	flt_txn_t *t;
	const void *v = NULL;
	size_t vl = 0;
	assert_int_equal(flt_txn_begin(s, false, &t, NULL), 0);
	assert_int_equal(flt_txn_get(t, jobs, "web", 3, &v, &vl), FLT_ESTORE);
	/* Other records are still served. */
	assert_int_equal(flt_txn_get(t, nodes, "n1", 2, &v, &vl), 0);
	assert_memory_equal(v, "node-one", vl);

	int seen = 0;
	assert_int_equal(
		flt_txn_foreach(t, jobs, NULL, 0, count_records, &seen),
		FLT_ESTORE);
	assert_int_equal(seen, 0);

	flt_error_t err = { 0 };
	ProtobufCMessage *m = NULL;
	assert_int_equal(flt_txn_get_pb(t, jobs, "web",
					&flotilla__job__descriptor, &m, &err),
			 FLT_ESTORE);
	assert_null(m);
	assert_non_null(strstr(err.msg, "record jobs/web: checksum mismatch"));
	flt_txn_abort(t);
	flt_store_close(s);

	/* And the walk at open finds it before anything is served. */
	open_refused(fx, "record jobs/web: checksum mismatch");
}

static void test_empty_or_missing_data(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	put(s, "jobs", "web", "spec");
	flt_store_close(s);

	assert_int_equal(truncate(fx->data, 0), 0);
	open_refused(fx, "data.mdb is empty but this directory held a store");
	struct stat st;
	assert_int_equal(stat(fx->data, &st), 0);
	assert_int_equal(st.st_size, 0); /* nothing written */

	assert_int_equal(unlink(fx->data), 0);
	open_refused(fx, "data.mdb is missing but this directory held a store");
	assert_int_equal(access(fx->data, F_OK), -1);

	/* The operator's way out: without the marker, a new store. */
	assert_int_equal(unlink(fx->marker), 0);
	s = open_ok(fx);
	assert_int_equal(flt_store_index(s), 0);
	flt_store_close(s);
}

static void test_truncated(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	char key[32], val[600];
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "job-%03d", i);
		put(s, "jobs", key, val);
	}
	flt_store_close(s);
	struct stat st;
	assert_int_equal(stat(fx->data, &st), 0);

	assert_int_equal(truncate(fx->data, st.st_size / 2), 0);
	open_refused(fx, "bytes its last used page needs");
	assert_int_equal(truncate(fx->data, 4096 + 100), 0);
	open_refused(fx, "shorter than its two meta pages");
	assert_int_equal(truncate(fx->data, 50), 0);
	open_refused(fx, "too short to hold LMDB's meta pages");
}

static void test_meta_damaged(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	put(s, "jobs", "web", "spec");
	flt_store_close(s);
	cleanup_close int fd = open(fx->data, O_RDWR);
	assert_true(fd >= 0);
	unsigned char zero[64] = { 0 };
	assert_int_equal(pwrite(fd, zero, sizeof(zero), 4096), sizeof(zero));
	open_refused(fx, "the second meta page is damaged");
	assert_int_equal(pwrite(fd, zero, sizeof(zero), 0), sizeof(zero));
	open_refused(fx, "the first meta page is damaged");
}

/* A store as versions without checksums wrote it, with LMDB alone. */
static void write_format1(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, jobs;
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
	assert_int_equal(mdb_dbi_open(txn, "jobs", MDB_CREATE, &jobs), 0);
	unsigned char idx[8] = { 0, 0, 0, 0, 0, 0, 0, 7 };
	MDB_val k = { 5, "index" }, v = { 8, idx };
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	char key[32], val[64];
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "job-%03d", i);
		snprintf(val, sizeof(val), "old-spec-%03d", i);
		k = (MDB_val){ strlen(key), key };
		v = (MDB_val){ strlen(val), val };
		assert_int_equal(mdb_put(txn, jobs, &k, &v, 0), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static int check_cb(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	char want[64];
	if (klen == 3 && memcmp(key, "new", 3) == 0)
		return 0; /* written after the migration */
	snprintf(want, sizeof(want), "old-spec-%.*s", (int)klen - 4,
		 (const char *)key + 4);
	assert_int_equal(vlen, strlen(want));
	assert_memory_equal(val, want, vlen);
	(*(int *)arg)++;
	return 0;
}

static void test_format1_migrated(void **state)
{
	fixture_t *fx = *state;
	write_format1(fx->dir);
	for (int round = 0; round < 2; round++) {
		flt_store_t *s = open_ok(fx);
		assert_int_equal(flt_store_index(s), 7 + round);
		flt_db_t jobs;
		flt_txn_t *t;
		int n = 0;
		assert_int_equal(flt_store_db(s, "jobs", &jobs), 0);
		assert_int_equal(flt_txn_begin(s, false, &t, NULL), 0);
		assert_int_equal(
			flt_txn_foreach(t, jobs, NULL, 0, check_cb, &n), 0);
		assert_int_equal(n, 300);
		flt_txn_abort(t);
		put(s, "jobs", "new", "new-spec");
		assert_int_equal(flt_store_index(s), 8 + round);
		flt_store_close(s);
	}
	/* Migrated records carry checksums: a flip is caught. */
	assert_int_equal(flip_all(fx->data, "old-spec-123", 4) >= 1, 1);
	open_refused(fx, "record jobs/job-123: checksum mismatch");
}

/* Without its format record, a store whose marker says 2 is damaged:
 * it must not pass for a format 1 store and get fresh checksums. */
static void test_format_record_lost(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	put(s, "jobs", "web", "spec");
	flt_store_close(s);

	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, fx->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	MDB_val k = { 6, "format" };
	assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	open_refused(fx, "record meta/format is missing, and the marker says "
			 "format 2");
}

/*
 * A leaf node whose value size says 4 GiB: LMDB hands out a value that
 * runs far past its map, and reading it crashes. The walk's child takes
 * the crash; the open is refused, the test process lives on.
 */
static void test_walk_crash(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = open_ok(fx);
	put(s, "jobs", "key-of-a-huge-value", "small");
	flt_store_close(s);

	cleanup_close int fd = open(fx->data, O_RDWR);
	struct stat st;
	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	unsigned char *buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	const char *key = "key-of-a-huge-value";
	int n = 0;
	for (size_t i = 8; i + strlen(key) <= (size_t)st.st_size; i++) {
		if (memcmp(buf + i, key, strlen(key)) != 0)
			continue;
		/* The node header before the key: mn_lo, mn_hi (the value's
		 * size), mn_flags, mn_ksize. */
		unsigned char hi[2] = { 0xff, 0xff };
		assert_int_equal(pwrite(fd, hi, 2, (off_t)(i - 6)), 2);
		n++;
	}
	free(buf);
	assert_true(n >= 1);
	open_refused(fx, "a walk of its pages crashed (SIG");
	open_refused(fx, "in database jobs; restore it from a backup");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_roundtrip_and_marker),  T(test_checksum_on_read),
		T(test_empty_or_missing_data), T(test_truncated),
		T(test_meta_damaged),          T(test_format1_migrated),
		T(test_format_record_lost),    T(test_walk_crash),
	};
	return cmocka_run_group_tests_name("unit.store_damage", tests, NULL,
					   NULL);
}
