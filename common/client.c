#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "flotilla/util.h"
#include "flotilla/wire.h"

struct flt_client {
	nng_socket sock;
	nng_dialer dialer;
	char *url;
	char *ns; /* NULL: none */
	atomic_uint_fast64_t next_id;
};

void flt_client_set_namespace(flt_client_t *c, const char *ns)
{
	free(c->ns);
	c->ns = ns && *ns ? flt_xstrdup(ns) : NULL;
}

int flt_client_open(const flt_client_opts_t *o, flt_client_t **out,
		    flt_error_t *err)
{
	flt_client_t *c = flt_xcalloc(1, sizeof(*c));
	int rc;

	c->url = flt_xstrdup(o->url);
	flt_client_set_namespace(c, o->namespace_);
	atomic_init(&c->next_id, 1);
	if ((rc = nng_req0_open(&c->sock)) != 0) {
		flt_err(err, FLT_ETRANSPORT, "req socket: %s",
			nng_strerror(rc));
		goto fail;
	}
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_MSG);
	/* Calls carry their own deadline; a resend would duplicate them. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
			  NNG_DURATION_INFINITE);
	/*
	 * nng waits a random time below a bound before each redial and
	 * doubles the bound after each failure. Redials to a coordinator
	 * that is restarting fail fast, so a short outage can raise the
	 * bound to seconds, and an agent would come back after the
	 * coordinator's restart grace (one heartbeat TTL) had ended: its
	 * node declared down, its allocations replaced. A bound of 1 s
	 * keeps every agent back within a second of the coordinator.
	 */
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 1000);
	if ((rc = nng_dialer_create(&c->dialer, c->sock, o->url)) != 0) {
		flt_err(err, FLT_EUSAGE, "%s: %s", o->url, nng_strerror(rc));
		goto fail;
	}
	if (flt_url_is_tls(o->url)) {
		if (!o->tls || !o->tls->ca_file) {
			flt_err(err, FLT_EUSAGE,
				"%s: tls+tcp needs --tls-ca, --tls-cert and "
				"--tls-key",
				o->url);
			goto fail;
		}
		if (flt_tls_dialer_setup(c->dialer, o->url, o->tls, err) < 0)
			goto fail;
	}
	rc = nng_dialer_start(c->dialer, o->background ? NNG_FLAG_NONBLOCK : 0);
	if (rc != 0) {
		flt_err(err, FLT_ETRANSPORT,
			"cannot reach coordinator at %s: %s", o->url,
			nng_strerror(rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	flt_client_close(c);
	return err ? err->code : FLT_ETRANSPORT;
}

void flt_client_shutdown(flt_client_t *c)
{
	if (c && nng_socket_id(c->sock) > 0)
		nng_close(c->sock);
}

void flt_client_close(flt_client_t *c)
{
	if (!c)
		return;
	flt_client_shutdown(c);
	free(c->url);
	free(c->ns);
	free(c);
}

static void aio_freep(nng_aio **a)
{
	if (*a)
		nng_aio_free(*a);
}

int flt_client_call(flt_client_t *c, Flotilla__Method method,
		    const Flotilla__Credentials *creds,
		    const ProtobufCMessage *req,
		    const ProtobufCMessageDescriptor *resp_desc,
		    ProtobufCMessage **resp, int timeout_ms, flt_error_t *err)
{
	__attribute__((cleanup(aio_freep))) nng_aio *aio = NULL;
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	nng_ctx ctx;
	nng_msg *msg;
	int rc;

	env.version = FLT_WIRE_VERSION;
	env.method = method;
	env.request_id = atomic_fetch_add(&c->next_id, 1);
	env.credentials = (Flotilla__Credentials *)creds;
	if (c->ns)
		env.namespace_ = c->ns;
	if ((rc = flt_envelope_pack(&env, req, &msg, err)) < 0)
		return rc;
	/* The server would answer with the same error: spare the upload. */
	if ((rc = flt_wire_request_size_check(nng_msg_len(msg), err)) < 0) {
		nng_msg_free(msg);
		return rc;
	}
	if ((rc = nng_aio_alloc(&aio, NULL, NULL)) != 0 ||
	    (rc = nng_ctx_open(&ctx, c->sock)) != 0) {
		nng_msg_free(msg);
		return flt_err(err, FLT_ETRANSPORT, "%s: %s", c->url,
			       nng_strerror(rc));
	}
	/* One deadline for the whole exchange. */
	int64_t deadline = flt_now_mono_ms() + timeout_ms;
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rc = nng_aio_result(aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		goto transport;
	}
	int64_t left = deadline - flt_now_mono_ms();
	nng_aio_set_timeout(aio, left > 1 ? (nng_duration)left : 1);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rc = nng_aio_result(aio)) != 0)
		goto transport;
	nng_ctx_close(ctx);

	msg = nng_aio_get_msg(aio);
	flt_envelope_t *rep;
	rc = flt_envelope_unpack_reply(nng_msg_body(msg), nng_msg_len(msg),
				       &rep, err);
	nng_msg_free(msg);
	if (rc < 0) {
		flt_err_prefix(err, "bad reply from %s", c->url);
		return rc;
	}
	if (rep->request_id != env.request_id || rep->method != method) {
		flt_envelope_free(rep);
		return flt_err(err, FLT_EPROTO,
			       "bad reply from %s: request id or method do "
			       "not match",
			       c->url);
	}
	if (rep->error &&
	    rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE) {
		rc = flt_err(err, flt_wire_code_in(rep->error->code), "%s",
			     rep->error->message);
		flt_envelope_free(rep);
		return rc;
	}
	rc = 0;
	if (resp_desc) {
		rc = flt_envelope_body_lim(rep, resp_desc, &flt_pb_reply_limits,
					   resp, err);
		if (rc < 0)
			flt_err_prefix(err, "bad reply from %s", c->url);
	}
	flt_envelope_free(rep);
	return rc;

transport:
	nng_ctx_close(ctx);
	if (rc == NNG_ETIMEDOUT)
		return flt_err(err, -ETIMEDOUT,
			       "coordinator at %s did not answer within %d ms",
			       c->url, timeout_ms);
	return flt_err(err, FLT_ETRANSPORT, "coordinator at %s: %s", c->url,
		       nng_strerror(rc));
}
