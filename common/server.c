#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <sodium.h>

#include "flotilla/flags.h"
#include "flotilla/hash.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

/*
 * An asynchronous REP server on nng contexts. Each flt_request owns one
 * context and one aio and cycles RECV -> HANDLE -> SEND -> RECV. The server
 * keeps `workers` contexts receiving; a handler that defers its answer
 * (long-polls, replies after a group commit) takes its context out of that
 * pool, and a spare one takes its place, so deferred replies never starve
 * other callers. Contexts beyond the pool rest on a free list.
 *
 * Beside the contexts, a table of the socket's connections (nng pipes,
 * through nng_pipe_notify) carries the deadlines and limits of wire.h:
 * each connection's source, last activity and requests in flight, and a
 * sweeper thread that closes the idle ones.
 */

/* At most one log line of each kind per this, per server. */
#define NOTE_EVERY_MS 10000

enum req_state { ST_RECV, ST_HANDLE, ST_SEND };

struct flt_request {
	flt_server_t *srv;
	nng_aio *aio;
	nng_ctx ctx;
	enum req_state state;
	flt_envelope_t *env;
	nng_pipe pipe;
	bool counted; /* in its connection's in-flight count */
	char peer[80];
	flt_request_answer_fn on_answer; /* called once, as it is answered */
	void *on_answer_arg;
	flt_request_t *next_free;
	flt_request_t *next_all;
};

/*
 * The connections of one IP address. Outsiders choose their addresses (an
 * IPv6 peer has a /64 of them), and hash.h's FNV is no defence against
 * chosen collisions: the map's key is the address's SipHash under a key
 * of the server's own, in hex.
 */
typedef struct source {
	char key[2 * crypto_shorthash_BYTES + 1]; /* in srv->sources */
	char addr[INET6_ADDRSTRLEN];
	unsigned n;
} source_t;

/* One connection: an nng pipe between ADD_PRE and REM_POST. */
typedef struct conn {
	char key[12]; /* the pipe id in decimal: the key in srv->conns */
	nng_pipe pipe;
	source_t *src; /* NULL: no IP address (ipc, inproc) */
	int64_t last_ms; /* handed over, or last complete request or reply */
	unsigned inflight; /* requests received, not yet answered */
} conn_t;

/* What the rate-limited log lines report. */
typedef struct notes {
	uint64_t refused, closed;
	char src[INET6_ADDRSTRLEN]; /* the last source refused */
} notes_t;

struct flt_server {
	nng_socket sock;
	nng_listener listener;
	flt_handler_fn handler;
	void *arg;
	unsigned workers;
	char name[32];
	/* mtx: the contexts (receiving, closing, the lists). */
	nng_mtx *mtx;
	unsigned receiving;
	bool closing;
	flt_request_t *all;
	flt_request_t *free;
	/*
	 * conn_mtx: the connection table, the sources, the notes and
	 * sweep_stop. A leaf: nothing is called under it but the maps, and
	 * nng is called (nng_pipe_close) and logs written only after it is
	 * released. It is taken inside every reply, under whatever lock the
	 * replying thread holds, and never together with mtx.
	 */
	nng_mtx *conn_mtx;
	nng_cv *sweep_cv;
	nng_thread *sweeper;
	bool sweep_stop;
	flt_map_t conns;
	flt_map_t sources;
	uint8_t source_key[crypto_shorthash_KEYBYTES];
	int64_t idle_ms;
	int64_t sweep_ms;
	unsigned max_per_source;
	notes_t notes;
	int64_t next_note_ms;
};

static void request_cb(void *arg);

/* ---- connections ------------------------------------------------------ */

/* The IP address of p's peer, without the port; false when it has none. */
static bool source_of(nng_pipe p, char *out, size_t len)
{
	nng_sockaddr sa;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return false;
	if (sa.s_family == NNG_AF_INET)
		return inet_ntop(AF_INET, &sa.s_in.sa_addr, out,
				 (socklen_t)len) != NULL;
	if (sa.s_family == NNG_AF_INET6)
		return inet_ntop(AF_INET6, sa.s_in6.sa_addr, out,
				 (socklen_t)len) != NULL;
	return false;
}

