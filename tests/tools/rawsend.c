/*
 * flt-rawsend: sends hand-made messages to a Flotilla socket, for tests of
 * what the coordinator does with bad input. Prints one line: "reply
 * code=<wire error code> message=<text>" (exit 0), or "no reply: <reason>"
 * (exit 3).
 *
 *   --garbage N      N random bytes (seeded by --seed)
 *   --size N         a well-formed Register envelope padded to N bytes
 *   --version V      a NodeList envelope with protocol version V
 *   --method M       a NodeList envelope with method number M
 *   --body-hex HEX   with --method: this body (hex), e.g. a string that
 *                    holds a NUL, which protobuf-c cannot pack
 *   --sync           a Sync with --node-id and --secret-hex credentials
 *   --register NAME  a Register with --token and --reg-id (and, when
 *                    given, --node-id and --secret-hex); prints
 *                    "node=<id> secret=<hex>" on success
 *   --repeat-ms MS   with --register: sends it again and again on one
 *                    connection for MS ms; prints per second and in all
 *                    how many answers were a token refusal (auth), a
 *                    "retry later" (later), a success (ok) or other
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "flotilla/flags.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

static const char *url;
static long garbage = -1, size = -1, version = -1, method = -1, seed = 1;
static bool sync_call;
static const char *register_name;
static const char *token = "";
static const char *reg_id = "";
static const char *node_id = "";
static const char *secret_hex = "";
static const char *body_hex;
static long timeout_ms = 3000;
static long repeat_ms = -1;
static const char *source;
static const char *call_name;
static const char *op_token = "";
static const char *op_namespace;
static flt_tls_opts_t tls;

static const flt_flag_t flags[] = {
	{ "url", FLT_FLAG_STRING, &url, "URL", "socket to send to", 0, 0,
	  NULL },
	{ "garbage", FLT_FLAG_INT, &garbage, "N", "send N random bytes", 0,
	  1 << 30, NULL },
	{ "seed", FLT_FLAG_INT, &seed, "N", "random seed", 0, 1 << 30, NULL },
	{ "size", FLT_FLAG_INT, &size, "N", "send an envelope of N bytes", 0,
	  1 << 30, NULL },
	{ "version", FLT_FLAG_INT, &version, "V", "envelope version", 0,
	  1 << 30, NULL },
	{ "method", FLT_FLAG_INT, &method, "M", "envelope method", 0, 1 << 30,
	  NULL },
	{ "body-hex", FLT_FLAG_STRING, &body_hex, "HEX",
	  "envelope body, in hex", 0, 0, NULL },
	{ "sync", FLT_FLAG_BOOL, &sync_call, NULL, "send a Sync", 0, 0, NULL },
	{ "register", FLT_FLAG_STRING, &register_name, "NAME",
	  "send a Register", 0, 0, NULL },
	{ "token", FLT_FLAG_STRING, &token, "TOKEN", "join token", 0, 0, NULL },
	{ "reg-id", FLT_FLAG_STRING, &reg_id, "ID", "registration id", 0, 0,
	  NULL },
	{ "node-id", FLT_FLAG_STRING, &node_id, "ID", "Sync node id", 0, 0,
	  NULL },
	{ "secret-hex", FLT_FLAG_STRING, &secret_hex, "HEX", "Sync secret", 0,
	  0, NULL },
	{ "timeout", FLT_FLAG_INT, &timeout_ms, "MS", "reply deadline", 1,
	  600000, NULL },
	{ "repeat-ms", FLT_FLAG_INT, &repeat_ms, "MS",
	  "send the Register again and again for MS ms", 1, 600000, NULL },
	{ "source", FLT_FLAG_STRING, &source, "IP",
	  "dial from this IPv4 address (tcp:// only)", 0, 0, NULL },
	{ "call", FLT_FLAG_STRING, &call_name, "METHOD",
	  "call an operator method by name (job_register...) with an empty "
	  "body",
	  0, 0, NULL },
	{ "op-token", FLT_FLAG_STRING, &op_token, "SECRET",
	  "--call: the ACL token's secret id", 0, 0, NULL },
	{ "namespace", FLT_FLAG_STRING, &op_namespace, "NS",
	  "--call: the envelope's namespace", 0, 0, NULL },
	{ "tls-ca", FLT_FLAG_STRING, &tls.ca_file, "FILE", "CA", 0, 0, NULL },
	{ "tls-cert", FLT_FLAG_STRING, &tls.cert_file, "FILE", "cert", 0, 0,
	  NULL },
	{ "tls-key", FLT_FLAG_STRING, &tls.key_file, "FILE", "key", 0, 0,
	  NULL },
	{ "tls-server-name", FLT_FLAG_STRING, &tls.server_name, "NAME",
	  "name to verify", 0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static void secret_from_hex(uint8_t secret[FLT_NODE_SECRET_LEN])
{
	memset(secret, 0, FLT_NODE_SECRET_LEN);
	for (size_t i = 0; i < FLT_NODE_SECRET_LEN && secret_hex[2 * i] &&
			   secret_hex[2 * i + 1];
	     i++) {
		char b[3] = { secret_hex[2 * i], secret_hex[2 * i + 1], 0 };
		secret[i] = (uint8_t)strtoul(b, NULL, 16);
	}
}

static int do_sync(void)
{
	flt_client_opts_t o = { .url = url, .tls = &tls };
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	Flotilla__SyncRequest req = FLOTILLA__SYNC_REQUEST__INIT;
	uint8_t secret[FLT_NODE_SECRET_LEN];
	flt_client_t *cl;
	flt_error_t err;

	secret_from_hex(secret);
	c.node_id = (char *)node_id;
	c.node_secret.data = secret;
	c.node_secret.len = sizeof(secret);
	if (flt_client_open(&o, &cl, &err) < 0) {
		printf("no reply: %s\n", err.msg);
		return 3;
	}
	ProtobufCMessage *resp = NULL;
	int rc =
		flt_client_call(cl, FLOTILLA__METHOD__METHOD_SYNC, &c,
				&req.base, &flotilla__sync_response__descriptor,
				&resp, (int)timeout_ms, &err);
	flt_client_close(cl);
	if (rc == 0) {
		protobuf_c_message_free_unpacked(resp, NULL);
		printf("reply code=0 message=ok\n");
		return 0;
	}
	if (rc == FLT_ETRANSPORT || rc == -ETIMEDOUT) {
		printf("no reply: %s\n", err.msg);
		return 3;
	}
	printf("reply code=%d message=%s\n", flt_wire_code_out(rc), err.msg);
	return 0;
}

static int do_register(void)
{
	flt_client_opts_t o = { .url = url, .tls = &tls };
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	Flotilla__RegisterRequest req = FLOTILLA__REGISTER_REQUEST__INIT;
	Flotilla__Fingerprint fp = FLOTILLA__FINGERPRINT__INIT;
	Flotilla__RegisterResponse *resp = NULL;
	uint8_t secret[FLT_NODE_SECRET_LEN];
	flt_client_t *cl;
	flt_error_t err;

	c.join_token = (char *)token;
	if (*node_id) {
		secret_from_hex(secret);
		c.node_id = (char *)node_id;
		c.node_secret.data = secret;
		c.node_secret.len = sizeof(secret);
	}
	fp.hostname = "rawsend";
	req.name = (char *)register_name;
	req.fingerprint = &fp;
	req.registration_id = (char *)reg_id;
	if (flt_client_open(&o, &cl, &err) < 0) {
		printf("no reply: %s\n", err.msg);
		return 3;
	}
	int rc = flt_client_call(
		cl, FLOTILLA__METHOD__METHOD_REGISTER, &c, &req.base,
		&flotilla__register_response__descriptor,
		(ProtobufCMessage **)&resp, (int)timeout_ms, &err);
	flt_client_close(cl);
	if (rc < 0) {
		printf("reply code=%d message=%s\n", flt_wire_code_out(rc),
		       err.msg);
		return 0;
	}
	printf("node=%s secret=", resp->node_id);
	for (size_t i = 0; i < resp->node_secret.len; i++)
		printf("%02x", resp->node_secret.data[i]);
	printf("\n");
	flotilla__register_response__free_unpacked(resp, NULL);
	return 0;
}

/* A dialer on s to url, from --source when given. */
static int dial(nng_socket s, nng_dialer *d)
{
	int rc = nng_dialer_create(d, s, url);
	if (rc == 0 && source) {
		nng_sockaddr sa = { 0 };
		sa.s_in.sa_family = NNG_AF_INET;
		if (inet_pton(AF_INET, source, &sa.s_in.sa_addr) != 1)
			return NNG_EADDRINVAL;
		rc = nng_dialer_set_addr(*d, NNG_OPT_LOCADDR, &sa);
	}
	return rc;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Register after Register on one connection, each sent as soon as the
 * last is answered, for repeat_ms: "second=N auth=A later=L ok=O
 * other=X" lines, then "total ..." (exit 0), or "no reply: ..." (3).
 */
static int do_register_repeat(void)
{
	Flotilla__RegisterRequest req = FLOTILLA__REGISTER_REQUEST__INIT;
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	Flotilla__Fingerprint fp = FLOTILLA__FINGERPRINT__INIT;
	unsigned long sec[4] = { 0 }, all[4] = { 0 };
	nng_socket s;
	nng_dialer d;
	int rc;

	c.join_token = (char *)token;
	fp.hostname = "rawsend";
	req.name = (char *)register_name;
	req.fingerprint = &fp;
	req.registration_id = (char *)reg_id;
	nng_req0_open(&s);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms);
	if ((rc = dial(s, &d)) != 0 || (rc = nng_dialer_start(d, 0)) != 0) {
		printf("no reply: dial: %s\n", nng_strerror(rc));
		return 3;
	}
	int64_t start = mono_ms(), second = 0;
	for (;;) {
		int64_t now = mono_ms();
		if ((now - start) / 1000 != second ||
		    now - start >= repeat_ms) {
			printf("second=%lld auth=%lu later=%lu ok=%lu "
			       "other=%lu\n",
			       (long long)second, sec[0], sec[1], sec[2],
			       sec[3]);
			memset(sec, 0, sizeof(sec));
			second = (now - start) / 1000;
		}
		if (now - start >= repeat_ms)
			break;
		flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
		nng_msg *m;
		env.version = FLT_WIRE_VERSION;
		env.method = FLOTILLA__METHOD__METHOD_REGISTER;
		env.request_id = (uint64_t)now;
		env.credentials = &c;
		if (flt_envelope_pack(&env, &req.base, &m, NULL) < 0)
			return 4;
		if ((rc = nng_sendmsg(s, m, 0)) != 0 ||
		    (rc = nng_recvmsg(s, &m, 0)) != 0) {
			printf("no reply: %s\n", nng_strerror(rc));
			fflush(stdout);
			_exit(3);
		}
		flt_envelope_t *r = (flt_envelope_t *)protobuf_c_message_unpack(
			&flotilla__envelope__descriptor, NULL, nng_msg_len(m),
			nng_msg_body(m));
		int k = 3;
		if (r && !r->error)
			k = 2;
		else if (r &&
			 r->error->code ==
				 FLOTILLA__ERROR_CODE__ERROR_UNAUTHENTICATED)
			k = 0;
		else if (r && r->error->code ==
				      FLOTILLA__ERROR_CODE__ERROR_UNAVAILABLE)
			k = 1;
		sec[k]++;
		all[k]++;
		if (r)
			flotilla__envelope__free_unpacked(r, NULL);
		nng_msg_free(m);
	}
	printf("total auth=%lu later=%lu ok=%lu other=%lu\n", all[0], all[1],
	       all[2], all[3]);
	nng_close(s);
	return 0;
}

