/* flotilla-coordinator: options, wiring, the main loop. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "coordinator.h"
#include "engine.h"
#include "flotilla/flags.h"
#include "flotilla/grant.h"
#include "flotilla/log.h"
#include "flotilla/notify.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"

#define TICK_MS 100

static const char *data_dir = "/var/lib/flotilla/coordinator";
static const char *listen_url = "tcp://127.0.0.1:4700";
static const char *api_url = "tcp://127.0.0.1:4701";
static const char *join_token;
static const char *join_token_file;
static long ttl_s = 10;
static long interval_ms;
static long max_watch_ms = 30000;
static long workers = 64;
static const char *idle_timeout = "60s";
static long max_per_source = FLT_SERVER_MAX_PER_SOURCE;
static long map_size_mb = 1024;
static bool dev;
static const char *acl_mode = "";
static long audit_max_events = 100000;
static const char *audit_max_age = "365d";
static const char *gc_retention = "4h";
static const char *gc_job_retention = "24h";
/* Parsed from the two above. */
static int64_t gc_retention_ms, gc_job_retention_ms;
static const char *log_level = "info";
static const char *advisories = FLT_ADVISORIES_DEFAULT;
static flt_tls_opts_t tls;
static const char *package_key_file;

static const flt_flag_t flags[] = {
	{ "data-dir", FLT_FLAG_STRING, &data_dir, "DIR",
	  "state directory (LMDB)", 0, 0, NULL },
	{ "listen", FLT_FLAG_STRING, &listen_url, "URL",
	  "where agents connect (tls+tcp://, tcp://, ipc://)", 0, 0, NULL },
	{ "api", FLT_FLAG_STRING, &api_url, "URL",
	  "where operators and the CLI connect", 0, 0, NULL },
	{ "join-token", FLT_FLAG_STRING, &join_token, "TOKEN",
	  "secret that agents present to register", 0, 0,
	  "FLOTILLA_JOIN_TOKEN" },
	{ "join-token-file", FLT_FLAG_STRING, &join_token_file, "FILE",
	  "read the join token from FILE", 0, 0, NULL },
	{ "heartbeat-ttl", FLT_FLAG_INT, &ttl_s, "SECONDS",
	  "declare a node down after this much silence (default 10)", 1, 3600,
	  NULL },
	{ "heartbeat-interval", FLT_FLAG_INT, &interval_ms, "MS",
	  "how often agents sync (default: a third of the TTL)", 100, 3600000,
	  NULL },
	{ "max-watch", FLT_FLAG_INT, &max_watch_ms, "MS",
	  "longest an agent's long-poll is held (default 30000)", 100, 600000,
	  NULL },
	{ "workers", FLT_FLAG_INT, &workers, "N",
	  "request contexts kept receiving per socket (default 64)", 1, 4096,
	  NULL },
	{ "idle-timeout", FLT_FLAG_STRING, &idle_timeout, "DURATION",
	  "close a connection silent this long with nothing pending "
	  "(default 60s)",
	  0, 0, NULL },
	{ "max-conns-per-source", FLT_FLAG_INT, &max_per_source, "N",
	  "connections one IP address may hold per port (default 100; 0: no "
	  "limit)",
	  0, 1000000, NULL },
	{ "map-size", FLT_FLAG_INT, &map_size_mb, "MIB",
	  "largest size the state may grow to (default 1024)", 16, 1 << 20,
	  NULL },
	{ "tls-ca", FLT_FLAG_STRING, &tls.ca_file, "FILE",
	  "CA that signs agent and operator certificates", 0, 0, NULL },
	{ "tls-cert", FLT_FLAG_STRING, &tls.cert_file, "FILE",
	  "this coordinator's certificate (PEM)", 0, 0, NULL },
	{ "tls-key", FLT_FLAG_STRING, &tls.key_file, "FILE",
	  "this coordinator's private key (PEM)", 0, 0, NULL },
	{ "advisories", FLT_FLAG_STRING, &advisories, "FILE",
	  "advisory file for advisory: queries (\"\": none)", 0, 0, NULL },
	{ "acl", FLT_FLAG_STRING, &acl_mode, "on|off",
	  "check every operator call against ACL tokens (default: on; off "
	  "with --dev)",
	  0, 0, NULL },
	{ "audit-max-events", FLT_FLAG_INT, &audit_max_events, "N",
	  "audit records kept, the oldest removed first (default 100000)", 100,
	  100000000, NULL },
	{ "audit-max-age", FLT_FLAG_STRING, &audit_max_age, "DURATION",
	  "audit records older than this are removed (default 365d)", 0, 0,
	  NULL },
	{ "package-key", FLT_FLAG_STRING, &package_key_file, "FILE",
	  "the fleet's package signing key (public): pushes it did not sign "
	  "are refused",
	  0, 0, NULL },
	{ "gc-retention", FLT_FLAG_STRING, &gc_retention, "DURATION",
	  "terminal allocations, evaluations and deployments are deleted "
	  "this long after they ended (default 4h)",
	  0, 0, NULL },
	{ "gc-job-retention", FLT_FLAG_STRING, &gc_job_retention, "DURATION",
	  "stopped jobs, and batch jobs that completed, are deleted this long "
	  "after they ended (default 24h)",
	  0, 0, NULL },
	{ "dev", FLT_FLAG_BOOL, &dev, NULL,
	  "development mode: plain transports without a warning", 0, 0, NULL },
	{ "log-level", FLT_FLAG_STRING, &log_level, "LEVEL",
	  "error, warn, info or debug", 0, 0, "FLOTILLA_LOG_LEVEL" },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static int load_token(char **out, flt_error_t *err)
{
	int rc = flt_join_token_load(join_token, join_token_file, out, err);
	if (rc < 0)
		return rc;
	if (!*out)
		return flt_err(err, FLT_EUSAGE,
			       "a join token is required (--join-token, "
			       "--join-token-file or $FLOTILLA_JOIN_TOKEN)");
	size_t n = strlen(*out);
	if (n < 16 || n > FLT_JOIN_TOKEN_MAX) {
		free(*out);
		*out = NULL; /* the caller's cleanup frees it too */
		return flt_err(err, FLT_EUSAGE,
			       "join token: must be 16 to %u characters",
			       FLT_JOIN_TOKEN_MAX);
	}
	return 0;
}

/* Long enough for the writer to drain a full batch to a slow disk. */
#define SHUTDOWN_LIMIT_S 30

static sched_fleet_t *fleet_of(void *ctx, flt_error_t *err)
{
	return coord_nodes_fleet(ctx, err);
}

static uint64_t fleet_gen(void *ctx) { return coord_nodes_generation(ctx); }

static void push_to(void *ctx, const char *node_id, uint64_t index)
{
	coord_nodes_push(ctx, node_id, index);
}

static void drained(void *ctx, const char *node_id)
{
	coord_nodes_drained(ctx, node_id);
}

static void node_event(void *ctx, const char *node_id, enum coord_node_event ev)
{
	coord_t *c = ctx;
	if (c->engine)
		coord_engine_node_event(c->engine, node_id, ev);
}

/* Opens every part in the order they depend on each other (ADR 0011). */
static int open_parts(coord_t *c, const char *token, int64_t ttl_ms,
		      bool acl_on, int64_t audit_age_ms,
		      const uint8_t *package_key, flt_error_t *err)
{
	static const char *const dbs[] = { "nodes",        "jobs",
					   "job_versions", "allocs",
					   "evals",        "deployments",
					   "packages",     "blobs",
					   "campaigns",    "campaign_targets",
					   "inventory",    "events",
					   "tokens",       "acl_tokens",
					   "acl_policies", "acl_meta",
					   "audit",        NULL };
	flt_store_opts_t so = { .dbs = dbs,
				.map_size = (size_t)map_size_mb << 20,
				.map_size_flag = "--map-size" };
	if (flt_store_open(data_dir, &so, &c->store, err) < 0 ||
	    coord_writer_start(c->store, &c->writer, err) < 0)
		return -1;
	coord_acl_opts_t lo = {
		.store = c->store,
		.writer = c->writer,
		.data_dir = data_dir,
		.enforce = acl_on,
		.audit_max_events = (uint64_t)audit_max_events,
		.audit_max_age_ms = audit_age_ms,
	};
	if (coord_acl_open(&lo, &c->acl, err) < 0)
		return -1;
	coord_nodes_opts_t no = {
		.store = c->store,
		.writer = c->writer,
		.ttl_ms = ttl_ms,
		.on_event = node_event,
		.ctx = c,
		.answer_watch = coord_sync_answer_watch,
	};
	if (coord_nodes_open(&no, &c->nodes, err) < 0)
		return -1;
	coord_engine_opts_t eo = {
		.store = c->store,
		.writer = c->writer,
		.fleet = fleet_of,
		.fleet_gen = fleet_gen,
		.push = push_to,
		.drained = drained,
		.ctx = c->nodes,
		.gc_retention_ms = gc_retention_ms,
		.gc_job_retention_ms = gc_job_retention_ms,
	};
	if (coord_engine_open(&eo, &c->engine, err) < 0)
		return -1;
	const char *adv = advisories;
	if (adv[0] && strcmp(adv, FLT_ADVISORIES_DEFAULT) == 0 &&
	    access(adv, R_OK) != 0)
		adv = ""; /* not installed: advisory: queries are refused */
	if (coord_pkgs_open(c->store, c->writer, package_key, &c->pkgs, err) <
		    0 ||
	    coord_grants_open(data_dir, FLT_GRANT_TTL_MS, &c->grants, err) <
		    0 ||
	    coord_inv_open(c->store, adv, &c->inv, err) < 0)
		return -1;
	coord_campaigns_opts_t co = {
		.store = c->store,
		.writer = c->writer,
		.nodes = c->nodes,
		.inv = c->inv,
		.pkgs = c->pkgs,
	};
	if (coord_campaigns_open(&co, &c->camps, err) < 0)
		return -1;
	coord_sync_opts_t yo = {
		.join_token = token,
		.interval_ms = (uint32_t)interval_ms,
		.max_watch_ms = (uint32_t)max_watch_ms,
		.nodes = c->nodes,
		.engine = c->engine,
		.inv = c->inv,
		.camps = c->camps,
		.pkgs = c->pkgs,
		.grant_key = coord_grants_public(c->grants),
	};
	return coord_sync_open(&yo, &c->sync, err);
}

/* Refuses new work, drains what was accepted, then closes the sockets
 * (deferred replies go out before they do) and frees every part. */
static void close_parts(coord_t *c, flt_server_t *agents, flt_server_t *api)
{
	flt_shutdown_guard(SHUTDOWN_LIMIT_S);
	flt_shutdown_step("refusing new agent work");
	if (c->nodes)
		coord_nodes_shutdown(c->nodes);
	flt_shutdown_step("finishing the engine's cycle");
	coord_engine_stop(c->engine);
	flt_shutdown_step("finishing the campaigns' round");
	coord_campaigns_stop(c->camps);
	flt_shutdown_step("draining the writer");
	coord_writer_stop(c->writer);
	flt_shutdown_step("closing the sockets");
	flt_server_close(agents);
	flt_server_close(api);
	coord_sync_close(c->sync);
	coord_engine_free(c->engine);
	coord_campaigns_free(c->camps);
	coord_nodes_close(c->nodes);
	coord_inv_close(c->inv);
	coord_pkgs_close(c->pkgs);
	coord_acl_close(c->acl);
	coord_grants_close(c->grants);
	coord_writer_free(c->writer);
	flt_store_close(c->store);
}

/* The main loop: the node table's tick and the watchdog, until a signal. */
static void serve(coord_t *c, int sfd)
{
	int64_t wd = flt_notify_watchdog_interval_ms(), next_wd = 0;
	for (;;) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		int n = poll(&p, 1, TICK_MS);
		if (n > 0 && flt_signal_stop(sfd))
			return;
		coord_nodes_tick(c->nodes);
		coord_sync_tick(c->sync);
		int64_t now = flt_now_mono_ms();
		if (wd && now >= next_wd) {
			flt_notify_watchdog();
			next_wd = now + wd;
		}
	}
}

