/*
 * The front door: one table of every method the coordinator serves, with
 * the port that serves it, the permission a caller needs (checked by
 * acl.c before the handler runs), whether it may change stored state (and
 * so is audited), its request and reply messages, and its handler. The two ports' request handlers look
 * the method up here and call the row's handler; nothing else routes.
 * The handlers below only pick the part of the coordinator that serves
 * a method: they hold no logic.
 */
#include <errno.h>

#include "coordinator.h"
#include "engine.h"
#include "flotilla/log.h"
#include "flotilla/util.h"

/* Agent methods. */
static void agent_register(coord_t *c, flt_request_t *r)
{
	coord_sync_register(c->sync, r);
}
static void agent_sync(coord_t *c, flt_request_t *r)
{
	coord_sync_heartbeat(c->sync, r);
}
static void agent_watch(coord_t *c, flt_request_t *r)
{
	coord_sync_watch(c->sync, r);
}
static void agent_fetch_chunk(coord_t *c, flt_request_t *r)
{
	coord_sync_fetch_chunk(c->sync, r);
}

/* Operator methods: the part that serves each. */
#define PART(fn, part, call) \
	static void fn(coord_t *c, flt_request_t *r) { call(c->part, r); }
PART(node_list, nodes, coord_nodes_list)
PART(node_get, nodes, coord_nodes_get)
PART(node_drain, nodes, coord_nodes_drain)
PART(node_eligibility, nodes, coord_nodes_eligibility)
PART(job_plan, engine, coord_jobs_plan)
PART(job_register, engine, coord_jobs_register)
PART(job_get, engine, coord_jobs_get)
PART(job_list, engine, coord_jobs_list)
PART(job_stop, engine, coord_jobs_stop)
PART(job_history, engine, coord_jobs_history)
PART(job_purge, engine, coord_jobs_purge)
PART(system_gc, engine, coord_system_gc)
PART(alloc_get, engine, coord_allocs_get)
PART(deployment_get, engine, coord_deployments_get)
PART(deployment_promote, engine, coord_deployments_promote)
PART(deployment_fail, engine, coord_deployments_fail)
PART(deployment_pause, engine, coord_deployments_pause)
PART(deployment_resume, engine, coord_deployments_resume)
PART(chunk_put, pkgs, coord_pkgs_chunk_put)
PART(package_push, pkgs, coord_pkgs_push)
PART(package_list, pkgs, coord_pkgs_list)
PART(package_get, pkgs, coord_pkgs_show)
PART(campaign_create, camps, coord_campaigns_create)
PART(campaign_get, camps, coord_campaigns_get)
PART(campaign_list, camps, coord_campaigns_list)
PART(campaign_pause, camps, coord_campaigns_pause)
PART(campaign_resume, camps, coord_campaigns_resume)
PART(campaign_abort, camps, coord_campaigns_abort)
PART(acl_bootstrap, acl, coord_acl_bootstrap)
PART(acl_token_create, acl, coord_acl_token_create)
PART(acl_token_list, acl, coord_acl_token_list)
PART(acl_token_get, acl, coord_acl_token_get)
PART(acl_token_delete, acl, coord_acl_token_delete)
PART(acl_token_self, acl, coord_acl_token_self)
PART(acl_policy_apply, acl, coord_acl_policy_apply)
PART(acl_policy_list, acl, coord_acl_policy_list)
PART(acl_policy_get, acl, coord_acl_policy_get)
PART(acl_policy_delete, acl, coord_acl_policy_delete)
PART(audit_list, acl, coord_audit_list)
#undef PART

static void alloc_logs_grant(coord_t *c, flt_request_t *r)
{
	coord_grants_alloc_logs(c->grants, c->engine, c->nodes, r);
}
/* Who uses a package: the campaigns and the engine, asked by PackageRm. */
static bool campaign_installs(void *ctx, const char *name, const char *version,
			      char *who, size_t len)
{
	return coord_campaigns_installs(((coord_t *)ctx)->camps, name, version,
					who, len);
}
static bool job_uses(void *ctx, const char *name, char *who, size_t len)
{
	return coord_engine_uses_package(((coord_t *)ctx)->engine, name, who,
					 len);
}
static void package_rm(coord_t *c, flt_request_t *r)
{
	coord_pkg_users_t u = { campaign_installs, job_uses, c };
	coord_pkgs_rm(c->pkgs, r, &u);
}

static void inventory_query(coord_t *c, flt_request_t *r)
{
	coord_inv_query(c->inv, c->nodes, r);
}
static void inventory_get(coord_t *c, flt_request_t *r)
{
	coord_inv_get(c->inv, c->nodes, r);
}

#define M(name) FLOTILLA__METHOD__METHOD_##name
#define D(msg) &flotilla__##msg##__descriptor
#define AGENT COORD_PORT_AGENT
#define OPERATOR COORD_PORT_OPERATOR
#define P(perm) COORD_PERM_##perm

