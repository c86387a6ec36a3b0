/* Unit tests for common/store.c. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/store.h"

static const char *const db_names[] = { "nodes", "jobs", "events", NULL };
static const flt_store_opts_t store_opts = {
	.dbs = db_names,
	.map_size = 16u << 20,
};

typedef struct fixture {
	char dir[64];
	flt_store_t *store;
	flt_db_t nodes, jobs, events;
} fixture_t;

static void fx_open(fixture_t *fx)
{
	flt_error_t err = { 0 };
	int rc = flt_store_open(fx->dir, &store_opts, &fx->store, &err);
	if (rc < 0)
		fail_msg("open %s: %s", fx->dir, err.msg);
	assert_int_equal(flt_store_db(fx->store, "nodes", &fx->nodes), 0);
	assert_int_equal(flt_store_db(fx->store, "jobs", &fx->jobs), 0);
	assert_int_equal(flt_store_db(fx->store, "events", &fx->events), 0);
}

static void fx_close(fixture_t *fx)
{
	flt_store_close(fx->store);
	fx->store = NULL;
}

static int fx_setup(void **state)
{
	fixture_t *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	strcpy(fx->dir, "/tmp/flt-unit-store-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	/* The store lives in a subdirectory that open must create. */
	strcat(fx->dir, "/data");
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	fixture_t *fx = *state;
	flt_store_close(fx->store);
	umount2(fx->dir, MNT_DETACH); /* test_disk_full's, if it failed */
	*strrchr(fx->dir, '/') = '\0';
	int rc = flt_rm_rf(fx->dir, 0);
	free(fx);
	return rc;
}

