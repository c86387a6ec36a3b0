/*
 * flt-fakecoord: a stand-in coordinator for tests of the agent, on the
 * real wire (common/server.c), and a client of the agent's own API.
 *
 *   flt-fakecoord serve --listen URL --allocs FILE --log FILE
 *                       [--interval MS]
 *     Answers Register (any token; one fixed node), Sync and Watch. FILE
 *     holds a JSON array of AllocSpec objects (field names as in the
 *     proto); it is read again on every request, and every change of its
 *     contents bumps the desired-state index. A Sync whose known_index is
 *     behind gets allocs_set with the allocations; a Watch returns as soon
 *     as the index passes the caller's. Every Register and Sync request is
 *     appended to the log as one JSON line ({"t_ms": wall ms, "method":
 *     "register" or "sync", "request": ...}).
 *     --steps FILE: a JSON array of PatchStep objects, read again like
 *     --allocs (a change bumps the index too), listed in every
 *     SyncResponse. --chunks DIR: FetchChunk answers with DIR/<sha256>.
 *     --state FILE: rewritten after every Sync, {"syncs": N,
 *     "inventory_digest": the request's, "steps": its step statuses,
 *     "inventory": the last whole inventory received (or null),
 *     "inventories": how many Syncs carried one, "chunks": FetchChunks
 *     answered}. Every SyncResponse carries the digest of the last whole
 *     inventory received, as a coordinator does.
 *     --grant-key SECRET-FILE: its public half is the grant key handed out
 *     in RegisterResponse and SyncResponse.
 *     Runs until SIGINT or SIGTERM.
 *
 *   flt-fakecoord pack --name N --version V --file PATH --chunks DIR
 *                      [--format archive|file] [--file-name NAME]
 *                      [--chunk-size N] [--sign SECRET-KEY-FILE]
 *     Cuts PATH into chunks stored as DIR/<sha256> and prints the
 *     PackageManifest as JSON (signed with the key when given).
 *
 *   flt-fakecoord keygen --public FILE --secret FILE
 *     A new package signing key pair (flt_key_generate).
 *
 *   flt-fakecoord logs --url URL --alloc ID [--task NAME] [--stderr]
 *                      [--offset N] [--tail N] [--max N] [--tls-* ...]
 *                      [--grant-key SECRET-FILE [--grant-alloc ID]
 *                       [--grant-node ID] [--grant-expires-in MS]
 *                       [--grant-corrupt]]
 *     One AllocLogs call, with a grant signed by the key when given: for
 *     --grant-alloc (default --alloc) on --grant-node (default fake-node),
 *     expiring MS from now (default 60000; negative: in the past);
 *     --grant-corrupt flips a bit of the signature. Prints {"data": ..., "offset": N, "rotated": B}
 *     (exit 0), {"error": <wire code>, "message": ...} (exit 1), or
 *     {"no_reply": ...} when the call failed in transport (exit 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "flotilla/flags.h"
#include "flotilla/grant.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#define WATCH_MAX_MS 30000
#define MAX_WATCHES 64

static const char *listen_url, *allocs_path, *log_path;
static const char *steps_path, *chunks_dir, *state_path;
static long interval_ms = 1000;
static const char *pkg_name, *pkg_version, *pkg_file, *pkg_format = "archive";
static const char *pkg_file_name = "", *sign_key;
static long chunk_size = FLT_PKG_CHUNK_SIZE;
static const char *public_path, *secret_path;
static const char *url, *alloc_id, *task = "";
static bool use_stderr;
static long offset, tail, max_bytes;
static flt_tls_opts_t tls;
static const char *grant_key_path, *grant_alloc, *grant_node = "fake-node";
static long grant_expires_in = 60000;
static bool grant_corrupt;
static uint8_t grant_pk[32];
static bool have_grant_pk;

static const flt_flag_t serve_flags[] = {
	{ "listen", FLT_FLAG_STRING, &listen_url, "URL", "where agents dial", 0,
	  0, NULL },
	{ "allocs", FLT_FLAG_STRING, &allocs_path, "FILE",
	  "JSON array of AllocSpec", 0, 0, NULL },
	{ "log", FLT_FLAG_STRING, &log_path, "FILE",
	  "append every SyncRequest here", 0, 0, NULL },
	{ "interval", FLT_FLAG_INT, &interval_ms, "MS", "heartbeat interval",
	  100, 600000, NULL },
	{ "steps", FLT_FLAG_STRING, &steps_path, "FILE",
	  "JSON array of PatchStep", 0, 0, NULL },
	{ "chunks", FLT_FLAG_STRING, &chunks_dir, "DIR",
	  "chunks served by FetchChunk, named by sha256", 0, 0, NULL },
	{ "state", FLT_FLAG_STRING, &state_path, "FILE",
	  "the last Sync's steps and inventory, as JSON", 0, 0, NULL },
	{ "grant-key", FLT_FLAG_STRING, &grant_key_path, "FILE",
	  "secret key whose public half is handed out as the grant key", 0, 0,
	  NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static const flt_flag_t pack_flags[] = {
	{ "name", FLT_FLAG_STRING, &pkg_name, "NAME", "package name", 0, 0,
	  NULL },
	{ "version", FLT_FLAG_STRING, &pkg_version, "VERSION", "its version", 0,
	  0, NULL },
	{ "file", FLT_FLAG_STRING, &pkg_file, "PATH", "the content", 0, 0,
	  NULL },
	{ "chunks", FLT_FLAG_STRING, &chunks_dir, "DIR", "where chunks go", 0,
	  0, NULL },
	{ "format", FLT_FLAG_STRING, &pkg_format, "FORMAT",
	  "archive (default) or file", 0, 0, NULL },
	{ "file-name", FLT_FLAG_STRING, &pkg_file_name, "NAME",
	  "file: its name", 0, 0, NULL },
	{ "chunk-size", FLT_FLAG_INT, &chunk_size, "BYTES", "chunk size", 1,
	  FLT_PKG_CHUNK_SIZE, NULL },
	{ "sign", FLT_FLAG_STRING, &sign_key, "FILE", "secret key to sign with",
	  0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static const flt_flag_t keygen_flags[] = {
	{ "public", FLT_FLAG_STRING, &public_path, "FILE", "public key", 0, 0,
	  NULL },
	{ "secret", FLT_FLAG_STRING, &secret_path, "FILE", "secret key", 0, 0,
	  NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static const flt_flag_t logs_flags[] = {
	{ "url", FLT_FLAG_STRING, &url, "URL", "the agent's --api", 0, 0,
	  NULL },
	{ "alloc", FLT_FLAG_STRING, &alloc_id, "ID", "allocation id", 0, 0,
	  NULL },
	{ "task", FLT_FLAG_STRING, &task, "NAME", "task (default: first)", 0, 0,
	  NULL },
	{ "stderr", FLT_FLAG_BOOL, &use_stderr, NULL, "stderr, not stdout", 0,
	  0, NULL },
	{ "offset", FLT_FLAG_INT, &offset, "N", "offset (-1: tail)", -1,
	  1L << 40, NULL },
	{ "tail", FLT_FLAG_INT, &tail, "N", "bytes of a tail read", 0, 1L << 30,
	  NULL },
	{ "max", FLT_FLAG_INT, &max_bytes, "N", "most bytes", 0, 1L << 30,
	  NULL },
	{ "tls-ca", FLT_FLAG_STRING, &tls.ca_file, "FILE", "CA", 0, 0, NULL },
	{ "tls-cert", FLT_FLAG_STRING, &tls.cert_file, "FILE", "cert", 0, 0,
	  NULL },
	{ "tls-key", FLT_FLAG_STRING, &tls.key_file, "FILE", "key", 0, 0,
	  NULL },
	{ "tls-server-name", FLT_FLAG_STRING, &tls.server_name, "NAME",
	  "name to verify", 0, 0, NULL },
	{ "grant-key", FLT_FLAG_STRING, &grant_key_path, "FILE",
	  "sign a grant with this secret key", 0, 0, NULL },
	{ "grant-alloc", FLT_FLAG_STRING, &grant_alloc, "ID",
	  "the grant's allocation (default --alloc)", 0, 0, NULL },
	{ "grant-node", FLT_FLAG_STRING, &grant_node, "ID",
	  "the grant's node (default fake-node)", 0, 0, NULL },
	{ "grant-expires-in", FLT_FLAG_INT, &grant_expires_in, "MS",
	  "the grant's expiry from now", -(1L << 40), 1L << 40, NULL },
	{ "grant-corrupt", FLT_FLAG_BOOL, &grant_corrupt, NULL,
	  "flip a bit of the grant's signature", 0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

/* ---- serve --------------------------------------------------------------- */

