/*
 * The agent's own API (--api): the logs of the allocations it runs, read
 * by an operator (METHOD_AGENT_LOGS). Every request must carry a grant
 * the coordinator signed for that allocation on this node, unexpired
 * (flt_grant_check); the agent holds the coordinator's grant key and its
 * node id (agent_api_set_trust) from Register and Sync. Use tls+tcp:// off
 * loopback, so that grants do not travel in clear.
 */
#ifndef FLOTILLA_AGENT_API_H
#define FLOTILLA_AGENT_API_H

#include <stddef.h>

#include "flotilla/error.h"
#include "flotilla/tls.h"
#include "tasks.h"

/* Largest log chunk one request returns, and the default. */
#define AGENT_API_LOG_MAX (1u << 20)
/* Bytes of a tail read (offset -1) when the request gives none. */
#define AGENT_API_TAIL_DEFAULT 4096u

typedef struct agent_api agent_api_t;

/*
 * Listens on url (tls+tcp:// with tls's files, as checked by
 * flt_tls_check; tcp://, ipc://) and answers from tasks, which must
 * outlive the API. Logs a warning when the URL is neither TLS, loopback
 * nor ipc. idle_ms and max_per_source bound its connections as
 * flt_server_opts_t's fields do. Returns 0, FLT_EUSAGE for a bad URL, or
 * FLT_ETRANSPORT (or the TLS setup's error) when it cannot listen.
 */
int agent_api_open(const char *url, const flt_tls_opts_t *tls, uint32_t idle_ms,
		   unsigned max_per_source, agent_tasks_t *tasks,
		   agent_api_t **out, flt_error_t *err);
/*
 * The address to report for url: url itself, except that a wildcard host
 * (tcp://0.0.0.0:P, tcp://[::]:P, tcp://:P, and their tls+ forms) becomes
 * hostname, which others can dial.
 */
void agent_api_advertised(const char *url, const char *hostname, char *out,
			  size_t len);

/* The node id grants must name and the coordinator's grant key (32
 * bytes, copied; NULL: none yet, every read is refused). Any thread. */
void agent_api_set_trust(agent_api_t *a, const char *node_id,
			 const uint8_t *key);

/* Stops answering and frees a; NULL is allowed. */
void agent_api_close(agent_api_t *a);

#endif
