/*
 * Packages: content-addressed chunks in `blobs` (key: the chunk's sha256
 * in hex), manifests in `packages` (key: "<name>/<version>").
 *
 * An upload is chunks first (ChunkPut, each checked against its own
 * digest), then the manifest (PackagePush), accepted only when every chunk
 * it names is stored and together they make the digest and size it
 * claims. A version is immutable: pushing it again with the same digest
 * is a no-op, with another digest a conflict. Agents fetch chunks by
 * digest (FetchChunk) on the agent port. A version is removed with the
 * chunks no other version names (PackageRm), unless it is in use.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "coordinator.h"
#include "flotilla/hash.h"
#include "flotilla/log.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"

struct coord_pkgs {
	flt_store_t *store;
	coord_writer_t *writer;
	flt_db_t db_pkgs, db_blobs;
	bool has_key;
	uint8_t key[32];
};

int coord_pkgs_open(flt_store_t *store, coord_writer_t *writer,
		    const uint8_t *fleet_key, coord_pkgs_t **out,
		    flt_error_t *err)
{
	coord_pkgs_t *p = flt_xcalloc(1, sizeof(*p));
	p->store = store;
	p->writer = writer;
	if (fleet_key) {
		memcpy(p->key, fleet_key, sizeof(p->key));
		p->has_key = true;
	}
	int rc;
	if ((rc = flt_store_db(store, "packages", &p->db_pkgs)) < 0 ||
	    (rc = flt_store_db(store, "blobs", &p->db_blobs)) < 0) {
		free(p);
		return flt_err(err, rc, "opening the package databases failed");
	}
	*out = p;
	return 0;
}

void coord_pkgs_close(coord_pkgs_t *p) { free(p); }

static void pkg_key(char *key, size_t len, const char *name,
		    const char *version)
{
	snprintf(key, len, "%s/%s", name, version);
}

int coord_pkgs_get(coord_pkgs_t *p, const char *name, const char *version,
		   Flotilla__PackageManifest **out, flt_error_t *err)
{
	if (!flt_pkg_name_valid(name) || !flt_pkg_version_valid(version))
		return flt_err(err, FLT_ENOTFOUND, "no package %s@%s", name,
			       version);
	char key[256];
	pkg_key(key, sizeof(key), name, version);
	flt_txn_t *txn;
	int rc = flt_txn_begin(p->store, false, &txn, err);
	if (rc < 0)
		return rc;
	rc = flt_txn_get_pb(txn, p->db_pkgs, key,
			    &flotilla__package_manifest__descriptor,
			    (ProtobufCMessage **)out, err);
	flt_txn_abort(txn);
	if (rc == -ENOENT)
		return flt_err(err, FLT_ENOTFOUND,
			       "no package %s@%s: push it first", name,
			       version);
	return rc;
}

/* ---- ChunkPut ------------------------------------------------------------ */

typedef struct chunk_op {
	coord_pkgs_t *p;
	flt_request_t *r;
	Flotilla__ChunkPutRequest *req;
	char sha[FLT_SHA256_HEX];
	bool existed;
} chunk_op_t;

static int chunk_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	chunk_op_t *o = arg;
	const void *v;
	size_t vlen;
	o->existed =
		flt_txn_get(txn, o->p->db_blobs, o->sha, 64, &v, &vlen) == 0;
	if (o->existed)
		return 0;
	return flt_txn_put(txn, o->p->db_blobs, o->sha, 64, o->req->data.data,
			   o->req->data.len, err);
}

static void chunk_done(void *arg, int rc, uint64_t index,
		       const flt_error_t *err)
{
	chunk_op_t *o = arg;
	(void)index;
	if (rc < 0) {
		flt_request_fail(o->r, rc, "chunk not stored: %s",
				 err ? err->msg : "write failed");
	} else {
		Flotilla__ChunkPutResponse resp =
			FLOTILLA__CHUNK_PUT_RESPONSE__INIT;
		resp.sha256 = o->sha;
		resp.existed = o->existed;
		flt_request_reply(o->r, &resp.base);
	}
	flotilla__chunk_put_request__free_unpacked(o->req, NULL);
	free(o);
}

