#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "flotilla/log.h"
#include "flotilla/store.h"
#include "flotilla/util.h"

#define MAX_DBS 32
#define INDEX_KEY "index"
#define FORMAT_KEY "format"
/* Format 2: every value ends in a TAG_LEN-byte checksum of its key and
 * value. Format 1 (no "format" record) had none. */
#define FORMAT_CHECKSUMS 2
#define TAG_LEN 8
#define MARKER_NAME "store-id"
#define DATA_NAME "data.mdb"

struct flt_store {
	MDB_env *env;
	char *dir; /* as given to open, named in messages */
	char *map_size_flag; /* NULL: the map size is not the operator's */
	MDB_dbi meta;
	size_t ndbs;
	char *names[MAX_DBS];
	MDB_dbi dbis[MAX_DBS];
	bool opened; /* the environment is open: the marker is ours */
	char marker_id[40]; /* the store's id, from or for its marker */
	int64_t marker_created; /* unix seconds */
	unsigned marker_format; /* as the marker says; 0: no marker */
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
	/* Pages LMDB rejects: the file, not the request, is wrong. */
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
	    rc == MDB_CURSOR_FULL)
		return flt_err(err, FLT_ESTORE,
			       "%s: the store in %s is damaged: %s; restore it "
			       "from a backup",
			       what, dir, mdb_strerror(rc));
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

/*
 * The checksum: SipHash-2-4 (libsodium's crypto_shorthash) of the value,
 * xor that of the key under another key, so that a flipped bit in either
 * is caught and a value cannot pass for another key's. The keys are fixed:
 * this detects damage, it authenticates nothing.
 */
static const unsigned char tag_key_val[crypto_shorthash_KEYBYTES] = {
	0x66, 0x6c, 0x74, 0x2d, 0x73, 0x74, 0x6f, 0x72,
	0x65, 0x2d, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x31,
};
static const unsigned char tag_key_key[crypto_shorthash_KEYBYTES] = {
	0x66, 0x6c, 0x74, 0x2d, 0x73, 0x74, 0x6f, 0x72,
	0x65, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x2d, 0x31,
};

static void tag_compute(const void *key, size_t klen, const void *val,
			size_t vlen, unsigned char out[TAG_LEN])
{
	unsigned char hk[crypto_shorthash_BYTES];
	crypto_shorthash(out, val, vlen, tag_key_val);
	crypto_shorthash(hk, key, klen, tag_key_key);
	for (int i = 0; i < TAG_LEN; i++)
		out[i] ^= hk[i];
}

/* Whether a stored value (value + tag) holds its own checksum. */
static bool tag_ok(const MDB_val *k, const MDB_val *v)
{
	unsigned char t[TAG_LEN];
	if (v->mv_size < TAG_LEN)
		return false;
	tag_compute(k->mv_data, k->mv_size, v->mv_data, v->mv_size - TAG_LEN,
		    t);
	return memcmp(t,
		      (const unsigned char *)v->mv_data + v->mv_size - TAG_LEN,
		      TAG_LEN) == 0;
}

static const char *db_name(const flt_store_t *s, MDB_dbi dbi)
{
	if (dbi == s->meta)
		return "meta";
	for (size_t i = 0; i < s->ndbs; i++)
		if (s->dbis[i] == dbi)
			return s->names[i];
	return "?";
}

/*
 * A record whose checksum does not match: never handed out. Logged here
 * when there is no err to tell (flt_txn_get and flt_txn_foreach).
 */
static int record_damaged(const flt_store_t *s, MDB_dbi dbi, const void *key,
			  size_t klen, flt_error_t *err)
{
	char shown[128];
	flt_escape(key, klen < 96 ? klen : 96, 0, shown, sizeof(shown));
	if (!err)
		flt_error("store: record %s/%s: checksum mismatch (the store "
			  "in %s is damaged; restore it from a backup)",
			  db_name(s, dbi), shown, s->dir);
	return flt_err(err, FLT_ESTORE,
		       "store: record %s/%s: checksum mismatch (the store in "
		       "%s is damaged; restore it from a backup)",
		       db_name(s, dbi), shown, s->dir);
}

