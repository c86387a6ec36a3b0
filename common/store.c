#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "flotilla/store.h"
#include "flotilla/util.h"

#define MAX_DBS 32
#define INDEX_KEY "index"

struct flt_store {
	MDB_env *env;
	char *dir; /* as given to open, named in messages */
	char *map_size_flag; /* NULL: the map size is not the operator's */
	MDB_dbi meta;
	size_t ndbs;
	char *names[MAX_DBS];
	MDB_dbi dbis[MAX_DBS];
};

struct flt_txn {
	flt_store_t *store;
	MDB_txn *txn;
	bool write;
	bool dirty;
	uint64_t index; /* committed (read) or to be committed (write) */
};

/*
 * The one boundary where LMDB's MDB_* codes become ours. s (NULL while it
 * is not known) adds the data directory, so that an operator who reads
 * "no space left on device" knows which file system to look at.
 */
static int store_err(const flt_store_t *s, flt_error_t *err, int rc,
		     const char *what)
{
	const char *dir = s ? s->dir : "?";
	MDB_envinfo info;
	if (rc == MDB_NOTFOUND)
		return flt_err(err, -ENOENT, "%s: not found", what);
	/* The map's size as it is now: an existing larger file, or another
	 * process, may have grown it past what this one asked for. */
	if (rc == MDB_MAP_FULL && s && mdb_env_info(s->env, &info) == 0) {
		size_t mib = info.me_mapsize >> 20;
		bool whole = info.me_mapsize == mib << 20;
		return flt_err(err, -ENOSPC,
			       "%s: the store reached its map size of %zu %s "
			       "(%s%sdata directory %s)",
			       what, whole ? mib : info.me_mapsize >> 10,
			       whole ? "MiB" : "KiB",
			       s->map_size_flag ? s->map_size_flag : "",
			       s->map_size_flag ? "; " : "", dir);
	}
	/* LMDB passes errno values through: EIO may be a full disk. */
	if (rc > 0 && rc < 4096) {
		int code = flt_write_errno(-rc, s ? s->dir : NULL);
		return flt_err(err, code, "%s: %s (data directory %s)", what,
			       flt_write_strerror(code, NULL), dir);
	}
	if (rc == MDB_PANIC)
		return flt_err(err, FLT_ESTORE,
			       "%s: %s: the store takes no more changes until "
			       "it is opened again (data directory %s)",
			       what, mdb_strerror(rc), dir);
	return flt_err(err, FLT_ESTORE, "%s: %s (data directory %s)", what,
		       mdb_strerror(rc), dir);
}

static void put_be64(unsigned char *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

static uint64_t read_index(MDB_txn *txn, MDB_dbi meta)
{
	MDB_val k = { sizeof(INDEX_KEY) - 1, (void *)INDEX_KEY }, v;
	if (mdb_get(txn, meta, &k, &v) != 0 || v.mv_size != 8)
		return 0;
	return get_be64(v.mv_data);
}

int flt_store_open(const char *dir, const flt_store_opts_t *opts,
		   flt_store_t **out, flt_error_t *err)
{
	flt_store_t *s = flt_xcalloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc;

	s->dir = flt_xstrdup(dir);
	if (opts && opts->map_size_flag)
		s->map_size_flag = flt_xstrdup(opts->map_size_flag);

	rc = flt_mkdir_p(dir, 0700);
	if (rc < 0) {
		flt_err(err, rc, "data directory %s: %s", dir, strerror(-rc));
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0) {
		store_err(NULL, err, rc, "mdb_env_create");
		goto fail_rc;
	}
	mdb_env_set_maxdbs(s->env, MAX_DBS + 1);
	mdb_env_set_mapsize(s->env, opts && opts->map_size ? opts->map_size
							   : (size_t)1 << 30);
	mdb_env_set_maxreaders(
		s->env, opts && opts->max_readers ? opts->max_readers : 256);
	/*
	 * MDB_NOTLS: read transactions are tied to the transaction object,
	 * not the thread, because nng runs our handlers on a thread pool.
	 * Full durability (no MDB_NOSYNC): an acknowledged change survives
	 * a crash or power loss.
	 */
	rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
	if (rc != 0) {
		store_err(s, err, rc, "open");
		goto fail_rc;
	}
	/* LMDB leaves its file open across exec: no child (a task's
	 * supervisor above all) may inherit the state it holds. */
	mdb_filehandle_t fd;
	if (mdb_env_get_fd(s->env, &fd) == 0)
		fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		store_err(s, err, rc, "begin");
		goto fail_rc;
	}
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0) {
		store_err(s, err, rc, "open database meta");
		goto fail_rc;
	}
	for (size_t i = 0; opts && opts->dbs && opts->dbs[i]; i++) {
		if (i >= MAX_DBS) {
			rc = flt_err(err, -E2BIG, "more than %d databases",
				     MAX_DBS);
			goto fail;
		}
		rc = mdb_dbi_open(txn, opts->dbs[i], MDB_CREATE, &s->dbis[i]);
		if (rc != 0) {
			store_err(s, err, rc, opts->dbs[i]);
			goto fail_rc;
		}
		s->names[i] = flt_xstrdup(opts->dbs[i]);
		s->ndbs = i + 1;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		store_err(s, err, rc, "commit");
		goto fail_rc;
	}
	*out = s;
	return 0;

