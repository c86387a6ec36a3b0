/* The agent's own API: allocation logs (see api.h). */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "api.h"
#include "flotilla/grant.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"
#include "logfile.h"

struct agent_api {
	flt_server_t *srv;
	agent_tasks_t *tasks;
	pthread_mutex_t mtx; /* guards what follows (the sync thread sets
			      * it, the server's threads read it) */
	char node_id[65]; /* "" until registered */
	uint8_t key[32];
	bool has_key;
};

void agent_api_set_trust(agent_api_t *a, const char *node_id,
			 const uint8_t *key)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mtx);
	snprintf(a->node_id, sizeof(a->node_id), "%s", node_id ? node_id : "");
	a->has_key = key != NULL;
	if (key)
		memcpy(a->key, key, sizeof(a->key));
	pthread_mutex_unlock(&a->mtx);
}

/* 0 when req carries a grant for its allocation on this node that the
 * coordinator signed and that has not expired; FLT_EAUTH otherwise. */
static int check_grant(agent_api_t *a, const Flotilla__AllocLogsRequest *req,
		       flt_error_t *err)
{
	uint8_t key[32];
	char node_id[65];
	bool has_key;

	pthread_mutex_lock(&a->mtx);
	has_key = a->has_key;
	memcpy(key, a->key, sizeof(key));
	snprintf(node_id, sizeof(node_id), "%s", a->node_id);
	pthread_mutex_unlock(&a->mtx);
	return flt_grant_check(req->grant, req->grant_signature,
			       has_key ? key : NULL, req->alloc_id,
			       *node_id ? node_id : NULL, flt_now_wall_ms(),
			       NULL, err);
}

/* Plain TCP off loopback: the grants travel in clear and can be replayed
 * by whoever sees one, for as long as it lives. */
static bool exposed(const char *url)
{
	static const char *const safe[] = { "ipc://",           "inproc://",
					    "tcp://127.",       "tcp://[::1]",
					    "tcp://localhost:", "tcp4://127.",
					    "tcp6://[::1]" };
	if (flt_url_is_tls(url))
		return false;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(safe); i++)
		if (!strncmp(url, safe[i], strlen(safe[i])))
			return false;
	return true;
}

static void serve_logs(agent_api_t *a, flt_request_t *r)
{
	cleanup_pb Flotilla__AllocLogsRequest *req = NULL;
	agent_log_chunk_t c;
	char dir[1200];
	flt_error_t err;

	if (flt_request_body(r, &flotilla__alloc_logs_request__descriptor,
			     &req) < 0)
		return;
	if (!agent_is_uuid(req->alloc_id)) {
		flt_request_fail(r, FLT_EPROTO,
				 "alloc_id: not an allocation id (a UUID)");
		return;
	}
	if (check_grant(a, req, &err) < 0) {
		flt_info("agent logs refused alloc=%s peer=%s reason=\"%s\"",
			 req->alloc_id, flt_request_peer(r), err.msg);
		flt_request_fail(r, err.code, "%s", err.msg);
		return;
	}
	if (*req->task && !flt_is_name(req->task, 63)) {
		flt_request_fail(r, FLT_EPROTO,
				 "task: not a task name (1 to 63 of "
				 "[A-Za-z0-9._-])");
		return;
	}
	if (req->offset < -1) {
		flt_request_fail(r, FLT_EPROTO,
				 "offset: must be -1 (the end) or at least 0");
		return;
	}
	size_t max = req->max_bytes && req->max_bytes < AGENT_API_LOG_MAX
			     ? req->max_bytes
			     : AGENT_API_LOG_MAX;
	size_t tail = req->tail ? req->tail : AGENT_API_TAIL_DEFAULT;
	if (agent_tasks_log_dir(a->tasks, req->alloc_id, req->task, dir,
				sizeof(dir), &err) < 0) {
		flt_request_fail(r, err.code, "%s", err.msg);
		return;
	}
	const char *stream = req->stderr ? "stderr.log" : "stdout.log";
	int rc = agent_logfile_read(dir, stream, req->offset, tail, max, &c);
	if (rc == -ENOENT) {
		flt_request_fail(r, FLT_ENOTFOUND,
				 "allocation %s task %s: no %s yet",
				 req->alloc_id,
				 *req->task ? req->task : "(first)", stream);
		return;
	}
	if (rc < 0) {
		flt_warn("log read failed dir=%s file=%s error=\"%s\"", dir,
			 stream, strerror(-rc));
		flt_request_fail(r, rc == -ENOMEM ? -EAGAIN : rc,
				 "allocation %s: %s: %s", req->alloc_id, stream,
				 strerror(-rc));
		return;
	}
	Flotilla__AllocLogsResponse resp = FLOTILLA__ALLOC_LOGS_RESPONSE__INIT;
	resp.data.data = (uint8_t *)c.data;
	resp.data.len = c.len;
	resp.offset = c.next_offset;
	resp.rotated = c.rotated;
	flt_request_reply(r, &resp.base);
	free(c.data);
}

static void handle(flt_request_t *r, void *arg)
{
	agent_api_t *a = arg;
	const flt_envelope_t *env = flt_request_envelope(r);

	switch (env->method) {
	case FLOTILLA__METHOD__METHOD_AGENT_LOGS: serve_logs(a, r); return;
	default:
		flt_request_fail(r, FLT_EMETHOD,
				 "method %s is not served by an agent's API",
				 flt_method_name(env->method));
		return;
	}
}

void agent_api_advertised(const char *url, const char *hostname, char *out,
			  size_t len)
{
	static const char *const wild[] = { "0.0.0.0:", "[::]:", ":" };
	const char *host = strstr(url, "://");
	snprintf(out, len, "%s", url);
	if (!host || strncmp(url, "ipc", 3) == 0 || !*hostname)
		return;
	host += 3;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(wild); i++)
		if (!strncmp(host, wild[i], strlen(wild[i]))) {
			snprintf(out, len, "%.*s%s:%s", (int)(host - url), url,
				 hostname, host + strlen(wild[i]));
			return;
		}
}

int agent_api_open(const char *url, const flt_tls_opts_t *tls, uint32_t idle_ms,
		   unsigned max_per_source, agent_tasks_t *tasks,
		   agent_api_t **out, flt_error_t *err)
{
	agent_api_t *a = flt_xcalloc(1, sizeof(*a));
	/* Few callers, short answers: a handful of contexts is plenty. */
	flt_server_opts_t so = { .url = url,
				 .tls = tls,
				 .workers = 4,
				 .handler = handle,
				 .arg = a,
				 .name = "agent-api",
				 .idle_ms = idle_ms,
				 .max_per_source = max_per_source };

	a->tasks = tasks;
	pthread_mutex_init(&a->mtx, NULL);
	int rc = flt_server_open(&so, &a->srv, err);
	if (rc < 0) {
		pthread_mutex_destroy(&a->mtx);
		free(a);
		return rc;
	}
	if (exposed(url))
		flt_warn("--api %s is plain TCP: the coordinator's grants "
			 "travel in clear and may be replayed for their "
			 "minute by whoever sees one; use tls+tcp:// or bind "
			 "it to 127.0.0.1",
			 url);
	flt_info("agent API listening url=%s", url);
	*out = a;
	return 0;
}

void agent_api_close(agent_api_t *a)
{
	if (!a)
		return;
	flt_server_close(a->srv);
	pthread_mutex_destroy(&a->mtx);
	sodium_memzero(a->key, sizeof(a->key));
	free(a);
}