/* Checks v against its tag and strips the tag off it. */
static int record_open(const flt_store_t *s, MDB_dbi dbi, const MDB_val *k,
		       MDB_val *v, flt_error_t *err)
{
	if (!tag_ok(k, v))
		return record_damaged(s, dbi, k->mv_data, k->mv_size, err);
	v->mv_size -= TAG_LEN;
	return 0;
}

/* Puts val with its tag appended. */
static int record_put(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k,
		      const void *val, size_t vlen)
{
	unsigned char small[512];
	unsigned char *buf = small;
	if (vlen + TAG_LEN > sizeof(small))
		buf = flt_xmalloc(vlen + TAG_LEN);
	/* val may live in this transaction's pages: copy it before
	 * mdb_put moves them. */
	memcpy(buf, val, vlen);
	tag_compute(k->mv_data, k->mv_size, val, vlen, buf + vlen);
	MDB_val v = { vlen + TAG_LEN, buf };
	int rc = mdb_put(txn, dbi, (MDB_val *)k, &v, 0);
	if (buf != small)
		free(buf);
	return rc;
}

/* The index in `meta`: 0 for a new store; FLT_ESTORE when damaged. */
static int read_index(const flt_store_t *s, MDB_txn *txn, uint64_t *out,
		      flt_error_t *err)
{
	MDB_val k = { sizeof(INDEX_KEY) - 1, (void *)INDEX_KEY }, v;
	*out = 0;
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return store_err(s, err, rc, "read the index");
	if ((rc = record_open(s, s->meta, &k, &v, err)) < 0)
		return rc;
	if (v.mv_size != 8)
		return record_damaged(s, s->meta, k.mv_data, k.mv_size, err);
	*out = get_be64(v.mv_data);
	return 0;
}

/*
 * Damage found before LMDB maps the file. LMDB trusts its file: a data
 * file shorter than the pages its meta page names is mapped all the same,
 * and the first read past its end is SIGBUS; an empty file is taken for a
 * new store. The layout read here is LMDB 0.9's on a 64-bit host: each of
 * pages 0 and 1 is a 16-byte page header and an MDB_meta.
 */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u
#define LMDB_P_META 0x08u
#define LMDB_P_INVALID UINT64_MAX
#define META_LEN 152 /* page header + MDB_meta */

typedef struct lmdb_meta {
	uint32_t psize;
	uint64_t free_root, main_root, last_pg, txnid;
} lmdb_meta_t;

static uint64_t le64(const unsigned char *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

static uint32_t le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* NULL when p holds a meta page LMDB accepts, else what is wrong. */
static const char *meta_parse(const unsigned char *p, lmdb_meta_t *m)
{
	if (!((p[10] | p[11] << 8) & LMDB_P_META))
		return "it is not marked as a meta page";
	if (le32(p + 16) != LMDB_MAGIC)
		return "its magic number is wrong";
	if (le32(p + 20) != LMDB_DATA_VERSION)
		return "its format version is not LMDB's 1";
	m->psize = le32(p + 40);
	m->free_root = le64(p + 80);
	m->main_root = le64(p + 128);
	m->last_pg = le64(p + 136);
	m->txnid = le64(p + 144);
	return NULL;
}

typedef struct marker {
	char id[40];
	int64_t created;
	uint64_t index, size;
	unsigned format;
} marker_t;

static void marker_path(const flt_store_t *s, char *buf, size_t len,
			const char *suffix)
{
	snprintf(buf, len, "%s/" MARKER_NAME "%s", s->dir, suffix);
}

/* 0, -ENOENT without a marker, or another negative errno. */
static int marker_read(const flt_store_t *s, marker_t *m)
{
	char path[4096];
	cleanup_free char *text = NULL;
	marker_path(s, path, sizeof(path), "");
	memset(m, 0, sizeof(*m));
	int rc = flt_read_file(path, 4096, &text);
	if (rc < 0)
		return rc;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long long u;
		long long l;
		if (sscanf(line, "id=%39s", m->id) == 1)
			continue;
		if (sscanf(line, "created=%lld", &l) == 1)
			m->created = l;
		else if (sscanf(line, "index=%llu", &u) == 1)
			m->index = u;
		else if (sscanf(line, "size=%llu", &u) == 1)
			m->size = u;
		else if (sscanf(line, "format=%llu", &u) == 1)
			m->format = u > 1000 ? 1000 : (unsigned)u;
	}
	if (!m->id[0])
		snprintf(m->id, sizeof(m->id), "unknown");
	return 0;
}