/* In the order of the Method enum in flotilla.proto. */
static const coord_method_t methods[] = {
	{ M(REGISTER), AGENT, P(JOIN), true, D(register_request),
	  D(register_response), agent_register },
	{ M(SYNC), AGENT, P(NODE_SELF), true, D(sync_request), D(sync_response),
	  agent_sync },
	{ M(WATCH), AGENT, P(NODE_SELF), false, D(watch_request),
	  D(watch_response), agent_watch },
	{ M(FETCH_CHUNK), AGENT, P(NODE_SELF), false, D(fetch_chunk_request),
	  D(fetch_chunk_response), agent_fetch_chunk },

	{ M(NODE_LIST), OPERATOR, P(NODE_READ), false, D(node_list_request),
	  D(node_list_response), node_list },
	{ M(NODE_GET), OPERATOR, P(NODE_READ), false, D(node_get_request),
	  D(node_get_response), node_get },
	{ M(NODE_DRAIN), OPERATOR, P(NODE_WRITE), true, D(node_drain_request),
	  D(node_get_response), node_drain },
	{ M(NODE_ELIGIBILITY), OPERATOR, P(NODE_WRITE), true,
	  D(node_eligibility_request), D(node_get_response), node_eligibility },

	/* A plan changes nothing, but it shows what a submission would do:
	 * it needs the right to submit. */
	{ M(JOB_PLAN), OPERATOR, P(NS_SUBMIT_JOB), false, D(job_plan_request),
	  D(job_plan_response), job_plan },
	{ M(JOB_REGISTER), OPERATOR, P(NS_SUBMIT_JOB), true,
	  D(job_register_request), D(job_register_response), job_register },
	{ M(JOB_GET), OPERATOR, P(NS_READ_JOB), false, D(job_get_request),
	  D(job_get_response), job_get },
	{ M(JOB_LIST), OPERATOR, P(NS_READ_JOB), false, D(job_list_request),
	  D(job_list_response), job_list },
	{ M(JOB_STOP), OPERATOR, P(NS_STOP_JOB), true, D(job_stop_request),
	  D(job_register_response), job_stop },
	{ M(JOB_HISTORY), OPERATOR, P(NS_READ_JOB), false, D(job_get_request),
	  D(job_history_response), job_history },
	{ M(JOB_PURGE), OPERATOR, P(NS_STOP_JOB), true, D(job_stop_request),
	  D(gc_response), job_purge },
	{ M(ALLOC_GET), OPERATOR, P(NS_READ_JOB), false, D(alloc_get_request),
	  D(alloc_get_response), alloc_get },
	{ M(ALLOC_LOGS_GRANT), OPERATOR, P(NS_READ_LOGS), false,
	  D(alloc_logs_grant_request), D(alloc_logs_grant_response),
	  alloc_logs_grant },
	{ M(DEPLOYMENT_GET), OPERATOR, P(NS_READ_JOB), false,
	  D(deployment_get_request), D(deployment_get_response),
	  deployment_get },
	{ M(DEPLOYMENT_PROMOTE), OPERATOR, P(NS_SUBMIT_JOB), true,
	  D(deployment_get_request), D(deployment_get_response),
	  deployment_promote },
	{ M(DEPLOYMENT_FAIL), OPERATOR, P(NS_SUBMIT_JOB), true,
	  D(deployment_get_request), D(deployment_get_response),
	  deployment_fail },
	{ M(DEPLOYMENT_PAUSE), OPERATOR, P(NS_SUBMIT_JOB), true,
	  D(deployment_get_request), D(deployment_get_response),
	  deployment_pause },
	{ M(DEPLOYMENT_RESUME), OPERATOR, P(NS_SUBMIT_JOB), true,
	  D(deployment_get_request), D(deployment_get_response),
	  deployment_resume },

	{ M(CHUNK_PUT), OPERATOR, P(PACKAGE_WRITE), true, D(chunk_put_request),
	  D(chunk_put_response), chunk_put },
	{ M(PACKAGE_PUSH), OPERATOR, P(PACKAGE_WRITE), true,
	  D(package_push_request), D(package_get_response), package_push },
	{ M(PACKAGE_LIST), OPERATOR, P(PACKAGE_READ), false,
	  D(package_list_request), D(package_get_response), package_list },
	{ M(PACKAGE_GET), OPERATOR, P(PACKAGE_READ), false,
	  D(package_get_request), D(package_get_response), package_get },
	{ M(PACKAGE_RM), OPERATOR, P(PACKAGE_WRITE), true,
	  D(package_get_request), D(package_rm_response), package_rm },

	{ M(INVENTORY_QUERY), OPERATOR, P(INVENTORY_READ), false,
	  D(inventory_query_request), D(inventory_query_response),
	  inventory_query },
	{ M(INVENTORY_GET), OPERATOR, P(INVENTORY_READ), false,
	  D(inventory_get_request), D(inventory_get_response), inventory_get },

	{ M(CAMPAIGN_CREATE), OPERATOR, P(CAMPAIGN_WRITE), true,
	  D(campaign_create_request), D(campaign_get_response),
	  campaign_create },
	{ M(CAMPAIGN_GET), OPERATOR, P(CAMPAIGN_READ), false,
	  D(campaign_get_request), D(campaign_get_response), campaign_get },
	{ M(CAMPAIGN_LIST), OPERATOR, P(CAMPAIGN_READ), false,
	  D(campaign_list_request), D(campaign_list_response), campaign_list },
	{ M(CAMPAIGN_PAUSE), OPERATOR, P(CAMPAIGN_WRITE), true,
	  D(campaign_get_request), D(campaign_get_response), campaign_pause },
	{ M(CAMPAIGN_RESUME), OPERATOR, P(CAMPAIGN_WRITE), true,
	  D(campaign_get_request), D(campaign_get_response), campaign_resume },
	{ M(CAMPAIGN_ABORT), OPERATOR, P(CAMPAIGN_WRITE), true,
	  D(campaign_get_request), D(campaign_get_response), campaign_abort },

	/* Bootstrap needs no token: it works once (acl.c). */
	{ M(ACL_BOOTSTRAP), OPERATOR, P(ANYONE), true, D(acl_bootstrap_request),
	  D(acl_token_response), acl_bootstrap },
	{ M(ACL_TOKEN_CREATE), OPERATOR, P(MANAGEMENT), true,
	  D(acl_token_create_request), D(acl_token_response),
	  acl_token_create },
	{ M(ACL_TOKEN_LIST), OPERATOR, P(MANAGEMENT), false,
	  D(acl_list_request), D(acl_token_list_response), acl_token_list },
	{ M(ACL_TOKEN_GET), OPERATOR, P(MANAGEMENT), false, D(acl_get_request),
	  D(acl_token_response), acl_token_get },
	{ M(ACL_TOKEN_DELETE), OPERATOR, P(MANAGEMENT), true,
	  D(acl_get_request), D(acl_token_response), acl_token_delete },
	{ M(ACL_TOKEN_SELF), OPERATOR, P(TOKEN), false, D(acl_list_request),
	  D(acl_token_response), acl_token_self },
	{ M(ACL_POLICY_APPLY), OPERATOR, P(MANAGEMENT), true,
	  D(acl_policy_apply_request), D(acl_policy_response),
	  acl_policy_apply },
	{ M(ACL_POLICY_LIST), OPERATOR, P(MANAGEMENT), false,
	  D(acl_list_request), D(acl_policy_list_response), acl_policy_list },
	{ M(ACL_POLICY_GET), OPERATOR, P(MANAGEMENT), false, D(acl_get_request),
	  D(acl_policy_response), acl_policy_get },
	{ M(ACL_POLICY_DELETE), OPERATOR, P(MANAGEMENT), true,
	  D(acl_get_request), D(acl_policy_response), acl_policy_delete },

	{ M(AUDIT_LIST), OPERATOR, P(AUDIT_READ), false, D(audit_list_request),
	  D(audit_list_response), audit_list },

	{ M(SYSTEM_GC), OPERATOR, P(MANAGEMENT), true, D(system_gc_request),
	  D(gc_response), system_gc },
};