static void source_key(const flt_server_t *s, const char *addr,
		       char out[2 * crypto_shorthash_BYTES + 1])
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const uint8_t *)addr, strlen(addr), s->source_key);
	sodium_bin2hex(out, 2 * crypto_shorthash_BYTES + 1, h, sizeof(h));
}

static conn_t *conn_find(flt_server_t *s, nng_pipe p)
{
	char key[12];
	snprintf(key, sizeof(key), "%u", (unsigned)nng_pipe_id(p));
	return flt_map_get(&s->conns, key);
}

/* Under conn_mtx: takes the counts to log once the last line is old. */
static bool notes_take(flt_server_t *s, int64_t now, notes_t *out)
{
	if ((!s->notes.refused && !s->notes.closed) || now < s->next_note_ms)
		return false;
	*out = s->notes;
	memset(&s->notes, 0, sizeof(s->notes));
	s->next_note_ms = now + NOTE_EVERY_MS;
	return true;
}

static void notes_log(flt_server_t *s, const notes_t *n)
{
	if (n->refused)
		flt_warn("refused connections over the per-source limit "
			 "server=%s refused=%llu last_source=%s limit=%u",
			 s->name, (unsigned long long)n->refused, n->src,
			 s->max_per_source);
	if (n->closed)
		flt_info("closed idle connections server=%s closed=%llu "
			 "idle_ms=%lld",
			 s->name, (unsigned long long)n->closed,
			 (long long)s->idle_ms);
}

/*
 * ADD_PRE: nng has finished the SP handshake and not yet started the
 * pipe. Closing it here rejects it before any message is read.
 */
static void pipe_added(flt_server_t *s, nng_pipe p)
{
	char addr[INET6_ADDRSTRLEN], key[2 * crypto_shorthash_BYTES + 1];
	bool has_addr = source_of(p, addr, sizeof(addr));
	int64_t now = flt_now_mono_ms();
	source_t *src = NULL;
	notes_t n;

	if (has_addr)
		source_key(s, addr, key);
	nng_mtx_lock(s->conn_mtx);
	if (has_addr) {
		src = flt_map_get(&s->sources, key);
		if (src && s->max_per_source && src->n >= s->max_per_source) {
			s->notes.refused++;
			snprintf(s->notes.src, sizeof(s->notes.src), "%s",
				 addr);
			bool log = notes_take(s, now, &n);
			nng_mtx_unlock(s->conn_mtx);
			nng_pipe_close(p);
			if (log)
				notes_log(s, &n);
			return;
		}
		if (!src) {
			src = flt_xcalloc(1, sizeof(*src));
			memcpy(src->key, key, sizeof(src->key));
			snprintf(src->addr, sizeof(src->addr), "%s", addr);
			flt_map_put(&s->sources, src->key, src);
		}
		src->n++;
	}
	conn_t *c = flt_xcalloc(1, sizeof(*c));
	snprintf(c->key, sizeof(c->key), "%u", (unsigned)nng_pipe_id(p));
	c->pipe = p;
	c->src = src;
	c->last_ms = now;
	flt_map_put(&s->conns, c->key, c);
	nng_mtx_unlock(s->conn_mtx);
}

/* REM_POST: nng is done with the pipe (also one rejected in ADD_PRE). */
static void pipe_removed(flt_server_t *s, nng_pipe p)
{
	nng_mtx_lock(s->conn_mtx);
	conn_t *c = conn_find(s, p);
	if (c) {
		flt_map_del(&s->conns, c->key);
		if (c->src && --c->src->n == 0) {
			flt_map_del(&s->sources, c->src->key);
			free(c->src);
		}
		free(c);
	}
	nng_mtx_unlock(s->conn_mtx);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	flt_server_t *s = arg;
	if (ev == NNG_PIPE_EV_ADD_PRE)
		pipe_added(s, p);
	else if (ev == NNG_PIPE_EV_REM_POST)
		pipe_removed(s, p);
}

