/*
 * The wire: one protobuf Envelope per nng message, request/reply.
 *
 * A request carries version, method, request id, credentials and a body;
 * the reply echoes method and request id and carries a body or an Error.
 * Client sockets refuse replies over FLT_WIRE_MAX_MSG and server sockets
 * messages over FLT_WIRE_MAX_FRAME (nng drops the connection unread); a
 * server answers a request over FLT_WIRE_MAX_REQUEST with an error, and
 * every envelope and body is bounds-checked before a handler sees it.
 */
#ifndef FLOTILLA_WIRE_H
#define FLOTILLA_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/pb.h"
#include "flotilla/tls.h"

#define FLT_WIRE_VERSION 1u
#define FLT_WIRE_MAX_MSG (4u << 20) /* replies, on client sockets */
#define FLT_WIRE_MAX_REQUEST (1u << 20) /* requests a server handles */
/*
 * The largest message a server socket reads at all. nng allocates a
 * message's announced size as soon as it has read the 8-byte length, so a
 * peer that announces this much and stalls holds it (as address space:
 * untouched pages are not resident) until the idle bound closes the
 * connection: with the default 100 connections per source that is at most
 * 400 MiB per source address for 60 s. Between FLT_WIRE_MAX_REQUEST and
 * this, a request is read and answered with an error naming the limit;
 * above it nng drops the connection, for no answer is possible.
 */
#define FLT_WIRE_MAX_FRAME (4u << 20)
#define FLT_NODE_SECRET_LEN 32u
#define FLT_NODE_ID_MAX 64u
#define FLT_JOIN_TOKEN_MAX 256u
#define FLT_TOKEN_MAX 128u /* an ACL token's secret id, as sent */

typedef Flotilla__Envelope flt_envelope_t;

/*
 * The join token of a daemon's command line: the value of --join-token
 * (token) or the content of --join-token-file (file), either may be NULL.
 * Sets *out to a copy the caller frees, or to NULL when neither is given.
 * Fails with FLT_EUSAGE when both are given, or the negative errno of
 * reading the file; the message names the flag.
 */
int flt_join_token_load(const char *token, const char *file, char **out,
			flt_error_t *err);

/* Short name of a method ("register", "sync"...); "unknown" otherwise. */
const char *flt_method_name(Flotilla__Method m);

/*
 * Checks the packed size of a request against FLT_WIRE_MAX_REQUEST: 0, or
 * -EMSGSIZE with "request of N bytes exceeds the limit of M bytes" in err.
 * Clients check before sending, servers again on receipt.
 */
int flt_wire_request_size_check(size_t len, flt_error_t *err);

/* Maps our error codes to the wire's and back. */
Flotilla__ErrorCode flt_wire_code_out(int code);
int flt_wire_code_in(Flotilla__ErrorCode code);

/*
 * Unpacks and validates an envelope: known version (FLT_EVERSION), known
 * method (FLT_EMETHOD), bounded fields (FLT_EPROTO). *out is owned by the
 * caller (flt_envelope_free).
 */
int flt_envelope_unpack(const void *buf, size_t len, flt_envelope_t **out,
			flt_error_t *err);
void flt_envelope_free(flt_envelope_t *env);

/* For replies: like flt_envelope_unpack, but an error reply may echo a
 * method this side does not know. */
int flt_envelope_unpack_reply(const void *buf, size_t len, flt_envelope_t **out,
			      flt_error_t *err);

/* Best effort: method and request id of a message that failed
 * validation (0 when it cannot be decoded at all), to echo in the error. */
void flt_envelope_peek(const void *buf, size_t len, uint32_t *method,
		       uint64_t *request_id);

/* Packs env (body set from body_msg when not NULL) into a new message. */
int flt_envelope_pack(flt_envelope_t *env, const ProtobufCMessage *body_msg,
		      nng_msg **out, flt_error_t *err);

/* Unpacks the envelope body as desc with request limits, or lim. */
int flt_envelope_body(const flt_envelope_t *env,
		      const ProtobufCMessageDescriptor *desc,
		      ProtobufCMessage **out, flt_error_t *err);
int flt_envelope_body_lim(const flt_envelope_t *env,
			  const ProtobufCMessageDescriptor *desc,
			  const flt_pb_limits_t *lim, ProtobufCMessage **out,
			  flt_error_t *err);

/* ---- Client ---------------------------------------------------------- */

typedef struct flt_client flt_client_t;

typedef struct flt_client_opts {
	const char *url;
	const flt_tls_opts_t *tls; /* may be NULL for plain transports */
	/* Operator calls: the namespace every call names (NULL or "": the
	 * server's default); copied. */
	const char *namespace_;
	bool background; /* keep redialing in the background (agents); else
			  * the first dial must succeed (CLI) */
} flt_client_opts_t;

int flt_client_open(const flt_client_opts_t *o, flt_client_t **out,
		    flt_error_t *err);
/* Makes calls in progress and later fail at once (another thread may be
 * waiting in flt_client_call); the client stays allocated. */
void flt_client_shutdown(flt_client_t *c);
void flt_client_close(flt_client_t *c);
/* Changes the namespace later calls name (NULL: none); not while calls
 * are in progress. */
void flt_client_set_namespace(flt_client_t *c, const char *ns);