/*
 * The marker says "a store lived here": written when a store is created
 * (or first opened by this version), and again at each close with the
 * index and size then. Atomic: a temporary file renamed over it.
 */
static void marker_write(const flt_store_t *s, uint64_t index)
{
	char path[4096], tmp[4096], data[4096], text[512];
	struct stat st;
	snprintf(data, sizeof(data), "%s/" DATA_NAME, s->dir);
	marker_path(s, path, sizeof(path), "");
	marker_path(s, tmp, sizeof(tmp), ".tmp");
	int n = snprintf(text, sizeof(text),
			 "flotilla store: while this file is here, an empty "
			 "or missing " DATA_NAME " is refused\n"
			 "id=%s\ncreated=%lld\nformat=%d\nindex=%" PRIu64
			 "\nsize=%lld\n",
			 s->marker_id, (long long)s->marker_created,
			 FORMAT_CHECKSUMS, index,
			 stat(data, &st) == 0 ? (long long)st.st_size : 0LL);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (flt_write_all(fd, text, (size_t)n, NULL) < 0 || fsync(fd) < 0) {
		close(fd);
		unlink(tmp);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) == 0)
		return;
	unlink(tmp);
fail:
	flt_warn("store: cannot write the marker %s error=\"%s\"", path,
		 strerror(errno));
}

static int store_check_file(flt_store_t *s, flt_error_t *err)
{
	char path[4096];
	struct stat st;
	marker_t mk;
	snprintf(path, sizeof(path), "%s/" DATA_NAME, s->dir);
	int mrc = marker_read(s, &mk);
	if (mrc < 0 && mrc != -ENOENT)
		return flt_err(err, mrc, "%s/" MARKER_NAME ": %s", s->dir,
			       strerror(-mrc));
	if (mrc == 0) {
		snprintf(s->marker_id, sizeof(s->marker_id), "%s", mk.id);
		s->marker_created = mk.created;
		s->marker_format = mk.format;
	}
	bool have = stat(path, &st) == 0;
	if (!have && errno != ENOENT)
		return flt_err(err, -errno, "%s: %s", path, strerror(errno));
	if (!have || st.st_size == 0) {
		if (mrc < 0)
			return 0; /* a new store */
		return flt_err(err, FLT_ESTORE,
			       "%s is %s but this directory held a store "
			       "(marker %s/" MARKER_NAME
			       ": id %s, index %" PRIu64 ", %" PRIu64
			       " bytes at its last close); restore "
			       "it from a backup, or remove the marker to "
			       "start an empty store",
			       path, have ? "empty" : "missing", s->dir, mk.id,
			       mk.index, mk.size);
	}
	if (!S_ISREG(st.st_mode))
		return flt_err(err, FLT_ESTORE, "%s: not a regular file", path);

	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return flt_err(err, -errno, "%s: %s", path, strerror(errno));
	unsigned char p0[META_LEN], p1[META_LEN];
	lmdb_meta_t m0, m1;
	const char *why;
	if (pread(fd, p0, sizeof(p0), 0) != (ssize_t)sizeof(p0))
		return flt_err(
			err, FLT_ESTORE,
			"%s is %lld bytes, too short to hold LMDB's meta "
			"pages: the file was cut short; restore it from a "
			"backup",
			path, (long long)st.st_size);
	if ((why = meta_parse(p0, &m0)))
		return flt_err(err, FLT_ESTORE,
			       "%s: the first meta page is damaged (%s): not a "
			       "store, or a damaged one; restore it from a "
			       "backup",
			       path, why);
	if (m0.psize < 512 || m0.psize > 65536 || (m0.psize & (m0.psize - 1)))
		return flt_err(err, FLT_ESTORE,
			       "%s: the first meta page is damaged (page size "
			       "%" PRIu32 "); restore it from a backup",
			       path, m0.psize);
	if ((uint64_t)st.st_size < 2ull * m0.psize ||
	    pread(fd, p1, sizeof(p1), m0.psize) != (ssize_t)sizeof(p1))
		return flt_err(err, FLT_ESTORE,
			       "%s is %lld bytes, shorter than its two meta "
			       "pages of %" PRIu32 " bytes: the file was cut "
			       "short; restore it from a backup",
			       path, (long long)st.st_size, m0.psize);
	if ((why = meta_parse(p1, &m1)))
		return flt_err(err, FLT_ESTORE,
			       "%s: the second meta page is damaged (%s); "
			       "restore it from a backup",
			       path, why);
	/* LMDB reads the meta of the later transaction. */
	const lmdb_meta_t *m = m1.txnid > m0.txnid ? &m1 : &m0;
	int which = m == &m1;
	if (m->last_pg >= (uint64_t)1 << 40)
		return flt_err(err, FLT_ESTORE,
			       "%s: meta page %d is damaged (last page %" PRIu64
			       "); restore it from a backup",
			       path, which, m->last_pg);
	uint64_t need = (m->last_pg + 1) * m0.psize;
	if ((uint64_t)st.st_size < need)
		return flt_err(err, FLT_ESTORE,
			       "%s is %lld bytes, shorter than the %" PRIu64
			       " bytes its last used page needs (page %" PRIu64
			       " of %" PRIu32 " bytes, transaction %" PRIu64
			       "): the file was cut short; restore it from a "
			       "backup",
			       path, (long long)st.st_size, need, m->last_pg,
			       m0.psize, m->txnid);
	if ((m->free_root != LMDB_P_INVALID && m->free_root > m->last_pg) ||
	    (m->main_root != LMDB_P_INVALID && m->main_root > m->last_pg))
		return flt_err(err, FLT_ESTORE,
			       "%s: meta page %d is damaged (a root page past "
			       "the last page %" PRIu64 "); restore it from a "
			       "backup",
			       path, which, m->last_pg);
	return 1;
}