void coord_pkgs_chunk_put(coord_pkgs_t *p, flt_request_t *r)
{
	Flotilla__ChunkPutRequest *req;
	if (flt_request_body(r, &flotilla__chunk_put_request__descriptor,
			     &req) < 0)
		return;
	if (req->data.len == 0 || req->data.len > FLT_PKG_CHUNK_SIZE) {
		flt_request_fail(r, FLT_EPROTO,
				 "data: a chunk is 1 to %u bytes, not %zu",
				 FLT_PKG_CHUNK_SIZE, req->data.len);
		flotilla__chunk_put_request__free_unpacked(req, NULL);
		return;
	}
	chunk_op_t *o = flt_xcalloc(1, sizeof(*o));
	o->p = p;
	o->r = r;
	o->req = req;
	flt_sha256_hex(req->data.data, req->data.len, o->sha);
	flt_request_defer(r);
	coord_writer_submit(p->writer, chunk_apply, chunk_done, o);
}

/* ---- PackagePush --------------------------------------------------------- */

/* Checks that the stored chunks make the manifest's content. */
static int verify_chunks(coord_pkgs_t *p, const Flotilla__PackageManifest *m,
			 flt_error_t *err)
{
	flt_txn_t *txn;
	int rc = flt_txn_begin(p->store, false, &txn, err);
	if (rc < 0)
		return rc;
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	uint64_t total = 0;
	for (size_t i = 0; i < m->n_chunks; i++) {
		const void *v;
		size_t vlen;
		if (flt_txn_get(txn, p->db_blobs, m->chunks[i], 64, &v, &vlen) <
		    0) {
			rc = flt_err(err, FLT_EPROTO,
				     "chunks[%zu]: %s is not stored: put every "
				     "chunk before the manifest",
				     i, m->chunks[i]);
			goto out;
		}
		bool last = i + 1 == m->n_chunks;
		if ((!last && vlen != m->chunk_size) ||
		    (last && vlen > m->chunk_size)) {
			rc = flt_err(err, FLT_EPROTO,
				     "chunks[%zu]: %zu bytes, but chunk_size "
				     "is %u",
				     i, vlen, m->chunk_size);
			goto out;
		}
		crypto_hash_sha256_update(&st, v, vlen);
		total += vlen;
	}
	if (total != m->size) {
		rc = flt_err(err, FLT_EPROTO,
			     "size: the chunks hold %llu bytes, not %llu",
			     (unsigned long long)total,
			     (unsigned long long)m->size);
		goto out;
	}
	uint8_t d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, d);
	char hex[FLT_SHA256_HEX];
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	if (strcmp(hex, m->sha256) != 0)
		rc = flt_err(err, FLT_EPROTO,
			     "sha256: the chunks make %s, not %s", hex,
			     m->sha256);
out:
	flt_txn_abort(txn);
	return rc;
}

/*
 * A coordinator given the fleet key (--package-key) stores only what that
 * key signed: an unsigned or badly signed manifest never reaches the
 * agents, whatever they are configured to accept.
 */
static int check_signature(coord_pkgs_t *p, const Flotilla__PackageManifest *m,
			   flt_error_t *err)
{
	char n[72], v[72];
	if (m->signature.len == 0)
		return flt_err(err, FLT_EAUTH,
			       "package %s %s: unsigned; this coordinator "
			       "accepts only packages signed with the fleet "
			       "key (--package-key): push with --sign",
			       flt_shown(m->name, 64, n, sizeof(n)),
			       flt_shown(m->version, 64, v, sizeof(v)));
	int rc = flt_pkg_verify(m, p->key, err);
	if (rc < 0) {
		flt_error_t why = *err;
		return flt_err(err, rc,
			       "%s; this coordinator accepts only packages "
			       "signed with the fleet key (--package-key)",
			       why.msg);
	}
	return 0;
}