typedef struct fake {
	pthread_mutex_t mtx;
	uint64_t index;
	uint8_t hash[16];
	bool have_hash;
	Flotilla__AllocSpec **allocs;
	size_t nallocs;
	FILE *log;
	/* Patch steps, like the allocations. */
	uint8_t steps_hash[16];
	bool have_steps_hash;
	Flotilla__PatchStep **steps;
	size_t nsteps;
	/* The last whole inventory received, and counts for --state. */
	Flotilla__Inventory *inv;
	unsigned long syncs, inventories, chunks;
	struct watch {
		flt_request_t *req;
		uint64_t known;
		int64_t deadline;
	} watches[MAX_WATCHES];
	size_t nwatches;
} fake_t;

/* A whole file (at most 64 MiB) into *out. */
static int read_all(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 1 << 16, n = 0;
	char *buf = flt_xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap >= (64u << 20)) {
				close(fd);
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			buf = flt_xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			free(buf);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = buf;
	*len = n;
	return 0;
}

static void free_msgs(ProtobufCMessage **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(v[i], NULL);
	free(v);
}

static void free_allocs(fake_t *f)
{
	free_msgs((ProtobufCMessage **)f->allocs, f->nallocs);
	f->allocs = NULL;
	f->nallocs = 0;
}

