/*
 * flt-stall: opens many TCP connections to an nng (SP) listener that
 * complete the SP handshake as a REQ peer, announce a message of
 * --announce bytes and send nothing more, for tests of what a server does
 * with stalled connections. Connections come from --sources addresses in
 * turn, starting at --source-base (all of 127/8 is loopback on Linux).
 *
 * Prints two lines on stdout:
 *   "held=H refused=R refuse_max_ms=M" once every connection has finished
 *   its handshake (or was closed) and --settle ms more have passed: R were
 *   closed by the server meanwhile, at most M ms after their handshake;
 *   "closed=C of=H min_ms=A max_ms=B" when the server has closed all H
 *   held connections, A to B ms after their handshake, or --timeout ms
 *   after the first line with C < H.
 * Exit 0 when every held connection was closed, 1 when not, 2 for a bad
 * command line, 3 when connecting failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flotilla/flags.h"
#include "flotilla/util.h"

static const char *url;
static long count = 100;
static long sources = 1;
static const char *source_base = "127.0.0.2";
static long announce = 1000;
static long settle_ms = 1000;
static long timeout_ms = 60000;

static const flt_flag_t flags[] = {
	{ "url", FLT_FLAG_STRING, &url, "URL", "tcp://HOST:PORT to stall", 0, 0,
	  NULL },
	{ "count", FLT_FLAG_INT, &count, "N", "connections (default 100)", 1,
	  100000, NULL },
	{ "sources", FLT_FLAG_INT, &sources, "K",
	  "source addresses used in turn (default 1)", 1, 65536, NULL },
	{ "source-base", FLT_FLAG_STRING, &source_base, "IPV4",
	  "first source address (default 127.0.0.2)", 0, 0, NULL },
	{ "announce", FLT_FLAG_INT, &announce, "BYTES",
	  "message size announced (default 1000; -1: no frame header)", -1,
	  1 << 30, NULL },
	{ "settle", FLT_FLAG_INT, &settle_ms, "MS",
	  "wait after the handshakes before counting refusals (default 1000)",
	  0, 600000, NULL },
	{ "timeout", FLT_FLAG_INT, &timeout_ms, "MS",
	  "longest wait for the server to close the rest (default 60000)", 1,
	  3600000, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

typedef struct stalled {
	int fd; /* -1 once the server closed it */
	unsigned got; /* bytes of the server's SP header read */
	int64_t hs_ms; /* when its handshake was over (0: not yet) */
	int64_t closed_ms;
} stalled_t;

static int open_one(stalled_t *c, struct in_addr src, struct in_addr dst,
		    uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = src };
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -errno;
	a.sin_addr = dst;
	a.sin_port = htons(port);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -errno;
	/* The SP header of a REQ peer (protocol 0x30), then the frame's. */
	uint8_t b[16] = { 0, 'S', 'P', 0, 0, 0x30, 0, 0 };
	size_t n = 8;
	if (announce >= 0) {
		for (int i = 0; i < 8; i++)
			b[8 + i] =
				(uint8_t)((uint64_t)announce >> (56 - 8 * i));
		n = 16;
	}
	if (send(c->fd, b, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -errno;
	return 0;
}

/* Reads what is ready on c: the server's header, or its close. */
static void on_ready(stalled_t *c, int64_t now)
{
	uint8_t buf[64];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0) {
		c->got += (unsigned)n;
		if (c->got >= 8 && !c->hs_ms)
			c->hs_ms = now;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(c->fd);
	c->fd = -1;
	c->closed_ms = now;
	if (!c->hs_ms)
		c->hs_ms = now;
}

/* Polls the open ones of c[0..n) for up to ms. */
static void poll_some(stalled_t *c, size_t n, struct pollfd *p, int ms)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i].fd >= 0)
			p[k++] = (struct pollfd){ .fd = c[i].fd,
						  .events = POLLIN };
	if (!k) {
		usleep((useconds_t)ms * 1000);
		return;
	}
	int r = poll(p, k, ms);
	if (r <= 0)
		return;
	int64_t now = flt_now_mono_ms();
	k = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].fd < 0)
			continue;
		if (p[k++].revents)
			on_ready(&c[i], now);
	}
}