/*
 * One call: sends req under method with creds (may be NULL) and waits up to
 * timeout_ms for the reply, which is unpacked as resp_desc into *resp
 * (owned by the caller). A reply carrying an Error returns the mapped code
 * (FLT_EAUTH, FLT_EPROTO...) with the coordinator's message in err;
 * transport failures return FLT_ETRANSPORT (-ETIMEDOUT for a timeout). A
 * request over FLT_WIRE_MAX_REQUEST is not sent: -EMSGSIZE.
 * Safe to call from several threads at once: each call has its own context.
 */
int flt_client_call(flt_client_t *c, Flotilla__Method method,
		    const Flotilla__Credentials *creds,
		    const ProtobufCMessage *req,
		    const ProtobufCMessageDescriptor *resp_desc,
		    ProtobufCMessage **resp, int timeout_ms, flt_error_t *err);

/* ---- Server ---------------------------------------------------------- */

typedef struct flt_server flt_server_t;
typedef struct flt_request flt_request_t;

/*
 * Called on an nng worker thread for every valid envelope. The handler must
 * answer exactly once, with flt_request_reply or flt_request_fail, either
 * before it returns or later from any thread. To answer later it calls
 * flt_request_defer first, so that the server keeps enough other contexts
 * receiving meanwhile. Once answered, r must not be touched again.
 * Malformed envelopes are answered by the server and never reach the
 * handler.
 */
typedef void (*flt_handler_fn)(flt_request_t *req, void *arg);

/* The daemons' defaults for their --idle-timeout and --max-conns-per-source. */
#define FLT_SERVER_IDLE_MS 60000u
#define FLT_SERVER_MAX_PER_SOURCE 100u

/*
 * Parses an --idle-timeout value, a duration from 1s to 24h ("60s",
 * "5m"; see flt_duration_parse). Returns 0, or FLT_EUSAGE with a message
 * naming the flag in err (*ms is left alone).
 */
int flt_server_idle_parse(const char *s, uint32_t *ms, flt_error_t *err);

/*
 * Deadlines and limits on connections (nng pipes). nng shows neither a
 * partial message nor a per-connection read deadline, so the server keeps
 * its own table of connections:
 *
 * - A connection with no request in flight (received, not yet answered:
 *   a deferred long-poll counts, however old) whose last complete request
 *   or last reply is idle_ms old is closed. The one bound covers a silent
 *   connection and a frame that never completes: a request must arrive
 *   whole within idle_ms of the connection's last activity. A sweep runs
 *   every idle_ms / 4 (at most every second), so a connection is closed
 *   between idle_ms and idle_ms plus that period.
 * - A connection from an IP address that already holds max_per_source
 *   connections to this server is closed as soon as nng hands it over
 *   (after the SP handshake), before any message. ipc:// and inproc://
 *   connections have no address and are not counted.
 * - Before the SP handshake nng itself (1.5, tcp and tls) closes a
 *   connection whose 8-byte SP header does not arrive within 10 s.
 *
 * Refusals and idle closes are logged as counts, at most one line of each
 * per 10 s and server, never one per connection.
 */
typedef struct flt_server_opts {
	const char *url;
	const flt_tls_opts_t *tls;
	unsigned workers; /* contexts kept receiving; 0 means 32 */
	flt_handler_fn handler;
	void *arg;
	const char *name; /* for logs: "agents", "api" */
	uint32_t idle_ms; /* 0 means FLT_SERVER_IDLE_MS */
	unsigned max_per_source; /* connections per IP address; 0: no limit */
} flt_server_opts_t;

int flt_server_open(const flt_server_opts_t *o, flt_server_t **out,
		    flt_error_t *err);
/* Stops receiving, drops requests still unanswered, frees everything. */
void flt_server_close(flt_server_t *s);

/* Connections the server holds now (handed over by nng, not yet gone). */
size_t flt_server_connections(flt_server_t *s);

/* Borrowed; valid until the request is answered. */
const flt_envelope_t *flt_request_envelope(const flt_request_t *r);
/* Remote address, "tcp://1.2.3.4:5678" style; "" when unknown. */
const char *flt_request_peer(const flt_request_t *r);

void flt_request_defer(flt_request_t *r);
/*
 * Calls fn once, on the answering thread, just before the request is
 * answered: code 0 (msg NULL) for a reply, else the error's code and
 * message; -ECANCELED when the server closes with r unanswered (nothing
 * is sent then). fn must not answer r; it owns arg.
 */
typedef void (*flt_request_answer_fn)(flt_request_t *r, int code,
				      const char *msg, void *arg);
void flt_request_on_answer(flt_request_t *r, flt_request_answer_fn fn,
			   void *arg);
/* The arg of flt_request_on_answer until r is answered; else NULL. */
void *flt_request_context(const flt_request_t *r);
void flt_request_reply(flt_request_t *r, const ProtobufCMessage *body);
/* The message goes out escaped (flt_escape): it may quote a request. */
void flt_request_fail(flt_request_t *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Decodes the request's body as desc into *out (free with
 * protobuf_c_message_free_unpacked). On failure the request is answered
 * with ERROR_BAD_REQUEST and -1 returned: the handler just returns.
 */
int flt_request_body(flt_request_t *r, const ProtobufCMessageDescriptor *desc,
		     void *out);

#endif