/* A complete request arrived: its connection is busy until the answer. */
static void conn_begin(flt_request_t *r)
{
	flt_server_t *s = r->srv;
	nng_mtx_lock(s->conn_mtx);
	conn_t *c = conn_find(s, r->pipe);
	if (c) {
		c->inflight++;
		c->last_ms = flt_now_mono_ms();
		r->counted = true;
	}
	nng_mtx_unlock(s->conn_mtx);
}

/* The request is answered (or dropped): the idle clock starts again. */
static void conn_end(flt_request_t *r)
{
	flt_server_t *s = r->srv;
	if (!r->counted)
		return;
	r->counted = false;
	nng_mtx_lock(s->conn_mtx);
	conn_t *c = conn_find(s, r->pipe);
	if (c) {
		c->inflight--;
		c->last_ms = flt_now_mono_ms();
	}
	nng_mtx_unlock(s->conn_mtx);
}

/*
 * The sweeper: every sweep_ms, closes the connections with nothing in
 * flight whose last activity is idle_ms old, and writes the notes due.
 */
static void sweep_main(void *arg)
{
	flt_server_t *s = arg;
	nng_pipe *idle = NULL;
	size_t cap = 0;

	nng_mtx_lock(s->conn_mtx);
	while (!s->sweep_stop) {
		nng_cv_until(s->sweep_cv, nng_clock() + (nng_time)s->sweep_ms);
		if (s->sweep_stop)
			break;
		int64_t now = flt_now_mono_ms();
		size_t n = 0, pos = 0;
		const char *key;
		void *val;
		while (flt_map_next(&s->conns, &pos, &key, &val)) {
			conn_t *c = val;
			if (c->inflight || now - c->last_ms < s->idle_ms)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				idle = flt_xrealloc(idle, cap * sizeof(*idle));
			}
			idle[n++] = c->pipe;
			/* Once per bound, however long nng takes to let go. */
			c->last_ms = now;
		}
		s->notes.closed += n;
		notes_t notes;
		bool log = notes_take(s, now, &notes);
		nng_mtx_unlock(s->conn_mtx);
		for (size_t i = 0; i < n; i++)
			nng_pipe_close(idle[i]);
		if (log)
			notes_log(s, &notes);
		nng_mtx_lock(s->conn_mtx);
	}
	nng_mtx_unlock(s->conn_mtx);
	free(idle);
}

int flt_server_idle_parse(const char *str, uint32_t *ms, flt_error_t *err)
{
	uint64_t v;
	if (flt_duration_parse(str, 86400000, &v, NULL) < 0 || v < 1000)
		return flt_err(err, FLT_EUSAGE,
			       "--idle-timeout \"%s\": a duration from 1s to "
			       "24h, such as 60s or 5m",
			       str);
	*ms = (uint32_t)v;
	return 0;
}

size_t flt_server_connections(flt_server_t *s)
{
	nng_mtx_lock(s->conn_mtx);
	size_t n = flt_map_count(&s->conns);
	nng_mtx_unlock(s->conn_mtx);
	return n;
}

/* ---- requests --------------------------------------------------------- */

static flt_request_t *request_new(flt_server_t *s)
{
	flt_request_t *r = flt_xcalloc(1, sizeof(*r));
	r->srv = s;
	if (nng_aio_alloc(&r->aio, request_cb, r) != 0 ||
	    nng_ctx_open(&r->ctx, s->sock) != 0) {
		if (r->aio)
			nng_aio_free(r->aio);
		free(r);
		return NULL;
	}
	r->next_all = s->all;
	s->all = r;
	return r;
}

