/*
 * Unit tests for the connection deadlines and limits of common/server.c,
 * on a real flt_server on 127.0.0.1: raw TCP peers that stall after the
 * SP handshake or mid-frame, raw nng REQ sockets that watch their own
 * connection, and flt_client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "flotilla.pb-c.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#define NODE_GET FLOTILLA__METHOD__METHOD_NODE_GET
/* Generous: the tests share two cores with builds (and run under ASan). */
#define SLACK_MS 8000

typedef struct fx {
	flt_server_t *srv;
	char url[64];
	int port;
	pthread_mutex_t mtx;
	int calls;
	flt_request_t *held; /* a deferred "hold" request */
} fx_t;

static void handler(flt_request_t *r, void *arg)
{
	fx_t *fx = arg;
	Flotilla__NodeGetRequest *req;

	if (flt_request_body(r, &flotilla__node_get_request__descriptor, &req) <
	    0)
		return;
	bool hold = strcmp(req->node, "hold") == 0;
	flotilla__node_get_request__free_unpacked(req, NULL);
	pthread_mutex_lock(&fx->mtx);
	fx->calls++;
	if (hold) {
		flt_request_defer(r);
		fx->held = r;
		pthread_mutex_unlock(&fx->mtx);
		return;
	}
	pthread_mutex_unlock(&fx->mtx);
	Flotilla__NodeGetResponse resp = FLOTILLA__NODE_GET_RESPONSE__INIT;
	flt_request_reply(r, &resp.base);
}

static int calls(fx_t *fx)
{
	pthread_mutex_lock(&fx->mtx);
	int n = fx->calls;
	pthread_mutex_unlock(&fx->mtx);
	return n;
}

static flt_request_t *take_held(fx_t *fx)
{
	pthread_mutex_lock(&fx->mtx);
	flt_request_t *r = fx->held;
	fx->held = NULL;
	pthread_mutex_unlock(&fx->mtx);
	return r;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* A TCP port free on 127.0.0.1 right now. */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static fx_t *fx_open(uint32_t idle_ms, unsigned max_per_source)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	flt_error_t err = { 0 };
	assert_non_null(fx);
	pthread_mutex_init(&fx->mtx, NULL);
	fx->port = free_port();
	snprintf(fx->url, sizeof(fx->url), "tcp://127.0.0.1:%d", fx->port);
	flt_server_opts_t so = { .url = fx->url,
				 .workers = 2,
				 .handler = handler,
				 .arg = fx,
				 .name = "unit",
				 .idle_ms = idle_ms,
				 .max_per_source = max_per_source };
	if (flt_server_open(&so, &fx->srv, &err) < 0)
		fail_msg("server: %s", err.msg);
	return fx;
}

static void fx_close(fx_t *fx)
{
	flt_request_t *r = take_held(fx);
	if (r)
		flt_request_fail(r, -EAGAIN, "test over");
	flt_server_close(fx->srv);
	pthread_mutex_destroy(&fx->mtx);
	free(fx);
}

