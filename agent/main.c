/* flotilla-agent: options and wiring. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/pkg.h"
#include "flotilla/privilege.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"
#include "options.h"

static const char *coordinator = "tcp://127.0.0.1:4700";
static const char *data_dir = "/var/lib/flotilla/agent";
static const char *join_token;
static const char *join_token_file;
static const char *name;
static flt_strlist_t labels;
static const char *os_release = "/etc/os-release";
static const char *task_dir;
static const char *api_url;
static bool dev;
static bool no_watch;
static const char *log_level = "info";
static flt_tls_opts_t tls;
static const char *fleet_key_file;
static const char *package_key_file;
static bool allow_unsigned;
static const char *dpkg_status = "/var/lib/dpkg/status";
static flt_strlist_t java_roots;
static const char *inventory_interval = "5m";
static long package_keep = 2;
static const char *idle_timeout = "60s";
static long max_per_source = FLT_SERVER_MAX_PER_SOURCE;
static flt_strlist_t allow_caps, allow_volumes, allow_syscalls, allow_users;
static bool allow_host_network, allow_seccomp_unconfined;

static const flt_flag_t flags[] = {
	{ "coordinator", FLT_FLAG_STRING, &coordinator, "URL",
	  "the coordinator's agent address", 0, 0, "FLOTILLA_COORDINATOR" },
	{ "data-dir", FLT_FLAG_STRING, &data_dir, "DIR",
	  "state directory (identity, LMDB)", 0, 0, NULL },
	{ "join-token", FLT_FLAG_STRING, &join_token, "TOKEN",
	  "secret to register with (needed only once)", 0, 0,
	  "FLOTILLA_JOIN_TOKEN" },
	{ "join-token-file", FLT_FLAG_STRING, &join_token_file, "FILE",
	  "read the join token from FILE", 0, 0, NULL },
	{ "name", FLT_FLAG_STRING, &name, "NAME",
	  "node name (default: the host name)", 0, 0, NULL },
	{ "label", FLT_FLAG_KV, &labels, "KEY=VALUE",
	  "a node label; repeatable", 0, 0, NULL },
	{ "os-release", FLT_FLAG_STRING, &os_release, "FILE",
	  "os-release file to fingerprint (default /etc/os-release)", 0, 0,
	  NULL },
	{ "task-dir", FLT_FLAG_STRING, &task_dir, "DIR",
	  "run every task spec (*.json) found in DIR", 0, 0, NULL },
	{ "api", FLT_FLAG_STRING, &api_url, "URL",
	  "serve allocation logs here (e.g. tls+tcp://0.0.0.0:4811), to "
	  "callers with a grant the coordinator signed",
	  0, 0, NULL },
	{ "idle-timeout", FLT_FLAG_STRING, &idle_timeout, "DURATION",
	  "close an --api connection silent this long with nothing "
	  "pending (default 60s)",
	  0, 0, NULL },
	{ "max-conns-per-source", FLT_FLAG_INT, &max_per_source, "N",
	  "connections one IP address may hold to --api (default 100; 0: no "
	  "limit)",
	  0, 1000000, NULL },
	{ "tls-ca", FLT_FLAG_STRING, &tls.ca_file, "FILE",
	  "CA that signs the coordinator's certificate (and --api's "
	  "clients)",
	  0, 0, NULL },
	{ "tls-cert", FLT_FLAG_STRING, &tls.cert_file, "FILE",
	  "this agent's certificate (PEM), for the coordinator and --api", 0, 0,
	  NULL },
	{ "tls-key", FLT_FLAG_STRING, &tls.key_file, "FILE",
	  "this agent's private key (PEM)", 0, 0, NULL },
	{ "tls-server-name", FLT_FLAG_STRING, &tls.server_name, "NAME",
	  "name the coordinator's certificate must carry (default: URL host)",
	  0, 0, NULL },
	{ "dev", FLT_FLAG_BOOL, &dev, NULL,
	  "development mode: plain transports without a warning", 0, 0, NULL },
	{ "package-key", FLT_FLAG_STRING, &package_key_file, "FILE",
	  "the fleet's package signing key (public): packages it did not "
	  "sign are refused",
	  0, 0, NULL },
	{ "fleet-key", FLT_FLAG_STRING, &fleet_key_file, "FILE",
	  "the same as --package-key (its former name)", 0, 0, NULL },
	{ "allow-unsigned-packages", FLT_FLAG_BOOL, &allow_unsigned, NULL,
	  "install packages with no signature (or none this agent can "
	  "check); the default with --dev and no --package-key",
	  0, 0, NULL },
	{ "dpkg-status", FLT_FLAG_STRING, &dpkg_status, "FILE",
	  "dpkg database to inventory (default /var/lib/dpkg/status; "
	  "\"none\": no dpkg packages)",
	  0, 0, NULL },
	{ "java-root", FLT_FLAG_LIST, &java_roots, "DIR",
	  "search DIR for Java archives (.jar, .war, .ear) to inventory; "
	  "repeatable",
	  0, 0, NULL },
	{ "inventory-interval", FLT_FLAG_STRING, &inventory_interval,
	  "DURATION", "time between inventory scans (default 5m)", 0, 0, NULL },
	{ "package-keep", FLT_FLAG_INT, &package_keep, "N",
	  "staged versions kept per package besides the current one and "
	  "the one a rollback needs (default 2)",
	  0, 100, NULL },
	{ "no-watch", FLT_FLAG_BOOL, &no_watch, NULL,
	  "do not long-poll; see changes at the next heartbeat only", 0, 0,
	  NULL },
	{ "allow-cap", FLT_FLAG_LIST, &allow_caps, "NAME",
	  "tasks may keep capability NAME (NET_BIND_SERVICE or "
	  "CAP_NET_BIND_SERVICE); repeatable; default none",
	  0, 0, NULL },
	{ "allow-host-network", FLT_FLAG_BOOL, &allow_host_network, NULL,
	  "tasks may use the host's network (network \"host\")", 0, 0, NULL },
	{ "allow-host-volume", FLT_FLAG_LIST, &allow_volumes,
	  "NAME=PATH[:ro|rw]",
	  "tasks may mount host directory PATH (read-only unless :rw), by "
	  "name or by a path inside it; repeatable",
	  0, 0, NULL },
	{ "allow-syscall", FLT_FLAG_LIST, &allow_syscalls, "NAME",
	  "tasks may add system call NAME to their seccomp filter "
	  "(seccomp.allow); repeatable",
	  0, 0, NULL },
	{ "allow-seccomp-unconfined", FLT_FLAG_BOOL, &allow_seccomp_unconfined,
	  NULL,
	  "tasks may run without the default seccomp profile (the "
	  "never-granted system calls stay blocked)",
	  0, 0, NULL },
	{ "allow-user", FLT_FLAG_LIST, &allow_users, "USER",
	  "tasks may run as USER (name, UID or UID:GID, as the spec "
	  "writes it) instead of nobody; repeatable",
	  0, 0, NULL },
	{ "log-level", FLT_FLAG_STRING, &log_level, "LEVEL",
	  "error, warn, info or debug", 0, 0, "FLOTILLA_LOG_LEVEL" },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static int run(int64_t inv_interval_ms, uint32_t idle_ms,
	       const Flotilla__Allowances *allow)
{
	static const char *const dbs[] = { "identity", "tasks", "packages",
					   "steps", NULL };
	uint8_t fleet_key[32];
	flt_store_opts_t so = { .dbs = dbs, .map_size = (size_t)256 << 20 };
	flt_store_t *store = NULL;
	cleanup_free char *token = NULL;
	char host[256];
	flt_error_t err;

	if (flt_join_token_load(join_token, join_token_file, &token, &err) <
	    0) {
		flt_error("%s", err.msg);
		return AGENT_EXIT_CONFIG;
	}
	if (!name) {
		agent_default_name(host, sizeof(host));
		name = host;
	}
	if (!flt_is_name(name, 63)) {
		flt_error("--name \"%s\": must be 1 to 63 of [A-Za-z0-9._-]",
			  name);
		return AGENT_EXIT_CONFIG;
	}
	if (flt_tls_check("--coordinator", coordinator, &tls, dev, &err) < 0 ||
	    (api_url && flt_tls_check("--api", api_url, &tls, dev, &err) < 0)) {
		flt_error("%s", err.msg);
		return AGENT_EXIT_CONFIG;
	}
	if (package_key_file && fleet_key_file &&
	    strcmp(package_key_file, fleet_key_file)) {
		flt_error("--package-key and --fleet-key name different files: "
			  "give one");
		return AGENT_EXIT_CONFIG;
	}
	if (!package_key_file)
		package_key_file = fleet_key_file;
	if (package_key_file &&
	    flt_key_load_public(package_key_file, fleet_key, &err) < 0) {
		flt_error("--package-key: %s", err.msg);
		return AGENT_EXIT_CONFIG;
	}
	/* --dev keeps a keyless dev fleet working; a key given is a key
	 * meant to be enforced, --dev or not. */
	bool unsigned_ok = allow_unsigned || (dev && !package_key_file);
	if (unsigned_ok)
		flt_warn("packages are installed without a signature check%s "
			 "(%s): anyone who can push to the coordinator can "
			 "run code on this host; give --package-key in "
			 "production",
			 package_key_file ? " when unsigned" : "",
			 allow_unsigned ? "--allow-unsigned-packages"
					: "--dev");
	else if (!package_key_file)
		flt_warn(
			"no --package-key: every package is refused (give "
			"the fleet's public key, or --allow-unsigned-packages)");
	if (flt_store_open(data_dir, &so, &store, &err) < 0) {
		flt_error("%s", err.msg);
		return 1;
	}
	agent_opts_t o = {
		.coordinator = coordinator,
		.tls = &tls,
		.join_token = token,
		.name = name,
		.labels = &labels,
		.os_release = os_release,
		.watch = !no_watch,
		.data_dir = data_dir,
		.task_dir = task_dir,
		.api_url = api_url,
		.api_idle_ms = idle_ms,
		.api_max_per_source = (unsigned)max_per_source,
		.fleet_key = package_key_file ? fleet_key : NULL,
		.allow_unsigned_packages = unsigned_ok,
		.dpkg_status = strcmp(dpkg_status, "none") ? dpkg_status : NULL,
		.java_roots = java_roots.v,
		.n_java_roots = java_roots.n,
		.inventory_interval_ms = inv_interval_ms,
		.package_keep = (unsigned)package_keep,
		.allow = allow,
	};
	cleanup_free char *allowed = flt_allowances_text(allow);
	flt_info("agent starting name=%s coordinator=%s data_dir=%s "
		 "package_key=%s unsigned_packages=%s allowances=\"%s\"",
		 name, coordinator, data_dir,
		 package_key_file ? package_key_file : "none",
		 unsigned_ok ? "allowed" : "refused", allowed);
	int rc = agent_run(&o, store);
	flt_store_close(store);
	return rc;
}

