/* Unit tests for agent/health.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "flotilla/util.h"
#include "health.h"
#include "flotilla/job.h"

/* ---- a listening socket and a tiny HTTP server ------------------------ */

static int listen_on(int family, int *port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*port = ntohs(family == AF_INET
			      ? ((struct sockaddr_in *)&ss)->sin_port
			      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/* A port on 127.0.0.1 that nobody listens on. */
static int closed_port(void)
{
	int port, fd = listen_on(AF_INET, &port);

	assert_true(fd >= 0);
	close(fd);
	return port;
}

struct server {
	int lfd;
	int port;
	char addr[64];
	const char *reply; /* NULL: accept and never answer */
	pthread_t tid;
	char request[2048];
};

/* Waits for fd to be readable for at most ms; true when it is. */
static bool readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	size_t got = 0;
	int fd;

	if (!readable(s->lfd, 5000))
		return NULL;
	fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	while (got < sizeof(s->request) - 1 && readable(fd, 5000)) {
		ssize_t n = read(fd, s->request + got,
				 sizeof(s->request) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		s->request[got] = '\0';
		if (strstr(s->request, "\r\n\r\n"))
			break;
	}
	if (s->reply) {
		ssize_t n = write(fd, s->reply, strlen(s->reply));

		(void)n;
	} else {
		/* Say nothing until the client gives up and closes. */
		char c;

		while (readable(fd, 5000) && read(fd, &c, 1) > 0)
			;
	}
	close(fd);
	return NULL;
}

static void server_start(struct server *s, const char *reply)
{
	memset(s, 0, sizeof(*s));
	s->lfd = listen_on(AF_INET, &s->port);
	assert_true(s->lfd >= 0);
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
	s->reply = reply;
	assert_int_equal(pthread_create(&s->tid, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	pthread_join(s->tid, NULL);
	close(s->lfd);
}

/* ---- tcp -------------------------------------------------------------- */

static void test_tcp_healthy(void **state)
{
	char addr[64], why[256] = "x";
	int port, fd = listen_on(AF_INET, &port);

	(void)state;
	assert_true(fd >= 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	/* The kernel completes the handshake from the backlog. */
	assert_int_equal(agent_check_tcp(addr, -1, 1000, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(agent_check_tcp(addr, -1, 0, NULL, 0), 0);
	close(fd);
}

static void test_tcp_refused(void **state)
{
	char addr[64], want[128], why[256];
	int port = closed_port();

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	snprintf(want, sizeof(want), "connect %s: Connection refused", addr);
	assert_int_equal(agent_check_tcp(addr, -1, 1000, why, sizeof(why)), 1);
	assert_string_equal(why, want);
}

static void test_tcp_ipv6(void **state)
{
	char addr[64], why[256];
	int port, fd = listen_on(AF_INET6, &port);

	(void)state;
	if (fd < 0) {
		print_message("skipped: no IPv6 loopback here\n");
		skip();
	}
	snprintf(addr, sizeof(addr), "[::1]:%d", port);
	assert_int_equal(agent_check_tcp(addr, -1, 1000, why, sizeof(why)), 0);
	close(fd);
	assert_int_equal(agent_check_tcp(addr, -1, 1000, why, sizeof(why)), 1);
}

/* "localhost" may give ::1 first: every address is tried in turn. */
static void test_tcp_name(void **state)
{
	char addr[64], why[256];
	int port, fd = listen_on(AF_INET, &port);

	(void)state;
	assert_true(fd >= 0);
	snprintf(addr, sizeof(addr), "localhost:%d", port);
	assert_int_equal(agent_check_tcp(addr, -1, 2000, why, sizeof(why)), 0);
	close(fd);
}

static void test_tcp_unresolvable(void **state)
{
	char why[256];
	const char *want = "resolve no-such-host.invalid: ";

	(void)state;
	/* NXDOMAIN, or a resolver that does not answer within the timeout. */
	assert_int_equal(agent_check_tcp("no-such-host.invalid:80", -1, 1000,
					 why, sizeof(why)),
			 1);
	assert_memory_equal(why, want, strlen(want));
}

static void test_bad_addresses(void **state)
{
	static const struct {
		const char *address, *why;
	} cases[] = {
		{ "", "address : must be host:port" },
		{ "nocolon", "address nocolon: must be host:port" },
		{ ":80", "address :80: must be host:port" },
		{ "host:", "address host:: port must be 1-65535" },
		{ "host:0", "address host:0: port must be 1-65535" },
		{ "host:65536", "address host:65536: port must be 1-65535" },
		{ "host:8o", "address host:8o: port must be 1-65535" },
		{ "host:-1", "address host:-1: port must be 1-65535" },
		{ "::1:80",
		  "address ::1:80: IPv6 addresses go in brackets: [::1]:80" },
		{ "[::1]80", "address [::1]80: must be host:port" },
		{ "[::1]", "address [::1]: must be host:port" },
		{ "[zz::1]:80", "address [zz::1]:80: bad IPv6 address" },
		{ "[]:80", "address []:80: bad IPv6 address" },
		{ "a b:80", "address a b:80: bad host name" },
		{ "a/b:80", "address a/b:80: bad host name" },
	};
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < FLT_ARRAY_SIZE(cases); i++) {
		assert_int_equal(agent_check_tcp(cases[i].address, -1, 100, why,
						 sizeof(why)),
				 -EINVAL);
		assert_string_equal(why, cases[i].why);
		assert_int_equal(agent_check_http(cases[i].address, "/", -1,
						  100, why, sizeof(why)),
				 -EINVAL);
	}
	assert_int_equal(agent_check_tcp(NULL, -1, 100, why, sizeof(why)),
			 -EINVAL);
}

/* ---- http ------------------------------------------------------------- */

static void http_case(const char *reply, const char *path, int want_rc,
		      const char *want_why)
{
	struct server s;
	char why[256];

	server_start(&s, reply);
	assert_int_equal(
		agent_check_http(s.addr, path, -1, 2000, why, sizeof(why)),
		want_rc);
	assert_string_equal(why, want_why);
	server_stop(&s);
}

static void test_http_ok(void **state)
{
	struct server s;
	char why[256], want[128];

	(void)state;
	server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_int_equal(agent_check_http(s.addr, "/healthz?x=1", -1, 2000, why,
					  sizeof(why)),
			 0);
	assert_string_equal(why, "");
	server_stop(&s);
	assert_memory_equal(s.request, "GET /healthz?x=1 HTTP/1.0\r\n", 27);
	snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
	assert_non_null(strstr(s.request, want));

	/* No path: "/". */
	server_start(&s, "HTTP/1.0 204 No Content\r\n\r\n");
	assert_int_equal(
		agent_check_http(s.addr, NULL, -1, 2000, why, sizeof(why)), 0);
	server_stop(&s);
	assert_memory_equal(s.request, "GET / HTTP/1.0\r\n", 16);
}

static void test_http_statuses(void **state)
{
	(void)state;
	http_case("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", "/", 0, "");
	http_case("HTTP/1.1 399 Odd\r\n\r\n", "/", 0, "");
	http_case("HTTP/1.0 200\r\n\r\n", "/", 0, "");
	http_case("HTTP/1.1 503 Service Unavailable\r\n\r\n", "/", 1,
		  "http status 503");
	http_case("HTTP/1.1 404 Not Found\r\n\r\n", "/", 1, "http status 404");
	http_case("HTTP/1.1 199 Early\r\n\r\n", "/", 1, "http status 199");
	http_case("HTTP/1.1 500 Oops\r\n\r\n", "/", 1, "http status 500");
	/* Status line cut by the close: still read. */
	http_case("HTTP/1.1 200 OK", "/", 0, "");
}

static void test_http_garbage(void **state)
{
	(void)state;
	http_case("hello there\r\n", "/", 1, "http: malformed status line");
	http_case("HTTP/1.1 2000 OK\r\n\r\n", "/", 1,
		  "http: malformed status line");
	http_case("HTTP/1.1 20 OK\r\n\r\n", "/", 1,
		  "http: malformed status line");
	http_case("HTTP/x 200 OK\r\n\r\n", "/", 1,
		  "http: malformed status line");
	http_case("SSH-2.0-OpenSSH_9.2\r\n", "/", 1,
		  "http: malformed status line");
	http_case("", "/", 1, "http: connection closed without a response");
}

static void test_http_timeout(void **state)
{
	struct server s;
	char why[256];
	int64_t t0, elapsed;

	(void)state;
	server_start(&s, NULL);
	t0 = flt_now_mono_ms();
	assert_int_equal(
		agent_check_http(s.addr, "/", -1, 700, why, sizeof(why)), 1);
	elapsed = flt_now_mono_ms() - t0;
	assert_string_equal(why, "timed out after 700 ms");
	assert_true(elapsed >= 650);
	assert_true(elapsed < 700 + 500);
	server_stop(&s);
}

static void test_http_refused(void **state)
{
	char addr[64], want[128], why[256];

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
	snprintf(want, sizeof(want), "connect %s: Connection refused", addr);
	assert_int_equal(
		agent_check_http(addr, "/", -1, 1000, why, sizeof(why)), 1);
	assert_string_equal(why, want);
}

static void test_http_bad_path(void **state)
{
	static const char *paths[] = { "healthz", "/a b", "/a\r\nX-Evil: 1",
				       "/\x7f", "/tab\there" };
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < FLT_ARRAY_SIZE(paths); i++) {
		assert_int_equal(agent_check_http("127.0.0.1:80", paths[i], -1,
						  100, why, sizeof(why)),
				 -EINVAL);
		assert_string_equal(why, "path: must start with / and have no "
					 "spaces or control characters");
	}
}

/* ---- network namespaces ----------------------------------------------- */

static void test_netns(void **state)
{
	char addr[64], path[64], want[128], why[256], c = 0;
	int ready[2], hold[2], port, lfd, nsfd, rc;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		print_message("skipped: entering a network namespace needs "
			      "root\n");
		skip();
	}
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* An empty namespace: only a loopback, and that is down. */
		char ok = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';

		close(hold[1]);
		if (write(ready[1], &ok, 1) != 1)
			_exit(1);
		while (read(hold[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	nsfd = -1;
	if (c == 'y') {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
		nsfd = open(path, O_RDONLY | O_CLOEXEC);
	}
	/* The fd keeps the namespace alive without the child. */
	close(hold[1]);
	assert_int_equal(waitpid(pid, &rc, 0), pid);
	if (nsfd < 0) {
		print_message("skipped: unshare(CLONE_NEWNET) does not work "
			      "here\n");
		skip();
	}

	lfd = listen_on(AF_INET, &port);
	assert_true(lfd >= 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(agent_check_tcp(addr, -1, 1000, why, sizeof(why)), 0);
	rc = agent_check_tcp(addr, nsfd, 1000, why, sizeof(why));
	snprintf(want, sizeof(want), "connect %s: Network is unreachable",
		 addr);
	assert_int_equal(rc, 1);
	assert_string_equal(why, want);
	assert_int_equal(
		agent_check_http(addr, "/", nsfd, 1000, why, sizeof(why)), 1);
	assert_string_equal(why, want);
	/* The calling thread never left the host's namespace. */
	assert_int_equal(agent_check_tcp(addr, -1, 1000, why, sizeof(why)), 0);
	close(lfd);
	close(nsfd);
}

static void test_netns_bad_fd(void **state)
{
	char why[256];
	int fd;

	(void)state;
	assert_int_equal(
		agent_check_tcp("127.0.0.1:80", 987654, 500, why, sizeof(why)),
		-EBADF);
	assert_string_equal(why, "netns fd 987654: Bad file descriptor");
	/* Not a namespace: setns refuses it. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(
		agent_check_tcp("127.0.0.1:80", fd, 500, why, sizeof(why)),
		-EINVAL);
	assert_string_equal(why, "setns: Invalid argument");
	close(fd);
}

/* ---- state ------------------------------------------------------------ */

static void test_state_init(void **state)
{
	Flotilla__HealthCheck hc = FLOTILLA__HEALTH_CHECK__INIT;
	agent_check_state_t s;

	(void)state;
	memset(&s, 0xff, sizeof(s));
	agent_check_state_init(&s, &hc, 5000);
	assert_false(s.healthy);
	assert_false(s.ever_ran);
	assert_int_equal(s.consecutive_failures, 0);
	assert_string_equal(s.last_output, "");
	/* Due at once. */
	assert_true(agent_check_due(&s, 5000));
	assert_false(agent_check_due(&s, 4999));
}

static void test_state_threshold(void **state)
{
	Flotilla__HealthCheck hc = FLOTILLA__HEALTH_CHECK__INIT;
	agent_check_state_t s;
	int64_t t = 0;

	(void)state;
	hc.failures = 3;
	agent_check_state_init(&s, &hc, t);
	/* Never passed: failures change nothing, it is already unhealthy. */
	assert_false(agent_check_record(&s, &hc, 1, "refused", t));
	assert_true(s.ever_ran);
	assert_false(s.healthy);
	assert_int_equal(s.consecutive_failures, 1);
	assert_string_equal(s.last_output, "refused");
	/* One pass: healthy. */
	assert_true(agent_check_record(&s, &hc, 0, "", t));
	assert_true(s.healthy);
	assert_int_equal(s.consecutive_failures, 0);
	assert_string_equal(s.last_output, "");
	/* Two failures, a pass, two more: never three in a row. */
	assert_false(agent_check_record(&s, &hc, 1, "a", t));
	assert_false(agent_check_record(&s, &hc, 1, "b", t));
	assert_false(agent_check_record(&s, &hc, 0, "", t));
	assert_false(agent_check_record(&s, &hc, 1, "c", t));
	assert_false(agent_check_record(&s, &hc, 1, "d", t));
	assert_true(s.healthy);
	assert_int_equal(s.consecutive_failures, 2);
	/* The third in a row flips it. */
	assert_true(agent_check_record(&s, &hc, 1, "http status 503", t));
	assert_false(s.healthy);
	assert_int_equal(s.consecutive_failures, 3);
	assert_string_equal(s.last_output, "http status 503");
	assert_false(agent_check_record(&s, &hc, 1, "e", t));
	assert_int_equal(s.consecutive_failures, 4);
	/* Recovery after one pass. */
	assert_true(agent_check_record(&s, &hc, 0, NULL, t));
	assert_true(s.healthy);
	assert_int_equal(s.consecutive_failures, 0);
}

static void test_state_failed(void **state)
{
	Flotilla__HealthCheck hc = FLOTILLA__HEALTH_CHECK__INIT;
	agent_check_state_t s;

	(void)state;
	hc.failures = 3;
	agent_check_state_init(&s, &hc, 0);
	/* Not run yet: unhealthy, but not failed. */
	assert_false(agent_check_failed(&s, &hc));
	/* Failing from the first run: failed at the third. */
	agent_check_record(&s, &hc, 1, "http status 503", 0);
	assert_false(agent_check_failed(&s, &hc));
	agent_check_record(&s, &hc, 1, "http status 503", 0);
	assert_false(agent_check_failed(&s, &hc));
	agent_check_record(&s, &hc, 1, "http status 503", 0);
	assert_false(s.healthy);
	assert_int_equal(s.consecutive_failures, 3);
	assert_true(agent_check_failed(&s, &hc));
	agent_check_record(&s, &hc, 1, "http status 503", 0);
	assert_true(agent_check_failed(&s, &hc));
	/* One pass clears it; two failures after it are not enough. */
	agent_check_record(&s, &hc, 0, "", 0);
	assert_false(agent_check_failed(&s, &hc));
	agent_check_record(&s, &hc, 1, "x", 0);
	agent_check_record(&s, &hc, 1, "x", 0);
	assert_true(s.healthy);
	assert_false(agent_check_failed(&s, &hc));
	agent_check_record(&s, &hc, 1, "x", 0);
	assert_true(agent_check_failed(&s, &hc));

	/* failures 0: the default threshold. */
	hc.failures = 0;
	agent_check_state_init(&s, &hc, 0);
	for (unsigned i = 1; i < AGENT_CHECK_DEFAULT_FAILURES; i++)
		agent_check_record(&s, &hc, -ECONNREFUSED, "refused", 0);
	assert_false(agent_check_failed(&s, &hc));
	agent_check_record(&s, &hc, -ECONNREFUSED, "refused", 0);
	assert_true(agent_check_failed(&s, &hc));
}

static void test_state_default_and_one(void **state)
{
	Flotilla__HealthCheck hc = FLOTILLA__HEALTH_CHECK__INIT;
	agent_check_state_t s;

	(void)state;
	/* failures 0: the default 3. */
	agent_check_state_init(&s, &hc, 0);
	assert_true(agent_check_record(&s, &hc, 0, "", 0));
	assert_false(agent_check_record(&s, &hc, 1, "x", 0));
	assert_false(agent_check_record(&s, &hc, 1, "x", 0));
	assert_true(agent_check_record(&s, &hc, 1, "x", 0));

	/* failures 1: the first failure flips it; a probe error counts. */
	hc.failures = 1;
	agent_check_state_init(&s, &hc, 0);
	assert_true(agent_check_record(&s, &hc, 0, "", 0));
	assert_true(agent_check_record(&s, &hc, -EMFILE,
				       "socket: Too many "
				       "open files",
				       0));
	assert_false(s.healthy);
}

static void test_state_due(void **state)
{
	Flotilla__HealthCheck hc = FLOTILLA__HEALTH_CHECK__INIT;
	agent_check_state_t s;

	(void)state;
	hc.interval_ms = 5000;
	agent_check_state_init(&s, &hc, 1000);
	assert_true(agent_check_due(&s, 1000));
	agent_check_record(&s, &hc, 0, "", 1200);
	assert_int_equal(s.next_due_ms, 6200);
	assert_false(agent_check_due(&s, 6199));
	assert_true(agent_check_due(&s, 6200));
	assert_true(agent_check_due(&s, 90000));
	/* Failures do not hurry the next run. */
	agent_check_record(&s, &hc, 1, "x", 6300);
	assert_int_equal(s.next_due_ms, 11300);

	hc.interval_ms = 0;
	agent_check_record(&s, &hc, 0, "", 20000);
	assert_int_equal(s.next_due_ms, 30000);
	assert_int_equal(agent_check_interval_ms(&hc), 10000);
	assert_int_equal(agent_check_timeout_ms(&hc), 2000);
	assert_int_equal(agent_check_failures(&hc), 3);
}

static void test_state_output_cut(void **state)
{
	Flotilla__HealthCheck hc = FLOTILLA__HEALTH_CHECK__INIT;
	agent_check_state_t s;
	char why[600];

	(void)state;
	memset(why, 'w', sizeof(why) - 1);
	why[sizeof(why) - 1] = '\0';
	agent_check_state_init(&s, &hc, 0);
	agent_check_record(&s, &hc, 1, why, 0);
	assert_int_equal(strlen(s.last_output), sizeof(s.last_output) - 1);
}

/* ---- validation ------------------------------------------------------- */

struct spec {
	const char *name, *type, *cmd0, *address, *path;
	size_t ncmd;
	uint32_t interval, timeout, failures;
};

static void make(Flotilla__HealthCheck *hc, const struct spec *sp, char **argv)
{
	static char empty[] = "";

	flotilla__health_check__init(hc);
	hc->name = sp->name ? (char *)sp->name : empty;
	hc->type = sp->type ? (char *)sp->type : empty;
	hc->address = sp->address ? (char *)sp->address : empty;
	hc->path = sp->path ? (char *)sp->path : empty;
	hc->n_command = sp->ncmd;
	argv[0] = sp->cmd0 ? (char *)sp->cmd0 : empty;
	argv[1] = (char *)"--quiet";
	hc->command = argv;
	hc->interval_ms = sp->interval;
	hc->timeout_ms = sp->timeout;
	hc->failures = sp->failures;
}

static void test_validate_bad(void **state)
{
	static const struct {
		struct spec sp;
		const char *msg;
	} cases[] = {
		{ { .type = "" }, "checks[1].type: must be exec, tcp or http" },
		{ { .type = "grpc", .address = "a:1" },
		  "checks[1].type: must be exec, tcp or http" },
		{ { .type = "TCP", .address = "a:1" },
		  "checks[1].type: must be exec, tcp or http" },
		{ { .name = "bad name", .type = "tcp", .address = "a:1" },
		  "checks[1].name: must be 1-63 characters of "
		  "A-Z a-z 0-9 . _ -" },
		{ { .type = "exec" }, "checks[1].command: must not be empty" },
		{ { .type = "exec", .cmd0 = "bin/check", .ncmd = 2 },
		  "checks[1].command[0]: must be an absolute path" },
		{ { .type = "exec", .cmd0 = "", .ncmd = 1 },
		  "checks[1].command[0]: must be an absolute path" },
		{ { .type = "tcp" },
		  "checks[1].address: required for tcp checks" },
		{ { .type = "http" },
		  "checks[1].address: required for http checks" },
		{ { .type = "tcp", .address = "localhost" },
		  "checks[1].address: must be host:port" },
		{ { .type = "tcp", .address = "localhost:0" },
		  "checks[1].address: port must be 1-65535" },
		{ { .type = "http", .address = "fe80::1:80" },
		  "checks[1].address: IPv6 addresses go in brackets: "
		  "[::1]:80" },
		{ { .type = "http", .address = "[fe80::1:80" },
		  "checks[1].address: must be host:port" },
		{ { .type = "http", .address = "a:80", .path = "healthz" },
		  "checks[1].path: must start with / and have no spaces or "
		  "control characters" },
		{ { .type = "http",
		    .address = "a:80",
		    .path = "/x\r\nHost: y" },
		  "checks[1].path: must start with / and have no spaces or "
		  "control characters" },
		{ { .type = "tcp", .address = "a:1", .interval = 1000 },
		  "checks[1].timeout_ms: must be less than interval_ms "
		  "(2000 >= 1000)" },
		{ { .type = "tcp",
		    .address = "a:1",
		    .interval = 3000,
		    .timeout = 3000 },
		  "checks[1].timeout_ms: must be less than interval_ms "
		  "(3000 >= 3000)" },
		{ { .type = "tcp", .address = "a:1", .timeout = 10000 },
		  "checks[1].timeout_ms: must be less than interval_ms "
		  "(10000 >= 10000)" },
	};
	Flotilla__HealthCheck hc;
	char *argv[2];
	size_t i;

	(void)state;
	for (i = 0; i < FLT_ARRAY_SIZE(cases); i++) {
		flt_error_t err = { 0 };

		make(&hc, &cases[i].sp, argv);
		assert_int_equal(flt_check_validate(&hc, "checks[1]", &err),
				 -EINVAL);
		assert_int_equal(err.code, -EINVAL);
		assert_string_equal(err.msg, cases[i].msg);
		assert_int_equal(flt_check_validate(&hc, NULL, NULL), -EINVAL);
	}
}

static void test_validate_prefixes(void **state)
{
	Flotilla__HealthCheck hc;
	struct spec sp = { .type = "tcp", .address = "nope" };
	flt_error_t err = { 0 };
	char *argv[2];

	(void)state;
	make(&hc, &sp, argv);
	assert_int_equal(flt_check_validate(&hc, NULL, &err), -EINVAL);
	assert_string_equal(err.msg, "address: must be host:port");
	assert_int_equal(flt_check_validate(&hc, "", &err), -EINVAL);
	assert_string_equal(err.msg, "address: must be host:port");
	assert_int_equal(flt_check_validate(&hc, "task web: checks[0]", &err),
			 -EINVAL);
	assert_string_equal(err.msg,
			    "task web: checks[0].address: must be host:port");
	assert_int_equal(flt_check_validate(NULL, "checks[2]", &err), -EINVAL);
	assert_string_equal(err.msg, "checks[2]: missing");
}

static void test_address_split(void **state)
{
	char host[FLT_CHECK_HOST_MAX], port[FLT_CHECK_PORT_MAX];
	const char *reason;
	bool numeric = false;
	(void)state;

	assert_int_equal(flt_check_address_split("db.local:0080", host, port,
						 &numeric, &reason),
			 0);
	assert_string_equal(host, "db.local");
	assert_string_equal(port, "80");
	assert_false(numeric);
	assert_int_equal(flt_check_address_split("[fe80::1%eth0]:443", host,
						 port, &numeric, &reason),
			 0);
	assert_string_equal(host, "fe80::1%eth0");
	assert_string_equal(port, "443");
	assert_true(numeric);
	assert_int_equal(flt_check_address_split("10.0.0.1:9", host, port,
						 &numeric, &reason),
			 0);
	assert_true(numeric);
	assert_int_equal(flt_check_address_split("::1:80", host, port, &numeric,
						 &reason),
			 -EINVAL);
	assert_string_equal(reason, "IPv6 addresses go in brackets: [::1]:80");
	assert_int_equal(flt_check_address_split("web:65536", host, port,
						 &numeric, &reason),
			 -EINVAL);
	assert_string_equal(reason, "port must be 1-65535");

	assert_true(flt_check_path_ok("/health?full=1"));
	assert_false(flt_check_path_ok("health"));
	assert_false(flt_check_path_ok("/a b"));
	assert_false(flt_check_path_ok("/a\r\nHost: x"));
}

static void test_validate_good(void **state)
{
	static const struct spec good[] = {
		{ .type = "exec", .cmd0 = "/bin/check", .ncmd = 1 },
		{ .type = "exec",
		  .cmd0 = "/bin/check",
		  .ncmd = 2,
		  .name = "ready",
		  .interval = 1000,
		  .timeout = 999,
		  .failures = 1 },
		{ .type = "tcp", .address = "127.0.0.1:8080" },
		{ .type = "tcp", .address = "[::1]:8080", .failures = 0 },
		{ .type = "tcp", .address = "[fe80::1%eth0]:22" },
		{ .type = "tcp",
		  .address = "db.internal:5432",
		  .timeout = 500 },
		{ .type = "http", .address = "localhost:80" },
		{ .type = "http", .address = "localhost:65535", .path = "/" },
		{ .type = "http",
		  .address = "web:8080",
		  .path = "/healthz?full=1&x=%20" },
		{ .type = "tcp", .address = "a:1", .interval = 2001 },
		/* path is for http only and ignored elsewhere. */
		{ .type = "tcp", .address = "a:1", .path = "ignored" },
	};
	Flotilla__HealthCheck hc;
	char *argv[2];
	size_t i;

	(void)state;
	for (i = 0; i < FLT_ARRAY_SIZE(good); i++) {
		flt_error_t err = { .code = 42, .msg = "untouched" };

		make(&hc, &good[i], argv);
		assert_int_equal(flt_check_validate(&hc, "checks[0]", &err), 0);
		assert_int_equal(err.code, 42);
		assert_string_equal(err.msg, "untouched");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_healthy),
		cmocka_unit_test(test_tcp_refused),
		cmocka_unit_test(test_tcp_ipv6),
		cmocka_unit_test(test_tcp_name),
		cmocka_unit_test(test_tcp_unresolvable),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_http_ok),
		cmocka_unit_test(test_http_statuses),
		cmocka_unit_test(test_http_garbage),
		cmocka_unit_test(test_http_timeout),
		cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_http_bad_path),
		cmocka_unit_test(test_netns),
		cmocka_unit_test(test_netns_bad_fd),
		cmocka_unit_test(test_state_init),
		cmocka_unit_test(test_state_threshold),
		cmocka_unit_test(test_state_failed),
		cmocka_unit_test(test_state_default_and_one),
		cmocka_unit_test(test_state_due),
		cmocka_unit_test(test_state_output_cut),
		cmocka_unit_test(test_validate_bad),
		cmocka_unit_test(test_validate_prefixes),
		cmocka_unit_test(test_validate_good),
		cmocka_unit_test(test_address_split),
	};
	/* A server whose client gave up must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