typedef struct push_op {
	coord_pkgs_t *p;
	flt_request_t *r;
	Flotilla__PackagePushRequest *req;
	Flotilla__PackageManifest *stored; /* what is stored after the op */
	bool conflict;
} push_op_t;

static int push_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	push_op_t *o = arg;
	Flotilla__PackageManifest *m = o->req->manifest;
	char key[256];
	pkg_key(key, sizeof(key), m->name, m->version);
	Flotilla__PackageManifest *old = NULL;
	int rc = flt_txn_get_pb(txn, o->p->db_pkgs, key,
				&flotilla__package_manifest__descriptor,
				(ProtobufCMessage **)&old, err);
	if (rc == 0) {
		o->conflict = strcmp(old->sha256, m->sha256) != 0;
		o->stored = old;
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	/* Checked again in the transaction: a version removed since the
	 * check may have taken chunks this one shares (PackageRm). */
	for (size_t i = 0; i < m->n_chunks; i++) {
		const void *v;
		size_t vlen;
		if (flt_txn_get(txn, o->p->db_blobs, m->chunks[i], 64, &v,
				&vlen) < 0)
			return flt_err(err, FLT_ECONFLICT,
				       "chunks[%zu]: %s was removed meanwhile "
				       "(package rm): put it again",
				       i, m->chunks[i]);
	}
	m->created_at_ms = flt_now_wall_ms();
	m->index = flt_txn_index(txn);
	rc = flt_txn_put_pb(txn, o->p->db_pkgs, key, &m->base, err);
	return rc < 0 ? rc : coord_audit_in_txn(txn, o->r, err);
}

static void push_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	push_op_t *o = arg;
	Flotilla__PackageManifest *m = o->req->manifest;
	(void)index;
	if (rc < 0) {
		flt_request_fail(o->r, rc, "package not stored: %s",
				 err ? err->msg : "write failed");
	} else if (o->conflict) {
		flt_request_fail(o->r, FLT_ECONFLICT,
				 "package %s@%s exists with digest %s: a "
				 "version is immutable, push a new version",
				 m->name, m->version, o->stored->sha256);
	} else {
		Flotilla__PackageGetResponse resp =
			FLOTILLA__PACKAGE_GET_RESPONSE__INIT;
		Flotilla__PackageManifest *one = o->stored ? o->stored : m;
		resp.n_packages = 1;
		resp.packages = &one;
		flt_request_reply(o->r, &resp.base);
		if (!o->stored)
			flt_info("package stored name=%s version=%s sha256=%s "
				 "size=%llu signed=%s",
				 m->name, m->version, m->sha256,
				 (unsigned long long)m->size,
				 m->signature.len ? m->key_id : "no");
	}
	if (o->stored)
		flotilla__package_manifest__free_unpacked(o->stored, NULL);
	flotilla__package_push_request__free_unpacked(o->req, NULL);
	free(o);
}

void coord_pkgs_push(coord_pkgs_t *p, flt_request_t *r)
{
	Flotilla__PackagePushRequest *req;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__package_push_request__descriptor,
			     &req) < 0)
		return;
	if (!req->manifest) {
		flt_request_fail(r, FLT_EPROTO, "manifest: missing");
		goto fail;
	}
	if (flt_pkg_manifest_check(req->manifest, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "manifest.%s", err.msg);
		goto fail;
	}
	/* The signature before the chunks: a refused push costs no read of
	 * the store, and says what is missing. */
	if (p->has_key && check_signature(p, req->manifest, &err) < 0) {
		flt_request_fail(r, FLT_EAUTH, "%s", err.msg);
		goto fail;
	}
	if (verify_chunks(p, req->manifest, &err) < 0) {
		flt_request_fail(r, err.code, "manifest.%s", err.msg);
		goto fail;
	}
	push_op_t *o = flt_xcalloc(1, sizeof(*o));
	o->p = p;
	o->r = r;
	o->req = req;
	flt_request_defer(r);
	coord_writer_submit(p->writer, push_apply, push_done, o);
	return;
fail:
	flotilla__package_push_request__free_unpacked(req, NULL);
}