/*
 * The walk: LMDB does not check the pages it follows, so a damaged page
 * can make it read anywhere in its map and crash the process. A child
 * process opens the store read-only and reads every record of every
 * database (and the free-page list), checking each checksum; the parent
 * learns from its exit and from the lines it writes on a pipe:
 * "D <database>" as it enters one, "E <what is wrong>", "OK <records>
 * <bytes>".
 */
static void walk_say(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void walk_say(int fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)flt_write_all(fd, line, (size_t)n, NULL);
}

#define WALK_MAX_DBS 1024

static __attribute__((noreturn)) void walk_child(const char *dir, int fd,
						 unsigned marker_format)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_envinfo info;
	sigset_t none;
	struct rlimit nocore = { 0, 0 };
	char *names[WALK_MAX_DBS];
	size_t nnames = 0;
	uint64_t records = 0, bytes = 0;
	bool tagged = false;
	/* Where the walk is, as the parent names it: "in WHERE". */
	char where[256] = "the list of databases";
	int rc;

	/* A damaged page may crash this process: that is the answer, not a
	 * core file to write. */
	setrlimit(RLIMIT_CORE, &nocore);
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	alarm(600); /* a loop among damaged pages */

	walk_say(fd, "D %s", where);
	/* With the lock file, as any reader: a process that writes this
	 * store meanwhile cannot reuse the pages the walk is reading. */
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, WALK_MAX_DBS)) != 0 ||
	    (rc = mdb_env_open(env, dir, MDB_RDONLY, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_env_info(env, &info)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 ||
	    (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		goto lmdb_fail;
	while ((rc = mdb_cursor_get(cur, &k, &v,
				    nnames ? MDB_NEXT : MDB_FIRST)) == 0) {
		if (nnames == WALK_MAX_DBS || k.mv_size == 0 ||
		    memchr(k.mv_data, 0, k.mv_size)) {
			walk_say(fd, "E the list of databases is damaged");
			_exit(1);
		}
		names[nnames] = flt_xmalloc(k.mv_size + 1);
		memcpy(names[nnames], k.mv_data, k.mv_size);
		names[nnames++][k.mv_size] = '\0';
	}
	if (rc != MDB_NOTFOUND)
		goto lmdb_fail;
	mdb_cursor_close(cur);

	/* Checksums are there from format 2 on: see store_format. */
	rc = mdb_dbi_open(txn, "meta", 0, &dbi);
	if (rc == 0) {
		k = (MDB_val){ sizeof(FORMAT_KEY) - 1, (void *)FORMAT_KEY };
		rc = mdb_get(txn, dbi, &k, &v);
		if (rc == 0) {
			if (!tag_ok(&k, &v) || v.mv_size != 8 + TAG_LEN) {
				walk_say(fd, "E record meta/" FORMAT_KEY
					     ": checksum mismatch");
				_exit(1);
			}
			tagged = true;
		}
		if (rc != 0 && rc != MDB_NOTFOUND) {
			snprintf(where, sizeof(where), "database meta");
			goto lmdb_fail;
		}
	} else if (rc != MDB_NOTFOUND) {
		goto lmdb_fail;
	}
	/* Without the record, a damaged meta page would pass for a store
	 * of format 1, whose records have no checksums to check. */
	if (!tagged && marker_format >= FORMAT_CHECKSUMS) {
		walk_say(fd,
			 "E record meta/" FORMAT_KEY " is missing, and the "
			 "marker says format %u",
			 marker_format);
		_exit(1);
	}

	for (size_t i = 0; i < nnames; i++) {
		snprintf(where, sizeof(where), "database %s", names[i]);
		walk_say(fd, "D %s", where);
		if ((rc = mdb_dbi_open(txn, names[i], 0, &dbi)) != 0 ||
		    (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
			goto lmdb_fail;
		int op = MDB_FIRST;
		while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
			op = MDB_NEXT;
			records++;
			bytes += k.mv_size + v.mv_size;
			if (tagged && !tag_ok(&k, &v)) {
				char shown[128];
				flt_escape(k.mv_data,
					   k.mv_size < 96 ? k.mv_size : 96, 0,
					   shown, sizeof(shown));
				walk_say(fd,
					 "E record %s/%s: checksum mismatch",
					 names[i], shown);
				_exit(1);
			}
			if (!tagged) {
				/* Read every byte, as the checksum would. */
				volatile unsigned char sum = 0;
				for (size_t j = 0; j < v.mv_size; j++)
					sum ^= ((unsigned char *)v.mv_data)[j];
				(void)sum;
			}
		}
		if (rc != MDB_NOTFOUND)
			goto lmdb_fail;
		mdb_cursor_close(cur);
	}

	/* The free-page list: pages a writer will reuse. A page number in
	 * it past the last page, or a live page, would be overwritten. */
	snprintf(where, sizeof(where), "the free-page list");
	walk_say(fd, "D %s", where);
	if ((rc = mdb_cursor_open(txn, 0, &cur)) != 0)
		goto lmdb_fail;
	for (int op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0;
	     op = MDB_NEXT) {
		const unsigned char *p = v.mv_data;
		uint64_t n;
		if (v.mv_size < 8 || v.mv_size % 8 ||
		    (memcpy(&n, p, 8), n != v.mv_size / 8 - 1)) {
			walk_say(fd,
				 "E the free-page list is damaged (a "
				 "record of %zu bytes)",
				 v.mv_size);
			_exit(1);
		}
		for (uint64_t j = 1; j <= n; j++) {
			uint64_t pg;
			memcpy(&pg, p + j * 8, 8);
			if (pg < 2 || pg > info.me_last_pgno) {
				walk_say(fd,
					 "E the free-page list is damaged "
					 "(page %" PRIu64 ", the last is %zu)",
					 pg, info.me_last_pgno);
				_exit(1);
			}
		}
	}
	if (rc != MDB_NOTFOUND)
		goto lmdb_fail;
	walk_say(fd, "OK %" PRIu64 " %" PRIu64, records, bytes);
	_exit(0);

lmdb_fail:
	walk_say(fd, "E %s: %s", where, mdb_strerror(rc));
	_exit(1);
}

static int store_verify(flt_store_t *s, flt_error_t *err)
{
	int p[2];
	char buf[8192], where[256] = "the list of databases", emsg[1024] = "";
	size_t len = 0;
	bool ok = false;
	unsigned long long records = 0, bytes = 0;
	int64_t t0 = flt_now_mono_ms();

	if (pipe2(p, O_CLOEXEC) < 0)
		return flt_err(err, -errno, "verify the store: pipe: %s",
			       strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return flt_err(err, -e, "verify the store: fork: %s",
			       strerror(e));
	}
	if (pid == 0) {
		close(p[0]);
		walk_child(s->dir, p[1], s->marker_format);
	}
	close(p[1]);
	for (;;) {
		if (len == sizeof(buf) - 1) {
			/* Keep the tail: the last lines are the answer. */
			memmove(buf, buf + len / 2, len - len / 2);
			len -= len / 2;
		}
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	buf[len] = '\0';
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "D ", 2) == 0)
			snprintf(where, sizeof(where), "%s", line + 2);
		else if (strncmp(line, "E ", 2) == 0)
			snprintf(emsg, sizeof(emsg), "%s", line + 2);
		else if (sscanf(line, "OK %llu %llu", &records, &bytes) == 2)
			ok = true;
	}
	if (WIFSIGNALED(st)) {
		const char *sig = sigabbrev_np(WTERMSIG(st));
		return flt_err(err, FLT_ESTORE,
			       "the store in %s is damaged: a walk of its "
			       "pages %s (SIG%s) in %s; restore it "
			       "from a backup",
			       s->dir,
			       WTERMSIG(st) == SIGALRM ? "did not end"
						       : "crashed",
			       sig ? sig : "?", where);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && ok) {
		flt_info("store verified dir=%s records=%llu bytes=%llu "
			 "ms=%lld",
			 s->dir, records, bytes,
			 (long long)(flt_now_mono_ms() - t0));
		return 0;
	}
	if (emsg[0])
		return flt_err(err, FLT_ESTORE,
			       "the store in %s is damaged: %s; restore it "
			       "from a backup",
			       s->dir, emsg);
	return flt_err(err, FLT_ESTORE,
		       "the store in %s could not be verified: its walk "
		       "exited with status %d in %s",
		       s->dir, WIFEXITED(st) ? WEXITSTATUS(st) : -1, where);
}

/*
 * Brings the store to FORMAT_CHECKSUMS in txn: a format 1 store (no
 * "format" record; a new store is one with no records) gets a checksum on
 * every record of every database, `meta` included, in this one
 * transaction.
 */
static int store_format(flt_store_t *s, MDB_txn *txn, flt_error_t *err)
{
	MDB_val k = { sizeof(FORMAT_KEY) - 1, (void *)FORMAT_KEY }, v;
	MDB_dbi main, dbi;
	MDB_cursor *cur = NULL;
	char *names[WALK_MAX_DBS];
	size_t nnames = 0, records = 0;
	cleanup_free unsigned char *kb = NULL;
	cleanup_free unsigned char *vb = NULL;
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == 0) {
		if ((rc = record_open(s, s->meta, &k, &v, err)) < 0)
			return rc;
		if (v.mv_size != 8)
			return record_damaged(s, s->meta, k.mv_data, k.mv_size,
					      err);
		uint64_t f = get_be64(v.mv_data);
		if (f != FORMAT_CHECKSUMS)
			return flt_err(err, FLT_ESTORE,
				       "the store in %s has format %" PRIu64
				       ", which this version (format %d) "
				       "cannot read",
				       s->dir, f, FORMAT_CHECKSUMS);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return store_err(s, err, rc, "read the store's format");
	if (s->marker_format >= FORMAT_CHECKSUMS)
		return flt_err(
			err, FLT_ESTORE,
			"the store in %s is damaged: record meta/" FORMAT_KEY
			" is missing, and the marker says format %u; "
			"restore it from a backup",
			s->dir, s->marker_format);

	if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) != 0 ||
	    (rc = mdb_cursor_open(txn, main, &cur)) != 0)
		goto lmdb_fail;
	for (int op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == 0;
	     op = MDB_NEXT) {
		if (nnames == WALK_MAX_DBS)
			break;
		names[nnames] = flt_xmalloc(k.mv_size + 1);
		memcpy(names[nnames], k.mv_data, k.mv_size);
		names[nnames++][k.mv_size] = '\0';
	}
	mdb_cursor_close(cur);
	cur = NULL;
	if (rc != MDB_NOTFOUND && rc != 0)
		goto lmdb_fail;
	for (size_t i = 0; i < nnames; i++) {
		if ((rc = mdb_dbi_open(txn, names[i], 0, &dbi)) != 0 ||
		    (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
			goto lmdb_fail;
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		while (rc == 0) {
			/* Copies: the put below moves pages under the
			 * cursor; then the cursor finds its key again. */
			size_t kl = k.mv_size, vl = v.mv_size;
			kb = flt_xrealloc(kb, kl ? kl : 1);
			vb = flt_xrealloc(vb, vl ? vl : 1);
			memcpy(kb, k.mv_data, kl);
			memcpy(vb, v.mv_data, vl);
			MDB_val kk = { kl, kb };
			if ((rc = record_put(txn, dbi, &kk, vb, vl)) != 0)
				break;
			records++;
			k = kk;
			if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET)) != 0)
				break;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		cur = NULL;
		if (rc != MDB_NOTFOUND)
			goto lmdb_fail;
	}
	unsigned char fb[8];
	put_be64(fb, FORMAT_CHECKSUMS);
	k = (MDB_val){ sizeof(FORMAT_KEY) - 1, (void *)FORMAT_KEY };
	if ((rc = record_put(txn, s->meta, &k, fb, sizeof(fb))) != 0)
		goto lmdb_fail;
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	if (records)
		flt_info("store: checksums added to every record dir=%s "
			 "records=%zu",
			 s->dir, records);
	return 0;