/* Called with s->mtx held: starts one more context receiving. */
static void start_receiver(flt_server_t *s)
{
	flt_request_t *r = s->free;
	if (r)
		s->free = r->next_free;
	else if (!(r = request_new(s)))
		return;
	s->receiving++;
	r->state = ST_RECV;
	nng_ctx_recv(r->ctx, r->aio);
}

static void send_msg(flt_request_t *r, nng_msg *msg)
{
	conn_end(r);
	flt_envelope_free(r->env);
	r->env = NULL;
	r->state = ST_SEND;
	nng_aio_set_msg(r->aio, msg);
	nng_ctx_send(r->ctx, r->aio);
}

/* A context whose exchange is over goes back to receiving or rests. */
static void recycle(flt_request_t *r)
{
	flt_server_t *s = r->srv;
	nng_mtx_lock(s->mtx);
	if (!s->closing && s->receiving < s->workers) {
		s->receiving++;
		r->state = ST_RECV;
		nng_ctx_recv(r->ctx, r->aio);
	} else {
		r->next_free = s->free;
		s->free = r;
	}
	nng_mtx_unlock(s->mtx);
}

/* Tells the answer hook, if any, how the request is answered. */
static void answered(flt_request_t *r, int code, const char *msg)
{
	flt_request_answer_fn fn = r->on_answer;
	if (!fn)
		return;
	r->on_answer = NULL;
	fn(r, code, msg, r->on_answer_arg);
}

static void answer_error(flt_request_t *r, uint32_t method, uint64_t id,
			 int code, const char *msg)
{
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	Flotilla__Error e = FLOTILLA__ERROR__INIT;
	nng_msg *m;

	env.version = FLT_WIRE_VERSION;
	env.method = (Flotilla__Method)method;
	env.request_id = id;
	answered(r, code, msg);
	e.code = flt_wire_code_out(code);
	/* A message may quote what a request held: escaped here, so that
	 * any client, whatever it does with it, shows it safely, and the
	 * envelope keeps its rule of no control characters. */
	cleanup_free char *shown = flt_escape_dup(msg, strlen(msg), 0);
	e.message = shown;
	env.error = &e;
	if (flt_envelope_pack(&env, NULL, &m, NULL) < 0) {
		/* Cannot even answer: drop the request, keep the context. */
		conn_end(r);
		flt_envelope_free(r->env);
		r->env = NULL;
		recycle(r);
		return;
	}
	send_msg(r, m);
}

/* Answers a message that is not a request it can serve with the error,
 * under the method and id it carried, if any; frees msg. */
static void refuse(flt_request_t *r, nng_msg *msg, int code,
		   const flt_error_t *err)
{
	uint32_t method;
	uint64_t id;
	flt_envelope_peek(nng_msg_body(msg), nng_msg_len(msg), &method, &id);
	nng_msg_free(msg);
	flt_debug("refused message server=%s peer=%s error=\"%s\"",
		  r->srv->name, flt_request_peer(r), err->msg);
	answer_error(r, method, id, code, err->msg);
}

static void handle_recv(flt_request_t *r)
{
	flt_server_t *s = r->srv;
	nng_msg *msg = nng_aio_get_msg(r->aio);
	flt_error_t err;

	nng_mtx_lock(s->mtx);
	s->receiving--;
	nng_mtx_unlock(s->mtx);

	r->state = ST_HANDLE;
	r->pipe = nng_msg_get_pipe(msg);
	r->peer[0] = '\0';
	conn_begin(r);
	/* Read whole up to FLT_WIRE_MAX_FRAME so that it can be answered. */
	int rc = flt_wire_request_size_check(nng_msg_len(msg), &err);
	if (rc < 0) {
		refuse(r, msg, FLT_EPROTO, &err);
		return;
	}
	rc = flt_envelope_unpack(nng_msg_body(msg), nng_msg_len(msg), &r->env,
				 &err);
	if (rc < 0) {
		refuse(r, msg, rc, &err);
		return;
	}
	nng_msg_free(msg);
	s->handler(r, s->arg);
}

