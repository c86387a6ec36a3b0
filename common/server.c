#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>

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
 */

enum req_state { ST_RECV, ST_HANDLE, ST_SEND };

struct flt_request {
	flt_server_t *srv;
	nng_aio *aio;
	nng_ctx ctx;
	enum req_state state;
	flt_envelope_t *env;
	nng_pipe pipe;
	char peer[80];
	flt_request_t *next_free;
	flt_request_t *next_all;
};

struct flt_server {
	nng_socket sock;
	nng_listener listener;
	flt_handler_fn handler;
	void *arg;
	unsigned workers;
	char name[32];
	nng_mtx *mtx;
	unsigned receiving;
	bool closing;
	flt_request_t *all;
	flt_request_t *free;
};

static void request_cb(void *arg);

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

static void answer_error(flt_request_t *r, uint32_t method, uint64_t id,
			 int code, const char *msg)
{
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	Flotilla__Error e = FLOTILLA__ERROR__INIT;
	nng_msg *m;

	env.version = FLT_WIRE_VERSION;
	env.method = (Flotilla__Method)method;
	env.request_id = id;
	e.code = flt_wire_code_out(code);
	/* A message may quote what a request held: escaped here, so that
	 * any client, whatever it does with it, shows it safely, and the
	 * envelope keeps its rule of no control characters. */
	cleanup_free char *shown = flt_escape_dup(msg, strlen(msg), 0);
	e.message = shown;
	env.error = &e;
	if (flt_envelope_pack(&env, NULL, &m, NULL) < 0) {
		/* Cannot even answer: drop the request, keep the context. */
		flt_envelope_free(r->env);
		r->env = NULL;
		recycle(r);
		return;
	}
	send_msg(r, m);
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
	int rc = flt_envelope_unpack(nng_msg_body(msg), nng_msg_len(msg),
				     &r->env, &err);
	if (rc < 0) {
		uint32_t method;
		uint64_t id;
		flt_envelope_peek(nng_msg_body(msg), nng_msg_len(msg), &method,
				  &id);
		nng_msg_free(msg);
		flt_debug("refused message server=%s peer=%s error=\"%s\"",
			  s->name, flt_request_peer(r), err.msg);
		answer_error(r, method, id, rc, err.msg);
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
	if ((rc = nng_mtx_alloc(&s->mtx)) != 0 ||
	    (rc = nng_rep0_open(&s->sock)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "rep socket: %s",
			nng_strerror(rc));
		goto fail;
	}
	/* Oversized messages make nng drop the connection unread. */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_REQUEST);
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
	if (nng_socket_id(s->sock) > 0)
		nng_close(s->sock);
	for (flt_request_t *r = s->all; r; r = r->next_all)
		nng_aio_stop(r->aio);
	while (s->all) {
		flt_request_t *r = s->all;
		s->all = r->next_all;
		flt_envelope_free(r->env);
		nng_aio_free(r->aio);
		free(r);
	}
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
		answer_error(r, env.method, env.request_id, -EMSGSIZE, err.msg);
		return;
	}
	send_msg(r, m);
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