lmdb_fail:
	if (cur)
		mdb_cursor_close(cur);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	return store_err(s, err, rc, "add checksums to the store");
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
	/* Nothing maps the file until it has passed these. */
	if ((rc = store_check_file(s, err)) < 0)
		goto fail;
	if (rc == 1 && (rc = store_verify(s, err)) < 0)
		goto fail;
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
	if ((rc = store_format(s, txn, err)) < 0)
		goto fail;
	uint64_t index;
	if ((rc = read_index(s, txn, &index, err)) < 0)
		goto fail;
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		store_err(s, err, rc, "commit");
		goto fail_rc;
	}
	s->opened = true;
	if (!s->marker_id[0]) {
		flt_uuid_v4(s->marker_id);
		s->marker_created = flt_now_wall_ms() / 1000;
	}
	marker_write(s, index);
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
	if (s->opened) {
		uint64_t index = flt_store_index(s);
		mdb_env_close(s->env);
		marker_write(s, index);
	} else if (s->env) {
		mdb_env_close(s->env);
	}
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
	uint64_t idx;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	(void)read_index(s, txn, &idx, NULL);
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
	if ((rc = read_index(s, t->txn, &t->index, err)) < 0) {
		mdb_txn_abort(t->txn);
		free(t);
		return rc;
	}
	t->index += write ? 1 : 0;
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
		rc = record_put(t->txn, t->store->meta, &k, b, sizeof(b));
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