static void request_cb(void *arg)
{
	flt_request_t *r = arg;
	flt_server_t *s = r->srv;
	int rc = nng_aio_result(r->aio);

	switch (r->state) {
	case ST_RECV:
		if (rc == NNG_ECLOSED || rc == NNG_ECANCELED)
			return;
		if (rc != 0) {
			flt_debug("receive failed server=%s error=\"%s\"",
				  s->name, nng_strerror(rc));
			nng_ctx_recv(r->ctx, r->aio);
			return;
		}
		handle_recv(r);
		return;
	case ST_SEND:
		if (rc != 0) {
			/* The peer went away: nng did not take the message. */
			nng_msg_free(nng_aio_get_msg(r->aio));
			nng_aio_set_msg(r->aio, NULL);
			if (rc == NNG_ECLOSED)
				return;
		}
		recycle(r);
		return;
	case ST_HANDLE: return;
	}
}

int flt_server_open(const flt_server_opts_t *o, flt_server_t **out,
		    flt_error_t *err)
{
	flt_server_t *s = flt_xcalloc(1, sizeof(*s));
	int rc;

	s->handler = o->handler;
	s->arg = o->arg;
	s->workers = o->workers ? o->workers : 32;
	snprintf(s->name, sizeof(s->name), "%s", o->name ? o->name : "rpc");
	s->idle_ms = o->idle_ms ? o->idle_ms : FLT_SERVER_IDLE_MS;
	s->sweep_ms = s->idle_ms / 4 < 1000 ? s->idle_ms / 4 : 1000;
	if (s->sweep_ms < 10)
		s->sweep_ms = 10;
	s->max_per_source = o->max_per_source;
	if (sodium_init() < 0) {
		flt_err(err, FLT_ETRANSPORT, "libsodium cannot start");
		goto fail;
	}
	crypto_shorthash_keygen(s->source_key);
	if ((rc = nng_mtx_alloc(&s->mtx)) != 0 ||
	    (rc = nng_mtx_alloc(&s->conn_mtx)) != 0 ||
	    (rc = nng_cv_alloc(&s->sweep_cv, s->conn_mtx)) != 0 ||
	    (rc = nng_rep0_open(&s->sock)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "rep socket: %s",
			nng_strerror(rc));
		goto fail;
	}
	/* Messages over the frame limit make nng drop the connection. */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_FRAME);
	if ((rc = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s)) !=
		    0 ||
	    (rc = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s)) !=
		    0 ||
	    (rc = nng_thread_create(&s->sweeper, sweep_main, s)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "rep socket: %s",
			nng_strerror(rc));
		goto fail;
	}
	nng_thread_set_name(s->sweeper, "conn-sweep");
	if ((rc = nng_listener_create(&s->listener, s->sock, o->url)) != 0) {
		flt_err(err, FLT_EUSAGE, "%s: %s", o->url, nng_strerror(rc));
		goto fail;
	}
	if (flt_url_is_tls(o->url) &&
	    flt_tls_listener_setup(s->listener, o->tls, err) < 0)
		goto fail;
	if ((rc = nng_listener_start(s->listener, 0)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "cannot listen on %s: %s", o->url,
			nng_strerror(rc));
		goto fail;
	}
	nng_mtx_lock(s->mtx);
	for (unsigned i = 0; i < s->workers; i++)
		start_receiver(s);
	nng_mtx_unlock(s->mtx);
	*out = s;
	return 0;
fail:
	flt_server_close(s);
	return err ? err->code : FLT_ETRANSPORT;
}