/* ---- PackageList, PackageGet --------------------------------------------- */

typedef struct collect {
	Flotilla__PackageManifest **v;
	size_t n, cap;
} collect_t;

static int collect_one(const void *key, size_t klen, const void *val,
		       size_t vlen, void *arg)
{
	collect_t *c = arg;
	(void)key;
	(void)klen;
	Flotilla__PackageManifest *m =
		flotilla__package_manifest__unpack(NULL, vlen, val);
	if (!m)
		return 0;
	/* A list shows manifests, not every chunk digest of every one. */
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->v = flt_xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n++] = m;
	return 0;
}

static void reply_collected(flt_request_t *r, collect_t *c, bool chunks)
{
	Flotilla__PackageGetResponse resp =
		FLOTILLA__PACKAGE_GET_RESPONSE__INIT;
	size_t *saved = flt_xcalloc(c->n + 1, sizeof(*saved));
	for (size_t i = 0; i < c->n && !chunks; i++) {
		saved[i] = c->v[i]->n_chunks;
		c->v[i]->n_chunks = 0;
	}
	resp.n_packages = c->n;
	resp.packages = c->v;
	flt_request_reply(r, &resp.base);
	for (size_t i = 0; i < c->n; i++) {
		if (!chunks)
			c->v[i]->n_chunks = saved[i];
		flotilla__package_manifest__free_unpacked(c->v[i], NULL);
	}
	free(saved);
	free(c->v);
}

static void handle_list_get(coord_pkgs_t *p, flt_request_t *r, bool get)
{
	Flotilla__PackageGetRequest *req = NULL;
	flt_error_t err;
	char prefix[256] = "";
	if (get) {
		if (flt_request_body(r,
				     &flotilla__package_get_request__descriptor,
				     &req) < 0)
			return;
		if (!flt_pkg_name_valid(req->name) ||
		    (req->version[0] && !flt_pkg_version_valid(req->version))) {
			flt_request_fail(r, FLT_EPROTO,
					 "name and version: not a package "
					 "name and version");
			flotilla__package_get_request__free_unpacked(req, NULL);
			return;
		}
		if (req->version[0])
			pkg_key(prefix, sizeof(prefix), req->name,
				req->version);
		else
			snprintf(prefix, sizeof(prefix), "%s/", req->name);
	}
	flt_txn_t *txn;
	collect_t c = { 0 };
	int rc = flt_txn_begin(p->store, false, &txn, &err);
	if (rc == 0) {
		rc = flt_txn_foreach(txn, p->db_pkgs, prefix, strlen(prefix),
				     collect_one, &c);
		flt_txn_abort(txn);
	}
	if (rc < 0) {
		flt_request_fail(r, FLT_ESTORE, "reading packages failed");
	} else if (get && c.n == 0) {
		flt_request_fail(r, FLT_ENOTFOUND, "no package %s%s%s",
				 req->name, req->version[0] ? "@" : "",
				 req->version);
	} else {
		/* An exact version match only: "a/1" must not list "a/10". */
		if (get && req->version[0]) {
			size_t k = 0;
			for (size_t i = 0; i < c.n; i++) {
				if (strcmp(c.v[i]->version, req->version) == 0)
					c.v[k++] = c.v[i];
				else
					flotilla__package_manifest__free_unpacked(
						c.v[i], NULL);
			}
			c.n = k;
		}
		reply_collected(r, &c, get);
		c.n = 0;
	}
	for (size_t i = 0; i < c.n; i++)
		flotilla__package_manifest__free_unpacked(c.v[i], NULL);
	if (c.n)
		free(c.v);
	if (req)
		flotilla__package_get_request__free_unpacked(req, NULL);
}

/* ---- FetchChunk (agent port) --------------------------------------------- */