static void free_steps(fake_t *f)
{
	free_msgs((ProtobufCMessage **)f->steps, f->nsteps);
	f->steps = NULL;
	f->nsteps = 0;
}

/*
 * Reads path (at most max bytes), a JSON array of desc messages, unless
 * its hash is still hash. Returns how many, with the messages in *out (an
 * array for free_msgs), and remembers the hash; -1 when the file is
 * unchanged, unreadable or does not parse (said on stderr).
 */
static long load_msgs(const char *path, size_t max,
		      const ProtobufCMessageDescriptor *desc, uint8_t hash[16],
		      bool *have_hash, ProtobufCMessage ***out)
{
	cleanup_free char *text = NULL;
	uint8_t h[16];
	json_error_t je;
	flt_error_t err;

	if (flt_read_file(path, max, &text) < 0)
		return -1;
	crypto_generichash(h, sizeof(h), (uint8_t *)text, strlen(text), NULL,
			   0);
	if (*have_hash && !memcmp(h, hash, sizeof(h)))
		return -1;
	json_t *j = json_loads(text, 0, &je);
	if (!j || !json_is_array(j)) {
		fprintf(stderr, "flt-fakecoord: %s: not a JSON array\n", path);
		json_decref(j);
		return -1;
	}
	size_t n = json_array_size(j);
	ProtobufCMessage **v = flt_xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		if (flt_pb_from_json(desc, json_array_get(j, i), &v[i], &err) <
		    0) {
			fprintf(stderr, "flt-fakecoord: %s: [%zu]: %s\n", path,
				i, err.msg);
			free_msgs(v, i);
			json_decref(j);
			return -1;
		}
	}
	json_decref(j);
	memcpy(hash, h, sizeof(h));
	*have_hash = true;
	*out = v;
	return (long)n;
}

