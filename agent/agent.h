/*
 * The agent library's host fingerprint, identity, sync loop and exec
 * (fingerprint.c, identity.c, sync.c, exec.c), for flotilla-agent's main.c
 * and the agent simulator (bench/agentsim.c).
 */
#ifndef FLOTILLA_AGENT_H
#define FLOTILLA_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/flags.h"
#include "flotilla/store.h"
#include "flotilla/tls.h"

#define AGENT_EXIT_CONFIG 78 /* EX_CONFIG: systemd must not restart us */

/* ---- fingerprint.c ---------------------------------------------------- */

/* What the agent reports about its host; strings owned by the struct. */
typedef struct agent_fingerprint {
	Flotilla__Fingerprint fp;
	char hostname[256], os_id[64], os_version[64], os_name[256];
	char kernel[256], arch[64], cgroup[16];
} agent_fingerprint_t;

/* Fills f from the running host. os_release is normally /etc/os-release. */
void agent_fingerprint_read(agent_fingerprint_t *f, const char *os_release);

/* "v2", "hybrid" or "v1", from the filesystems under /sys/fs/cgroup. */
const char *agent_cgroup_version(const char *root);

/* ---- identity.c ------------------------------------------------------- */

typedef struct agent_identity {
	char node_id[65];
	uint8_t secret[32];
	bool valid;
	/* The coordinator's grant key (RegisterResponse, SyncResponse): the
	 * agent's API serves only grants it signed. */
	uint8_t grant_key[32];
	bool has_grant_key;
} agent_identity_t;

/* Reads the stored identity into *id (valid false when there is none). */
int agent_identity_load(flt_store_t *s, agent_identity_t *id, flt_error_t *err);
int agent_identity_save(flt_store_t *s, const agent_identity_t *id,
			const char *coordinator, flt_error_t *err);

/*
 * The id this agent registers under: made (UUID v4) and stored on first
 * use, so that a Register retried after a lost reply gets the same node.
 */
int agent_registration_id(flt_store_t *s, char out[37], flt_error_t *err);

/*
 * The identity a RegisterResponse grants, copied into *id (valid set),
 * with the coordinator's grant key when the reply carries one.
 * Returns 0, or FLT_EPROTO (*id untouched) when the node id or the secret
 * does not have the size of one.
 */
int agent_identity_from_reply(const Flotilla__RegisterResponse *r,
			      agent_identity_t *id);

/* Takes key (a SyncResponse's grant_key) as the coordinator's grant key:
 * true when it is one (32 bytes) and differs from the key id held. */
bool agent_identity_grant_key(agent_identity_t *id, ProtobufCBinaryData key);

/* Fills c with id's node id and secret, which c borrows. */
void agent_identity_creds(const agent_identity_t *id, Flotilla__Credentials *c);

/* ---- sync.c: registration, heartbeats and long-polls ------------------ */

/* The deadline of a call to the coordinator, the longest wait of one Watch
 * (whose own deadline is the sum of both), and the pause before a failed
 * Watch is asked again. */
#define AGENT_CALL_TIMEOUT_MS 5000
#define AGENT_WATCH_WAIT_MS 30000
#define AGENT_WATCH_RETRY_MS 1000

typedef struct agent_opts {
	const char *coordinator;
	const flt_tls_opts_t *tls;
	const char *join_token; /* may be NULL once registered */
	const char *name;
	const flt_strlist_t *labels;
	const char *os_release;
	bool watch;
	const char *data_dir;
	const char *task_dir; /* static task specs, or NULL */
	const char *api_url; /* the agent's own API (logs), or NULL */
	/* Its connections (flt_server_opts_t): idle bound, per-source cap. */
	uint32_t api_idle_ms;
	unsigned api_max_per_source;
	/* Packages: those this key signed are installed (NULL: none can be
	 * verified); unsigned ones, and signed ones without a key to check
	 * them, only with allow_unsigned_packages. */
	const uint8_t *fleet_key;
	bool allow_unsigned_packages;
	/* Inventory: the dpkg status file (NULL or "": none), the Java
	 * roots, and the time between scans. */
	const char *dpkg_status;
	const char *const *java_roots;
	size_t n_java_roots;
	int64_t inventory_interval_ms;
	/* Staged versions kept per package (see agent_steps_opts_t). */
	unsigned package_keep;
	/* What tasks may weaken in their sandbox (the --allow-* flags),
	 * reported in the fingerprint; NULL: nothing. Borrowed. */
	const Flotilla__Allowances *allow;
} agent_opts_t;

/*
 * Runs until SIGINT/SIGTERM (returns 0) or a configuration error such as a
 * rejected join token (returns AGENT_EXIT_CONFIG).
 */
int agent_run(const agent_opts_t *o, flt_store_t *store);

/* ---- exec.c ----------------------------------------------------------- */

/* Runs the task of spec_path in the foreground, with the allowances allow
 * (NULL: none); returns its exit status (128 + signal when killed, 125
 * when it could not be started or was refused). */
int agent_exec(const char *spec_path, const char *data_dir,
	       const Flotilla__Allowances *allow);

#endif
