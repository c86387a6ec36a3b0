/*
 * Registration, heartbeats and long-polls: the agent's side of the wire.
 *
 * Three threads: the main loop (signals, task supervision, the systemd
 * watchdog), the sync thread (a small state machine, unregistered ->
 * syncing, at the interval the coordinator sets, backing off with jitter on
 * failures; nng redials underneath), and the watch thread (the long-poll,
 * whose answers wake the sync thread through an eventfd). A change in what
 * the agent reports of its tasks wakes the sync thread too (another
 * eventfd), at most every STATUS_GAP_MS: rollouts wait on those reports.
 * So do a new inventory digest and a patch step's progress (campaigns
 * wait on them). Every Sync carries the inventory's digest, and the whole
 * inventory when the coordinator's copy (SyncResponse.inventory_digest)
 * differs; the steps of each SyncResponse go to the step worker, and their
 * statuses come back in every Sync.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

#include <sodium.h>

#include "agent.h"
#include "api.h"
#include "invscan.h"
#include "pkgstore.h"
#include "steps.h"
#include "tasks.h"
#include "flotilla/log.h"
#include "flotilla/notify.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

/* Register waits for a durable commit; retries reuse the registration id. */
#define REGISTER_TIMEOUT_MS 30000
/* Rejections in a row before the agent concludes it is forgotten. */
#define AUTH_FAILURES_TO_REJOIN 3
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define FINGERPRINT_EVERY_MS 60000
#define TASKS_EVERY_MS 100
#define SHUTDOWN_LIMIT_S 10
/* Least time between two syncs brought forward by task changes: a
 * flapping task costs the coordinator at most 10 syncs a second. */
#define STATUS_GAP_MS 100
/* An inventory the coordinator did not take is offered again this late. */
#define INVENTORY_RESEND_MS 60000
/* Room under the coordinator's request limit for the rest of a Sync. */
#define SYNC_MAX_BYTES (FLT_WIRE_MAX_REQUEST - 16384)
/* One chunk: up to 256 KiB, over a link that may be slow. */
#define CHUNK_TIMEOUT_MS 30000
#define CHUNK_ATTEMPTS 3

enum agent_state { ST_UNREGISTERED, ST_SYNCING };

typedef struct agent {
	const agent_opts_t *o;
	flt_store_t *store;
	flt_client_t *client;
	agent_identity_t id;
	enum agent_state state;
	uint32_t interval_ms;
	int failures;
	int auth_failures;
	char reg_id[37];
	bool send_attrs; /* fingerprint changed or not sent since start */
	uint8_t attr_hash[16];
	int64_t next_fp_ms;
	agent_fingerprint_t fp;
	char api_address[512]; /* what fp reports of --api */
	agent_tasks_t *tasks;
	agent_api_t *api; /* --api, or NULL */
	/* Packages, inventory and patch steps. */
	char *pkgs_dir;
	agent_pkgs_t *pkgs;
	agent_invscan_t *inv;
	agent_steps_t *steps;
	char coord_digest[FLT_SHA256_HEX]; /* the coordinator's copy */
	bool coord_digest_known;
	char refused_digest[FLT_SHA256_HEX]; /* sent, not taken */
	int64_t resend_at_ms;
	char too_big_digest[FLT_SHA256_HEX]; /* warned about */
	Flotilla__RegisterRequest__LabelsEntry *reg_entries;
	Flotilla__RegisterRequest__LabelsEntry **reg_ptrs;
	Flotilla__SyncRequest__LabelsEntry *sync_entries;
	Flotilla__SyncRequest__LabelsEntry **sync_ptrs;
	/* Watch thread. */
	pthread_t watch_thread;
	bool watch_started;
	atomic_bool stopping;
	atomic_uint_fast64_t known_index;
	pthread_mutex_t id_mtx; /* guards id for the watch thread */
	int wake_fd; /* wakes the sync thread (push, shutdown) */
	int status_fd; /* a task's reported state or health changed */
	int quit_fd; /* the sync thread asks the main loop to exit */
	int64_t last_sync_ms;
	int exit_code;
} agent_t;