/* Lock held: reads the allocation file again; a change bumps the index. A
 * file that does not parse leaves everything as it was. */
static void reload(fake_t *f)
{
	ProtobufCMessage **v;
	long n = load_msgs(allocs_path, 4u << 20,
			   &flotilla__alloc_spec__descriptor, f->hash,
			   &f->have_hash, &v);
	if (n < 0)
		return;
	free_allocs(f);
	f->allocs = (Flotilla__AllocSpec **)v;
	f->nallocs = (size_t)n;
	f->index++;
	fprintf(stderr, "flt-fakecoord: index=%llu allocs=%zu\n",
		(unsigned long long)f->index, f->nallocs);
}

/* Lock held: reads the steps file again; a change bumps the index, so
 * that a watching agent syncs at once. */
static void reload_steps(fake_t *f)
{
	ProtobufCMessage **v;
	if (!steps_path)
		return;
	long n = load_msgs(steps_path, 16u << 20,
			   &flotilla__patch_step__descriptor, f->steps_hash,
			   &f->have_steps_hash, &v);
	if (n < 0)
		return;
	free_steps(f);
	f->steps = (Flotilla__PatchStep **)v;
	f->nsteps = (size_t)n;
	f->index++;
	fprintf(stderr, "flt-fakecoord: index=%llu steps=%zu\n",
		(unsigned long long)f->index, f->nsteps);
}

/* Lock held: what the last Sync said, for the test to read. */
static void write_state(fake_t *f, const Flotilla__SyncRequest *req)
{
	char tmp[4200];
	if (!state_path)
		return;
	json_t *j = json_object();
	json_object_set_new(j, "syncs", json_integer((json_int_t)f->syncs));
	json_object_set_new(j, "inventories",
			    json_integer((json_int_t)f->inventories));
	json_object_set_new(j, "chunks", json_integer((json_int_t)f->chunks));
	json_object_set_new(j, "inventory_digest",
			    json_string(req->inventory_digest));
	json_t *steps = json_array();
	for (size_t i = 0; i < req->n_steps; i++)
		json_array_append_new(steps,
				      flt_pb_to_json(&req->steps[i]->base));
	json_object_set_new(j, "steps", steps);
	json_object_set_new(j, "inventory",
			    f->inv ? flt_pb_to_json(&f->inv->base)
				   : json_null());
	snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
	if (json_dump_file(j, tmp, JSON_COMPACT) == 0 &&
	    rename(tmp, state_path) < 0)
		fprintf(stderr, "flt-fakecoord: %s: %s\n", state_path,
			strerror(errno));
	json_decref(j);
}

static void answer_watch(flt_request_t *r, uint64_t index, bool changed)
{
	Flotilla__WatchResponse resp = FLOTILLA__WATCH_RESPONSE__INIT;
	resp.index = index;
	resp.changed = changed;
	flt_request_reply(r, &resp.base);
}

/* Lock held: answers the watches that are due. */
static void wake_watches(fake_t *f, int64_t now)
{
	for (size_t i = 0; i < f->nwatches;) {
		struct watch *w = &f->watches[i];
		bool changed = f->index > w->known;
		if (changed || now >= w->deadline) {
			answer_watch(w->req, f->index, changed);
			f->watches[i] = f->watches[--f->nwatches];
			continue;
		}
		i++;
	}
}

static void log_request(fake_t *f, const char *method,
			const ProtobufCMessage *req)
{
	json_t *line = json_object();
	json_object_set_new(line, "t_ms", json_integer(flt_now_wall_ms()));
	json_object_set_new(line, "method", json_string(method));
	json_object_set_new(line, "request", flt_pb_to_json(req));
	char *s = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (s) {
		fprintf(f->log, "%s\n", s);
		fflush(f->log);
		free(s);
	}
}