static int run(uint32_t idle_ms, bool acl_on, int64_t audit_age_ms)
{
	coord_t c = { 0 };
	flt_server_t *agents = NULL, *api = NULL;
	cleanup_free char *token = NULL;
	flt_error_t err;
	int rc = 1;

	if (load_token(&token, &err) < 0 ||
	    flt_tls_check("--listen", listen_url, &tls, dev, &err) < 0 ||
	    flt_tls_check("--api", api_url, &tls, dev, &err) < 0) {
		flt_error("%s", err.msg);
		return 2;
	}
	int64_t ttl_ms = ttl_s * 1000;
	if (!interval_ms)
		interval_ms = ttl_ms / 3 < 200 ? 200 : ttl_ms / 3;
	if (interval_ms >= ttl_ms) {
		flt_error("--heartbeat-interval %ld ms must be shorter than "
			  "--heartbeat-ttl %ld s",
			  interval_ms, ttl_s);
		return 2;
	}

	/*
	 * An agent with --no-watch is silent between two syncs, for one
	 * interval plus its own delays: its connection must outlive that.
	 */
	uint64_t agent_idle_ms = idle_ms;
	if (agent_idle_ms < 2 * (uint64_t)interval_ms) {
		agent_idle_ms = 2 * (uint64_t)interval_ms;
		flt_info("idle timeout of the agent port raised to twice the "
			 "heartbeat interval idle_ms=%llu interval_ms=%ld",
			 (unsigned long long)agent_idle_ms, interval_ms);
	}

	uint8_t package_key[32];
	if (package_key_file &&
	    flt_key_load_public(package_key_file, package_key, &err) < 0) {
		flt_error("--package-key: %s", err.msg);
		return 2;
	}
	if (!package_key_file && !dev)
		flt_warn("no --package-key: packages are stored whether signed "
			 "or not; agents still refuse what they cannot verify "
			 "(see docs/security.md)");

	int sfd = flt_signal_fd();
	if (open_parts(&c, token, ttl_ms, acl_on, audit_age_ms,
		       package_key_file ? package_key : NULL, &err) < 0)
		goto out;
	flt_server_opts_t ao = { .url = listen_url,
				 .tls = &tls,
				 .workers = (unsigned)workers,
				 .handler = coord_api_agent,
				 .arg = &c,
				 .name = "agents",
				 .idle_ms = (uint32_t)agent_idle_ms,
				 .max_per_source = (unsigned)max_per_source };
	flt_server_opts_t po = { .url = api_url,
				 .tls = &tls,
				 .workers = 8,
				 .handler = coord_api_operator,
				 .arg = &c,
				 .name = "api",
				 .idle_ms = (uint32_t)idle_ms,
				 .max_per_source = (unsigned)max_per_source };
	if (flt_server_open(&ao, &agents, &err) < 0 ||
	    flt_server_open(&po, &api, &err) < 0)
		goto out;

	size_t ready, down, total = coord_nodes_count(c.nodes, &ready, &down);
	flt_info("coordinator started listen=%s api=%s data_dir=%s nodes=%zu "
		 "index=%llu ttl_ms=%lld interval_ms=%ld idle_ms=%u "
		 "max_conns_per_source=%ld",
		 listen_url, api_url, data_dir, total,
		 (unsigned long long)flt_store_index(c.store),
		 (long long)ttl_ms, interval_ms, idle_ms, max_per_source);
	flt_notify_ready("serving");
	serve(&c, sfd);
	flt_notify_stopping();
	rc = 0;
out:
	if (rc)
		flt_error("%s", err.msg);
	close_parts(&c, agents, api);
	if (sfd >= 0)
		close(sfd);
	return rc;
}

