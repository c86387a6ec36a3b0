/*
 * Health checks of tasks: the tcp and http probes, the per-check state
 * (failure threshold, next due time).
 * exec checks are run by the sandbox code; specs are checked by
 * flt_check_validate (common/job.c).
 */
#ifndef FLOTILLA_AGENT_HEALTH_H
#define FLOTILLA_AGENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

#define AGENT_CHECK_DEFAULT_INTERVAL_MS 10000u
#define AGENT_CHECK_DEFAULT_TIMEOUT_MS 2000u
#define AGENT_CHECK_DEFAULT_FAILURES 3u
#define AGENT_CHECK_HTTP_MAX_RESPONSE 4096

/* A spec's values with the defaults applied for the fields left at 0. */
unsigned agent_check_interval_ms(const Flotilla__HealthCheck *hc);
unsigned agent_check_timeout_ms(const Flotilla__HealthCheck *hc);
unsigned agent_check_failures(const Flotilla__HealthCheck *hc);

/*
 * The probes. address is "host:port": an IPv4 address, an IPv6 address in
 * brackets ("[::1]:8080") or a name, resolved with getaddrinfo; every
 * address it yields is tried in turn.
 *
 * agent_check_tcp is healthy when a TCP connection is established.
 * agent_check_http sends "GET path HTTP/1.0" (path NULL or "": "/") with a
 * Host header, reads at most AGENT_CHECK_HTTP_MAX_RESPONSE bytes, and is
 * healthy when the status is 2xx or 3xx.
 *
 * If netns_fd >= 0 (an open /proc/<pid>/ns/net or similar, still owned by
 * the caller), the name is resolved and the sockets are created inside
 * that network namespace, by a short-lived thread that enters it with
 * setns (needs CAP_SYS_ADMIN). A socket stays in the namespace it was made
 * in, so the connect then happens from the calling thread.
 *
 * The whole probe, resolution included, is bounded by timeout_ms (0: the
 * default 2000 ms): the call blocks the calling thread about that long at
 * most, so run it off any event loop. Should getaddrinfo hang, its thread
 * is left to finish on its own and cleans up after itself. Thread-safe.
 *
 * Returns 0 healthy; 1 unhealthy, with a one-line reason in why
 * ("connect 127.0.0.1:8080: Connection refused", "http status 503",
 * "timed out after 2000 ms"); or a negative errno when the probe itself
 * could not run: -EINVAL for a bad address or path, -EPERM or -EBADF from
 * setns, -EMFILE and the like for resources (why says which). why may be
 * NULL when whylen is 0.
 */
int agent_check_tcp(const char *address, int netns_fd, unsigned timeout_ms,
		    char *why, size_t whylen);
int agent_check_http(const char *address, const char *path, int netns_fd,
		     unsigned timeout_ms, char *why, size_t whylen);

/*
 * The state of one check of one task. Pure logic, no I/O; times are the
 * caller's monotonic milliseconds.
 *
 * A new check starts NOT healthy (healthy = false, ever_ran = false) and is
 * due at once: a task is reported healthy only after its first pass, and
 * reports of a task that has never passed say unhealthy, not "unknown".
 * Callers that need the difference look at ever_ran.
 */
typedef struct agent_check_state {
	uint32_t consecutive_failures;
	bool healthy;
	bool ever_ran;
	int64_t next_due_ms;
	char last_output[256]; /* why of the last run, "" after a pass */
} agent_check_state_t;

void agent_check_state_init(agent_check_state_t *s,
			    const Flotilla__HealthCheck *hc, int64_t now_ms);

/* True when the check should run at now_ms. */
bool agent_check_due(const agent_check_state_t *s, int64_t now_ms);

/*
 * Records the result of a run finished at now_ms: 0 is a pass, anything
 * else (1, or a negative errno from a probe that could not run) a failure.
 * One pass makes the check healthy; agent_check_failures(hc) consecutive
 * failures make it unhealthy. The next run is due interval_ms after now_ms.
 * why (may be NULL) is kept, cut to fit, in last_output.
 * Returns true when s->healthy changed.
 */
bool agent_check_record(agent_check_state_t *s, const Flotilla__HealthCheck *hc,
			int result, const char *why, int64_t now_ms);

/*
 * True when the check has failed as often in a row as its threshold allows
 * (agent_check_failures(hc)): it has run, is unhealthy, and no more runs
 * are owed before that verdict. A check that has not run yet, or has
 * failed fewer times than its threshold since it last passed or started,
 * is not failed, even though it is not healthy either.
 */
bool agent_check_failed(const agent_check_state_t *s,
			const Flotilla__HealthCheck *hc);

#endif