int main(int argc, char **argv)
{
	int64_t inv_interval_ms;
	int next;

	flt_signals_block();

	flt_log_init("flotilla-agent", FLT_LOG_INFO);
	int rc = flt_flags_main(flags, argc, argv, &next, "flotilla-agent",
				"Usage: flotilla-agent [OPTIONS]\n"
				"       flotilla-agent [--data-dir DIR] exec "
				"SPEC.json\n\n"
				"Joins a Flotilla fleet and keeps this host "
				"in sync with it. exec runs one task spec in "
				"the agent's sandbox, in the foreground.",
				true);
	if (rc >= 0)
		return rc;
	/* Allowances are refused before anything starts, exec included:
	 * a never-granted one is a configuration error, not a warning. */
	agent_allow_flags_t af = {
		.caps = &allow_caps,
		.volumes = &allow_volumes,
		.syscalls = &allow_syscalls,
		.users = &allow_users,
		.host_network = allow_host_network,
		.seccomp_unconfined = allow_seccomp_unconfined,
	};
	/* Freed on every return, usage errors included. */
	cleanup_pb Flotilla__Allowances *allow = NULL;
	flt_error_t aerr;
	if (agent_allowances_build(&af, data_dir, &allow, &aerr) < 0) {
		fprintf(stderr, "flotilla-agent: %s\n", aerr.msg);
		return FLT_FLAGS_EXIT_USAGE;
	}
	if (next < argc && strcmp(argv[next], "exec") == 0) {
		if (next + 2 != argc) {
			fprintf(stderr,
				"usage: flotilla-agent [--data-dir DIR] "
				"exec SPEC.json\n");
			return FLT_FLAGS_EXIT_USAGE;
		}
		flt_log_init("flotilla-agent", FLT_LOG_WARN);
		return agent_exec(argv[next + 1], data_dir, allow);
	}
	if (next < argc) {
		fprintf(stderr, "flotilla-agent: unexpected argument \"%s\"\n",
			argv[next]);
		return FLT_FLAGS_EXIT_USAGE;
	}
	/* A bad value on the command line is a usage error, as a bad flag. */
	if (agent_interval_parse(inventory_interval, &inv_interval_ms) < 0) {
		fprintf(stderr,
			"flotilla-agent: --inventory-interval \"%s\": a "
			"duration from 1s to 24h, such as 90s, 5m or 1h30m\n",
			inventory_interval);
		return FLT_FLAGS_EXIT_USAGE;
	}
	if (name && !flt_is_name(name, 63)) {
		fprintf(stderr,
			"flotilla-agent: --name \"%s\": must be 1 to 63 of "
			"[A-Za-z0-9._-]\n",
			name);
		return FLT_FLAGS_EXIT_USAGE;
	}
	uint32_t idle_ms;
	flt_error_t err;
	if (flt_server_idle_parse(idle_timeout, &idle_ms, &err) < 0) {
		fprintf(stderr, "flotilla-agent: %s\n", err.msg);
		return FLT_FLAGS_EXIT_USAGE;
	}
	if ((rc = flt_program_start("flotilla-agent", log_level)) != 0)
		return rc;
	rc = run(inv_interval_ms, idle_ms, allow);
	flt_flags_free(flags);
	return rc;
}