static nng_msg *make_message(void)
{
	nng_msg *m = NULL;
	if (garbage >= 0) {
		srandom((unsigned)seed);
		nng_msg_alloc(&m, (size_t)garbage);
		uint8_t *b = nng_msg_body(m);
		for (long i = 0; i < garbage; i++)
			b[i] = (uint8_t)random();
		return m;
	}
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	env.version = version >= 0 ? (uint32_t)version : FLT_WIRE_VERSION;
	env.method = method >= 0 ? (Flotilla__Method)method
				 : FLOTILLA__METHOD__METHOD_NODE_LIST;
	env.request_id = 7;
	cleanup_free uint8_t *pad = NULL;
	if (body_hex) {
		size_t n = strlen(body_hex) / 2;
		pad = flt_xcalloc(n ? n : 1, 1);
		for (size_t i = 0; i < n; i++) {
			char b[3] = { body_hex[2 * i], body_hex[2 * i + 1], 0 };
			pad[i] = (uint8_t)strtoul(b, NULL, 16);
		}
		env.body.data = pad;
		env.body.len = n;
	}
	if (size >= 0) {
		env.method = FLOTILLA__METHOD__METHOD_REGISTER;
		pad = flt_xcalloc((size_t)size, 1);
		env.body.data = pad;
		env.body.len = (size_t)size;
	}
	if (flt_envelope_pack(&env, NULL, &m, NULL) < 0) {
		/* Over the library's own limit: pack it by hand. */
		size_t len = flotilla__envelope__get_packed_size(&env);
		nng_msg_alloc(&m, len);
		flotilla__envelope__pack(&env, nng_msg_body(m));
	}
	return m;
}