/* Waits up to ms for the server to hold n connections. */
static bool wait_conns(fx_t *fx, size_t n, int ms)
{
	int64_t end = flt_now_mono_ms() + ms;
	while (flt_server_connections(fx->srv) != n) {
		if (flt_now_mono_ms() > end)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* ---- raw TCP peers ---------------------------------------------------- */

/* Connects to the fixture from source address src (any 127/8 address). */
static int raw_connect(fx_t *fx, const char *src)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	a.sin_port = htons((uint16_t)fx->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* The SP header of a REQ peer (protocol 0x30), then optionally a frame
 * header announcing `announce` bytes that never come. */
static void raw_send(int fd, bool frame, uint64_t announce)
{
	uint8_t b[16] = { 0, 'S', 'P', 0, 0, 0x30, 0, 0 };
	size_t n = 8;
	if (frame) {
		for (int i = 0; i < 8; i++)
			b[8 + i] = (uint8_t)(announce >> (56 - 8 * i));
		n = 16;
	}
	assert_int_equal(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

/*
 * Reads what the server sends until it closes the connection or ms pass.
 * Returns how many bytes came (the server's own 8-byte SP header) and
 * sets *closed.
 */
static size_t raw_drain(int fd, int ms, bool *closed)
{
	int64_t end = flt_now_mono_ms() + ms;
	size_t got = 0;
	*closed = false;
	for (;;) {
		int64_t left = end - flt_now_mono_ms();
		if (left <= 0)
			return got;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		uint8_t buf[64];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET) {
			*closed = true;
			return got;
		}
	}
}

/* Reads the server's SP header: the handshake is over on its side. */
static void raw_handshake(int fd)
{
	int64_t end = flt_now_mono_ms() + SLACK_MS;
	size_t got = 0;
	while (got < 8) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		assert_true(flt_now_mono_ms() < end);
		if (poll(&p, 1, 100) <= 0)
			continue;
		uint8_t buf[8];
		ssize_t n = recv(fd, buf, 8 - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* ---- raw nng REQ peers ------------------------------------------------ */

typedef struct peer {
	nng_socket sock;
	atomic_int removed; /* connections this peer saw go */
} peer_t;

static void peer_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	atomic_fetch_add(&((peer_t *)arg)->removed, 1);
}

static peer_t *peer_open(fx_t *fx)
{
	peer_t *pe = calloc(1, sizeof(*pe));
	assert_non_null(pe);
	assert_int_equal(nng_req0_open(&pe->sock), 0);
	nng_socket_set_size(pe->sock, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_MSG);
	nng_socket_set_ms(pe->sock, NNG_OPT_REQ_RESENDTIME,
			  NNG_DURATION_INFINITE);
	nng_socket_set_ms(pe->sock, NNG_OPT_RECVTIMEO, SLACK_MS);
	nng_socket_set_ms(pe->sock, NNG_OPT_SENDTIMEO, SLACK_MS);
	assert_int_equal(nng_pipe_notify(pe->sock, NNG_PIPE_EV_REM_POST,
					 peer_removed, pe),
			 0);
	assert_int_equal(nng_dial(pe->sock, fx->url, NULL, 0), 0);
	return pe;
}

static void peer_close(peer_t *pe)
{
	nng_close(pe->sock);
	free(pe);
}

/* A NodeGet for node, or for a node name of pad bytes. */
static nng_msg *node_get(const char *node, size_t pad, uint64_t id)
{
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	Flotilla__NodeGetRequest req = FLOTILLA__NODE_GET_REQUEST__INIT;
	flt_error_t err;
	nng_msg *m;

	env.version = FLT_WIRE_VERSION;
	env.method = NODE_GET;
	env.request_id = id;
	char *big = NULL;
	if (pad) {
		big = malloc(pad + 1);
		assert_non_null(big);
		memset(big, 'n', pad);
		big[pad] = '\0';
		req.node = big;
	} else {
		req.node = (char *)node;
	}
	assert_int_equal(flt_envelope_pack(&env, &req.base, &m, &err), 0);
	free(big);
	return m;
}

/* Sends node_get(node, pad, id); *len (may be NULL) gets its size. */
static void peer_send(peer_t *pe, const char *node, size_t pad, uint64_t id,
		      size_t *len)
{
	nng_msg *m = node_get(node, pad, id);
	if (len)
		*len = nng_msg_len(m);
	assert_int_equal(nng_sendmsg(pe->sock, m, 0), 0);
}

/* Receives a reply: its envelope (the caller frees it). */
static flt_envelope_t *peer_recv(peer_t *pe)
{
	flt_envelope_t *env;
	flt_error_t err;
	nng_msg *m;

	assert_int_equal(nng_recvmsg(pe->sock, &m, 0), 0);
	assert_int_equal(flt_envelope_unpack_reply(nng_msg_body(m),
						   nng_msg_len(m), &env, &err),
			 0);
	nng_msg_free(m);
	return env;
}

/* ---- tests ------------------------------------------------------------ */

/*
 * A connection that stalls mid-frame and one that is silent after the
 * handshake are both closed once the bound has passed, not before; a peer
 * that keeps calling keeps its connection.
 */
static void test_idle_close(void **state)
{
	(void)state;
	const uint32_t idle = 1500;
	fx_t *fx = fx_open(idle, 0);
	peer_t *busy = peer_open(fx);
	assert_true(wait_conns(fx, 1, SLACK_MS));

	int64_t t0 = flt_now_mono_ms();
	int partial = raw_connect(fx, "127.0.0.1");
	int silent = raw_connect(fx, "127.0.0.1");
	raw_send(partial, true, 1000);
	raw_send(silent, false, 0);
	assert_true(wait_conns(fx, 3, SLACK_MS));

	/* The busy peer calls every idle / 5 or so meanwhile. */
	bool partial_closed = false, silent_closed = false;
	int64_t partial_ms = 0, silent_ms = 0;
	for (uint64_t id = 1; !partial_closed || !silent_closed; id++) {
		assert_true(flt_now_mono_ms() - t0 < idle + SLACK_MS);
		peer_send(busy, "x", 0, id, NULL);
		flt_envelope_t *rep = peer_recv(busy);
		assert_null(rep->error);
		flt_envelope_free(rep);
		bool c;
		if (!partial_closed) {
			raw_drain(partial, (int)idle / 10, &c);
			if (c) {
				partial_closed = true;
				partial_ms = flt_now_mono_ms() - t0;
			}
		}
		if (!silent_closed) {
			raw_drain(silent, (int)idle / 10, &c);
			if (c) {
				silent_closed = true;
				silent_ms = flt_now_mono_ms() - t0;
			}
		}
	}
	assert_true(partial_ms >= idle);
	assert_true(silent_ms >= idle);
	assert_int_equal(atomic_load(&busy->removed), 0);
	assert_true(wait_conns(fx, 1, SLACK_MS));
	close(partial);
	close(silent);

	/* Once the busy peer stops, its connection goes too. */
	int64_t end = flt_now_mono_ms() + idle + SLACK_MS;
	while (atomic_load(&busy->removed) == 0 && flt_now_mono_ms() < end)
		sleep_ms(10);
	assert_int_equal(atomic_load(&busy->removed), 1);
	peer_close(busy);
	fx_close(fx);
}

/*
 * A request in flight (deferred, as a long-poll) keeps its connection
 * however long past the bound, also when another request on the same
 * connection (another REQ context) was answered meanwhile; the idle clock
 * starts again at the last reply.
 */
static void test_inflight_kept(void **state)
{
	(void)state;
	const uint32_t idle = 500;
	fx_t *fx = fx_open(idle, 0);
	peer_t *pe = peer_open(fx);
	nng_ctx hold;
	nng_aio *aio;

	assert_int_equal(nng_ctx_open(&hold, pe->sock), 0);
	assert_int_equal(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, SLACK_MS);
	nng_aio_set_msg(aio, node_get("hold", 0, 1));
	nng_ctx_send(hold, aio);
	nng_aio_wait(aio);
	assert_int_equal(nng_aio_result(aio), 0);
	nng_aio_set_timeout(aio, 10 * (int)idle + SLACK_MS);
	nng_ctx_recv(hold, aio);
	int64_t end = flt_now_mono_ms() + SLACK_MS;
	while (calls(fx) == 0 && flt_now_mono_ms() < end)
		sleep_ms(10);
	assert_int_equal(calls(fx), 1);

	/* Another call on the same connection, answered at once. */
	peer_send(pe, "x", 0, 2, NULL);
	flt_envelope_t *rep = peer_recv(pe);
	assert_null(rep->error);
	flt_envelope_free(rep);
	assert_int_equal(calls(fx), 2);

	/* Four bounds and some sweeps pass with the first one held. */
	sleep_ms(4 * (int)idle + 300);
	assert_int_equal(atomic_load(&pe->removed), 0);
	assert_int_equal(flt_server_connections(fx->srv), 1);
	flt_request_t *r = take_held(fx);
	assert_non_null(r);
	Flotilla__NodeGetResponse resp = FLOTILLA__NODE_GET_RESPONSE__INIT;
	int64_t replied = flt_now_mono_ms();
	flt_request_reply(r, &resp.base);
	nng_aio_wait(aio);
	assert_int_equal(nng_aio_result(aio), 0);
	nng_msg *m = nng_aio_get_msg(aio);
	flt_error_t err;
	assert_int_equal(flt_envelope_unpack_reply(nng_msg_body(m),
						   nng_msg_len(m), &rep, &err),
			 0);
	nng_msg_free(m);
	assert_null(rep->error);
	assert_int_equal(rep->request_id, 1);
	flt_envelope_free(rep);
	nng_ctx_close(hold);
	nng_aio_free(aio);
	/* Asked twice: the connection never dropped (REQ would resend). */
	assert_int_equal(calls(fx), 2);

	/* Silent after the reply: closed one bound later. */
	end = flt_now_mono_ms() + idle + SLACK_MS;
	while (atomic_load(&pe->removed) == 0 && flt_now_mono_ms() < end)
		sleep_ms(10);
	assert_int_equal(atomic_load(&pe->removed), 1);
	assert_true(flt_now_mono_ms() - replied >= idle);
	peer_close(pe);
	fx_close(fx);
}

/*
 * Beyond max_per_source connections from one address the next is closed
 * at once after the handshake; other addresses are not affected, and a
 * slot freed is available again.
 */
static void test_per_source_limit(void **state)
{
	(void)state;
	fx_t *fx = fx_open(60000, 3);
	int fds[3];

	for (int i = 0; i < 3; i++) {
		fds[i] = raw_connect(fx, "127.0.0.2");
		raw_send(fds[i], false, 0);
		raw_handshake(fds[i]);
	}
	assert_true(wait_conns(fx, 3, SLACK_MS));

	int over = raw_connect(fx, "127.0.0.2");
	raw_send(over, true, 1000);
	bool closed;
	int64_t t0 = flt_now_mono_ms();
	raw_drain(over, SLACK_MS, &closed);
	assert_true(closed);
	assert_true(flt_now_mono_ms() - t0 < SLACK_MS);
	close(over);
	assert_int_equal(flt_server_connections(fx->srv), 3);

	/* Another address has its own count. */
	int other = raw_connect(fx, "127.0.0.3");
	raw_send(other, false, 0);
	raw_handshake(other);
	assert_true(wait_conns(fx, 4, SLACK_MS));
	raw_drain(other, 300, &closed);
	assert_false(closed);

	/* One of the three leaves: its address may connect again. */
	close(fds[0]);
	assert_true(wait_conns(fx, 3, SLACK_MS));
	fds[0] = raw_connect(fx, "127.0.0.2");
	raw_send(fds[0], false, 0);
	raw_handshake(fds[0]);
	assert_true(wait_conns(fx, 4, SLACK_MS));
	raw_drain(fds[0], 300, &closed);
	assert_false(closed);

	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(other);
	fx_close(fx);
}

/*
 * A request over FLT_WIRE_MAX_REQUEST (and under the frame limit) is read
 * and answered with an error naming both sizes, without reaching the
 * handler; flt_client refuses to send one at all.
 */
static void test_oversized(void **state)
{
	(void)state;
	fx_t *fx = fx_open(0, 0);
	peer_t *pe = peer_open(fx);
	char want[128];
	size_t len;

	peer_send(pe, NULL, 3u << 20, 77, &len);
	assert_true(len > FLT_WIRE_MAX_REQUEST && len < FLT_WIRE_MAX_FRAME);
	flt_envelope_t *rep = peer_recv(pe);
	assert_int_equal(rep->request_id, 77);
	assert_int_equal(rep->method, NODE_GET);
	assert_non_null(rep->error);
	assert_int_equal(rep->error->code,
			 FLOTILLA__ERROR_CODE__ERROR_BAD_REQUEST);
	snprintf(want, sizeof(want),
		 "request of %zu bytes exceeds the limit of 1048576 bytes",
		 len);
	assert_string_equal(rep->error->message, want);
	flt_envelope_free(rep);
	assert_int_equal(calls(fx), 0);

	/* The connection still serves. */
	peer_send(pe, "x", 0, 78, NULL);
	rep = peer_recv(pe);
	assert_null(rep->error);
	flt_envelope_free(rep);
	assert_int_equal(calls(fx), 1);
	assert_int_equal(atomic_load(&pe->removed), 0);
	peer_close(pe);

	/* flt_client: the same message, nothing sent. */
	flt_client_opts_t co = { .url = fx->url };
	flt_client_t *c;
	flt_error_t err;
	assert_int_equal(flt_client_open(&co, &c, &err), 0);
	Flotilla__NodeGetRequest req = FLOTILLA__NODE_GET_REQUEST__INIT;
	char *big = malloc((2u << 20) + 1);
	assert_non_null(big);
	memset(big, 'n', 2u << 20);
	big[2u << 20] = '\0';
	req.node = big;
	ProtobufCMessage *resp = NULL;
	assert_int_equal(
		flt_client_call(c, NODE_GET, NULL, &req.base,
				&flotilla__node_get_response__descriptor, &resp,
				5000, &err),
		-EMSGSIZE);
	assert_null(resp);
	assert_non_null(strstr(err.msg, "exceeds the limit of 1048576 bytes"));
	assert_int_equal(strncmp(err.msg, "request of ", 11), 0);
	free(big);
	assert_int_equal(calls(fx), 1);
	flt_client_close(c);
	fx_close(fx);
}

static void test_idle_parse(void **state)
{
	(void)state;
	uint32_t ms = 7;
	flt_error_t err;

	assert_int_equal(flt_server_idle_parse("60s", &ms, &err), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(flt_server_idle_parse("1h30m", &ms, &err), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(flt_server_idle_parse("24h", &ms, &err), 0);
	assert_int_equal(ms, 86400000);
	const char *bad[] = { "500ms", "0s", "25h", "soon", "", "10" };
	for (size_t i = 0; i < FLT_ARRAY_SIZE(bad); i++) {
		ms = 7;
		assert_int_equal(flt_server_idle_parse(bad[i], &ms, &err),
				 FLT_EUSAGE);
		assert_int_equal(ms, 7);
		assert_non_null(strstr(err.msg, "--idle-timeout"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_parse),
		cmocka_unit_test(test_idle_close),
		cmocka_unit_test(test_inflight_kept),
		cmocka_unit_test(test_per_source_limit),
		cmocka_unit_test(test_oversized),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