fail_rc:
	rc = store_err(s, NULL, rc, "");
fail:
	if (txn)
		mdb_txn_abort(txn);
	flt_store_close(s);
	return rc;
}

void flt_store_close(flt_store_t *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	for (size_t i = 0; i < s->ndbs; i++)
		free(s->names[i]);
	free(s->map_size_flag);
	free(s->dir);
	free(s);
}

int flt_store_db(flt_store_t *s, const char *name, flt_db_t *out)
{
	for (size_t i = 0; i < s->ndbs; i++)
		if (strcmp(s->names[i], name) == 0) {
			*out = s->dbis[i];
			return 0;
		}
	return -ENOENT;
}

uint64_t flt_store_index(flt_store_t *s)
{
	MDB_txn *txn;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	uint64_t idx = read_index(txn, s->meta);
	mdb_txn_abort(txn);
	return idx;
}

int flt_txn_begin(flt_store_t *s, bool write, flt_txn_t **out, flt_error_t *err)
{
	flt_txn_t *t = flt_xcalloc(1, sizeof(*t));
	int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry. */
		mdb_env_set_mapsize(s->env, 0);
		rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY,
				   &t->txn);
	}
	if (rc != 0) {
		free(t);
		return store_err(s, err, rc, "begin transaction");
	}
	t->store = s;
	t->write = write;
	t->index = read_index(t->txn, s->meta) + (write ? 1 : 0);
	*out = t;
	return 0;
}

int flt_txn_commit(flt_txn_t *t, flt_error_t *err)
{
	int rc = 0;
	if (t->write && t->dirty) {
		unsigned char b[8];
		put_be64(b, t->index);
		MDB_val k = { sizeof(INDEX_KEY) - 1, (void *)INDEX_KEY };
		MDB_val v = { 8, b };
		rc = mdb_put(t->txn, t->store->meta, &k, &v, 0);
		if (rc != 0) {
			rc = store_err(t->store, err, rc, "store index");
			mdb_txn_abort(t->txn);
			free(t);
			return rc;
		}
	}
	if (!t->write) {
		mdb_txn_abort(t->txn);
	} else if ((rc = mdb_txn_commit(t->txn)) != 0) {
		rc = store_err(t->store, err, rc, "commit");
		free(t);
		return rc;
	}
	free(t);
	return 0;
}

void flt_txn_abort(flt_txn_t *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

uint64_t flt_txn_index(const flt_txn_t *t) { return t->index; }

int flt_txn_get(flt_txn_t *t, flt_db_t db, const void *key, size_t klen,
		const void **val, size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc = mdb_get(t->txn, db, &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return store_err(t->store, NULL, rc, "get");
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

int flt_txn_put(flt_txn_t *t, flt_db_t db, const void *key, size_t klen,
		const void *val, size_t vlen, flt_error_t *err)
{
	if (!t->write)
		return flt_err(err, -EROFS, "put in a read transaction");
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc = mdb_put(t->txn, db, &k, &v, 0);
	if (rc != 0)
		return store_err(t->store, err, rc, "put");
	t->dirty = true;
	return 0;
}

int flt_txn_del(flt_txn_t *t, flt_db_t db, const void *key, size_t klen)
{
	if (!t->write)
		return -EROFS;
	MDB_val k = { klen, (void *)key };
	int rc = mdb_del(t->txn, db, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return store_err(t->store, NULL, rc, "del");
	t->dirty = true;
	return 0;
}

int flt_txn_foreach(flt_txn_t *t, flt_db_t db, const void *prefix, size_t plen,
		    flt_store_iter_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val k = { plen, (void *)prefix }, v;
	int rc = mdb_cursor_open(t->txn, db, &cur);
	if (rc != 0)
		return store_err(t->store, NULL, rc, "cursor");
	rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	int ret = 0;
	while (rc == 0) {
		if (plen &&
		    (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
			break;
		ret = fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		if (ret != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
		return store_err(t->store, NULL, rc, "cursor get");
	return ret;
}

int flt_txn_put_pb(flt_txn_t *t, flt_db_t db, const char *key,
		   const ProtobufCMessage *msg, flt_error_t *err)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	cleanup_free uint8_t *buf = flt_xmalloc(len);
	protobuf_c_message_pack(msg, buf);
	return flt_txn_put(t, db, key, strlen(key), buf, len, err);
}

int flt_txn_get_pb(flt_txn_t *t, flt_db_t db, const char *key,
		   const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out, flt_error_t *err)
{
	const void *v = NULL;
	size_t vl = 0;
	int rc = flt_txn_get(t, db, key, strlen(key), &v, &vl);
	if (rc < 0)
		return flt_err(err, rc, "%s: %s", key,
			       rc == -ENOENT ? "not found" : "read failed");
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, vl, v);
	if (!m)
		return flt_err(err, FLT_ESTORE, "%s: stored %s is corrupt", key,
			       desc->short_name);
	*out = m;
	return 0;
}
