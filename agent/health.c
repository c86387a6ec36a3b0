/* Health checks of tasks: tcp and http probes, state, validation. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "flotilla/job.h"
#include "flotilla/util.h"
#include "health.h"

/* Addresses of one name tried in turn; more would only eat the timeout. */
#define ADDRS_MAX 8

static void say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	flt_utf8_trim(why);
}

/* ---- sockets made in the task's network namespace -------------------- */

/*
 * Shared by the caller and the resolver thread, freed by whichever lets go
 * last: the caller stops waiting at its deadline, but getaddrinfo cannot
 * be interrupted, so the thread may outlive the call.
 */
struct probe_socks {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;
	bool done;
	int netns_fd; /* our dup, or -1 */
	bool numeric;
	char host[FLT_CHECK_HOST_MAX];
	char port[FLT_CHECK_PORT_MAX];
	/* Results: written by the thread before done, read after it. */
	int rc; /* 0, 1 (name not found) or -errno */
	char why[256];
	int n;
	int fds[ADDRS_MAX];
	struct sockaddr_storage addrs[ADDRS_MAX];
	socklen_t addrlens[ADDRS_MAX];
};

static void socks_release(struct probe_socks *ps)
{
	bool last;
	int i;

	pthread_mutex_lock(&ps->lock);
	last = --ps->refs == 0;
	pthread_mutex_unlock(&ps->lock);
	if (!last)
		return;
	for (i = 0; i < ps->n; i++)
		if (ps->fds[i] >= 0)
			close(ps->fds[i]);
	if (ps->netns_fd >= 0)
		close(ps->netns_fd);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

static void resolve_and_open(struct probe_socks *ps)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	int gai, last_errno = 0;

	/*
	 * Entering the namespace changes only this thread; it exits right
	 * after, so no other code of the agent ever runs in the task's
	 * network. The name is resolved in there too: "localhost" or a
	 * service name must mean what it means to the task.
	 */
	if (ps->netns_fd >= 0 && setns(ps->netns_fd, CLONE_NEWNET) < 0) {
		ps->rc = -errno;
		snprintf(ps->why, sizeof(ps->why), "setns: %s",
			 strerror(errno));
		return;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (ps->numeric ? AI_NUMERICHOST : 0);
	gai = getaddrinfo(ps->host, ps->port, &hints, &res);
	if (gai == EAI_SYSTEM || gai == EAI_MEMORY) {
		ps->rc = gai == EAI_MEMORY ? -ENOMEM : -errno;
		snprintf(ps->why, sizeof(ps->why), "resolve %s: %s", ps->host,
			 gai == EAI_MEMORY ? "out of memory" : strerror(errno));
		return;
	}
	if (gai != 0) {
		ps->rc = 1;
		snprintf(ps->why, sizeof(ps->why), "resolve %s: %s", ps->host,
			 gai_strerror(gai));
		return;
	}
	for (ai = res; ai && ps->n < ADDRS_MAX; ai = ai->ai_next) {
		int fd;

		if (ai->ai_addrlen > sizeof(ps->addrs[0]))
			continue;
		fd = socket(ai->ai_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		ps->fds[ps->n] = fd;
		memcpy(&ps->addrs[ps->n], ai->ai_addr, ai->ai_addrlen);
		ps->addrlens[ps->n] = ai->ai_addrlen;
		ps->n++;
	}
	freeaddrinfo(res);
	if (ps->n == 0) {
		ps->rc = last_errno ? -last_errno : -EADDRNOTAVAIL;
		snprintf(ps->why, sizeof(ps->why), "socket: %s",
			 strerror(-ps->rc));
	}
}

static void *resolver_main(void *arg)
{
	struct probe_socks *ps = arg;

	resolve_and_open(ps);
	pthread_mutex_lock(&ps->lock);
	ps->done = true;
	pthread_cond_signal(&ps->cond);
	pthread_mutex_unlock(&ps->lock);
	socks_release(ps);
	return NULL;
}

static struct timespec mono_ts(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (ms % 1000) * 1000000 };
	return ts;
}

/*
 * Resolves host and opens one non-blocking socket per address, inside
 * netns_fd when it is >= 0. Returns 0 with *out (socks_release it), 1 for
 * a name that does not resolve or a deadline passed, or -errno.
 */
static int open_socks(const char *host, const char *port, bool numeric,
		      int netns_fd, int64_t deadline, unsigned timeout_ms,
		      struct probe_socks **out, char *why, size_t whylen)
{
	struct probe_socks *ps;
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t tid;
	struct timespec ts;
	bool done;
	int rc;

	ps = calloc(1, sizeof(*ps));
	if (!ps) {
		say(why, whylen, "out of memory");
		return -ENOMEM;
	}
	ps->netns_fd = -1;
	if (netns_fd >= 0) {
		ps->netns_fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 0);
		if (ps->netns_fd < 0) {
			rc = -errno;
			free(ps);
			say(why, whylen, "netns fd %d: %s", netns_fd,
			    strerror(-rc));
			return rc;
		}
	}
	ps->numeric = numeric;
	snprintf(ps->host, sizeof(ps->host), "%s", host);
	snprintf(ps->port, sizeof(ps->port), "%s", port);
	pthread_mutex_init(&ps->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ps->cond, &ca);
	pthread_condattr_destroy(&ca);
	ps->refs = 2;

	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &ta, resolver_main, ps);
	pthread_attr_destroy(&ta);
	if (rc != 0) {
		ps->refs = 1;
		socks_release(ps);
		say(why, whylen, "thread: %s", strerror(rc));
		return -rc;
	}

	ts = mono_ts(deadline);
	pthread_mutex_lock(&ps->lock);
	while (!ps->done) {
		if (pthread_cond_timedwait(&ps->cond, &ps->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	done = ps->done;
	pthread_mutex_unlock(&ps->lock);
	if (!done) {
		socks_release(ps);
		say(why, whylen, "resolve %s: timed out after %u ms", host,
		    timeout_ms);
		return 1;
	}
	if (ps->rc != 0) {
		rc = ps->rc;
		say(why, whylen, "%s", ps->why);
		socks_release(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

/* ---- connect and exchange --------------------------------------------- */

/* Waits for events on fd until deadline: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - flt_now_mono_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Returns 0 with a connected *fd, or 1 with why set. */
static int connect_any(struct probe_socks *ps, const char *address,
		       int64_t deadline, unsigned timeout_ms, int *out,
		       char *why, size_t whylen)
{
	int i;

	for (i = 0; i < ps->n; i++) {
		int fd = ps->fds[i], e = 0;
		socklen_t elen = sizeof(e);

		ps->fds[i] = -1;
		if (connect(fd, (struct sockaddr *)&ps->addrs[i],
			    ps->addrlens[i]) == 0) {
			*out = fd;
			return 0;
		}
		e = errno;
		if (e == EINPROGRESS || e == EINTR) {
			int rc = wait_fd(fd, POLLOUT, deadline);

			if (rc == -ETIMEDOUT) {
				close(fd);
				say(why, whylen, "timed out after %u ms",
				    timeout_ms);
				return 1;
			}
			e = rc < 0 ? -rc : 0;
			if (!e &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
				e = errno;
			if (!e) {
				*out = fd;
				return 0;
			}
		}
		close(fd);
		say(why, whylen, "connect %s: %s", address, strerror(e));
	}
	return 1;
}

/*
 * "HTTP/1.1 200 OK": version digits, spaces, exactly three digits, then
 * a space or the end of the line. Returns the status or -1.
 */
static int parse_status(const char *buf, size_t len)
{
	size_t i = 5;
	int status = 0, k;

	if (len < 5 || memcmp(buf, "HTTP/", 5) != 0)
		return -1;
	if (i >= len || buf[i] < '0' || buf[i] > '9')
		return -1;
	while (i < len && ((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '.'))
		i++;
	if (i >= len || buf[i] != ' ')
		return -1;
	while (i < len && buf[i] == ' ')
		i++;
	for (k = 0; k < 3; k++, i++) {
		if (i >= len || buf[i] < '0' || buf[i] > '9')
			return -1;
		status = status * 10 + (buf[i] - '0');
	}
	if (i < len && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
		return -1;
	return status;
}

static int http_exchange(int fd, const char *address, const char *path,
			 int64_t deadline, unsigned timeout_ms, char *why,
			 size_t whylen)
{
	char req[FLT_CHECK_PATH_MAX + FLT_CHECK_HOST_MAX + 256];
	char resp[AGENT_CHECK_HTTP_MAX_RESPONSE];
	size_t len, off = 0, got = 0;
	int status;

	/* The Host header is the address as written, brackets and port. */
	len = (size_t)snprintf(req, sizeof(req),
			       "GET %s HTTP/1.0\r\nHost: %s\r\n"
			       "User-Agent: flotilla-agent/%s\r\n"
			       "Accept: */*\r\nConnection: close\r\n\r\n",
			       path, address, FLT_VERSION);
	if (len >= sizeof(req)) {
		say(why, whylen, "http: request too long");
		return -EINVAL;
	}
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			say(why, whylen, "send %s: %s", address,
			    strerror(errno));
			return 1;
		}
		if (wait_fd(fd, POLLOUT, deadline) == -ETIMEDOUT) {
			say(why, whylen, "timed out after %u ms", timeout_ms);
			return 1;
		}
	}
	/* Only the status line matters; stop at its end. */
	while (got < sizeof(resp) && !memchr(resp, '\n', got)) {
		ssize_t n = recv(fd, resp + got, sizeof(resp) - got, 0);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			say(why, whylen, "recv %s: %s", address,
			    strerror(errno));
			return 1;
		}
		if (wait_fd(fd, POLLIN, deadline) == -ETIMEDOUT) {
			say(why, whylen, "timed out after %u ms", timeout_ms);
			return 1;
		}
	}
	if (got == 0) {
		say(why, whylen, "http: connection closed without a response");
		return 1;
	}
	status = parse_status(resp, got);
	if (status < 0) {
		say(why, whylen, "http: malformed status line");
		return 1;
	}
	if (status < 200 || status > 399) {
		say(why, whylen, "http status %d", status);
		return 1;
	}
	say(why, whylen, "%s", "");
	return 0;
}

static int probe(const char *address, const char *path, bool http, int netns_fd,
		 unsigned timeout_ms, char *why, size_t whylen)
{
	struct probe_socks *ps = NULL;
	char host[FLT_CHECK_HOST_MAX], port[FLT_CHECK_PORT_MAX];
	const char *reason;
	bool numeric = false;
	int64_t deadline;
	int rc, fd = -1;

	if (flt_check_address_split(address, host, port, &numeric, &reason) <
	    0) {
		say(why, whylen, "address %s: %s", address ? address : "",
		    reason);
		return -EINVAL;
	}
	if (http) {
		if (!path || !*path)
			path = "/";
		if (!flt_check_path_ok(path)) {
			say(why, whylen,
			    "path: must start with / and have no "
			    "spaces or control characters");
			return -EINVAL;
		}
	}
	if (!timeout_ms)
		timeout_ms = AGENT_CHECK_DEFAULT_TIMEOUT_MS;
	deadline = flt_now_mono_ms() + timeout_ms;

	rc = open_socks(host, port, numeric, netns_fd, deadline, timeout_ms,
			&ps, why, whylen);
	if (rc != 0)
		return rc;
	rc = connect_any(ps, address, deadline, timeout_ms, &fd, why, whylen);
	socks_release(ps);
	if (rc != 0)
		return rc;
	if (http)
		rc = http_exchange(fd, address, path, deadline, timeout_ms, why,
				   whylen);
	else
		say(why, whylen, "%s", "");
	close(fd);
	return rc;
}

int agent_check_tcp(const char *address, int netns_fd, unsigned timeout_ms,
		    char *why, size_t whylen)
{
	return probe(address, NULL, false, netns_fd, timeout_ms, why, whylen);
}

int agent_check_http(const char *address, const char *path, int netns_fd,
		     unsigned timeout_ms, char *why, size_t whylen)
{
	return probe(address, path, true, netns_fd, timeout_ms, why, whylen);
}

/* ---- state ------------------------------------------------------------ */

unsigned agent_check_interval_ms(const Flotilla__HealthCheck *hc)
{
	return hc && hc->interval_ms ? hc->interval_ms
				     : AGENT_CHECK_DEFAULT_INTERVAL_MS;
}

unsigned agent_check_timeout_ms(const Flotilla__HealthCheck *hc)
{
	return hc && hc->timeout_ms ? hc->timeout_ms
				    : AGENT_CHECK_DEFAULT_TIMEOUT_MS;
}

unsigned agent_check_failures(const Flotilla__HealthCheck *hc)
{
	return hc && hc->failures ? hc->failures : AGENT_CHECK_DEFAULT_FAILURES;
}

void agent_check_state_init(agent_check_state_t *s,
			    const Flotilla__HealthCheck *hc, int64_t now_ms)
{
	(void)hc;
	memset(s, 0, sizeof(*s));
	s->healthy = false;
	s->ever_ran = false;
	s->next_due_ms = now_ms;
}

bool agent_check_due(const agent_check_state_t *s, int64_t now_ms)
{
	return now_ms >= s->next_due_ms;
}

bool agent_check_record(agent_check_state_t *s, const Flotilla__HealthCheck *hc,
			int result, const char *why, int64_t now_ms)
{
	bool was = s->healthy;

	s->ever_ran = true;
	s->next_due_ms = now_ms + agent_check_interval_ms(hc);
	snprintf(s->last_output, sizeof(s->last_output), "%s", why ? why : "");
	flt_utf8_trim(s->last_output);
	if (result == 0) {
		s->consecutive_failures = 0;
		s->healthy = true;
	} else {
		if (s->consecutive_failures < UINT32_MAX)
			s->consecutive_failures++;
		if (s->consecutive_failures >= agent_check_failures(hc))
			s->healthy = false;
	}
	return s->healthy != was;
}

bool agent_check_failed(const agent_check_state_t *s,
			const Flotilla__HealthCheck *hc)
{
	return s->ever_ran && !s->healthy &&
	       s->consecutive_failures >= agent_check_failures(hc);
}