/* Any operator method, with a token and a namespace: the permission
 * matrix test calls every method this way. */
static int do_call(void)
{
	int m;
	flt_error_t err;
	if (flt_pb_enum_value(&flotilla__method__descriptor, call_name, &m) <
	    0) {
		fprintf(stderr, "flt-rawsend: --call %s: no such method\n",
			call_name);
		return 2;
	}
	flt_client_opts_t o = { .url = url,
				.tls = &tls,
				.namespace_ = op_namespace };
	flt_client_t *cl;
	if (flt_client_open(&o, &cl, &err) < 0) {
		printf("no reply: %s\n", err.msg);
		return 3;
	}
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	c.token = (char *)op_token;
	/* An empty message of any type packs to nothing: an empty body
	 * for whatever the method takes. */
	Flotilla__ChunkPutRequest empty = FLOTILLA__CHUNK_PUT_REQUEST__INIT;
	int rc =
		flt_client_call(cl, (Flotilla__Method)m, *op_token ? &c : NULL,
				&empty.base, NULL, NULL, (int)timeout_ms, &err);
	flt_client_close(cl);
	if (rc == FLT_ETRANSPORT || rc == -ETIMEDOUT) {
		printf("no reply: %s\n", err.msg);
		return 3;
	}
	printf("reply code=%d message=%s\n",
	       rc == 0 ? 0 : (int)flt_wire_code_out(rc),
	       rc == 0 ? "ok" : err.msg);
	return 0;
}

