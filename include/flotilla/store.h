/*
 * The state store: an LMDB environment with named databases and one
 * monotonic index.
 *
 * Every write transaction that changes anything commits as index N+1, where
 * N is the index of the last committed change; the index lives in the `meta`
 * database and is what watches, deltas and events are ordered by. Values
 * returned by reads are borrowed from LMDB and valid only until the
 * transaction ends: copy (or unpack) before commit or abort.
 *
 * Threads: a store may be shared by threads; a transaction may not. Many
 * read transactions run at once; write transactions are serialised by LMDB.
 *
 * Damage: every value is stored with a checksum of its key and value
 * (format 2, recorded in `meta`), checked on every read; a record whose
 * checksum does not match is never handed out (FLT_ESTORE, and a message
 * "store: record DB/KEY: checksum mismatch (the store in DIR is damaged;
 * restore it from a backup)", logged where the call takes no flt_error_t).
 * Values read and written through this API never show the checksum.
 */
#ifndef FLOTILLA_STORE_H
#define FLOTILLA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "flotilla/error.h"

typedef struct flt_store flt_store_t;
typedef struct flt_txn flt_txn_t;
typedef unsigned int flt_db_t;

typedef struct flt_store_opts {
	const char *const *dbs; /* names of the named databases, NULL-ended */
	size_t map_size; /* bytes of address space; 0 means 1 GiB */
	unsigned max_readers; /* 0 means 256 */
	/* How an operator raises map_size ("--map-size"), named when the
	 * map is full; NULL when they cannot. Copied. */
	const char *map_size_flag;
} flt_store_opts_t;

/*
 * Opens (creating if needed) the environment in directory dir, with the
 * `meta` database and every database in opts->dbs. dir is created 0700.
 * Fails with -errno or FLT_ESTORE.
 *
 * Before LMDB maps an existing data.mdb, open refuses (FLT_ESTORE, with a
 * message naming the file and the damage, ending "restore it from a
 * backup"), changing nothing:
 *   - an empty or missing data.mdb while the marker dir/store-id says a
 *     store lived here (the marker is written at open and at close);
 *   - a file shorter than its two meta pages, or than the last page the
 *     newer meta page names, or a damaged meta page;
 *   - a store whose walk fails: a child process (fork; the caller's
 *     threads are not involved, nothing but LMDB runs in it) opens the
 *     store read-only and reads every record of every database, checking
 *     its checksum, and the free-page list; a crash of that child (a page
 *     LMDB followed to nowhere), a page LMDB rejects or a checksum that
 *     does not match is a refusal. Costs one read of the whole file.
 * A store of format 1 (no checksums) then gets them, in one transaction.
 *
 * Every failure of this store's functions that is about room or the disk
 * names dir in its message and comes back as:
 *   -ENOSPC  "no space left on device (data directory DIR)": the file
 *            system is full. LMDB reports a write that only partly fitted
 *            as EIO; an EIO while the file system is (nearly) full is
 *            reported as this too.
 *   -ENOSPC  "the store reached its map size of N MiB (FLAG; data
 *            directory DIR)": the map (opts->map_size) is full.
 *   -EDQUOT  "disk quota exceeded (data directory DIR)".
 *   -EIO     "Input/output error (data directory DIR)", with room left.
 * A failed write transaction leaves the store as it was: once there is
 * room again, writes succeed. (Unless LMDB could not write its meta page:
 * then every transaction fails with FLT_ESTORE, "MDB_PANIC", until the
 * store is opened again.)
 */
int flt_store_open(const char *dir, const flt_store_opts_t *opts,
		   flt_store_t **out, flt_error_t *err);
void flt_store_close(flt_store_t *store);

/* Handle of a named database given at open; -ENOENT if it was not. */
int flt_store_db(flt_store_t *store, const char *name, flt_db_t *out);

/* The index of the last committed change (0 for a new store). */
uint64_t flt_store_index(flt_store_t *store);

int flt_txn_begin(flt_store_t *store, bool write, flt_txn_t **out,
		  flt_error_t *err);
/*
 * Commits and frees txn. A write transaction that changed something first
 * stores its index in `meta`. On failure nothing is committed and txn is
 * freed all the same.
 */
int flt_txn_commit(flt_txn_t *txn, flt_error_t *err);
/* Aborts and frees txn; NULL is a no-op. */
void flt_txn_abort(flt_txn_t *txn);

static inline void flt_txn_abortp(flt_txn_t **t) { flt_txn_abort(*t); }
#define cleanup_txn __attribute__((cleanup(flt_txn_abortp)))

/*
 * For a read transaction, the committed index it sees; for a write
 * transaction, the index it will commit as.
 */
uint64_t flt_txn_index(const flt_txn_t *txn);

/*
 * Borrowed value; -ENOENT when the key is absent, FLT_ESTORE when the
 * record's checksum does not match (logged, naming the record).
 */
int flt_txn_get(flt_txn_t *txn, flt_db_t db, const void *key, size_t klen,
		const void **val, size_t *vlen);
int flt_txn_put(flt_txn_t *txn, flt_db_t db, const void *key, size_t klen,
		const void *val, size_t vlen, flt_error_t *err);
/* -ENOENT when the key is absent. */
int flt_txn_del(flt_txn_t *txn, flt_db_t db, const void *key, size_t klen);

/*
 * Calls fn for every key starting with prefix (all keys when plen is 0),
 * in key order. fn returns 0 to go on, anything else to stop; that value is
 * then returned. A record whose checksum does not match stops the walk
 * before fn sees it: FLT_ESTORE (logged, naming the record).
 */
typedef int (*flt_store_iter_fn)(const void *key, size_t klen, const void *val,
				 size_t vlen, void *arg);
int flt_txn_foreach(flt_txn_t *txn, flt_db_t db, const void *prefix,
		    size_t plen, flt_store_iter_fn fn, void *arg);

/* Protobuf values: pack into the store; unpack (owned by caller). A
 * checksum mismatch fails get_pb with FLT_ESTORE and err naming the
 * record. */
int flt_txn_put_pb(flt_txn_t *txn, flt_db_t db, const char *key,
		   const ProtobufCMessage *msg, flt_error_t *err);
int flt_txn_get_pb(flt_txn_t *txn, flt_db_t db, const char *key,
		   const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out, flt_error_t *err);

#endif