static bool all_handshaken(const stalled_t *c, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (c[i].fd >= 0 && !c[i].hs_ms)
			return false;
	return true;
}

int main(int argc, char **argv)
{
	int next;
	int rc = flt_flags_main(flags, argc, argv, &next, "flt-stall",
				"Usage: flt-stall --url tcp://HOST:PORT "
				"[OPTIONS]",
				false);
	if (rc >= 0)
		return rc;
	char host[64];
	unsigned port;
	struct in_addr dst, base;
	if (!url || sscanf(url, "tcp://%63[0-9.]:%u", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &dst) != 1 || port > 65535 ||
	    inet_pton(AF_INET, source_base, &base) != 1) {
		fprintf(stderr, "flt-stall: --url tcp://IPV4:PORT and an IPv4 "
				"--source-base are required\n");
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	size_t n = (size_t)count;
	stalled_t *c = flt_xcalloc(n, sizeof(*c));
	struct pollfd *p = flt_xcalloc(n, sizeof(*p));
	/*
	 * In batches, each waited for (handshake or close): nng accepts
	 * from a backlog of 128, and a full backlog would only slow the
	 * connects down by retransmitted SYNs.
	 */
	const size_t batch = 64;
	for (size_t from = 0; from < n; from += batch) {
		size_t to = from + batch < n ? from + batch : n;
		for (size_t i = from; i < to; i++) {
			struct in_addr src = { htonl(
				ntohl(base.s_addr) +
				(uint32_t)(i % (size_t)sources)) };
			int e = open_one(&c[i], src, dst, (uint16_t)port);
			if (e < 0) {
				fprintf(stderr,
					"flt-stall: connection %zu of %zu: "
					"%s\n",
					i + 1, n, strerror(-e));
				return 3;
			}
		}
		int64_t end = flt_now_mono_ms() + 20000;
		while (!all_handshaken(c, from, to)) {
			if (flt_now_mono_ms() > end) {
				fprintf(stderr,
					"flt-stall: no SP handshake within "
					"20 s\n");
				return 3;
			}
			poll_some(c, to, p, 100);
		}
	}
	int64_t end = flt_now_mono_ms() + settle_ms;
	while (flt_now_mono_ms() < end)
		poll_some(c, n, p, (int)(end - flt_now_mono_ms()) + 1);

	size_t held = 0, refused = 0;
	int64_t refuse_max = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].fd >= 0) {
			held++;
			continue;
		}
		refused++;
		if (c[i].closed_ms - c[i].hs_ms > refuse_max)
			refuse_max = c[i].closed_ms - c[i].hs_ms;
		c[i].hs_ms = -1; /* not held: out of the second count */
	}
	printf("held=%zu refused=%zu refuse_max_ms=%lld\n", held, refused,
	       (long long)refuse_max);
	fflush(stdout);

	end = flt_now_mono_ms() + timeout_ms;
	size_t closed = 0;
	for (;;) {
		closed = 0;
		for (size_t i = 0; i < n; i++)
			if (c[i].hs_ms > 0 && c[i].fd < 0)
				closed++;
		if (closed == held || flt_now_mono_ms() > end)
			break;
		poll_some(c, n, p, 200);
	}
	int64_t lo = -1, hi = -1;
	for (size_t i = 0; i < n; i++) {
		if (c[i].hs_ms <= 0 || c[i].fd >= 0)
			continue;
		int64_t d = c[i].closed_ms - c[i].hs_ms;
		if (lo < 0 || d < lo)
			lo = d;
		if (d > hi)
			hi = d;
	}
	printf("closed=%zu of=%zu min_ms=%lld max_ms=%lld\n", closed, held,
	       (long long)lo, (long long)hi);
	for (size_t i = 0; i < n; i++)
		if (c[i].fd >= 0)
			close(c[i].fd);
	free(c);
	free(p);
	return closed == held ? 0 : 1;
}