int main(int argc, char **argv)
{
	flt_error_t err;
	int next;
	nng_socket s;
	nng_dialer d;

	int rc =
		flt_flags_main(flags, argc, argv, &next, "flt-rawsend",
			       "Usage: flt-rawsend --url URL [OPTIONS]", false);
	if (rc >= 0)
		return rc;
	if (!url) {
		fprintf(stderr, "flt-rawsend: --url is required\n");
		return 2;
	}
	if (call_name)
		return do_call();
	if (sync_call)
		return do_sync();
	if (register_name && repeat_ms > 0)
		return do_register_repeat();
	if (register_name)
		return do_register();
	nng_req0_open(&s);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_MSG);
	if ((rc = dial(s, &d)) != 0) {
		printf("no reply: dial: %s\n", nng_strerror(rc));
		return 3;
	}
	if (flt_url_is_tls(url) &&
	    flt_tls_dialer_setup(d, url, &tls, &err) < 0) {
		printf("no reply: %s\n", err.msg);
		return 3;
	}
	rc = nng_dialer_start(d, 0);
	if (rc != 0) {
		printf("no reply: dial: %s\n", nng_strerror(rc));
		return 3;
	}
	nng_msg *m = make_message();
	if ((rc = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		printf("no reply: send: %s\n", nng_strerror(rc));
		return 3;
	}
	if ((rc = nng_recvmsg(s, &m, 0)) != 0) {
		/* No nng_close: a half-sent oversized message may hold the
		 * pipe, and exiting releases everything anyway. */
		printf("no reply: %s\n", nng_strerror(rc));
		fflush(stdout);
		_exit(3);
	}
	flt_envelope_t *env = NULL;
	ProtobufCMessage *pm =
		protobuf_c_message_unpack(&flotilla__envelope__descriptor, NULL,
					  nng_msg_len(m), nng_msg_body(m));
	env = (flt_envelope_t *)pm;
	if (!env) {
		printf("reply undecodable\n");
		rc = 4;
	} else {
		printf("reply code=%d message=%s\n",
		       env->error ? (int)env->error->code : 0,
		       env->error ? env->error->message : "ok");
		flotilla__envelope__free_unpacked(env, NULL);
		rc = 0;
	}
	nng_msg_free(m);
	nng_close(s);
	return rc;
}