void coord_pkgs_fetch_chunk(coord_pkgs_t *p, flt_request_t *r)
{
	Flotilla__FetchChunkRequest *req;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__fetch_chunk_request__descriptor,
			     &req) < 0)
		return;
	if (!flt_sha256_valid(req->sha256)) {
		flt_request_fail(r, FLT_EPROTO,
				 "sha256: 64 lower-case hex digits expected");
		goto out;
	}
	flt_txn_t *txn;
	if (flt_txn_begin(p->store, false, &txn, &err) < 0) {
		flt_request_fail(r, FLT_ESTORE, "%s", err.msg);
		goto out;
	}
	const void *v;
	size_t vlen;
	if (flt_txn_get(txn, p->db_blobs, req->sha256, 64, &v, &vlen) < 0) {
		flt_request_fail(r, FLT_ENOTFOUND, "no chunk %s", req->sha256);
	} else {
		Flotilla__FetchChunkResponse resp =
			FLOTILLA__FETCH_CHUNK_RESPONSE__INIT;
		/* The reply is packed before the transaction ends. */
		resp.data.data = (uint8_t *)v;
		resp.data.len = vlen;
		flt_request_reply(r, &resp.base);
	}
	flt_txn_abort(txn);
out:
	flotilla__fetch_chunk_request__free_unpacked(req, NULL);
}

void coord_pkgs_list(coord_pkgs_t *p, flt_request_t *r)
{
	handle_list_get(p, r, false);
}

void coord_pkgs_show(coord_pkgs_t *p, flt_request_t *r)
{
	handle_list_get(p, r, true);
}

/* ---- PackageRm ------------------------------------------------------------- */

typedef struct rm_op {
	coord_pkgs_t *p;
	flt_request_t *r;
	Flotilla__PackageManifest *m; /* the version removed */
	flt_map_t kept; /* chunks another version names */
	uint32_t deleted, shared;
	uint64_t bytes;
} rm_op_t;

static int note_chunks(const void *key, size_t klen, const void *val,
		       size_t vlen, void *arg)
{
	rm_op_t *o = arg;
	char k[256];
	snprintf(k, sizeof(k), "%.*s", (int)klen, (const char *)key);
	char self[256];
	pkg_key(self, sizeof(self), o->m->name, o->m->version);
	if (strcmp(k, self) == 0)
		return 0;
	Flotilla__PackageManifest *m =
		flotilla__package_manifest__unpack(NULL, vlen, val);
	if (!m)
		return 0;
	for (size_t i = 0; i < o->m->n_chunks; i++)
		for (size_t j = 0; j < m->n_chunks; j++)
			if (strcmp(o->m->chunks[i], m->chunks[j]) == 0)
				flt_map_put(&o->kept, o->m->chunks[i],
					    o->m->chunks[i]);
	flotilla__package_manifest__free_unpacked(m, NULL);
	return 0;
}

/* In one transaction: the manifest goes, then every chunk of it that no
 * other version names (looked at in the same transaction: a push of a
 * version sharing them commits before or after, never between). */
static int rm_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	rm_op_t *o = arg;
	char key[256];
	pkg_key(key, sizeof(key), o->m->name, o->m->version);
	int rc = flt_txn_del(txn, o->p->db_pkgs, key, strlen(key));
	if (rc == -ENOENT)
		return flt_err(err, FLT_ENOTFOUND,
			       "no package %s@%s (removed meanwhile)",
			       o->m->name, o->m->version);
	if (rc < 0)
		return flt_err(err, FLT_ESTORE, "deleting %s failed", key);
	if ((rc = flt_txn_foreach(txn, o->p->db_pkgs, NULL, 0, note_chunks,
				  o)) < 0)
		return flt_err(err, FLT_ESTORE, "reading packages failed");
	for (size_t i = 0; i < o->m->n_chunks; i++) {
		const char *sha = o->m->chunks[i];
		const void *v;
		size_t vlen;
		if (flt_map_get(&o->kept, sha)) {
			o->shared++;
			continue;
		}
		/* A chunk named twice in one version goes once. */
		if (flt_txn_get(txn, o->p->db_blobs, sha, 64, &v, &vlen) < 0)
			continue;
		o->bytes += vlen;
		o->deleted++;
		if ((rc = flt_txn_del(txn, o->p->db_blobs, sha, 64)) < 0)
			return flt_err(err, FLT_ESTORE,
				       "deleting chunk %s failed", sha);
	}
	return coord_audit_in_txn(txn, o->r, err);
}