static void build_labels(agent_t *a)
{
	const flt_strlist_t *l = a->o->labels;
	size_t n = l ? l->n : 0;
	a->reg_entries = flt_xcalloc(n, sizeof(*a->reg_entries));
	a->reg_ptrs = flt_xcalloc(n, sizeof(*a->reg_ptrs));
	a->sync_entries = flt_xcalloc(n, sizeof(*a->sync_entries));
	a->sync_ptrs = flt_xcalloc(n, sizeof(*a->sync_ptrs));
	for (size_t i = 0; i < n; i++) {
		/* Flags were checked as key=value: split in place. */
		char *kv = (char *)l->v[i];
		char *eq = strchr(kv, '=');
		*eq = '\0';
		flotilla__register_request__labels_entry__init(
			&a->reg_entries[i]);
		a->reg_entries[i].key = kv;
		a->reg_entries[i].value = eq + 1;
		a->reg_ptrs[i] = &a->reg_entries[i];
		flotilla__sync_request__labels_entry__init(&a->sync_entries[i]);
		a->sync_entries[i].key = kv;
		a->sync_entries[i].value = eq + 1;
		a->sync_ptrs[i] = &a->sync_entries[i];
	}
}

static void refresh_fingerprint(agent_t *a)
{
	uint8_t h[16];
	agent_fingerprint_read(&a->fp, a->o->os_release);
	if (a->o->api_url) {
		agent_api_advertised(a->o->api_url, a->fp.hostname,
				     a->api_address, sizeof(a->api_address));
		a->fp.fp.api_address = a->api_address;
	}
	/* Borrowed: the allowances outlive the loop. */
	a->fp.fp.allowances = (Flotilla__Allowances *)a->o->allow;
	size_t len = protobuf_c_message_get_packed_size(&a->fp.fp.base);
	cleanup_free uint8_t *b = flt_xmalloc(len);
	protobuf_c_message_pack(&a->fp.fp.base, b);
	crypto_generichash(h, sizeof(h), b, len, NULL, 0);
	if (memcmp(h, a->attr_hash, sizeof(h)) != 0) {
		memcpy(a->attr_hash, h, sizeof(h));
		a->send_attrs = true;
	}
	a->next_fp_ms = flt_now_mono_ms() + FINGERPRINT_EVERY_MS;
}

