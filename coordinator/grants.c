/*
 * Grants for the agents' APIs. An agent's --api serves an allocation's
 * logs only to a caller holding a grant this coordinator signed for that
 * allocation on that agent's node, valid for a minute. Operators ask for
 * one here (AllocLogsGrant, a read of the allocation's job), so that the
 * permission to read logs is decided in one place, by the coordinator,
 * and the agent only checks a signature, names and a time.
 *
 * The key is the coordinator's own, not the fleet's package key: it is
 * made on first start and never leaves the data directory. Agents get
 * its public half at Register and with every Sync, both authenticated
 * (the join token, then the node secret) over the agent transport: an
 * agent trusts it exactly as far as it trusts that transport, which is
 * why production runs it over tls+tcp://.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "coordinator.h"
#include "engine.h"
#include "flotilla/grant.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"

struct coord_grants {
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	int64_t ttl_ms;
};

int coord_grants_open(const char *data_dir, int64_t ttl_ms,
		      coord_grants_t **out, flt_error_t *err)
{
	cleanup_free char *pub = NULL, *sec = NULL;
	coord_grants_t *g;
	bool made = false;
	int rc;

	if (asprintf(&pub, "%s/grant.pub", data_dir) < 0 ||
	    asprintf(&sec, "%s/grant.key", data_dir) < 0)
		return flt_err(err, -ENOMEM, "grant key: out of memory");
	if (access(sec, F_OK) != 0 && errno == ENOENT) {
		/* A stale public half without its secret is only in the
		 * way: the pair is made together or not at all. */
		unlink(pub);
		if ((rc = flt_key_generate(pub, sec, err)) < 0)
			return rc;
		made = true;
	}
	g = flt_xcalloc(1, sizeof(*g));
	if ((rc = flt_key_load_secret(sec, g->sk, err)) < 0) {
		free(g);
		return rc;
	}
	g->ttl_ms = ttl_ms;
	char id[17];
	flt_key_id(g->sk + crypto_sign_SEEDBYTES, id);
	flt_info("grant key %s key_id=%s path=%s", made ? "made" : "loaded", id,
		 sec);
	*out = g;
	return 0;
}

void coord_grants_close(coord_grants_t *g)
{
	if (!g)
		return;
	sodium_memzero(g->sk, sizeof(g->sk));
	free(g);
}

const uint8_t *coord_grants_public(const coord_grants_t *g)
{
	/* An ed25519 secret key ends with its public key. */
	return g->sk + crypto_sign_SEEDBYTES;
}

void coord_grants_alloc_logs(coord_grants_t *g, struct coord_engine *e,
			     coord_nodes_t *n, flt_request_t *r)
{
	cleanup_pb Flotilla__AllocLogsGrantRequest *req = NULL;
	char alloc_id[37], node_id[37], name[256], addr[512];
	flt_error_t err;
	int rc;

	if (flt_request_body(r, &flotilla__alloc_logs_grant_request__descriptor,
			     &req) < 0)
		return;
	if (!*req->alloc_id) {
		flt_request_fail(r, FLT_EPROTO, "alloc_id: required");
		return;
	}
	if ((rc = coord_allocs_node(e, req->alloc_id, coord_call_namespace(r),
				    alloc_id, node_id, &err)) < 0) {
		flt_request_fail(r, rc, "%s", err.msg);
		return;
	}
	if (!*node_id) {
		flt_request_fail(r, FLT_ENOTFOUND,
				 "allocation %.8s is not placed on a node",
				 alloc_id);
		return;
	}
	if ((rc = coord_nodes_agent_api(n, node_id, name, sizeof(name), addr,
					sizeof(addr), &err)) < 0) {
		flt_request_fail(r, rc, "%s", err.msg);
		return;
	}
	if (!*addr) {
		flt_request_fail(r, FLT_ENOTFOUND,
				 "node %s has no agent API (start the agent "
				 "with --api)",
				 name);
		return;
	}
	Flotilla__AllocLogsGrantResponse resp =
		FLOTILLA__ALLOC_LOGS_GRANT_RESPONSE__INIT;
	int64_t now = flt_now_wall_ms();
	if ((rc = flt_grant_issue(alloc_id, node_id, coord_call_who(r), now,
				  g->ttl_ms, g->sk, &resp.grant,
				  &resp.signature, &err)) < 0) {
		flt_request_fail(r, rc, "%s", err.msg);
		return;
	}
	resp.alloc_id = alloc_id;
	resp.node_id = node_id;
	resp.node_name = name;
	resp.api_address = addr;
	resp.expires_ms = now + g->ttl_ms;
	flt_request_reply(r, &resp.base);
	flt_debug("logs grant issued alloc=%s node=%s ttl_ms=%lld", alloc_id,
		  node_id, (long long)g->ttl_ms);
	free(resp.grant.data);
	free(resp.signature.data);
}