static void rm_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	rm_op_t *o = arg;
	(void)index;
	if (rc < 0) {
		flt_request_fail(o->r, err ? err->code : rc, "%s",
				 err ? err->msg : "package not removed");
	} else {
		Flotilla__PackageRmResponse resp =
			FLOTILLA__PACKAGE_RM_RESPONSE__INIT;
		size_t n = o->m->n_chunks;
		o->m->n_chunks = 0;
		resp.package = o->m;
		resp.chunks_deleted = o->deleted;
		resp.chunks_kept = o->shared;
		resp.bytes_freed = o->bytes;
		flt_request_reply(o->r, &resp.base);
		o->m->n_chunks = n;
		flt_info("package removed name=%s version=%s chunks_deleted=%u "
			 "bytes_freed=%llu chunks_kept=%u",
			 o->m->name, o->m->version, o->deleted,
			 (unsigned long long)o->bytes, o->shared);
	}
	flt_map_free(&o->kept);
	flotilla__package_manifest__free_unpacked(o->m, NULL);
	free(o);
}

/* Whether name@version is the last version of name pushed (the highest
 * index): what a new host would be given. */
static bool newest_version(coord_pkgs_t *p, const Flotilla__PackageManifest *m)
{
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "%s/", m->name);
	collect_t c = { 0 };
	flt_txn_t *txn;
	flt_error_t err;
	if (flt_txn_begin(p->store, false, &txn, &err) == 0) {
		flt_txn_foreach(txn, p->db_pkgs, prefix, strlen(prefix),
				collect_one, &c);
		flt_txn_abort(txn);
	}
	bool newest = true;
	for (size_t i = 0; i < c.n; i++) {
		if (strcmp(c.v[i]->name, m->name) == 0 &&
		    c.v[i]->index > m->index)
			newest = false;
		flotilla__package_manifest__free_unpacked(c.v[i], NULL);
	}
	free(c.v);
	return newest;
}

void coord_pkgs_rm(coord_pkgs_t *p, flt_request_t *r,
		   const coord_pkg_users_t *users)
{
	Flotilla__PackageGetRequest *req;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__package_get_request__descriptor,
			     &req) < 0)
		return;
	Flotilla__PackageManifest *m = NULL;
	char who[128];
	if (!flt_pkg_name_valid(req->name) ||
	    !flt_pkg_version_valid(req->version)) {
		flt_request_fail(r, FLT_EPROTO,
				 "name and version: a package name and one "
				 "version (NAME@VERSION) are required");
		goto out;
	}
	if (coord_pkgs_get(p, req->name, req->version, &m, &err) < 0) {
		flt_request_fail(r, err.code, "%s", err.msg);
		goto out;
	}
	if (users && users->campaign &&
	    users->campaign(users->ctx, m->name, m->version, who,
			    sizeof(who))) {
		flt_request_fail(r, FLT_ECONFLICT,
				 "package %s@%s: campaign %s installs it and "
				 "has not finished: wait for it or abort it",
				 m->name, m->version, who);
		goto out;
	}
	if (users && users->job &&
	    users->job(users->ctx, m->name, who, sizeof(who)) &&
	    newest_version(p, m)) {
		flt_request_fail(r, FLT_ECONFLICT,
				 "package %s@%s: the newest version of %s, "
				 "and job %s uses %s: push a newer version "
				 "first, or stop the job",
				 m->name, m->version, m->name, who, m->name);
		goto out;
	}
	rm_op_t *o = flt_xcalloc(1, sizeof(*o));
	o->p = p;
	o->r = r;
	o->m = steal_ptr(&m);
	flt_request_defer(r);
	coord_writer_submit(p->writer, rm_apply, rm_done, o);
out:
	if (m)
		flotilla__package_manifest__free_unpacked(m, NULL);
	flotilla__package_get_request__free_unpacked(req, NULL);
}