static void handle(flt_request_t *r, void *arg)
{
	fake_t *f = arg;
	const flt_envelope_t *env = flt_request_envelope(r);
	flt_error_t err;

	switch (env->method) {
	case FLOTILLA__METHOD__METHOD_REGISTER: {
		Flotilla__RegisterResponse resp =
			FLOTILLA__REGISTER_RESPONSE__INIT;
		cleanup_pb Flotilla__RegisterRequest *req = NULL;
		if (flt_envelope_body(env,
				      &flotilla__register_request__descriptor,
				      (ProtobufCMessage **)&req, &err) < 0) {
			flt_request_fail(r, err.code, "%s", err.msg);
			return;
		}
		pthread_mutex_lock(&f->mtx);
		log_request(f, "register", &req->base);
		pthread_mutex_unlock(&f->mtx);
		uint8_t secret[FLT_NODE_SECRET_LEN];
		memset(secret, 7, sizeof(secret));
		resp.node_id = "fake-node";
		resp.node_secret.data = secret;
		resp.node_secret.len = sizeof(secret);
		resp.heartbeat_interval_ms = (uint32_t)interval_ms;
		if (have_grant_pk) {
			resp.grant_key.data = grant_pk;
			resp.grant_key.len = sizeof(grant_pk);
		}
		flt_request_reply(r, &resp.base);
		return;
	}
	case FLOTILLA__METHOD__METHOD_SYNC: {
		cleanup_pb Flotilla__SyncRequest *req = NULL;
		if (flt_envelope_body(env, &flotilla__sync_request__descriptor,
				      (ProtobufCMessage **)&req, &err) < 0) {
			flt_request_fail(r, err.code, "%s", err.msg);
			return;
		}
		Flotilla__SyncResponse resp = FLOTILLA__SYNC_RESPONSE__INIT;
		pthread_mutex_lock(&f->mtx);
		reload(f);
		reload_steps(f);
		log_request(f, "sync", &req->base);
		f->syncs++;
		if (req->inventory) {
			if (f->inv)
				flotilla__inventory__free_unpacked(f->inv,
								   NULL);
			f->inv = req->inventory;
			req->inventory = NULL;
			f->inventories++;
		}
		write_state(f, req);
		resp.heartbeat_interval_ms = (uint32_t)interval_ms;
		resp.index = f->index;
		if (have_grant_pk) {
			resp.grant_key.data = grant_pk;
			resp.grant_key.len = sizeof(grant_pk);
		}
		if (req->known_index < f->index) {
			resp.allocs_set = true;
			resp.allocs = f->allocs;
			resp.n_allocs = f->nallocs;
		}
		resp.inventory_digest = f->inv ? f->inv->digest : "";
		resp.steps = f->steps;
		resp.n_steps = f->nsteps;
		flt_request_reply(r, &resp.base);
		pthread_mutex_unlock(&f->mtx);
		return;
	}
	case FLOTILLA__METHOD__METHOD_FETCH_CHUNK: {
		cleanup_pb Flotilla__FetchChunkRequest *req = NULL;
		cleanup_free char *data = NULL;
		char path[4200];
		if (flt_envelope_body(
			    env, &flotilla__fetch_chunk_request__descriptor,
			    (ProtobufCMessage **)&req, &err) < 0) {
			flt_request_fail(r, err.code, "%s", err.msg);
			return;
		}
		if (!chunks_dir || !flt_sha256_valid(req->sha256)) {
			flt_request_fail(r, FLT_EPROTO, "no such chunk");
			return;
		}
		snprintf(path, sizeof(path), "%s/%s", chunks_dir, req->sha256);
		size_t len = 0;
		int rc = read_all(path, &data, &len);
		if (rc < 0) {
			flt_request_fail(r, rc == -ENOENT ? FLT_ENOTFOUND : rc,
					 "chunk %s: %s", req->sha256,
					 strerror(-rc));
			return;
		}
		Flotilla__FetchChunkResponse resp =
			FLOTILLA__FETCH_CHUNK_RESPONSE__INIT;
		resp.data.data = (uint8_t *)data;
		resp.data.len = len;
		pthread_mutex_lock(&f->mtx);
		f->chunks++;
		pthread_mutex_unlock(&f->mtx);
		flt_request_reply(r, &resp.base);
		return;
	}
	case FLOTILLA__METHOD__METHOD_WATCH: {
		cleanup_pb Flotilla__WatchRequest *req = NULL;
		if (flt_envelope_body(env, &flotilla__watch_request__descriptor,
				      (ProtobufCMessage **)&req, &err) < 0) {
			flt_request_fail(r, err.code, "%s", err.msg);
			return;
		}
		uint32_t wait = req->max_wait_ms < WATCH_MAX_MS
					? req->max_wait_ms
					: WATCH_MAX_MS;
		pthread_mutex_lock(&f->mtx);
		reload(f);
		if (f->index > req->known_index || !wait ||
		    f->nwatches == MAX_WATCHES) {
			answer_watch(r, f->index, f->index > req->known_index);
		} else {
			flt_request_defer(r);
			f->watches[f->nwatches++] = (struct watch){
				.req = r,
				.known = req->known_index,
				.deadline = flt_now_mono_ms() + wait,
			};
		}
		pthread_mutex_unlock(&f->mtx);
		return;
	}
	default:
		flt_request_fail(r, FLT_EMETHOD, "fake coordinator: no %s",
				 flt_method_name(env->method));
		return;
	}
}