int main(int argc, char **argv)
{
	int next;

	flt_signals_block();

	flt_log_init("flotilla-coordinator", FLT_LOG_INFO);
	int rc =
		flt_flags_main(flags, argc, argv, &next, "flotilla-coordinator",
			       "Usage: flotilla-coordinator [OPTIONS]\n\n"
			       "Keeps the fleet's state and serves agents "
			       "and operators.",
			       false);
	if (rc >= 0)
		return rc;
	uint32_t idle_ms;
	flt_error_t err;
	if (flt_server_idle_parse(idle_timeout, &idle_ms, &err) < 0) {
		fprintf(stderr, "flotilla-coordinator: %s\n", err.msg);
		return FLT_FLAGS_EXIT_USAGE;
	}
	bool acl_on = !dev;
	if (strcmp(acl_mode, "on") == 0)
		acl_on = true;
	else if (strcmp(acl_mode, "off") == 0)
		acl_on = false;
	else if (*acl_mode) {
		fprintf(stderr,
			"flotilla-coordinator: --acl takes on or off, not "
			"'%s'\n",
			acl_mode);
		return FLT_FLAGS_EXIT_USAGE;
	}
	uint64_t age_ms = 0;
	int drc = flt_duration_parse(
		audit_max_age, (uint64_t)100 * 365 * 86400000, &age_ms, &err);
	if (drc < 0 || age_ms < 3600000) {
		fprintf(stderr, "flotilla-coordinator: --audit-max-age: %s\n",
			drc < 0 ? err.msg : "at least 1h");
		return FLT_FLAGS_EXIT_USAGE;
	}
	const char *const gcf[] = { "--gc-retention", "--gc-job-retention" };
	const char *const gcv[] = { gc_retention, gc_job_retention };
	int64_t *const gco[] = { &gc_retention_ms, &gc_job_retention_ms };
	for (int i = 0; i < 2; i++) {
		uint64_t ms = 0;
		int grc = flt_duration_parse(
			gcv[i], (uint64_t)100 * 365 * 86400000, &ms, &err);
		if (grc < 0 || ms < 1000) {
			fprintf(stderr, "flotilla-coordinator: %s: %s\n",
				gcf[i], grc < 0 ? err.msg : "at least 1s");
			return FLT_FLAGS_EXIT_USAGE;
		}
		*gco[i] = (int64_t)ms;
	}
	if ((rc = flt_program_start("flotilla-coordinator", log_level)) != 0)
		return rc;
	if (!acl_on && !dev)
		flt_warn("--acl off: every operator call may do everything, "
			 "without a token; anyone who reaches --api owns the "
			 "fleet");
	rc = run(idle_ms, acl_on, (int64_t)age_ms);
	flt_flags_free(flags);
	return rc;
}