static int txn_get(flt_txn_t *t, flt_db_t db, const void *key, size_t klen,
		   const void **val, size_t *vlen, flt_error_t *err)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc = mdb_get(t->txn, db, &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return store_err(t->store, err, rc, "get");
	if ((rc = record_open(t->store, db, &k, &v, err)) < 0)
		return rc;
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

int flt_txn_get(flt_txn_t *t, flt_db_t db, const void *key, size_t klen,
		const void **val, size_t *vlen)
{
	return txn_get(t, db, key, klen, val, vlen, NULL);
}

int flt_txn_put(flt_txn_t *t, flt_db_t db, const void *key, size_t klen,
		const void *val, size_t vlen, flt_error_t *err)
{
	if (!t->write)
		return flt_err(err, -EROFS, "put in a read transaction");
	MDB_val k = { klen, (void *)key };
	int rc = record_put(t->txn, db, &k, val, vlen);
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
		if ((ret = record_open(t->store, db, &k, &v, NULL)) < 0)
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
	int rc = txn_get(t, db, key, strlen(key), &v, &vl, err);
	if (rc == -ENOENT)
		return flt_err(err, rc, "%s: not found", key);
	if (rc < 0)
		return rc;
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, vl, v);
	if (!m)
		return flt_err(err, FLT_ESTORE, "%s: stored %s is corrupt", key,
			       desc->short_name);
	*out = m;
	return 0;
}