static int serve(void)
{
	fake_t f = { .index = 0 };
	flt_server_t *srv = NULL;
	flt_error_t err;

	if (!listen_url || !allocs_path || !log_path) {
		fprintf(stderr, "flt-fakecoord serve: --listen, --allocs and "
				"--log are required\n");
		return 2;
	}
	if (grant_key_path) {
		uint8_t sk[64];
		if (flt_key_load_secret(grant_key_path, sk, &err) < 0) {
			fprintf(stderr, "flt-fakecoord: %s\n", err.msg);
			return 1;
		}
		memcpy(grant_pk, sk + 32, sizeof(grant_pk));
		have_grant_pk = true;
		sodium_memzero(sk, sizeof(sk));
	}
	if (!(f.log = fopen(log_path, "ae"))) {
		fprintf(stderr, "flt-fakecoord: %s: %s\n", log_path,
			strerror(errno));
		return 1;
	}
	pthread_mutex_init(&f.mtx, NULL);
	pthread_mutex_lock(&f.mtx);
	reload(&f);
	reload_steps(&f);
	pthread_mutex_unlock(&f.mtx);
	flt_server_opts_t so = { .url = listen_url,
				 .workers = 8,
				 .handler = handle,
				 .arg = &f,
				 .name = "fakecoord" };
	if (flt_server_open(&so, &srv, &err) < 0) {
		fprintf(stderr, "flt-fakecoord: %s\n", err.msg);
		return 1;
	}
	int sfd = flt_signal_fd();
	for (;;) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		if (poll(&p, 1, 50) > 0)
			break;
		pthread_mutex_lock(&f.mtx);
		reload(&f);
		reload_steps(&f);
		wake_watches(&f, flt_now_mono_ms());
		pthread_mutex_unlock(&f.mtx);
	}
	flt_server_close(srv);
	close(sfd);
	free_allocs(&f);
	free_steps(&f);
	if (f.inv)
		flotilla__inventory__free_unpacked(f.inv, NULL);
	fclose(f.log);
	pthread_mutex_destroy(&f.mtx);
	return 0;
}

/* ---- logs ---------------------------------------------------------------- */

