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
 *     Runs until SIGINT or SIGTERM.
 *
 *   flt-fakecoord logs --url URL --alloc ID [--task NAME] [--stderr]
 *                      [--offset N] [--tail N] [--max N] [--tls-* ...]
 *     One AllocLogs call; prints {"data": ..., "offset": N, "rotated": B}
 *     (exit 0), {"error": <wire code>, "message": ...} (exit 1), or
 *     {"no_reply": ...} when the call failed in transport (exit 3).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

#include <jansson.h>
#include <sodium.h>

#include "flotilla/flags.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#define WATCH_MAX_MS 30000
#define MAX_WATCHES 64

static const char *listen_url, *allocs_path, *log_path;
static long interval_ms = 1000;
static const char *url, *alloc_id, *task = "";
static bool use_stderr;
static long offset, tail, max_bytes;
static flt_tls_opts_t tls;

static const flt_flag_t serve_flags[] = {
	{ "listen", FLT_FLAG_STRING, &listen_url, "URL", "where agents dial",
	  0, 0, NULL },
	{ "allocs", FLT_FLAG_STRING, &allocs_path, "FILE",
	  "JSON array of AllocSpec", 0, 0, NULL },
	{ "log", FLT_FLAG_STRING, &log_path, "FILE",
	  "append every SyncRequest here", 0, 0, NULL },
	{ "interval", FLT_FLAG_INT, &interval_ms, "MS", "heartbeat interval",
	  100, 600000, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static const flt_flag_t logs_flags[] = {
	{ "url", FLT_FLAG_STRING, &url, "URL", "the agent's --api", 0, 0,
	  NULL },
	{ "alloc", FLT_FLAG_STRING, &alloc_id, "ID", "allocation id", 0, 0,
	  NULL },
	{ "task", FLT_FLAG_STRING, &task, "NAME", "task (default: first)", 0,
	  0, NULL },
	{ "stderr", FLT_FLAG_BOOL, &use_stderr, NULL, "stderr, not stdout", 0,
	  0, NULL },
	{ "offset", FLT_FLAG_INT, &offset, "N", "offset (-1: tail)", -1,
	  1L << 40, NULL },
	{ "tail", FLT_FLAG_INT, &tail, "N", "bytes of a tail read", 0,
	  1L << 30, NULL },
	{ "max", FLT_FLAG_INT, &max_bytes, "N", "most bytes", 0, 1L << 30,
	  NULL },
	{ "tls-ca", FLT_FLAG_STRING, &tls.ca_file, "FILE", "CA", 0, 0, NULL },
	{ "tls-cert", FLT_FLAG_STRING, &tls.cert_file, "FILE", "cert", 0, 0,
	  NULL },
	{ "tls-key", FLT_FLAG_STRING, &tls.key_file, "FILE", "key", 0, 0,
	  NULL },
	{ "tls-server-name", FLT_FLAG_STRING, &tls.server_name, "NAME",
	  "name to verify", 0, 0, NULL },
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
	struct watch {
		flt_request_t *req;
		uint64_t known;
		int64_t deadline;
	} watches[MAX_WATCHES];
	size_t nwatches;
} fake_t;

static void free_allocs(fake_t *f)
{
	for (size_t i = 0; i < f->nallocs; i++)
		flotilla__alloc_spec__free_unpacked(f->allocs[i], NULL);
	free(f->allocs);
	f->allocs = NULL;
	f->nallocs = 0;
}

/* Lock held: reads the allocation file again; a change bumps the index. A
 * file that does not parse leaves everything as it was. */
static void reload(fake_t *f)
{
	cleanup_free char *text = NULL;
	uint8_t h[16];
	json_error_t je;
	flt_error_t err;

	if (flt_read_file(allocs_path, 4u << 20, &text) < 0)
		return;
	crypto_generichash(h, sizeof(h), (uint8_t *)text, strlen(text), NULL,
			   0);
	if (f->have_hash && !memcmp(h, f->hash, sizeof(h)))
		return;
	json_t *j = json_loads(text, 0, &je);
	if (!j || !json_is_array(j)) {
		fprintf(stderr, "flt-fakecoord: %s: not a JSON array\n",
			allocs_path);
		json_decref(j);
		return;
	}
	size_t n = json_array_size(j);
	Flotilla__AllocSpec **v = flt_xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		if (flt_pb_from_json(&flotilla__alloc_spec__descriptor,
				     json_array_get(j, i),
				     (ProtobufCMessage **)&v[i], &err) < 0) {
			fprintf(stderr, "flt-fakecoord: %s: [%zu]: %s\n",
				allocs_path, i, err.msg);
			for (size_t k = 0; k < i; k++)
				flotilla__alloc_spec__free_unpacked(v[k], NULL);
			free(v);
			json_decref(j);
			return;
		}
	}
	json_decref(j);
	free_allocs(f);
	f->allocs = v;
	f->nallocs = n;
	memcpy(f->hash, h, sizeof(h));
	f->have_hash = true;
	f->index++;
	fprintf(stderr, "flt-fakecoord: index=%llu allocs=%zu\n",
		(unsigned long long)f->index, n);
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
		log_request(f, "sync", &req->base);
		resp.heartbeat_interval_ms = (uint32_t)interval_ms;
		resp.index = f->index;
		if (req->known_index < f->index) {
			resp.allocs_set = true;
			resp.allocs = f->allocs;
			resp.n_allocs = f->nallocs;
		}
		flt_request_reply(r, &resp.base);
		pthread_mutex_unlock(&f->mtx);
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
	if (!(f.log = fopen(log_path, "ae"))) {
		fprintf(stderr, "flt-fakecoord: %s: %s\n", log_path,
			strerror(errno));
		return 1;
	}
	pthread_mutex_init(&f.mtx, NULL);
	pthread_mutex_lock(&f.mtx);
	reload(&f);
	pthread_mutex_unlock(&f.mtx);
	flt_server_opts_t so = { .url = listen_url, .workers = 8,
				 .handler = handle, .arg = &f,
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
		wake_watches(&f, flt_now_mono_ms());
		pthread_mutex_unlock(&f.mtx);
	}
	flt_server_close(srv);
	close(sfd);
	free_allocs(&f);
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
		json_object_set_new(out,
				    json_is_string(d) ? "data"
						      : "data_invalid_utf8",
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
	return transport ? 3 : rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	flt_error_t err;
	int next;

	flt_signals_block();
	flt_log_init("flt-fakecoord", FLT_LOG_WARN);
	if (sodium_init() < 0)
		return 1;
	if (argc < 2 || (strcmp(argv[1], "serve") && strcmp(argv[1], "logs"))) {
		fprintf(stderr, "usage: flt-fakecoord serve|logs [FLAGS]\n");
		return 2;
	}
	bool is_serve = !strcmp(argv[1], "serve");
	const flt_flag_t *flags = is_serve ? serve_flags : logs_flags;
	int rc = flt_flags_parse(flags, argc - 1, argv + 1, &next, &err);
	if (rc != 0 || next != argc - 1) {
		fprintf(stderr, "flt-fakecoord: %s\n",
			rc < 0 ? err.msg : "unexpected argument");
		return 2;
	}
	return is_serve ? serve() : logs();
}