/* Exponential backoff with full jitter in [d/2, d]. */
static int64_t backoff_ms(agent_t *a)
{
	int64_t d = BACKOFF_MIN_MS;
	for (int i = 1; i < a->failures && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

/*
 * The API checks grants against the coordinator's key and this node's id.
 * The key comes over the agent transport, authenticated by the join token
 * (Register) and the node secret (Sync): the agent trusts it as far as it
 * trusts that transport and no further (docs/security.md).
 */
static void trust_api(agent_t *a)
{
	agent_api_set_trust(a->api, a->id.valid ? a->id.node_id : NULL,
			    a->id.has_grant_key ? a->id.grant_key : NULL);
}

/* A Sync's grant key, when new: kept with the identity, then trusted. */
static void take_grant_key(agent_t *a, ProtobufCBinaryData key)
{
	flt_error_t err;
	agent_identity_t id = a->id;
	if (!agent_identity_grant_key(&id, key)) {
		sodium_memzero(&id, sizeof(id));
		return;
	}
	if (agent_identity_save(a->store, &id, a->o->coordinator, &err) < 0)
		flt_warn("grant key not stored: %s", err.msg);
	pthread_mutex_lock(&a->id_mtx);
	a->id = id;
	pthread_mutex_unlock(&a->id_mtx);
	sodium_memzero(&id, sizeof(id));
	trust_api(a);
	flt_info("coordinator grant key updated node=%s", a->id.node_id);
}

/* Returns 0, a negative error to retry later, or AGENT_EXIT_CONFIG. */
static int do_register(agent_t *a)
{
	Flotilla__RegisterRequest req = FLOTILLA__REGISTER_REQUEST__INIT;
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	Flotilla__RegisterResponse *resp = NULL;
	flt_error_t err;

	if (!a->o->join_token) {
		flt_error("cannot register: no join token (--join-token, "
			  "--join-token-file or $FLOTILLA_JOIN_TOKEN)");
		return AGENT_EXIT_CONFIG;
	}
	c.join_token = (char *)a->o->join_token;
	req.name = (char *)a->o->name;
	req.registration_id = a->reg_id;
	req.fingerprint = &a->fp.fp;
	req.n_labels = a->o->labels ? a->o->labels->n : 0;
	req.labels = a->reg_ptrs;
	int rc = flt_client_call(
		a->client, FLOTILLA__METHOD__METHOD_REGISTER, &c, &req.base,
		&flotilla__register_response__descriptor,
		(ProtobufCMessage **)&resp, REGISTER_TIMEOUT_MS, &err);
	if (rc == FLT_EAUTH || rc == FLT_EPROTO) {
		flt_error("registration refused: %s coordinator=%s", err.msg,
			  a->o->coordinator);
		return AGENT_EXIT_CONFIG;
	}
	if (rc < 0) {
		flt_warn("registration failed, will retry: %s", err.msg);
		return rc;
	}
	agent_identity_t id;
	if (agent_identity_from_reply(resp, &id) < 0) {
		flotilla__register_response__free_unpacked(resp, NULL);
		flt_warn("registration answered with a malformed identity");
		return FLT_EPROTO;
	}
	a->interval_ms = resp->heartbeat_interval_ms;
	flotilla__register_response__free_unpacked(resp, NULL);

	/* Keep the identity before using it: a crash now must not make us
	 * register twice. */
	if ((rc = agent_identity_save(a->store, &id, a->o->coordinator, &err)) <
	    0) {
		flt_error("cannot store identity: %s", err.msg);
		return rc;
	}
	pthread_mutex_lock(&a->id_mtx);
	a->id = id;
	pthread_mutex_unlock(&a->id_mtx);
	sodium_memzero(&id, sizeof(id));
	trust_api(a);
	flt_info("registered node=%s name=%s grant_key=%s", a->id.node_id,
		 a->o->name, a->id.has_grant_key ? "yes" : "none");
	a->send_attrs = false; /* Register carried them */
	return 0;
}

/* Whether the coordinator needs the whole inventory of this digest. */
static bool want_inventory(agent_t *a, const char *digest)
{
	if (a->coord_digest_known && !strcmp(a->coord_digest, digest))
		return false;
	return strcmp(a->refused_digest, digest) != 0 ||
	       flt_now_mono_ms() >= a->resend_at_ms;
}

static int do_sync(agent_t *a)
{
	Flotilla__SyncRequest req = FLOTILLA__SYNC_REQUEST__INIT;
	Flotilla__Credentials c;
	Flotilla__SyncResponse *resp = NULL;
	flt_error_t err;

	if (flt_now_mono_ms() >= a->next_fp_ms)
		refresh_fingerprint(a);
	agent_identity_creds(&a->id, &c);
	bool attrs = a->send_attrs;
	if (attrs) {
		req.fingerprint = &a->fp.fp;
		req.n_labels = a->o->labels ? a->o->labels->n : 0;
		req.labels = a->sync_ptrs;
	}
	req.known_index = atomic_load(&a->known_index);
	Flotilla__TaskStatus **ts = NULL;
	req.n_tasks = agent_tasks_status(a->tasks, &ts);
	req.tasks = ts;
	Flotilla__StepStatus **ss = NULL;
	req.n_steps = agent_steps_status(a->steps, &ss);
	req.steps = ss;
	const Flotilla__Inventory *inv = agent_invscan_get(a->inv);
	char digest[FLT_SHA256_HEX] = "";
	bool send_inv = inv && want_inventory(a, inv->digest);
	if (inv)
		snprintf(digest, sizeof(digest), "%s", inv->digest);
	req.inventory_digest = digest;
	if (send_inv) {
		req.inventory = (Flotilla__Inventory *)inv;
		if (protobuf_c_message_get_packed_size(&req.base) >
		    SYNC_MAX_BYTES) {
			if (strcmp(a->too_big_digest, digest) != 0)
				flt_warn("inventory not sent: larger than a "
					 "Sync may be (%u bytes) items=%zu",
					 SYNC_MAX_BYTES, inv->n_items);
			snprintf(a->too_big_digest, sizeof(a->too_big_digest),
				 "%s", digest);
			req.inventory = NULL;
			send_inv = false;
		}
	}
	int rc = flt_client_call(
		a->client, FLOTILLA__METHOD__METHOD_SYNC, &c, &req.base,
		&flotilla__sync_response__descriptor,
		(ProtobufCMessage **)&resp, AGENT_CALL_TIMEOUT_MS, &err);
	agent_tasks_status_free(ts, req.n_tasks);
	agent_steps_status_free(ss, req.n_steps);
	agent_invscan_release(a->inv, inv);
	if (rc == FLT_EAUTH) {
		flt_error("coordinator rejected this node's credentials: %s "
			  "node=%s",
			  err.msg, a->id.node_id);
		a->auth_failures++;
		return rc;
	}
	a->auth_failures = 0;
	if (rc < 0) {
		flt_log(a->failures ? FLT_LOG_DEBUG : FLT_LOG_WARN,
			"sync failed, backing off: %s", err.msg);
		return rc;
	}
	if (resp->heartbeat_interval_ms >= 100)
		a->interval_ms = resp->heartbeat_interval_ms;
	take_grant_key(a, resp->grant_key);
	/* The index is ours only once its allocations are applied: a set
	 * that failed comes again with the next sync. */
	bool applied = true;
	if (resp->allocs_set &&
	    agent_tasks_set_allocs(a->tasks, resp->allocs, resp->n_allocs,
				   &err) < 0) {
		flt_warn("allocations not applied, will retry: %s index=%llu",
			 err.msg, (unsigned long long)resp->index);
		applied = false;
	}
	if (applied)
		atomic_store(&a->known_index, resp->index);
	snprintf(a->coord_digest, sizeof(a->coord_digest), "%s",
		 resp->inventory_digest);
	a->coord_digest_known = true;
	if (send_inv && strcmp(resp->inventory_digest, digest) != 0) {
		flt_warn("the coordinator did not take the inventory, offering "
			 "it again in %d s digest=%.16s",
			 INVENTORY_RESEND_MS / 1000, digest);
		snprintf(a->refused_digest, sizeof(a->refused_digest), "%s",
			 digest);
		a->resend_at_ms = flt_now_mono_ms() + INVENTORY_RESEND_MS;
	}
	agent_steps_offer(a->steps, resp->steps, resp->n_steps);
	flotilla__sync_response__free_unpacked(resp, NULL);
	if (attrs)
		a->send_attrs = false;
	return 0;
}

/* Long-polls for changes to this node and wakes the main loop on one. */
static void *watch_main(void *arg)
{
	agent_t *a = arg;
	while (!atomic_load(&a->stopping)) {
		Flotilla__WatchRequest req = FLOTILLA__WATCH_REQUEST__INIT;
		Flotilla__WatchResponse *resp = NULL;
		Flotilla__Credentials c;
		flt_error_t err;

		pthread_mutex_lock(&a->id_mtx);
		bool valid = a->id.valid;
		agent_identity_t id = a->id;
		pthread_mutex_unlock(&a->id_mtx);
		if (!valid) {
			usleep(200 * 1000);
			continue;
		}
		agent_identity_creds(&id, &c);
		req.known_index = atomic_load(&a->known_index);
		req.max_wait_ms = AGENT_WATCH_WAIT_MS;
		int rc = flt_client_call(
			a->client, FLOTILLA__METHOD__METHOD_WATCH, &c,
			&req.base, &flotilla__watch_response__descriptor,
			(ProtobufCMessage **)&resp,
			AGENT_WATCH_WAIT_MS + AGENT_CALL_TIMEOUT_MS, &err);
		sodium_memzero(&id, sizeof(id));
		if (rc < 0) {
			if (!atomic_load(&a->stopping))
				usleep(AGENT_WATCH_RETRY_MS * 1000);
			continue;
		}
		uint64_t idx = resp->index;
		bool changed = resp->changed;
		flotilla__watch_response__free_unpacked(resp, NULL);
		if (changed) {
			uint64_t one = 1;
			flt_debug("coordinator pushed a change index=%llu",
				  (unsigned long long)idx);
			if (write(a->wake_fd, &one, sizeof(one)) < 0)
				flt_debug("wake failed");
			/* Until a sync applies it, watching again would
			 * only return at once: wait for it (or 5 s). */
			for (int i = 0; i < 100 && !atomic_load(&a->stopping) &&
					atomic_load(&a->known_index) < idx;
			     i++)
				usleep(50 * 1000);
		}
	}
	return NULL;
}

/*
 * The package store's chunk fetch: one FetchChunk call on the agent's
 * connection, with its credentials, tried again on transport failures.
 * Called by the step worker.
 */
static int fetch_chunk(void *arg, const char *sha256, uint8_t **data,
		       size_t *len, flt_error_t *err)
{
	agent_t *a = arg;
	Flotilla__FetchChunkRequest req = FLOTILLA__FETCH_CHUNK_REQUEST__INIT;
	int rc = flt_err(err, -ECANCELED, "the agent is stopping");

	req.sha256 = (char *)sha256;
	for (int i = 0; i < CHUNK_ATTEMPTS && !atomic_load(&a->stopping); i++) {
		Flotilla__FetchChunkResponse *resp = NULL;
		Flotilla__Credentials c;
		if (i)
			usleep(1000 * 1000);
		pthread_mutex_lock(&a->id_mtx);
		agent_identity_t id = a->id;
		pthread_mutex_unlock(&a->id_mtx);
		if (!id.valid)
			return flt_err(err, -EAGAIN,
				       "this agent is not registered yet");
		agent_identity_creds(&id, &c);
		rc = flt_client_call(
			a->client, FLOTILLA__METHOD__METHOD_FETCH_CHUNK, &c,
			&req.base, &flotilla__fetch_chunk_response__descriptor,
			(ProtobufCMessage **)&resp, CHUNK_TIMEOUT_MS, err);
		sodium_memzero(&id, sizeof(id));
		if (rc == 0) {
			*len = resp->data.len;
			*data = flt_xmalloc(*len ? *len : 1);
			memcpy(*data, resp->data.data, *len);
			flotilla__fetch_chunk_response__free_unpacked(resp,
								      NULL);
			return 0;
		}
		if (rc != FLT_ETRANSPORT && rc != -ETIMEDOUT && rc != -EAGAIN)
			break;
	}
	if (rc < 0 && err)
		flt_err_prefix(err, "chunk %.16s", sha256);
	return rc;
}

/* Tasks: what is reported of a task changed. Any thread. */
static void on_task_change(void *arg)
{
	agent_t *a = arg;
	uint64_t one = 1;
	if (write(a->status_fd, &one, sizeof(one)) < 0)
		flt_debug("status wake failed");
}

/*
 * The sync loop, on its own thread so that a slow or absent coordinator
 * never delays task supervision: unregistered -> syncing, at the interval
 * the coordinator sets, backing off on failures, woken early by a push.
 */
static void *sync_main(void *arg)
{
	agent_t *a = arg;
	int64_t next_action = 0;
	bool announced = false;

	while (!atomic_load(&a->stopping)) {
		int64_t now = flt_now_mono_ms();
		if (now >= next_action) {
			int rc = 0;
			if (a->state == ST_UNREGISTERED) {
				rc = do_register(a);
				if (rc == AGENT_EXIT_CONFIG) {
					uint64_t one = 1;
					a->exit_code = AGENT_EXIT_CONFIG;
					if (write(a->quit_fd, &one,
						  sizeof(one)) < 0)
						flt_debug("quit failed");
					return NULL;
				}
				if (rc == 0)
					a->state = ST_SYNCING;
			}
			if (a->state == ST_SYNCING) {
				a->last_sync_ms = flt_now_mono_ms();
				rc = do_sync(a);
				/*
				 * Rejected again and again: the coordinator
				 * has forgotten this node (its state was
				 * reset). Join as a new node if we hold a
				 * join token; the old identity stays stored
				 * until a new one replaces it. Without a
				 * token, keep trying: an operator can fix
				 * the coordinator side.
				 */
				if (rc == FLT_EAUTH &&
				    a->auth_failures >=
					    AUTH_FAILURES_TO_REJOIN &&
				    a->o->join_token) {
					flt_warn("registering again as a new "
						 "node");
					a->state = ST_UNREGISTERED;
					a->auth_failures = 0;
					a->send_attrs = true;
				}
			}
			now = flt_now_mono_ms();
			if (rc == 0) {
				if (a->failures)
					flt_info("connected to coordinator "
						 "after %d failed attempts",
						 a->failures);
				a->failures = 0;
				next_action = now + a->interval_ms;
				if (!announced) {
					flt_notify_ready("syncing");
					announced = true;
				}
			} else {
				a->failures++;
				next_action = now + backoff_ms(a);
			}
		}
		int64_t left = next_action - flt_now_mono_ms();
		struct pollfd p[2] = {
			{ .fd = a->wake_fd, .events = POLLIN },
			{ .fd = a->status_fd, .events = POLLIN },
		};
		if (poll(p, 2, left < 0 ? 0 : (int)left) > 0) {
			uint64_t v;
			bool pushed = (p[0].revents & POLLIN) &&
				      read(a->wake_fd, &v, sizeof(v)) > 0;
			bool changed = (p[1].revents & POLLIN) &&
				       read(a->status_fd, &v, sizeof(v)) > 0;
			/* A push or a task change cuts the wait short, never
			 * a backoff. */
			bool now_ok =
				a->state == ST_SYNCING && a->failures == 0;
			if (pushed && now_ok)
				next_action = 0;
			if (changed && now_ok &&
			    a->last_sync_ms + STATUS_GAP_MS < next_action)
				next_action = a->last_sync_ms + STATUS_GAP_MS;
		}
	}
	return NULL;
}

/*
 * Closes what agent_run opened, in the order their threads depend on each
 * other (a step borrows the connection, the tasks and the scanner; the
 * tasks keep running under their shims). Returns rc.
 */
static int close_parts(agent_t *a, int rc)
{
	if (a->steps) {
		flt_shutdown_step("stopping the patch step worker");
		agent_steps_close(a->steps);
	}
	flt_shutdown_step("freeing the coordinator connection");
	if (a->client)
		flt_client_close(a->client);
	flt_shutdown_step("stopping inventory scans");
	agent_invscan_close(a->inv);
	flt_shutdown_step("stopping task supervision");
	agent_tasks_close(a->tasks);
	if (a->pkgs)
		agent_pkgs_close(a->pkgs);
	free(a->pkgs_dir);
	free(a->reg_entries);
	free(a->reg_ptrs);
	free(a->sync_entries);
	free(a->sync_ptrs);
	pthread_mutex_destroy(&a->id_mtx);
	sodium_memzero(&a->id, sizeof(a->id));
	return rc;
}

int agent_run(const agent_opts_t *o, flt_store_t *store)
{
	agent_t a = { .o = o, .store = store, .interval_ms = 1000 };
	flt_client_opts_t co = { .url = o->coordinator,
				 .tls = o->tls,
				 .background = true };
	flt_error_t err;
	pthread_t sync_thread;

	pthread_mutex_init(&a.id_mtx, NULL);
	atomic_init(&a.stopping, false);
	atomic_init(&a.known_index, 0);
	build_labels(&a);
	refresh_fingerprint(&a);
	if (agent_identity_load(store, &a.id, &err) < 0 ||
	    agent_registration_id(store, a.reg_id, &err) < 0) {
		flt_error("%s", err.msg);
		return 1;
	}
	a.state = a.id.valid ? ST_SYNCING : ST_UNREGISTERED;
	if (a.id.valid)
		flt_info("identity loaded node=%s", a.id.node_id);
	if (flt_client_open(&co, &a.client, &err) < 0) {
		flt_error("%s", err.msg);
		return AGENT_EXIT_CONFIG;
	}
	a.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a.status_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a.quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a.wake_fd < 0 || a.status_fd < 0 || a.quit_fd < 0) {
		flt_error("eventfd: %s", strerror(errno));
		return 1;
	}
	/* Steps a previous run left under way are settled before any task
	 * is supervised: tasks start on the version they settle on. */
	size_t plen = strlen(o->data_dir) + sizeof("/packages");
	a.pkgs_dir = flt_xmalloc(plen);
	snprintf(a.pkgs_dir, plen, "%s/packages", o->data_dir);
	if (agent_pkgs_open(a.pkgs_dir, o->fleet_key,
			    o->allow_unsigned_packages, &a.pkgs, &err) < 0) {
		flt_error("%s", err.msg);
		return close_parts(&a, 1);
	}
	agent_steps_opts_t so = { .store = store,
				  .data_dir = o->data_dir,
				  .pkgs = a.pkgs,
				  .fetch = fetch_chunk,
				  .fetch_arg = &a,
				  .on_change = on_task_change,
				  .change_arg = &a,
				  .package_keep = o->package_keep };
	if (agent_steps_open(&so, &a.steps, &err) < 0) {
		flt_error("%s", err.msg);
		return close_parts(&a, 1);
	}
	agent_tasks_opts_t to = { .store = store,
				  .data_dir = o->data_dir,
				  .spec_dir = o->task_dir,
				  .on_change = on_task_change,
				  .change_arg = &a,
				  .pkgs = a.pkgs,
				  .allow = o->allow };
	if (agent_tasks_open(&to, &a.tasks, &err) < 0) {
		flt_error("%s", err.msg);
		return close_parts(&a, 1);
	}
	agent_invscan_opts_t io = {
		.scan = { .dpkg_status = o->dpkg_status,
			  .java_roots = o->java_roots,
			  .n_java_roots = o->n_java_roots,
			  .packages_dir = a.pkgs_dir },
		.interval_ms = o->inventory_interval_ms,
		.on_change = on_task_change,
		.change_arg = &a,
	};
	if (agent_invscan_open(&io, &a.inv, &err) < 0 ||
	    agent_steps_start(a.steps, a.tasks, a.inv, &err) < 0) {
		flt_error("%s", err.msg);
		return close_parts(&a, 1);
	}
	if (o->api_url &&
	    agent_api_open(o->api_url, o->tls, o->api_idle_ms,
			   o->api_max_per_source, a.tasks, &a.api, &err) < 0) {
		flt_error("--api: %s", err.msg);
		return close_parts(
			&a, err.code == FLT_EUSAGE ? AGENT_EXIT_CONFIG : 1);
	}
	trust_api(&a);
	int sfd = flt_signal_fd();
	if (o->watch &&
	    pthread_create(&a.watch_thread, NULL, watch_main, &a) == 0)
		a.watch_started = true;
	if (pthread_create(&sync_thread, NULL, sync_main, &a) != 0) {
		flt_error("cannot start the sync thread");
		return 1;
	}

	flt_notify_ready("starting");
	int64_t wd = flt_notify_watchdog_interval_ms(), next_wd = 0;
	int64_t next_tasks = 0;

	/* The main loop: signals, task supervision, the watchdog. */
	for (;;) {
		int64_t now = flt_now_mono_ms();
		if (now >= next_tasks) {
			agent_tasks_tick(a.tasks);
			next_tasks = now + TASKS_EVERY_MS;
		}
		int timeout = (int)(next_tasks - now);
		if (wd) {
			if (now >= next_wd) {
				flt_notify_watchdog();
				next_wd = now + wd;
			}
			if (next_wd - now < timeout)
				timeout = (int)(next_wd - now);
		}
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
				       { .fd = a.quit_fd, .events = POLLIN } };
		int n = poll(p, 2, timeout < 0 ? 0 : timeout);
		if (n > 0 && (p[0].revents & POLLIN) && flt_signal_stop(sfd))
			break;
		if (n > 0 && (p[1].revents & POLLIN))
			break;
	}
	flt_notify_stopping();
	flt_shutdown_guard(SHUTDOWN_LIMIT_S);
	atomic_store(&a.stopping, true);
	uint64_t one = 1;
	if (write(a.wake_fd, &one, sizeof(one)) < 0)
		flt_debug("wake failed");
	flt_shutdown_step("closing the coordinator connection");
	flt_client_shutdown(a.client);
	flt_shutdown_step("joining the sync thread");
	pthread_join(sync_thread, NULL);
	flt_shutdown_step("joining the watch thread");
	if (a.watch_started)
		pthread_join(a.watch_thread, NULL);
	flt_shutdown_step("closing the agent API");
	agent_api_close(a.api);
	close(sfd);
	close(a.wake_fd);
	close(a.status_fd);
	close(a.quit_fd);
	return close_parts(&a, a.exit_code);
}