void flt_server_close(flt_server_t *s)
{
	if (!s)
		return;
	if (s->mtx) {
		nng_mtx_lock(s->mtx);
		s->closing = true;
		nng_mtx_unlock(s->mtx);
	}
	if (s->sweeper) {
		nng_mtx_lock(s->conn_mtx);
		s->sweep_stop = true;
		nng_cv_wake(s->sweep_cv);
		nng_mtx_unlock(s->conn_mtx);
		nng_thread_destroy(s->sweeper);
	}
	/* Runs REM_POST for every pipe left, and no callback afterwards. */
	if (nng_socket_id(s->sock) > 0)
		nng_close(s->sock);
	for (flt_request_t *r = s->all; r; r = r->next_all)
		nng_aio_stop(r->aio);
	while (s->all) {
		flt_request_t *r = s->all;
		s->all = r->next_all;
		answered(r, -ECANCELED, "the server closed");
		flt_envelope_free(r->env);
		nng_aio_free(r->aio);
		free(r);
	}
	size_t pos = 0;
	const char *key;
	void *val;
	while (flt_map_next(&s->conns, &pos, &key, &val))
		free(val);
	pos = 0;
	while (flt_map_next(&s->sources, &pos, &key, &val))
		free(val);
	flt_map_free(&s->conns);
	flt_map_free(&s->sources);
	if (s->sweep_cv)
		nng_cv_free(s->sweep_cv);
	if (s->conn_mtx)
		nng_mtx_free(s->conn_mtx);
	if (s->mtx)
		nng_mtx_free(s->mtx);
	free(s);
}

const flt_envelope_t *flt_request_envelope(const flt_request_t *r)
{
	return r->env;
}

const char *flt_request_peer(const flt_request_t *r)
{
	flt_request_t *w = (flt_request_t *)r;
	nng_sockaddr sa;

	if (w->peer[0] || nng_pipe_id(w->pipe) <= 0 ||
	    nng_pipe_get_addr(w->pipe, NNG_OPT_REMADDR, &sa) != 0)
		return w->peer;
	switch (sa.s_family) {
	case NNG_AF_INET: {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &sa.s_in.sa_addr, a, sizeof(a));
		snprintf(w->peer, sizeof(w->peer), "%s:%u", a,
			 ntohs(sa.s_in.sa_port));
		break;
	}
	case NNG_AF_INET6: {
		char a[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, a, sizeof(a));
		snprintf(w->peer, sizeof(w->peer), "[%s]:%u", a,
			 ntohs(sa.s_in6.sa_port));
		break;
	}
	case NNG_AF_IPC: snprintf(w->peer, sizeof(w->peer), "ipc"); break;
	default: break;
	}
	return w->peer;
}

void flt_request_defer(flt_request_t *r)
{
	flt_server_t *s = r->srv;
	nng_mtx_lock(s->mtx);
	if (!s->closing && s->receiving < s->workers)
		start_receiver(s);
	nng_mtx_unlock(s->mtx);
}

void flt_request_reply(flt_request_t *r, const ProtobufCMessage *body)
{
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	flt_error_t err;
	nng_msg *m;

	env.version = FLT_WIRE_VERSION;
	env.method = r->env->method;
	env.request_id = r->env->request_id;
	if (flt_envelope_pack(&env, body, &m, &err) < 0) {
		/* answer_error tells the hook of the failure. */
		answer_error(r, env.method, env.request_id, -EMSGSIZE, err.msg);
		return;
	}
	answered(r, 0, NULL);
	send_msg(r, m);
}

void flt_request_on_answer(flt_request_t *r, flt_request_answer_fn fn,
			   void *arg)
{
	r->on_answer = fn;
	r->on_answer_arg = arg;
}

void *flt_request_context(const flt_request_t *r)
{
	return r->on_answer ? r->on_answer_arg : NULL;
}

void flt_request_fail(flt_request_t *r, int code, const char *fmt, ...)
{
	char msg[FLT_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	flt_utf8_trim(msg);
	answer_error(r, r->env ? r->env->method : 0,
		     r->env ? r->env->request_id : 0, code, msg);
}

int flt_request_body(flt_request_t *r, const ProtobufCMessageDescriptor *desc,
		     void *out)
{
	flt_error_t err;
	if (flt_envelope_body(r->env, desc, out, &err) == 0)
		return 0;
	flt_request_fail(r, FLT_EPROTO, "%s", err.msg);
	return -1;
}