static int logs(void)
{
	flt_client_opts_t o = { .url = url, .tls = &tls };
	Flotilla__AllocLogsRequest req = FLOTILLA__ALLOC_LOGS_REQUEST__INIT;
	Flotilla__AllocLogsResponse *resp = NULL;
	flt_client_t *cl;
	flt_error_t err;

	if (!url || !alloc_id) {
		fprintf(stderr, "flt-fakecoord logs: --url and --alloc are "
				"required\n");
		return 2;
	}
	req.alloc_id = (char *)alloc_id;
	req.task = (char *)task;
	req.stderr = use_stderr;
	req.offset = offset;
	req.tail = (uint32_t)tail;
	req.max_bytes = (uint32_t)max_bytes;
	if (grant_key_path) {
		uint8_t sk[64];
		/* Issued long enough ago that the expiry asked for fits in a
		 * lifetime an agent accepts. */
		int64_t now = flt_now_wall_ms();
		int64_t issued = grant_expires_in > 60000
					 ? now
					 : now + grant_expires_in - 60000;
		int64_t ttl =
			grant_expires_in > 60000 ? grant_expires_in : 60000;
		if (flt_key_load_secret(grant_key_path, sk, &err) < 0 ||
		    flt_grant_issue(grant_alloc ? grant_alloc : alloc_id,
				    grant_node, "test", issued, ttl, sk,
				    &req.grant, &req.grant_signature,
				    &err) < 0) {
			fprintf(stderr, "flt-fakecoord: %s\n", err.msg);
			return 1;
		}
		sodium_memzero(sk, sizeof(sk));
		if (grant_corrupt)
			req.grant_signature.data[7] ^= 1;
	}
	int rc = flt_client_open(&o, &cl, &err);
	if (rc == 0) {
		rc = flt_client_call(cl, FLOTILLA__METHOD__METHOD_AGENT_LOGS,
				     NULL, &req.base,
				     &flotilla__alloc_logs_response__descriptor,
				     (ProtobufCMessage **)&resp, 10000, &err);
		flt_client_close(cl);
	}
	json_t *out = json_object();
	bool transport = rc == FLT_ETRANSPORT || rc == -ETIMEDOUT;
	if (transport) {
		json_object_set_new(out, "no_reply", json_string(err.msg));
	} else if (rc < 0) {
		json_object_set_new(out, "error",
				    json_integer(flt_wire_code_out(rc)));
		json_object_set_new(out, "message", json_string(err.msg));
	} else {
		json_t *d = json_stringn((const char *)resp->data.data,
					 resp->data.len);
		if (!d)
			d = json_integer((json_int_t)resp->data.len);
		json_object_set_new(
			out, json_is_string(d) ? "data" : "data_invalid_utf8",
			d);
		json_object_set_new(out, "offset", json_integer(resp->offset));
		json_object_set_new(out, "rotated",
				    json_boolean(resp->rotated));
		flotilla__alloc_logs_response__free_unpacked(resp, NULL);
	}
	char *s = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	printf("%s\n", s ? s : "{}");
	free(s);
	free(req.grant.data);
	free(req.grant_signature.data);
	return transport ? 3 : rc < 0 ? 1 : 0;
}

/* ---- pack and keygen -------------------------------------------------- */