/* One committed write transaction putting key=val into db. */
static void put_one(flt_store_t *s, flt_db_t db, const char *key,
		    const char *val)
{
	flt_error_t err = { 0 };
	flt_txn_t *t;
	assert_int_equal(flt_txn_begin(s, true, &t, &err), 0);
	assert_int_equal(
		flt_txn_put(t, db, key, strlen(key), val, strlen(val), &err),
		0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
}

/* Reads key in a fresh read transaction; returns the rc, copies the value. */
static int get_one(flt_store_t *s, flt_db_t db, const char *key, char *buf,
		   size_t len)
{
	cleanup_txn flt_txn_t *t = NULL;
	const void *v;
	size_t vl;
	assert_int_equal(flt_txn_begin(s, false, &t, NULL), 0);
	int rc = flt_txn_get(t, db, key, strlen(key), &v, &vl);
	if (rc == 0) {
		assert_true(vl < len);
		memcpy(buf, v, vl);
		buf[vl] = '\0';
	}
	return rc;
}

/* The length of key's value, or a negative errno. */
static long value_len(flt_store_t *s, flt_db_t db, const char *key)
{
	cleanup_txn flt_txn_t *t = NULL;
	const void *v;
	size_t vl;
	assert_int_equal(flt_txn_begin(s, false, &t, NULL), 0);
	int rc = flt_txn_get(t, db, key, strlen(key), &v, &vl);
	return rc < 0 ? rc : (long)vl;
}

static void test_open_creates(void **state)
{
	fixture_t *fx = *state;
	struct stat st;
	flt_db_t db;

	fx_open(fx);
	assert_int_equal(stat(fx->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(flt_store_index(fx->store), 0);

	assert_int_equal(flt_store_db(fx->store, "nope", &db), -ENOENT);
	assert_int_equal(flt_store_db(fx->store, "", &db), -ENOENT);
	assert_int_equal(flt_store_db(fx->store, "node", &db), -ENOENT);
	/* meta is internal, not a named database of the caller. */
	assert_int_equal(flt_store_db(fx->store, "meta", &db), -ENOENT);
	assert_true(fx->nodes != fx->jobs && fx->jobs != fx->events &&
		    fx->nodes != fx->events);
}

static void test_open_fails(void **state)
{
	fixture_t *fx = *state;
	flt_store_t *s = NULL;
	flt_error_t err = { 0 };
	char path[128];
	const char *many[40];
	char names[40][8];

	/* More databases than the store supports. */
	for (int i = 0; i < 39; i++) {
		snprintf(names[i], sizeof(names[i]), "db%d", i);
		many[i] = names[i];
	}
	many[39] = NULL;
	flt_store_opts_t o = { .dbs = many, .map_size = 16u << 20 };
	assert_int_equal(flt_store_open(fx->dir, &o, &s, &err), -E2BIG);
	assert_int_equal(err.code, -E2BIG);
	assert_null(s);

	/* A regular file where the directory should be. */
	assert_true(mkdir(fx->dir, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/file", fx->dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	memset(&err, 0, sizeof(err));
	int rc = flt_store_open(path, &store_opts, &s, &err);
	assert_true(rc < 0);
	assert_int_equal(err.code, rc);
	assert_true(err.msg[0] != '\0');
	assert_null(s);
}

static void test_put_get_del(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *t;
	const void *v;
	size_t vl;
	char buf[64];

	fx_open(fx);
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_put(t, fx->nodes, "a", 1, "one", 3, &err), 0);
	assert_int_equal(flt_txn_put(t, fx->nodes, "b", 1, "two", 3, &err), 0);
	/* The same key in another database is another value. */
	assert_int_equal(flt_txn_put(t, fx->jobs, "a", 1, "job", 3, &err), 0);
	/* A write transaction sees its own writes. */
	assert_int_equal(flt_txn_get(t, fx->nodes, "a", 1, &v, &vl), 0);
	assert_int_equal(vl, 3);
	assert_memory_equal(v, "one", 3);
	/* Binary keys and values, empty values. */
	assert_int_equal(flt_txn_put(t, fx->nodes, "\0\xff", 2, "", 0, &err),
			 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);

	assert_int_equal(get_one(fx->store, fx->nodes, "a", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "one");
	assert_int_equal(get_one(fx->store, fx->jobs, "a", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "job");
	assert_int_equal(get_one(fx->store, fx->nodes, "zz", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(get_one(fx->store, fx->events, "a", buf, sizeof(buf)),
			 -ENOENT);

	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);
	assert_int_equal(flt_txn_get(t, fx->nodes, "\0\xff", 2, &v, &vl), 0);
	assert_int_equal(vl, 0);
	/* Writes in a read transaction are refused. */
	assert_int_equal(flt_txn_put(t, fx->nodes, "c", 1, "x", 1, &err),
			 -EROFS);
	assert_int_equal(err.code, -EROFS);
	assert_int_equal(flt_txn_del(t, fx->nodes, "a", 1), -EROFS);
	flt_txn_abort(t);

	/* Overwrite, then delete. */
	put_one(fx->store, fx->nodes, "a", "uno");
	assert_int_equal(get_one(fx->store, fx->nodes, "a", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "uno");
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_del(t, fx->nodes, "a", 1), 0);
	assert_int_equal(flt_txn_get(t, fx->nodes, "a", 1, &v, &vl), -ENOENT);
	assert_int_equal(flt_txn_del(t, fx->nodes, "a", 1), -ENOENT);
	assert_int_equal(flt_txn_del(t, fx->nodes, "never", 5), -ENOENT);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(get_one(fx->store, fx->nodes, "a", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(get_one(fx->store, fx->nodes, "b", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "two");
	assert_int_equal(get_one(fx->store, fx->jobs, "a", buf, sizeof(buf)),
			 0);

	/* LMDB refuses empty keys; the store says so and stays usable. */
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	memset(&err, 0, sizeof(err));
	int rc = flt_txn_put(t, fx->nodes, "", 0, "x", 1, &err);
	assert_true(rc < 0);
	assert_int_equal(err.code, rc);
	assert_int_equal(flt_txn_commit(t, &err), 0);
}

static void test_index(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *t;
	const void *v;
	size_t vl;
	char key[16];

	fx_open(fx);
	assert_int_equal(flt_store_index(fx->store), 0);

	/* Each committed change bumps the index by exactly one. */
	for (int i = 1; i <= 10; i++) {
		assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
		assert_int_equal(flt_txn_index(t), (uint64_t)i);
		snprintf(key, sizeof(key), "k%d", i);
		/* Several writes in one transaction are still one change. */
		assert_int_equal(flt_txn_put(t, fx->nodes, key, strlen(key),
					     "v", 1, &err),
				 0);
		assert_int_equal(flt_txn_put(t, fx->jobs, key, strlen(key), "w",
					     1, &err),
				 0);
		assert_int_equal(flt_txn_index(t), (uint64_t)i);
		assert_int_equal(flt_txn_commit(t, &err), 0);
		assert_int_equal(flt_store_index(fx->store), (uint64_t)i);
	}

	/* A read transaction sees the committed index. */
	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);
	assert_int_equal(flt_txn_index(t), 10);
	flt_txn_abort(t);

	/* A write transaction that only reads commits nothing new. */
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_index(t), 11);
	assert_int_equal(flt_txn_get(t, fx->nodes, "k1", 2, &v, &vl), 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(flt_store_index(fx->store), 10);

	/* Nor does one whose only delete found nothing. */
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_del(t, fx->nodes, "absent", 6), -ENOENT);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(flt_store_index(fx->store), 10);

	/* A read transaction "committed" changes nothing either. */
	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(flt_store_index(fx->store), 10);

	/* A delete is a change. */
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_del(t, fx->nodes, "k1", 2), 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(flt_store_index(fx->store), 11);
}

static void test_abort(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *t;
	char buf[64];

	fx_open(fx);
	put_one(fx->store, fx->nodes, "keep", "1");
	assert_int_equal(flt_store_index(fx->store), 1);

	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_put(t, fx->nodes, "new", 3, "x", 1, &err), 0);
	assert_int_equal(flt_txn_put(t, fx->nodes, "keep", 4, "2", 1, &err), 0);
	assert_int_equal(flt_txn_del(t, fx->nodes, "keep", 4), 0);
	flt_txn_abort(t);

	assert_int_equal(flt_store_index(fx->store), 1);
	assert_int_equal(get_one(fx->store, fx->nodes, "new", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(
		get_one(fx->store, fx->nodes, "keep", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1");

	/* The cleanup helper aborts too; NULL is a no-op. */
	{
		cleanup_txn flt_txn_t *c = NULL;
		assert_int_equal(flt_txn_begin(fx->store, true, &c, &err), 0);
		assert_int_equal(
			flt_txn_put(c, fx->nodes, "scoped", 6, "x", 1, &err),
			0);
	}
	flt_txn_abort(NULL);
	assert_int_equal(flt_store_index(fx->store), 1);
	assert_int_equal(
		get_one(fx->store, fx->nodes, "scoped", buf, sizeof(buf)),
		-ENOENT);

	/* The next write transaction still commits as index 2. */
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_index(t), 2);
	assert_int_equal(flt_txn_put(t, fx->nodes, "after", 5, "y", 1, &err),
			 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(flt_store_index(fx->store), 2);
}

static void test_snapshot(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *r;
	const void *v;
	size_t vl;

	fx_open(fx);
	put_one(fx->store, fx->nodes, "a", "old");

	/* A read transaction keeps seeing what was committed when it began. */
	assert_int_equal(flt_txn_begin(fx->store, false, &r, &err), 0);
	put_one(fx->store, fx->nodes, "a", "new");
	put_one(fx->store, fx->nodes, "b", "new");
	assert_int_equal(flt_store_index(fx->store), 3);
	assert_int_equal(flt_txn_index(r), 1);
	assert_int_equal(flt_txn_get(r, fx->nodes, "a", 1, &v, &vl), 0);
	assert_int_equal(vl, 3);
	assert_memory_equal(v, "old", 3);
	assert_int_equal(flt_txn_get(r, fx->nodes, "b", 1, &v, &vl), -ENOENT);
	flt_txn_abort(r);
}

typedef struct visit {
	int n;
	int stop_after; /* 0: never stop */
	int stop_value;
	char keys[16][16];
	char vals[16][16];
} visit_t;

static int visit_cb(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	visit_t *vs = arg;
	assert_true(vs->n < 16);
	assert_true(klen < 16 && vlen < 16);
	memcpy(vs->keys[vs->n], key, klen);
	vs->keys[vs->n][klen] = '\0';
	memcpy(vs->vals[vs->n], val, vlen);
	vs->vals[vs->n][vlen] = '\0';
	vs->n++;
	if (vs->stop_after && vs->n == vs->stop_after)
		return vs->stop_value;
	return 0;
}

static void test_foreach(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	cleanup_txn flt_txn_t *t = NULL;
	visit_t vs;
	/* Inserted out of order; LMDB keeps keys sorted bytewise. */
	const char *keys[] = { "node/c", "job/1",  "node/a", "nodex", "node/",
			       "a",      "node/b", "nod",    "node0" };

	fx_open(fx);
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char val[16];
		snprintf(val, sizeof(val), "v-%s", keys[i]);
		assert_int_equal(flt_txn_put(t, fx->nodes, keys[i],
					     strlen(keys[i]), val, strlen(val),
					     &err),
				 0);
	}
	/* Same prefix in another database must not show up. */
	assert_int_equal(flt_txn_put(t, fx->jobs, "node/z", 6, "j", 1, &err),
			 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	t = NULL;
	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);

	memset(&vs, 0, sizeof(vs));
	assert_int_equal(
		flt_txn_foreach(t, fx->nodes, "node/", 5, visit_cb, &vs), 0);
	assert_int_equal(vs.n, 4);
	assert_string_equal(vs.keys[0], "node/");
	assert_string_equal(vs.keys[1], "node/a");
	assert_string_equal(vs.keys[2], "node/b");
	assert_string_equal(vs.keys[3], "node/c");
	assert_string_equal(vs.vals[1], "v-node/a");
	assert_string_equal(vs.vals[3], "v-node/c");

	/* No prefix: every key, in order. */
	memset(&vs, 0, sizeof(vs));
	assert_int_equal(flt_txn_foreach(t, fx->nodes, NULL, 0, visit_cb, &vs),
			 0);
	assert_int_equal(vs.n, 9);
	const char *sorted[] = { "a",      "job/1",  "nod",   "node/", "node/a",
				 "node/b", "node/c", "node0", "nodex" };
	for (int i = 0; i < 9; i++)
		assert_string_equal(vs.keys[i], sorted[i]);

	/* The callback stops the walk; its value comes back. */
	memset(&vs, 0, sizeof(vs));
	vs.stop_after = 2;
	vs.stop_value = 42;
	assert_int_equal(
		flt_txn_foreach(t, fx->nodes, "node", 4, visit_cb, &vs), 42);
	assert_int_equal(vs.n, 2);
	assert_string_equal(vs.keys[0], "node/");
	assert_string_equal(vs.keys[1], "node/a");

	memset(&vs, 0, sizeof(vs));
	vs.stop_after = 1;
	vs.stop_value = -ECANCELED;
	assert_int_equal(flt_txn_foreach(t, fx->nodes, NULL, 0, visit_cb, &vs),
			 -ECANCELED);
	assert_int_equal(vs.n, 1);

	/* Prefixes matching nothing: between keys, and past the last. */
	memset(&vs, 0, sizeof(vs));
	assert_int_equal(flt_txn_foreach(t, fx->nodes, "b", 1, visit_cb, &vs),
			 0);
	assert_int_equal(vs.n, 0);
	assert_int_equal(flt_txn_foreach(t, fx->nodes, "zzz", 3, visit_cb, &vs),
			 0);
	assert_int_equal(vs.n, 0);
	/* A prefix longer than some matching-start keys. */
	assert_int_equal(
		flt_txn_foreach(t, fx->nodes, "node/bb", 7, visit_cb, &vs), 0);
	assert_int_equal(vs.n, 0);
	/* An empty database. */
	assert_int_equal(flt_txn_foreach(t, fx->events, NULL, 0, visit_cb, &vs),
			 0);
	assert_int_equal(vs.n, 0);

	memset(&vs, 0, sizeof(vs));
	assert_int_equal(
		flt_txn_foreach(t, fx->jobs, "node/", 5, visit_cb, &vs), 0);
	assert_int_equal(vs.n, 1);
	assert_string_equal(vs.keys[0], "node/z");
}

static Flotilla__NodeRecord *make_record(Flotilla__NodeRecord *rec,
					 Flotilla__Fingerprint *fp,
					 Flotilla__NodeRecord__LabelsEntry *l,
					 Flotilla__NodeRecord__LabelsEntry **lp,
					 uint8_t *hash)
{
	flotilla__node_record__init(rec);
	flotilla__fingerprint__init(fp);
	for (int i = 0; i < 2; i++) {
		flotilla__node_record__labels_entry__init(&l[i]);
		lp[i] = &l[i];
	}
	for (int i = 0; i < 32; i++)
		hash[i] = (uint8_t)(i * 7 + 1);
	fp->hostname = "web-1.example";
	fp->os_id = "debian";
	fp->cpu_count = 8;
	fp->memory_bytes = 17179869184ull;
	l[0].key = "zone";
	l[0].value = "eu-west";
	l[1].key = "rack";
	l[1].value = "r\xc3\xa9";
	rec->id = "7f9c1b1e-1c55-4f0e-9d1c-7c3b8e0b6a11";
	rec->name = "web-1";
	rec->secret_hash.data = hash;
	rec->secret_hash.len = 32;
	rec->status = FLOTILLA__NODE_STATUS__NODE_STATUS_READY;
	rec->n_labels = 2;
	rec->labels = lp;
	rec->fingerprint = fp;
	rec->registered_at_ms = 1700000000123;
	rec->status_changed_at_ms = -1;
	rec->create_index = 3;
	rec->modify_index = 1ull << 40;
	return rec;
}

static void test_pb(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *t;
	Flotilla__NodeRecord rec;
	Flotilla__Fingerprint fp;
	Flotilla__NodeRecord__LabelsEntry l[2], *lp[2];
	uint8_t hash[32];
	ProtobufCMessage *m = NULL;

	fx_open(fx);
	make_record(&rec, &fp, l, lp, hash);
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_put_pb(t, fx->nodes, rec.id, &rec.base, &err),
			 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);
	assert_int_equal(flt_store_index(fx->store), 1);

	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);
	assert_int_equal(flt_txn_get_pb(t, fx->nodes, rec.id,
					&flotilla__node_record__descriptor, &m,
					&err),
			 0);
	flt_txn_abort(t); /* the unpacked copy outlives the transaction */
	assert_non_null(m);
	assert_ptr_equal(m->descriptor, &flotilla__node_record__descriptor);
	Flotilla__NodeRecord *got = (Flotilla__NodeRecord *)m;
	assert_string_equal(got->id, rec.id);
	assert_string_equal(got->name, "web-1");
	assert_int_equal(got->secret_hash.len, 32);
	assert_memory_equal(got->secret_hash.data, hash, 32);
	assert_int_equal(got->status, FLOTILLA__NODE_STATUS__NODE_STATUS_READY);
	assert_int_equal(got->n_labels, 2);
	assert_string_equal(got->labels[0]->key, "zone");
	assert_string_equal(got->labels[0]->value, "eu-west");
	assert_string_equal(got->labels[1]->key, "rack");
	assert_string_equal(got->labels[1]->value, "r\xc3\xa9");
	assert_non_null(got->fingerprint);
	assert_string_equal(got->fingerprint->hostname, "web-1.example");
	assert_string_equal(got->fingerprint->os_id, "debian");
	assert_string_equal(got->fingerprint->kernel, "");
	assert_int_equal(got->fingerprint->cpu_count, 8);
	assert_int_equal(got->fingerprint->memory_bytes, 17179869184ull);
	assert_int_equal(got->registered_at_ms, 1700000000123);
	assert_true(got->status_changed_at_ms == -1);
	assert_int_equal(got->create_index, 3);
	assert_int_equal(got->modify_index, 1ull << 40);
	protobuf_c_message_free_unpacked(m, NULL);
	m = NULL;

	/* Missing key. */
	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(flt_txn_get_pb(t, fx->nodes, "nope",
					&flotilla__node_record__descriptor, &m,
					&err),
			 -ENOENT);
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, "nope"));
	assert_null(m);
	flt_txn_abort(t);
}

static void test_pb_corrupt(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *t;
	ProtobufCMessage *m = NULL;
	/* Field 1 (id) claims 5 bytes but only 2 follow. */
	static const uint8_t truncated[] = { 0x0a, 0x05, 'a', 'b' };
	/* A varint that never ends. */
	static const uint8_t endless[] = { 0x48, 0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	fx_open(fx);
	assert_int_equal(flt_txn_begin(fx->store, true, &t, &err), 0);
	assert_int_equal(flt_txn_put(t, fx->nodes, "bad1", 4, truncated,
				     sizeof(truncated), &err),
			 0);
	assert_int_equal(flt_txn_put(t, fx->nodes, "bad2", 4, endless,
				     sizeof(endless), &err),
			 0);
	assert_int_equal(flt_txn_commit(t, &err), 0);

	assert_int_equal(flt_txn_begin(fx->store, false, &t, &err), 0);
	assert_int_equal(flt_txn_get_pb(t, fx->nodes, "bad1",
					&flotilla__node_record__descriptor, &m,
					&err),
			 FLT_ESTORE);
	assert_int_equal(err.code, FLT_ESTORE);
	assert_non_null(strstr(err.msg, "bad1"));
	assert_non_null(strstr(err.msg, "NodeRecord"));
	assert_null(m);
	memset(&err, 0, sizeof(err));
	assert_int_equal(flt_txn_get_pb(t, fx->nodes, "bad2",
					&flotilla__node_record__descriptor, &m,
					&err),
			 FLT_ESTORE);
	assert_int_equal(err.code, FLT_ESTORE);
	assert_null(m);
	flt_txn_abort(t);
}

static void test_reopen(void **state)
{
	fixture_t *fx = *state;
	char buf[64];

	fx_open(fx);
	put_one(fx->store, fx->nodes, "a", "1");
	put_one(fx->store, fx->jobs, "b", "2");
	put_one(fx->store, fx->nodes, "a", "3");
	assert_int_equal(flt_store_index(fx->store), 3);
	fx_close(fx);

	fx_open(fx);
	assert_int_equal(flt_store_index(fx->store), 3);
	assert_int_equal(get_one(fx->store, fx->nodes, "a", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "3");
	assert_int_equal(get_one(fx->store, fx->jobs, "b", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "2");

	/* The index carries on from where it was. */
	put_one(fx->store, fx->events, "e", "4");
	assert_int_equal(flt_store_index(fx->store), 4);
	fx_close(fx);

	/* Opening with fewer databases keeps the others' data on disk. */
	static const char *const fewer[] = { "jobs", NULL };
	flt_store_opts_t o = { .dbs = fewer, .map_size = 16u << 20 };
	flt_store_t *s;
	flt_db_t db;
	assert_int_equal(flt_store_open(fx->dir, &o, &s, NULL), 0);
	assert_int_equal(flt_store_db(s, "nodes", &db), -ENOENT);
	assert_int_equal(flt_store_db(s, "jobs", &db), 0);
	assert_int_equal(get_one(s, db, "b", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2");
	assert_int_equal(flt_store_index(s), 4);
	flt_store_close(s);

	fx_open(fx);
	assert_int_equal(get_one(fx->store, fx->events, "e", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "4");
}

static void test_map_full(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_txn_t *t;
	flt_store_t *s;
	flt_db_t db;
	char key[32], val[1024], buf[64], want[256];
	int rc = 0;
	static const flt_store_opts_t small = {
		.dbs = db_names,
		.map_size = 256u << 10,
		.map_size_flag = "--map-size",
	};

	assert_int_equal(flt_store_open(fx->dir, &small, &s, &err), 0);
	assert_int_equal(flt_store_db(s, "nodes", &db), 0);
	put_one(s, db, "before", "full");

	/* Fill the map in one transaction until LMDB says no: the message
	 * names the cause, the flag that raises it and the directory. */
	memset(val, 'v', sizeof(val));
	assert_int_equal(flt_txn_begin(s, true, &t, &err), 0);
	for (int i = 0; i < 10000 && rc == 0; i++) {
		snprintf(key, sizeof(key), "fill-%05d", i);
		rc = flt_txn_put(t, db, key, strlen(key), val, sizeof(val),
				 &err);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(err.code, -ENOSPC);
	snprintf(want, sizeof(want),
		 "put: the store reached its map size of 256 KiB "
		 "(--map-size; data directory %s)",
		 fx->dir);
	assert_string_equal(err.msg, want);
	/* Such a transaction cannot commit, and commits nothing. */
	memset(&err, 0, sizeof(err));
	rc = flt_txn_commit(t, &err);
	assert_true(rc < 0);
	assert_int_equal(err.code, rc);
	assert_int_equal(flt_store_index(s), 1);
	assert_int_equal(get_one(s, db, "fill-00000", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(get_one(s, db, "before", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "full");

	/* Smaller writes still fit afterwards. */
	put_one(s, db, "after", "ok");
	assert_int_equal(flt_store_index(s), 2);
	flt_store_close(s);

	/* A store whose size is not the operator's names no flag. */
	static const flt_store_opts_t mib = {
		.dbs = db_names,
		.map_size = 1u << 20,
	};
	assert_int_equal(flt_store_open(fx->dir, &mib, &s, &err), 0);
	assert_int_equal(flt_store_db(s, "nodes", &db), 0);
	rc = 0;
	assert_int_equal(flt_txn_begin(s, true, &t, &err), 0);
	for (int i = 0; i < 10000 && rc == 0; i++) {
		snprintf(key, sizeof(key), "fill-%05d", i);
		rc = flt_txn_put(t, db, key, strlen(key), val, sizeof(val),
				 &err);
	}
	flt_txn_abort(t);
	assert_int_equal(rc, -ENOSPC);
	snprintf(want, sizeof(want),
		 "put: the store reached its map size of 1 MiB "
		 "(data directory %s)",
		 fx->dir);
	assert_string_equal(err.msg, want);
	flt_store_close(s);
}

/*
 * A full file system, for real: a 1 MiB tmpfs mounted over the store's
 * directory in a mount namespace of this process alone. Values of several
 * pages make LMDB's writes only partly fit, which it reports as EIO: the
 * store must still say "no space left on device", lose nothing committed,
 * and write again once there is room.
 */
static void test_disk_full(void **state)
{
	fixture_t *fx = *state;
	flt_error_t err = { 0 };
	flt_store_t *s;
	flt_txn_t *t;
	flt_db_t db;
	char key[32], path[128], want[256];
	static char val[20000];
	int rc = 0, n = 0;

	private_tmpfs(fx->dir, "1m");

	/* Room an operator can free later. */
	snprintf(path, sizeof(path), "%s/spare", fx->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	memset(val, 's', sizeof(val));
	for (int i = 0; i < 8; i++)
		assert_int_equal(flt_write_all(fd, val, sizeof(val), NULL), 0);
	close(fd);

	static const flt_store_opts_t o = { .dbs = db_names,
					    .map_size = 16u << 20 };
	assert_int_equal(flt_store_open(fx->dir, &o, &s, &err), 0);
	assert_int_equal(flt_store_db(s, "nodes", &db), 0);
	memset(val, 'v', sizeof(val));
	while (rc == 0 && n < 1000) {
		snprintf(key, sizeof(key), "v-%04d", n);
		assert_int_equal(flt_txn_begin(s, true, &t, &err), 0);
		rc = flt_txn_put(t, db, key, strlen(key), val, sizeof(val),
				 &err);
		if (rc == 0)
			rc = flt_txn_commit(t, &err);
		else
			flt_txn_abort(t);
		if (rc == 0)
			n++;
	}
	assert_true(n > 0);
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(err.code, -ENOSPC);
	snprintf(want, sizeof(want),
		 "commit: no space left on device (data directory %s)",
		 fx->dir);
	assert_string_equal(err.msg, want);

	/* Nothing committed is lost; reads go on. */
	assert_int_equal(flt_store_index(s), (uint64_t)n);
	assert_int_equal(value_len(s, db, "v-0000"), sizeof(val));
	snprintf(key, sizeof(key), "v-%04d", n - 1);
	assert_int_equal(value_len(s, db, key), sizeof(val));
	snprintf(key, sizeof(key), "v-%04d", n);
	assert_int_equal(value_len(s, db, key), -ENOENT);

	/* Room again: the same write goes through. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(flt_txn_begin(s, true, &t, &err), 0);
	assert_int_equal(
		flt_txn_put(t, db, key, strlen(key), val, sizeof(val), &err),
		0);
	rc = flt_txn_commit(t, &err);
	if (rc < 0)
		fail_msg("commit after freeing space: %s", err.msg);
	assert_int_equal(value_len(s, db, key), sizeof(val));
	flt_store_close(s);
	assert_int_equal(umount(fx->dir), 0);
}

/*
 * The child commits `committed` transactions, then dies by SIGKILL in the
 * middle of one more. It must not use cmocka: a failure exits with a code
 * the parent reports.
 */
#define CRASH_COMMITS 25

static void crash_child(const char *dir)
{
	flt_store_t *s;
	flt_txn_t *t;
	flt_db_t nodes, jobs;
	char key[32];

	if (flt_store_open(dir, &store_opts, &s, NULL) < 0)
		_exit(10);
	if (flt_store_db(s, "nodes", &nodes) < 0 ||
	    flt_store_db(s, "jobs", &jobs) < 0)
		_exit(11);
	for (int i = 1; i <= CRASH_COMMITS; i++) {
		if (flt_txn_begin(s, true, &t, NULL) < 0)
			_exit(12);
		snprintf(key, sizeof(key), "node-%03d", i);
		if (flt_txn_put(t, nodes, key, strlen(key), key, strlen(key),
				NULL) < 0)
			_exit(13);
		/* Every commit also rewrites one shared key. */
		if (flt_txn_put(t, jobs, "last", 4, key, strlen(key), NULL) < 0)
			_exit(14);
		if (i == 3 && flt_txn_del(t, nodes, "node-002", 8) < 0)
			_exit(15);
		if (flt_txn_commit(t, NULL) < 0)
			_exit(16);
	}
	if (flt_store_index(s) != CRASH_COMMITS)
		_exit(17);
	if (flt_txn_begin(s, true, &t, NULL) < 0)
		_exit(18);
	if (flt_txn_put(t, nodes, "uncommitted", 11, "x", 1, NULL) < 0 ||
	    flt_txn_put(t, jobs, "last", 4, "uncommitted", 11, NULL) < 0 ||
	    flt_txn_del(t, nodes, "node-001", 8) < 0)
		_exit(19);
	/* Plenty of new pages for the dead transaction. */
	for (int i = 0; i < 2000; i++) {
		char big[512];
		memset(big, 'u', sizeof(big));
		snprintf(key, sizeof(key), "spill-%05d", i);
		if (flt_txn_put(t, nodes, key, strlen(key), big, sizeof(big),
				NULL) < 0)
			_exit(20);
	}
	raise(SIGKILL);
	_exit(21);
}

static void test_crash_safe(void **state)
{
	fixture_t *fx = *state;
	char buf[64], key[32];
	int status;

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child(fx->dir);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		fail_msg("child exited with %d before the crash point",
			 WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	fx_open(fx);
	assert_int_equal(flt_store_index(fx->store), CRASH_COMMITS);
	for (int i = 1; i <= CRASH_COMMITS; i++) {
		snprintf(key, sizeof(key), "node-%03d", i);
		int rc = get_one(fx->store, fx->nodes, key, buf, sizeof(buf));
		if (i == 2) {
			assert_int_equal(rc, -ENOENT);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(buf, key);
	}
	assert_int_equal(get_one(fx->store, fx->jobs, "last", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "node-025");
	assert_int_equal(
		get_one(fx->store, fx->nodes, "uncommitted", buf, sizeof(buf)),
		-ENOENT);

	/* Exactly the committed keys, nothing spilled from the dead one. */
	cleanup_txn flt_txn_t *t = NULL;
	int n = 0;
	assert_int_equal(flt_txn_begin(fx->store, false, &t, NULL), 0);
	assert_int_equal(
		flt_txn_foreach(t, fx->nodes, NULL, 0, count_records, &n), 0);
	assert_int_equal(n, CRASH_COMMITS - 1);
	flt_txn_abort(t);
	t = NULL;

	/* The store goes on writing after the crash. */
	put_one(fx->store, fx->nodes, "after", "crash");
	assert_int_equal(flt_store_index(fx->store), CRASH_COMMITS + 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_creates), T(test_open_fails), T(test_put_get_del),
		T(test_index),        T(test_abort),      T(test_snapshot),
		T(test_foreach),      T(test_pb),         T(test_pb_corrupt),
		T(test_reopen),       T(test_map_full),   T(test_crash_safe),
		T(test_disk_full),
	};
	return cmocka_run_group_tests_name("unit.store", tests, NULL, NULL);
}