const coord_method_t *coord_api_method(Flotilla__Method m)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(methods); i++)
		if (methods[i].method == m)
			return &methods[i];
	return NULL;
}

const coord_method_t *coord_api_methods(size_t *n)
{
	*n = FLT_ARRAY_SIZE(methods);
	return methods;
}

static void dispatch(coord_t *c, flt_request_t *r, coord_port_t port)
{
	Flotilla__Method m = flt_request_envelope(r)->method;
	const coord_method_t *row = coord_api_method(m);
	if (!row || row->port != port) {
		flt_request_fail(r, FLT_EMETHOD,
				 "method %s is not served on the %s port",
				 flt_method_name(m),
				 port == COORD_PORT_AGENT ? "agent" : "API");
		return;
	}
	/* The permission first: a refused call's body is never decoded. */
	if (port == COORD_PORT_OPERATOR &&
	    coord_acl_authorize(c->acl, r, row) < 0)
		return;
	row->handler(c, r);
}

void coord_api_agent(flt_request_t *r, void *arg)
{
	coord_t *c = arg;
	if (coord_nodes_closing(c->nodes)) {
		flt_request_fail(r, -EAGAIN, "coordinator is shutting down");
		return;
	}
	dispatch(c, r, COORD_PORT_AGENT);
}

void coord_api_operator(flt_request_t *r, void *arg)
{
	dispatch(arg, r, COORD_PORT_OPERATOR);
}