static int pack(void)
{
	cleanup_free char *data = NULL;
	flt_error_t err;
	size_t len = 0;
	char path[4200], hex[FLT_SHA256_HEX];

	if (!pkg_name || !pkg_version || !pkg_file || !chunks_dir) {
		fprintf(stderr, "flt-fakecoord pack: --name, --version, --file "
				"and --chunks are required\n");
		return 2;
	}
	int rc = read_all(pkg_file, &data, &len);
	if (rc < 0) {
		fprintf(stderr, "flt-fakecoord: %s: %s\n", pkg_file,
			strerror(-rc));
		return 1;
	}
	Flotilla__PackageManifest *m = flt_xcalloc(1, sizeof(*m));
	flotilla__package_manifest__init(m);
	m->name = flt_xstrdup(pkg_name);
	m->version = flt_xstrdup(pkg_version);
	flt_sha256_hex(data, len, hex);
	m->sha256 = flt_xstrdup(hex);
	m->size = len;
	m->chunk_size = (uint32_t)chunk_size;
	m->format = flt_xstrdup(pkg_format);
	m->file_name = flt_xstrdup(pkg_file_name);
	m->key_id = flt_xstrdup("");
	m->created_at_ms = flt_now_wall_ms();
	m->n_chunks = (len + (size_t)chunk_size - 1) / (size_t)chunk_size;
	m->chunks =
		flt_xcalloc(m->n_chunks ? m->n_chunks : 1, sizeof(*m->chunks));
	for (size_t i = 0; i < m->n_chunks; i++) {
		size_t off = i * (size_t)chunk_size;
		size_t n = len - off < (size_t)chunk_size ? len - off
							  : (size_t)chunk_size;
		flt_sha256_hex(data + off, n, hex);
		m->chunks[i] = flt_xstrdup(hex);
		snprintf(path, sizeof(path), "%s/%s", chunks_dir, hex);
		FILE *out = fopen(path, "we");
		if (!out || fwrite(data + off, 1, n, out) != n ||
		    fclose(out) != 0) {
			fprintf(stderr, "flt-fakecoord: %s: %s\n", path,
				strerror(errno));
			return 1;
		}
	}
	if (sign_key) {
		uint8_t sk[64];
		free(m->key_id);
		m->key_id = NULL;
		if (flt_key_load_secret(sign_key, sk, &err) < 0 ||
		    flt_pkg_sign(m, sk, &err) < 0) {
			fprintf(stderr, "flt-fakecoord: %s\n", err.msg);
			return 1;
		}
		sodium_memzero(sk, sizeof(sk));
	}
	if (flt_pkg_manifest_check(m, &err) < 0) {
		fprintf(stderr, "flt-fakecoord: %s\n", err.msg);
		return 1;
	}
	json_t *j = flt_pb_to_json(&m->base);
	char *s = json_dumps(j, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	json_decref(j);
	flotilla__package_manifest__free_unpacked(m, NULL);
	return 0;
}

static int keygen(void)
{
	flt_error_t err;
	if (!public_path || !secret_path) {
		fprintf(stderr, "flt-fakecoord keygen: --public and --secret "
				"are required\n");
		return 2;
	}
	if (flt_key_generate(public_path, secret_path, &err) < 0) {
		fprintf(stderr, "flt-fakecoord: %s\n", err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	flt_error_t err;
	int next;

	flt_signals_block();
	flt_log_init("flt-fakecoord", FLT_LOG_WARN);
	if (sodium_init() < 0)
		return 1;
	static const struct {
		const char *name;
		const flt_flag_t *flags;
		int (*run)(void);
	} cmds[] = {
		{ "serve", serve_flags, serve },
		{ "logs", logs_flags, logs },
		{ "pack", pack_flags, pack },
		{ "keygen", keygen_flags, keygen },
	};
	size_t c = 0;
	while (argc >= 2 && c < FLT_ARRAY_SIZE(cmds) &&
	       strcmp(argv[1], cmds[c].name) != 0)
		c++;
	if (argc < 2 || c == FLT_ARRAY_SIZE(cmds)) {
		fprintf(stderr,
			"usage: flt-fakecoord serve|logs|pack|keygen [FLAGS]\n");
		return 2;
	}
	int rc =
		flt_flags_parse(cmds[c].flags, argc - 1, argv + 1, &next, &err);
	if (rc != 0 || next != argc - 1) {
		fprintf(stderr, "flt-fakecoord: %s\n",
			rc < 0 ? err.msg : "unexpected argument");
		return 2;
	}
	return cmds[c].run();
}
