/*
 * agentsim: a fleet of simulated agents in one process, to load a real
 * coordinator the way real agents do.
 *
 * Every simulated agent owns one REQ socket with its own dialer, so N agents
 * are N TCP connections, and one nng_aio that carries its calls (send, then
 * receive; the callback decides what comes next): no thread per agent.
 * Agents register with the join token, then sync with their node
 * credentials once per interval. A scheduler thread fires agent i at offset
 * i * interval / N inside every interval, so the load is spread evenly the
 * way a large fleet's heartbeats are, not sent in one burst.
 *
 * With --kill K the simulator stops K agents at once (they stop syncing and
 * their sockets close) and a poller asks the coordinator's API every 100 ms
 * how they are seen: how long until every killed node shows "down", and
 * whether any other node ever shows anything but "ready" after the warmup
 * (a flap). --poll list (the default) reads the whole node list, as an
 * operator's dashboard would; --poll get asks only for the killed nodes.
 *
 * The report is plain text on stdout followed by one JSON line. Latency is
 * measured on CLOCK_MONOTONIC from the send to the reply callback, so it
 * includes the simulator's own scheduling delays: on a small machine the
 * simulator and the coordinator compete for the same cores.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "flotilla/flags.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"

#define NS_PER_MS 1000000ll
#define NS_PER_S 1000000000ll
#define REG_ATTEMPTS 3
#define MAX_NOTES 5
#define SCHED_TICK_NS NS_PER_MS
#define LOST_AFTER_NS (3 * NS_PER_S) /* no connection at all: give up */
#define CLOSE_WAIT_NS (15 * NS_PER_S)

/* ---- options --------------------------------------------------------- */

static const char *coordinator_url = "tcp://127.0.0.1:4700";
static const char *api_url = "tcp://127.0.0.1:4701";
static const char *join_token;
static const char *name_prefix = "sim";
static const char *poll_method = "list";
static long n_agents = 100;
static long interval_ms = 1000;
static long duration_s = 30;
static long warmup_s = 5;
static long kill_n;
static long kill_at_s = 10;
static long timeout_ms = 5000;
static long reg_inflight = 500;
static long connect_wait_s = 60;
static long poll_ms = 100;
static const char *log_level = "warn";

static const flt_flag_t flags[] = {
	{ "coordinator", FLT_FLAG_STRING, &coordinator_url, "URL",
	  "the coordinator's agent address", 0, 0, "FLOTILLA_COORDINATOR" },
	{ "join-token", FLT_FLAG_STRING, &join_token, "TOKEN",
	  "secret the agents register with", 0, 0, "FLOTILLA_JOIN_TOKEN" },
	{ "agents", FLT_FLAG_INT, &n_agents, "N",
	  "simulated agents, one TCP connection each (default 100)", 1,
	  1000000, NULL },
	{ "interval", FLT_FLAG_INT, &interval_ms, "MS",
	  "sync interval of every agent (default 1000)", 10, 3600000, NULL },
	{ "duration", FLT_FLAG_INT, &duration_s, "S",
	  "measured seconds after the warmup (default 30)", 1, 86400, NULL },
	{ "warmup", FLT_FLAG_INT, &warmup_s, "S",
	  "seconds of syncing before measuring (default 5)", 0, 3600, NULL },
	{ "kill", FLT_FLAG_INT, &kill_n, "K",
	  "stop K agents at once and time their detection (default 0)", 0,
	  1000000, NULL },
	{ "kill-at", FLT_FLAG_INT, &kill_at_s, "S",
	  "when to kill, in seconds from the first sync (default 10)", 0,
	  86400, NULL },
	{ "api", FLT_FLAG_STRING, &api_url, "URL",
	  "the coordinator's API address, polled with --kill", 0, 0,
	  "FLOTILLA_ADDR" },
	{ "poll", FLT_FLAG_STRING, &poll_method, "list|get",
	  "with --kill: read the node list (default) or only the killed "
	  "nodes",
	  0, 0, NULL },
	{ "poll-interval", FLT_FLAG_INT, &poll_ms, "MS",
	  "API poll period with --kill (default 100)", 10, 60000, NULL },
	{ "name-prefix", FLT_FLAG_STRING, &name_prefix, "NAME",
	  "agents are named NAME-00000, NAME-00001... (default sim)", 0, 0,
	  NULL },
	{ "timeout", FLT_FLAG_INT, &timeout_ms, "MS",
	  "deadline of one call (default 5000, like the agent)", 10, 600000,
	  NULL },
	{ "reg-inflight", FLT_FLAG_INT, &reg_inflight, "N",
	  "registrations in flight at once (default 500)", 1, 1000000,
	  NULL },
	{ "connect-wait", FLT_FLAG_INT, &connect_wait_s, "S",
	  "longest wait for all connections (default 60)", 1, 3600, NULL },
	{ "log-level", FLT_FLAG_STRING, &log_level, "LEVEL",
	  "error, warn, info or debug (default warn)", 0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static volatile sig_atomic_t interrupted;
/* Kernel and machine of the simulated hosts: this host's. */
static struct utsname host_uts;

/* ---- types ----------------------------------------------------------- */

enum call_state { CS_SEND, CS_RECV };
enum call_op { OP_REGISTER, OP_SYNC };

typedef struct sim sim_t;

typedef struct sim_agent {
	sim_t *sim;
	size_t idx;
	char name[64];
	char reg_id[37];
	nng_socket sock;
	nng_dialer dialer;
	nng_ctx ctx;
	nng_aio *aio;
	/* Set by whoever starts a call, cleared by the callback that ends
	 * it: the aio and the fields below belong to that call meanwhile. */
	atomic_bool busy;
	atomic_bool up;     /* a pipe is connected */
	atomic_bool killed; /* stopped by --kill: never sends again */
	enum call_op op;
	enum call_state state;
	bool in_window; /* sent inside the measured window */
	atomic_bool registered; /* node_id and secret are set */
	int attempts;
	uint64_t next_id, req_id;
	int64_t t_send;
	int64_t last_send; /* send time of the latest sync */
	uint64_t known_index;
	char node_id[FLT_NODE_ID_MAX + 1];
	uint8_t secret[FLT_NODE_SECRET_LEN];
} sim_agent_t;

typedef struct counts {
	atomic_uint_fast64_t ok, timeout, transport, remote, bad, skipped;
} counts_t;

/* Latency samples in microseconds; every sample is kept. */
typedef struct samples {
	uint32_t *v;
	size_t cap;
	atomic_size_t n;
} samples_t;

/* What the poller saw of one agent. */
typedef struct seen {
	int64_t down_at; /* killed agents: first answer showing "down" */
	bool flapped;    /* live agent seen not "ready" after warmup */
} seen_t;

struct sim {
	sim_agent_t *agents;
	size_t n;
	int64_t period_ns;
	int64_t sync_start, meas_start, meas_end;
	int64_t meas_stop; /* meas_end, or earlier when the run was cut */
	int64_t lost_at;   /* every connection gone since (0: never) */
	atomic_bool stopping;

	/* Connections. */
	atomic_size_t connected;
	size_t connected_first; /* at the end of the connect phase */
	atomic_uint_fast64_t disconnects; /* of live agents, while syncing */
	atomic_bool syncing;
	int64_t connect_ns;

	/* Registration. */
	atomic_size_t reg_next, reg_finished;
	atomic_uint_fast64_t reg_ok, reg_failed, reg_retries;
	samples_t reg_lat;
	int64_t reg_ns;

	/* Syncs: every one, and those sent inside the measured window. */
	counts_t all, win;
	samples_t sync_lat;
	int64_t lag_max_ns; /* scheduler: worst delay behind the plan */
	uint64_t lag_over_10ms;

	/* --kill. */
	atomic_int_fast64_t kill_at; /* 0: not yet */
	size_t *killed;
	size_t nkilled;
	pthread_t closer;
	bool closer_started;
	atomic_int_fast64_t kill_close_ns; /* 0: still closing */
	seen_t *seen;
	size_t nflapped;
	char flap_notes[MAX_NOTES][128];
	size_t nflap_notes;
	uint64_t polls, poll_failed;
	uint64_t polls_rejected; /* node lists flt_client_call refused */
	samples_t poll_lat;
	size_t list_nodes, list_bytes;

	pthread_mutex_t note_mtx;
	char notes[MAX_NOTES][FLT_ERROR_MSG_MAX];
	size_t nnotes;
};

/* ---- small helpers --------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
	struct timespec ts = { .tv_sec = t / NS_PER_S,
			       .tv_nsec = t % NS_PER_S };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/* Joins t if it ends within timeout_ns; false if it is still running. */
static bool join_within(pthread_t t, int64_t timeout_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t at = (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec + timeout_ns;
	ts.tv_sec = at / NS_PER_S;
	ts.tv_nsec = at % NS_PER_S;
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

static void samples_init(samples_t *s, size_t cap)
{
	s->v = flt_xcalloc(cap, sizeof(*s->v));
	s->cap = cap;
	atomic_init(&s->n, 0);
}

static void samples_add(samples_t *s, int64_t ns)
{
	size_t i = atomic_fetch_add(&s->n, 1);
	int64_t us = ns / 1000;
	if (i < s->cap)
		s->v[i] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

typedef struct pct {
	size_t n;
	double p50, p90, p99, max; /* ms */
} pct_t;

/* Nearest-rank percentiles; sorts the samples in place. */
static pct_t samples_pct(samples_t *s)
{
	size_t n = atomic_load(&s->n);
	pct_t p = { .n = n < s->cap ? n : s->cap };
	if (!p.n)
		return p;
	qsort(s->v, p.n, sizeof(*s->v), cmp_u32);
	const double q[] = { 0.50, 0.90, 0.99 };
	double *out[] = { &p.p50, &p.p90, &p.p99 };
	for (size_t i = 0; i < 3; i++) {
		size_t r = (size_t)(q[i] * (double)p.n + 0.999999);
		*out[i] = s->v[(r ? r : 1) - 1] / 1000.0;
	}
	p.max = s->v[p.n - 1] / 1000.0;
	return p;
}

static void note_error(sim_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Keeps the first few distinct error messages for the report. */
static void note_error(sim_t *s, const char *fmt, ...)
{
	char msg[FLT_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->note_mtx);
	bool known = false;
	for (size_t i = 0; i < s->nnotes; i++)
		known |= strcmp(s->notes[i], msg) == 0;
	if (!known && s->nnotes < MAX_NOTES)
		snprintf(s->notes[s->nnotes++], sizeof(s->notes[0]), "%s",
			 msg);
	pthread_mutex_unlock(&s->note_mtx);
	flt_debug("call failed error=\"%s\"", msg);
}

/* One descriptor per agent connection: the soft limit is rarely enough. */
static void raise_nofile(size_t need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		flt_warn("cannot raise RLIMIT_NOFILE error=\"%s\"",
			 strerror(errno));
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		flt_warn("open file limit is below what the run needs "
			 "limit=%llu need=%zu",
			 (unsigned long long)rl.rlim_cur, need);
	else
		flt_info("open file limit limit=%llu",
			 (unsigned long long)rl.rlim_cur);
}

/* ---- one call per agent at a time ------------------------------------ */

/* Packs and sends one request on the agent's aio; busy must be held. */
static int call_start(sim_agent_t *a, enum call_op op, int64_t now,
		      const Flotilla__Credentials *creds,
		      const ProtobufCMessage *body)
{
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	flt_error_t err;
	nng_msg *msg;

	env.version = FLT_WIRE_VERSION;
	env.method = op == OP_REGISTER ? FLOTILLA__METHOD__METHOD_REGISTER
				       : FLOTILLA__METHOD__METHOD_SYNC;
	env.request_id = a->req_id = ++a->next_id;
	env.credentials = (Flotilla__Credentials *)creds;
	int rc = flt_envelope_pack(&env, body, &msg, &err);
	if (rc < 0) {
		note_error(a->sim, "%s", err.msg);
		return rc;
	}
	a->op = op;
	a->state = CS_SEND;
	a->t_send = now;
	nng_aio_set_msg(a->aio, msg);
	nng_aio_set_timeout(a->aio, (nng_duration)timeout_ms);
	nng_ctx_send(a->ctx, a->aio);
	return 0;
}

/* A plausible host, as the real agent reports it. */
static void fill_fingerprint(Flotilla__Fingerprint *fp, const char *host)
{
	flotilla__fingerprint__init(fp);
	fp->hostname = (char *)host;
	fp->os_id = "debian";
	fp->os_version = "12";
	fp->os_name = "Debian GNU/Linux 12 (bookworm)";
	fp->kernel = host_uts.release;
	fp->arch = host_uts.machine;
	fp->cpu_count = 4;
	fp->memory_bytes = 8ull << 30;
	fp->cgroup_version = "v2";
	fp->agent_version = FLT_VERSION;
}

static void reg_start(sim_agent_t *a)
{
	Flotilla__RegisterRequest req = FLOTILLA__REGISTER_REQUEST__INIT;
	Flotilla__RegisterRequest__LabelsEntry label =
		FLOTILLA__REGISTER_REQUEST__LABELS_ENTRY__INIT;
	Flotilla__RegisterRequest__LabelsEntry *labels[] = { &label };
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	Flotilla__Fingerprint fp;
	sim_t *s = a->sim;

	fill_fingerprint(&fp, a->name);
	label.key = "bench";
	label.value = "agentsim";
	req.name = a->name;
	req.fingerprint = &fp;
	req.n_labels = 1;
	req.labels = labels;
	/* Kept across retries, as the agent keeps it in its store. */
	req.registration_id = a->reg_id;
	c.join_token = (char *)join_token;
	atomic_store(&a->busy, true);
	a->attempts++;
	if (call_start(a, OP_REGISTER, now_ns(), &c, &req.base) < 0) {
		atomic_fetch_add(&s->reg_failed, 1);
		atomic_store(&a->busy, false);
		atomic_fetch_add(&s->reg_finished, 1);
	}
}

/* Ends this agent's registration and starts the next waiting one. */
static void reg_end(sim_agent_t *a, bool ok, bool retry)
{
	sim_t *s = a->sim;
	atomic_store(&a->busy, false);
	if (!ok && retry && a->attempts < REG_ATTEMPTS &&
	    !atomic_load(&s->stopping)) {
		atomic_fetch_add(&s->reg_retries, 1);
		reg_start(a);
		return;
	}
	atomic_fetch_add(ok ? &s->reg_ok : &s->reg_failed, 1);
	atomic_fetch_add(&s->reg_finished, 1);
	size_t next = atomic_fetch_add(&s->reg_next, 1);
	if (next < s->n && !atomic_load(&s->stopping))
		reg_start(&s->agents[next]);
}

static void reg_reply(sim_agent_t *a, const flt_envelope_t *rep, int64_t now)
{
	Flotilla__RegisterResponse *resp;
	flt_error_t err;

	if (rep->error && rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE) {
		Flotilla__ErrorCode code = rep->error->code;
		note_error(a->sim, "register %s: %s", a->name,
			   rep->error->message);
		/* A refused token or request fails the same way again. */
		reg_end(a, false,
			code != FLOTILLA__ERROR_CODE__ERROR_UNAUTHENTICATED &&
				code != FLOTILLA__ERROR_CODE__ERROR_BAD_REQUEST);
		return;
	}
	if (flt_envelope_body(rep, &flotilla__register_response__descriptor,
			      (ProtobufCMessage **)&resp, &err) < 0) {
		note_error(a->sim, "register %s: bad reply: %s", a->name,
			   err.msg);
		reg_end(a, false, true);
		return;
	}
	bool ok = resp->node_secret.len == sizeof(a->secret) &&
		  strlen(resp->node_id) < sizeof(a->node_id);
	if (ok) {
		snprintf(a->node_id, sizeof(a->node_id), "%s", resp->node_id);
		memcpy(a->secret, resp->node_secret.data, sizeof(a->secret));
		atomic_store(&a->registered, true);
		samples_add(&a->sim->reg_lat, now - a->t_send);
	} else {
		note_error(a->sim, "register %s: malformed identity", a->name);
	}
	flotilla__register_response__free_unpacked(resp, NULL);
	reg_end(a, ok, !ok);
}

static void sync_fire(sim_agent_t *a, int64_t now)
{
	Flotilla__SyncRequest req = FLOTILLA__SYNC_REQUEST__INIT;
	Flotilla__Credentials c = FLOTILLA__CREDENTIALS__INIT;
	sim_t *s = a->sim;

	if (!atomic_load(&a->registered) || atomic_load(&a->killed))
		return;
	bool win = now >= s->meas_start && now < s->meas_end;
	if (atomic_exchange(&a->busy, true)) {
		/* The previous sync is still waiting for its answer (or the
		 * agent was just killed and its closer holds it). */
		if (atomic_load(&a->killed))
			return;
		atomic_fetch_add(&s->all.skipped, 1);
		if (win)
			atomic_fetch_add(&s->win.skipped, 1);
		return;
	}
	if (atomic_load(&a->killed)) {
		atomic_store(&a->busy, false);
		return;
	}
	c.node_id = a->node_id;
	c.node_secret.data = a->secret;
	c.node_secret.len = sizeof(a->secret);
	req.known_index = a->known_index;
	a->in_window = win;
	a->last_send = now;
	if (call_start(a, OP_SYNC, now, &c, &req.base) < 0) {
		atomic_fetch_add(&s->all.bad, 1);
		if (win)
			atomic_fetch_add(&s->win.bad, 1);
		atomic_store(&a->busy, false);
	}
}

/* Counts one sync outcome; field is offsetof(counts_t, ...). */
static void sync_count(sim_agent_t *a, size_t field)
{
	sim_t *s = a->sim;
	atomic_fetch_add((atomic_uint_fast64_t *)((char *)&s->all + field), 1);
	if (a->in_window)
		atomic_fetch_add(
			(atomic_uint_fast64_t *)((char *)&s->win + field), 1);
}

static void sync_reply(sim_agent_t *a, const flt_envelope_t *rep, int64_t now)
{
	Flotilla__SyncResponse *resp;
	flt_error_t err;

	if (rep->error && rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE) {
		note_error(a->sim, "sync %s: %s", a->name, rep->error->message);
		sync_count(a, offsetof(counts_t, remote));
	} else if (flt_envelope_body(rep, &flotilla__sync_response__descriptor,
				     (ProtobufCMessage **)&resp, &err) < 0) {
		note_error(a->sim, "sync %s: bad reply: %s", a->name, err.msg);
		sync_count(a, offsetof(counts_t, bad));
	} else {
		a->known_index = resp->index;
		flotilla__sync_response__free_unpacked(resp, NULL);
		sync_count(a, offsetof(counts_t, ok));
		if (a->in_window)
			samples_add(&a->sim->sync_lat, now - a->t_send);
	}
	atomic_store(&a->busy, false);
}

/* A call that ended without a reply: timeout, transport error, or close. */
static void call_failed(sim_agent_t *a, int rc)
{
	sim_t *s = a->sim;
	bool closing = (rc == NNG_ECLOSED || rc == NNG_ECANCELED) &&
		       (atomic_load(&a->killed) || atomic_load(&s->stopping));

	if (!closing && rc != NNG_ETIMEDOUT)
		note_error(s, "%s %s: %s",
			   a->op == OP_REGISTER ? "register" : "sync", a->name,
			   nng_strerror(rc));
	if (a->op == OP_REGISTER) {
		reg_end(a, false, !closing);
		return;
	}
	if (!closing)
		sync_count(a, rc == NNG_ETIMEDOUT
				      ? offsetof(counts_t, timeout)
				      : offsetof(counts_t, transport));
	atomic_store(&a->busy, false);
}

static void agent_cb(void *arg)
{
	sim_agent_t *a = arg;
	int rc = nng_aio_result(a->aio);
	int64_t now = now_ns();

	if (a->state == CS_SEND) {
		if (rc != 0) {
			/* nng did not take the message: it is still ours. */
			nng_msg_free(nng_aio_get_msg(a->aio));
			nng_aio_set_msg(a->aio, NULL);
			call_failed(a, rc);
			return;
		}
		int64_t left = timeout_ms - (now - a->t_send) / NS_PER_MS;
		a->state = CS_RECV;
		nng_aio_set_timeout(a->aio, left > 1 ? (nng_duration)left : 1);
		nng_ctx_recv(a->ctx, a->aio);
		return;
	}
	if (rc != 0) {
		call_failed(a, rc);
		return;
	}
	nng_msg *msg = nng_aio_get_msg(a->aio);
	nng_aio_set_msg(a->aio, NULL);
	flt_envelope_t *rep;
	flt_error_t err;
	rc = flt_envelope_unpack_reply(nng_msg_body(msg), nng_msg_len(msg),
				       &rep, &err);
	nng_msg_free(msg);
	Flotilla__Method want = a->op == OP_REGISTER
					? FLOTILLA__METHOD__METHOD_REGISTER
					: FLOTILLA__METHOD__METHOD_SYNC;
	if (rc == 0 && (rep->request_id != a->req_id || rep->method != want)) {
		flt_envelope_free(rep);
		rc = flt_err(&err, FLT_EPROTO,
			     "request id or method do not match");
	}
	if (rc < 0) {
		note_error(a->sim, "%s: bad reply: %s", a->name, err.msg);
		if (a->op == OP_REGISTER) {
			reg_end(a, false, true);
		} else {
			sync_count(a, offsetof(counts_t, bad));
			atomic_store(&a->busy, false);
		}
		return;
	}
	if (a->op == OP_REGISTER)
		reg_reply(a, rep, now);
	else
		sync_reply(a, rep, now);
	flt_envelope_free(rep);
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	sim_agent_t *a = arg;
	sim_t *s = a->sim;
	(void)p;

	if (ev == NNG_PIPE_EV_ADD_POST) {
		if (!atomic_exchange(&a->up, true))
			atomic_fetch_add(&s->connected, 1);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		if (atomic_exchange(&a->up, false)) {
			atomic_fetch_sub(&s->connected, 1);
			if (atomic_load(&s->syncing) &&
			    !atomic_load(&a->killed) &&
			    !atomic_load(&s->stopping))
				atomic_fetch_add(&s->disconnects, 1);
		}
	}
}

static int agent_open(sim_agent_t *a, flt_error_t *err)
{
	int rc;
	if ((rc = nng_req0_open(&a->sock)) != 0)
		return flt_err(err, FLT_ETRANSPORT, "agent %zu: req socket: %s",
			       a->idx, nng_strerror(rc));
	nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_MSG);
	/* Calls carry their own deadline, as in the agent's client. */
	nng_socket_set_ms(a->sock, NNG_OPT_REQ_RESENDTIME,
			  NNG_DURATION_INFINITE);
	nng_socket_set_ms(a->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(a->sock, NNG_OPT_RECONNMAXT, 5000);
	nng_pipe_notify(a->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, a);
	nng_pipe_notify(a->sock, NNG_PIPE_EV_REM_POST, pipe_cb, a);
	if ((rc = nng_ctx_open(&a->ctx, a->sock)) != 0 ||
	    (rc = nng_aio_alloc(&a->aio, agent_cb, a)) != 0)
		return flt_err(err, FLT_ETRANSPORT, "agent %zu: %s", a->idx,
			       nng_strerror(rc));
	if ((rc = nng_dialer_create(&a->dialer, a->sock, coordinator_url)) !=
	    0)
		return flt_err(err, FLT_EUSAGE, "%s: %s", coordinator_url,
			       nng_strerror(rc));
	if ((rc = nng_dialer_start(a->dialer, NNG_FLAG_NONBLOCK)) != 0)
		return flt_err(err, FLT_ETRANSPORT, "%s: %s", coordinator_url,
			       nng_strerror(rc));
	return 0;
}

/* ---- the scheduler: agent i fires at i * interval / N in each round -- */

static void *sched_main(void *arg)
{
	sim_t *s = arg;
	size_t i = 0;
	int64_t round = 0;

	while (!atomic_load(&s->stopping)) {
		int64_t now = now_ns();
		if (now >= s->meas_end)
			break;
		int64_t due;
		for (;;) {
			due = s->sync_start + round * s->period_ns +
			      (int64_t)i * s->period_ns / (int64_t)s->n;
			if (due > now)
				break;
			int64_t lag = now - due;
			if (lag > s->lag_max_ns)
				s->lag_max_ns = lag;
			if (lag > 10 * NS_PER_MS)
				s->lag_over_10ms++;
			sync_fire(&s->agents[i], now);
			if (++i == s->n) {
				i = 0;
				round++;
			}
		}
		/* At most a wake-up per millisecond: fire in small batches. */
		sleep_until(due > now + SCHED_TICK_NS ? due
						      : now + SCHED_TICK_NS);
	}
	return NULL;
}

/* ---- the poller (--kill) --------------------------------------------- */

/* "prefix-00042" -> 42; SIZE_MAX for any other name. */
static size_t agent_index(const char *name, size_t n)
{
	size_t pl = strlen(name_prefix);
	if (strncmp(name, name_prefix, pl) != 0 || name[pl] != '-')
		return SIZE_MAX;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(name + pl + 1, &end, 10);
	if (errno || *end || end == name + pl + 1 || v >= n)
		return SIZE_MAX;
	return (size_t)v;
}

/* Records what one answer says of agent i, observed between t0 and t1. */
static void observe(sim_t *s, size_t i, const char *status, int64_t t0,
		    int64_t t1)
{
	seen_t *w = &s->seen[i];
	int64_t kill_at = atomic_load(&s->kill_at);
	/* Dead only if it already was when the question was sent. */
	if (atomic_load(&s->agents[i].killed) && kill_at && t0 >= kill_at) {
		if (!w->down_at && strcmp(status, "down") == 0)
			w->down_at = t1;
		return;
	}
	if (t0 < s->meas_start || w->flapped || strcmp(status, "ready") == 0)
		return;
	w->flapped = true;
	s->nflapped++;
	if (s->nflap_notes < MAX_NOTES)
		snprintf(s->flap_notes[s->nflap_notes++],
			 sizeof(s->flap_notes[0]), "%s status=%s at t=%.1fs",
			 s->agents[i].name, status,
			 (double)(t1 - s->sync_start) / NS_PER_S);
}

/*
 * NodeList without the client's validation of the reply body: the same
 * exchange as flt_client_call, on its own socket. Used only after
 * flt_client_call refused a reply as malformed, so that a coordinator that
 * corrupts some fields (time and address strings) can still be measured on
 * the two this benchmark reads, name and status.
 */
static int list_lenient(nng_socket sock, uint64_t id,
			Flotilla__NodeListResponse **out, flt_error_t *err)
{
	Flotilla__NodeListRequest req = FLOTILLA__NODE_LIST_REQUEST__INIT;
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	nng_msg *msg;
	int rc;

	env.version = FLT_WIRE_VERSION;
	env.method = FLOTILLA__METHOD__METHOD_NODE_LIST;
	env.request_id = id;
	if ((rc = flt_envelope_pack(&env, &req.base, &msg, err)) < 0)
		return rc;
	if ((rc = nng_sendmsg(sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		return flt_err(err, FLT_ETRANSPORT, "%s: %s", api_url,
			       nng_strerror(rc));
	}
	if ((rc = nng_recvmsg(sock, &msg, 0)) != 0)
		return flt_err(err, FLT_ETRANSPORT, "%s: %s", api_url,
			       nng_strerror(rc));
	flt_envelope_t *rep;
	rc = flt_envelope_unpack_reply(nng_msg_body(msg), nng_msg_len(msg),
				       &rep, err);
	nng_msg_free(msg);
	if (rc < 0)
		return rc;
	if (rep->request_id != id ||
	    (rep->error &&
	     rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE)) {
		flt_envelope_free(rep);
		return flt_err(err, FLT_EREMOTE, "%s: node list refused",
			       api_url);
	}
	*out = flotilla__node_list_response__unpack(NULL, rep->body.len,
						    rep->body.data);
	flt_envelope_free(rep);
	return *out ? 0 : flt_err(err, FLT_EPROTO, "node list: undecodable");
}

static void poll_list(sim_t *s, flt_client_t *api, nng_socket raw)
{
	Flotilla__NodeListRequest req = FLOTILLA__NODE_LIST_REQUEST__INIT;
	Flotilla__NodeListResponse *resp;
	flt_error_t err;

	int64_t t0 = now_ns();
	int rc = flt_client_call(api, FLOTILLA__METHOD__METHOD_NODE_LIST, NULL,
				 &req.base,
				 &flotilla__node_list_response__descriptor,
				 (ProtobufCMessage **)&resp, (int)timeout_ms,
				 &err);
	if (rc == FLT_EPROTO && nng_socket_id(raw) > 0) {
		s->polls_rejected++;
		note_error(s, "node list: %s", err.msg);
		rc = list_lenient(raw, s->polls + 1, &resp, &err);
	}
	int64_t t1 = now_ns();
	s->polls++;
	if (rc < 0) {
		s->poll_failed++;
		note_error(s, "node list: %s", err.msg);
		return;
	}
	samples_add(&s->poll_lat, t1 - t0);
	s->list_nodes = resp->n_nodes;
	s->list_bytes = protobuf_c_message_get_packed_size(&resp->base);
	for (size_t j = 0; j < resp->n_nodes; j++) {
		size_t i = agent_index(resp->nodes[j]->name, s->n);
		if (i != SIZE_MAX)
			observe(s, i, resp->nodes[j]->status, t0, t1);
	}
	flotilla__node_list_response__free_unpacked(resp, NULL);
}

/* NodeGet for each killed node not yet seen down; others are not asked. */
static void poll_get(sim_t *s, flt_client_t *api)
{
	if (!atomic_load(&s->kill_at))
		return;
	int64_t t0 = now_ns();
	for (size_t j = 0; j < s->nkilled; j++) {
		size_t i = s->killed[j];
		Flotilla__NodeGetRequest req = FLOTILLA__NODE_GET_REQUEST__INIT;
		Flotilla__NodeGetResponse *resp;
		flt_error_t err;

		if (s->seen[i].down_at ||
		    !atomic_load(&s->agents[i].registered))
			continue;
		req.node = s->agents[i].node_id;
		int64_t c0 = now_ns();
		int rc = flt_client_call(
			api, FLOTILLA__METHOD__METHOD_NODE_GET, NULL,
			&req.base, &flotilla__node_get_response__descriptor,
			(ProtobufCMessage **)&resp, (int)timeout_ms, &err);
		if (rc < 0) {
			s->poll_failed++;
			note_error(s, "node get: %s", err.msg);
			continue;
		}
		if (resp->node)
			observe(s, i, resp->node->status, c0, now_ns());
		flotilla__node_get_response__free_unpacked(resp, NULL);
	}
	s->polls++;
	samples_add(&s->poll_lat, now_ns() - t0);
}

static void *poll_main(void *arg)
{
	sim_t *s = arg;
	flt_client_opts_t o = { .url = api_url };
	flt_client_t *api;
	nng_socket raw = NNG_SOCKET_INITIALIZER;
	bool list = strcmp(poll_method, "list") == 0;
	flt_error_t err;

	if (flt_client_open(&o, &api, &err) < 0) {
		note_error(s, "%s", err.msg);
		flt_error("%s", err.msg);
		return NULL;
	}
	if (list && nng_req0_open(&raw) == 0) {
		nng_socket_set_size(raw, NNG_OPT_RECVMAXSZ, FLT_WIRE_MAX_MSG);
		nng_socket_set_ms(raw, NNG_OPT_REQ_RESENDTIME,
				  NNG_DURATION_INFINITE);
		nng_socket_set_ms(raw, NNG_OPT_SENDTIMEO,
				  (nng_duration)timeout_ms);
		nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO,
				  (nng_duration)timeout_ms);
		if (nng_dial(raw, api_url, NULL, NNG_FLAG_NONBLOCK) != 0) {
			nng_close(raw);
			raw = (nng_socket)NNG_SOCKET_INITIALIZER;
		}
	}
	sleep_until(s->meas_start);
	int64_t next = now_ns();
	while (!atomic_load(&s->stopping) && now_ns() < s->meas_end) {
		if (list)
			poll_list(s, api, raw);
		else
			poll_get(s, api);
		next += poll_ms * NS_PER_MS;
		int64_t now = now_ns();
		if (next < now)
			next = now;
		sleep_until(next);
	}
	if (nng_socket_id(raw) > 0)
		nng_close(raw);
	flt_client_close(api);
	return NULL;
}

/* ---- kill and shutdown ----------------------------------------------- */

/*
 * Closes the killed agents' sockets off the timeline (nng_close waits).
 * Each agent's call in flight is let finish first, and the closer then
 * holds the agent's busy flag so that no new call can start on it: nng
 * 1.5.2 was seen to hang every later nng_close (its reaper waiting
 * forever) when a socket was closed under a call in progress.
 */
static void *kill_close_main(void *arg)
{
	sim_t *s = arg;
	int64_t t = now_ns();
	for (size_t j = 0; j < s->nkilled; j++) {
		sim_agent_t *a = &s->agents[s->killed[j]];
		while (atomic_exchange(&a->busy, true))
			sleep_until(now_ns() + NS_PER_MS);
		nng_close(a->sock);
	}
	int64_t d = now_ns() - t;
	atomic_store(&s->kill_close_ns, d > 0 ? d : 1);
	return NULL;
}

static void kill_agents(sim_t *s)
{
	/* Silence first: the heartbeats stop at this instant. */
	atomic_store(&s->kill_at, now_ns());
	for (size_t j = 0; j < s->nkilled; j++)
		atomic_store(&s->agents[s->killed[j]].killed, true);
	s->closer_started = pthread_create(&s->closer, NULL, kill_close_main,
					   s) == 0;
	for (size_t j = 0; j < s->nkilled; j++)
		flt_info("killed agent name=%s node=%s",
			 s->agents[s->killed[j]].name,
			 s->agents[s->killed[j]].node_id);
}

static void choose_killed(sim_t *s)
{
	s->nkilled = (size_t)kill_n < s->n ? (size_t)kill_n : s->n;
	s->killed = flt_xcalloc(s->nkilled, sizeof(*s->killed));
	/* Evenly over the schedule: their last heartbeats fall all over
	 * the interval, so detection shows its whole spread. */
	for (size_t j = 0; j < s->nkilled; j++)
		s->killed[j] = j * s->n / s->nkilled;
}

static void *close_all_main(void *arg)
{
	sim_t *s = arg;
	int64_t deadline = now_ns() + (timeout_ms + 500) * NS_PER_MS;
	for (size_t i = 0; i < s->n; i++) {
		sim_agent_t *a = &s->agents[i];
		if (!a->sim || atomic_load(&a->killed))
			continue;
		/* As for the killed ones: no close under a call. */
		while (atomic_exchange(&a->busy, true) && now_ns() < deadline)
			sleep_until(now_ns() + NS_PER_MS);
		nng_close(a->sock);
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->agents[i].aio)
			nng_aio_free(s->agents[i].aio);
	return NULL;
}

/* ---- phases ---------------------------------------------------------- */

/* Waits until *v reaches target, the deadline passes or ^C; true if met. */
static bool wait_for(atomic_size_t *v, size_t target, int64_t deadline,
		     const char *what)
{
	int64_t next_log = now_ns() + NS_PER_S;
	while (atomic_load(v) < target) {
		int64_t now = now_ns();
		if (now >= deadline || interrupted)
			return false;
		if (now >= next_log) {
			flt_info("waiting phase=%s done=%zu of=%zu", what,
				 atomic_load(v), target);
			next_log = now + NS_PER_S;
		}
		sleep_until(now + 5 * NS_PER_MS);
	}
	return true;
}

/*
 * The sync phase as seen from the main thread: the kill, the marks of the
 * measured window (the script that samples the coordinator's CPU reads
 * them), the end. Cut short by ^C, or when every connection has been gone
 * for a few seconds: the coordinator is dead.
 */
static void timeline(sim_t *s)
{
	int64_t kill_t = s->nkilled ? s->sync_start + kill_at_s * NS_PER_S
				    : INT64_MAX;
	bool marked = false, killed = false;
	int64_t none_since = 0;

	for (;;) {
		int64_t now = now_ns();
		if (!killed && now >= kill_t) {
			kill_agents(s);
			killed = true;
		}
		if (!marked && now >= s->meas_start) {
			flt_info("measuring seconds=%ld", duration_s);
			marked = true;
		}
		if (now >= s->meas_end) {
			s->meas_stop = s->meas_end;
			flt_info("measured");
			return;
		}
		if (atomic_load(&s->connected) > 0) {
			none_since = 0;
		} else if (!none_since) {
			none_since = now;
		} else if (now - none_since > LOST_AFTER_NS) {
			s->lost_at = none_since;
			flt_error("every connection to the coordinator is gone "
				  "since t=%.1fs; stopping",
				  (double)(none_since - s->sync_start) /
					  NS_PER_S);
			break;
		}
		if (interrupted)
			break;
		int64_t next = now + 10 * NS_PER_MS;
		if (!killed && kill_t < next)
			next = kill_t;
		sleep_until(next);
	}
	int64_t now = now_ns();
	s->meas_stop = now < s->meas_start ? s->meas_start : now;
	atomic_store(&s->stopping, true);
}

/* ---- report ---------------------------------------------------------- */

typedef struct minmax {
	size_t n;
	double min, max; /* seconds */
} minmax_t;

static void mm_add(minmax_t *m, double v)
{
	if (!m->n || v < m->min)
		m->min = v;
	if (!m->n || v > m->max)
		m->max = v;
	m->n++;
}

static double secs(int64_t ns) { return (double)ns / NS_PER_S; }
static double msecs(int64_t ns) { return (double)ns / NS_PER_MS; }

static void jset(json_t *j, const char *k, json_t *v)
{
	json_object_set_new(j, k, v);
}

static void report(sim_t *s)
{
	double meas_s = secs(s->meas_stop - s->meas_start);
	uint64_t ok = atomic_load(&s->win.ok);
	uint64_t tmo = atomic_load(&s->win.timeout);
	uint64_t errs = atomic_load(&s->win.transport) +
			atomic_load(&s->win.remote) + atomic_load(&s->win.bad);
	uint64_t skipped = atomic_load(&s->win.skipped);
	size_t registered = atomic_load(&s->reg_ok);
	pct_t lat = samples_pct(&s->sync_lat);
	pct_t rl = samples_pct(&s->reg_lat);
	pct_t pl = samples_pct(&s->poll_lat);
	double rate = meas_s > 0 ? ok / meas_s : 0;
	int64_t kill_at = atomic_load(&s->kill_at);
	/* What the live agents asked for: killed ones stop at the kill. */
	double agent_s = (double)registered * meas_s;
	if (kill_at && s->meas_stop > kill_at)
		agent_s -= (double)s->nkilled *
			   secs(s->meas_stop - (kill_at > s->meas_start
							? kill_at
							: s->meas_start));
	double offered = meas_s > 0 ? agent_s / meas_s * 1000.0 /
					      (double)interval_ms
				    : 0;
	int64_t close_ns = atomic_load(&s->kill_close_ns);

	minmax_t det = { 0 }, since_hb = { 0 };
	size_t missed = 0;
	for (size_t j = 0; j < s->nkilled && kill_at; j++) {
		sim_agent_t *a = &s->agents[s->killed[j]];
		seen_t *w = &s->seen[s->killed[j]];
		if (!w->down_at) {
			missed++;
			continue;
		}
		mm_add(&det, secs(w->down_at - kill_at));
		if (a->last_send)
			mm_add(&since_hb, secs(w->down_at - a->last_send));
	}

	printf("agentsim: %zu agents, interval %ld ms, coordinator %s\n",
	       s->n, interval_ms, coordinator_url);
	if (s->lost_at)
		printf("  ABORTED:   every connection to the coordinator was "
		       "gone from t=%.1f s (did it crash?)\n",
		       secs(s->lost_at - s->sync_start));
	printf("  connect:   %zu of %zu connected in %.2f s; %llu "
	       "disconnects while syncing\n",
	       s->connected_first, s->n, secs(s->connect_ns),
	       (unsigned long long)atomic_load(&s->disconnects));
	printf("  register:  %zu ok, %llu failed (%llu retries) in %.2f s; "
	       "latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
	       registered, (unsigned long long)atomic_load(&s->reg_failed),
	       (unsigned long long)atomic_load(&s->reg_retries),
	       secs(s->reg_ns), rl.p50, rl.p99, rl.max);
	printf("  syncs:     %.1f/s sustained over %.1f s after %ld s warmup "
	       "(%llu ok; offered %.0f/s)\n",
	       rate, meas_s, warmup_s, (unsigned long long)ok, offered);
	printf("  failures:  %llu errors, %llu timeouts (>%ld ms), %llu "
	       "skipped (previous sync still pending)\n",
	       (unsigned long long)errs, (unsigned long long)tmo, timeout_ms,
	       (unsigned long long)skipped);
	printf("  latency:   p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f "
	       "ms (%zu samples, send to reply)\n",
	       lat.p50, lat.p90, lat.p99, lat.max, lat.n);
	printf("  scheduler: worst lag %.1f ms behind plan, %llu sends over "
	       "10 ms late\n",
	       msecs(s->lag_max_ns), (unsigned long long)s->lag_over_10ms);
	if (s->nkilled && !kill_at)
		printf("  kill:      not done: the run ended first\n");
	if (s->nkilled && kill_at) {
		printf("  kill:      %zu agents at t=%.1f s (sockets closed in "
		       "%.1f ms)\n",
		       s->nkilled, secs(kill_at - s->sync_start),
		       close_ns ? msecs(close_ns) : -1);
		printf("  detection: %zu of %zu seen down; after the kill min "
		       "%.2f s, max %.2f s; after their last heartbeat min "
		       "%.2f s, max %.2f s; %zu never seen down\n",
		       det.n, s->nkilled, det.min, det.max, since_hb.min,
		       since_hb.max, missed);
		if (strcmp(poll_method, "list") == 0) {
			printf("  flaps:     %zu live agents seen not ready "
			       "after warmup\n",
			       s->nflapped);
			for (size_t i = 0; i < s->nflap_notes; i++)
				printf("             %s\n", s->flap_notes[i]);
		} else {
			printf("  flaps:     not observed with --poll get "
			       "(count the coordinator's \"node down\" log "
			       "lines)\n");
		}
		printf("  poll %s: %llu rounds every %ld ms (%llu failed "
		       "calls, %llu lists refused by flt_client_call); %zu "
		       "nodes, %zu bytes per list; round p50 %.1f ms, max "
		       "%.1f ms\n",
		       poll_method, (unsigned long long)s->polls, poll_ms,
		       (unsigned long long)s->poll_failed,
		       (unsigned long long)s->polls_rejected, s->list_nodes,
		       s->list_bytes, pl.p50, pl.max);
	}
	for (size_t i = 0; i < s->nnotes; i++)
		printf("  error:     %s\n", s->notes[i]);

	json_t *j = json_object();
	jset(j, "bench", json_string("agentsim"));
	jset(j, "agents", json_integer((json_int_t)s->n));
	jset(j, "interval_ms", json_integer(interval_ms));
	jset(j, "warmup_s", json_integer(warmup_s));
	jset(j, "measured_s", json_real(meas_s));
	jset(j, "aborted", json_boolean(s->lost_at || interrupted));
	jset(j, "connect_s", json_real(secs(s->connect_ns)));
	jset(j, "connected", json_integer((json_int_t)s->connected_first));
	jset(j, "registered", json_integer((json_int_t)registered));
	jset(j, "register_failed",
	     json_integer((json_int_t)atomic_load(&s->reg_failed)));
	jset(j, "register_s", json_real(secs(s->reg_ns)));
	jset(j, "register_p50_ms", json_real(rl.p50));
	jset(j, "register_p99_ms", json_real(rl.p99));
	jset(j, "syncs_ok", json_integer((json_int_t)ok));
	jset(j, "syncs_per_s", json_real(rate));
	jset(j, "offered_per_s", json_real(offered));
	jset(j, "errors", json_integer((json_int_t)errs));
	jset(j, "timeouts", json_integer((json_int_t)tmo));
	jset(j, "skipped", json_integer((json_int_t)skipped));
	jset(j, "disconnects",
	     json_integer((json_int_t)atomic_load(&s->disconnects)));
	jset(j, "p50_ms", json_real(lat.p50));
	jset(j, "p90_ms", json_real(lat.p90));
	jset(j, "p99_ms", json_real(lat.p99));
	jset(j, "max_ms", json_real(lat.max));
	jset(j, "samples", json_integer((json_int_t)lat.n));
	jset(j, "sched_lag_max_ms", json_real(msecs(s->lag_max_ns)));
	if (s->nkilled) {
		jset(j, "kill", json_integer((json_int_t)s->nkilled));
		jset(j, "kill_at_s",
		     kill_at ? json_real(secs(kill_at - s->sync_start))
			     : json_null());
		jset(j, "poll", json_string(poll_method));
		jset(j, "detected", json_integer((json_int_t)det.n));
		jset(j, "missed", json_integer((json_int_t)missed));
		jset(j, "detect_min_s", det.n ? json_real(det.min) : json_null());
		jset(j, "detect_max_s", det.n ? json_real(det.max) : json_null());
		jset(j, "since_hb_min_s",
		     since_hb.n ? json_real(since_hb.min) : json_null());
		jset(j, "since_hb_max_s",
		     since_hb.n ? json_real(since_hb.max) : json_null());
		jset(j, "flaps", strcmp(poll_method, "list") == 0
					 ? json_integer((json_int_t)s->nflapped)
					 : json_null());
		jset(j, "polls", json_integer((json_int_t)s->polls));
		jset(j, "poll_failed", json_integer((json_int_t)s->poll_failed));
		jset(j, "poll_rejected",
		     json_integer((json_int_t)s->polls_rejected));
		jset(j, "poll_p50_ms", json_real(pl.p50));
		jset(j, "poll_max_ms", json_real(pl.max));
		jset(j, "list_bytes", json_integer((json_int_t)s->list_bytes));
	}
	json_dumpf(j, stdout,
		   JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(j);
	fputc('\n', stdout);
	fflush(stdout);
}

/* ---- main ------------------------------------------------------------ */

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int run(void)
{
	sim_t sim = { .n = (size_t)n_agents };
	sim_t *s = &sim;
	flt_error_t err;
	pthread_t sched, poller, closer;
	bool poller_started = false;
	int rc = 1;

	pthread_mutex_init(&s->note_mtx, NULL);
	s->period_ns = interval_ms * NS_PER_MS;
	s->agents = flt_xcalloc(s->n, sizeof(*s->agents));
	s->seen = flt_xcalloc(s->n, sizeof(*s->seen));
	samples_init(&s->reg_lat, s->n);
	samples_init(&s->sync_lat,
		     s->n * (size_t)(duration_s * 1000 / interval_ms + 2));
	samples_init(&s->poll_lat,
		     (size_t)(warmup_s + duration_s) * 1000 / (size_t)poll_ms +
			     16);
	if (kill_n)
		choose_killed(s);

	/* Connect: every agent dials on its own socket. */
	int64_t t0 = now_ns();
	for (size_t i = 0; i < s->n; i++) {
		sim_agent_t *a = &s->agents[i];
		a->sim = s;
		a->idx = i;
		snprintf(a->name, sizeof(a->name), "%s-%05zu", name_prefix, i);
		flt_uuid_v4(a->reg_id);
		if (agent_open(a, &err) < 0) {
			flt_error("%s", err.msg);
			goto out;
		}
	}
	bool all = wait_for(&s->connected, s->n,
			    t0 + connect_wait_s * NS_PER_S, "connect");
	s->connect_ns = now_ns() - t0;
	s->connected_first = atomic_load(&s->connected);
	if (!all)
		flt_warn("not all agents connected connected=%zu of=%zu",
			 s->connected_first, s->n);
	flt_info("connected count=%zu seconds=%.2f", s->connected_first,
		 secs(s->connect_ns));

	/* Register, a bounded number in flight; each reply starts the next. */
	t0 = now_ns();
	size_t first = (size_t)reg_inflight < s->n ? (size_t)reg_inflight
						    : s->n;
	atomic_store(&s->reg_next, first);
	for (size_t i = 0; i < first; i++)
		reg_start(&s->agents[i]);
	wait_for(&s->reg_finished, s->n,
		 t0 + (int64_t)(s->n / first + 1) * REG_ATTEMPTS * timeout_ms *
				 NS_PER_MS,
		 "register");
	s->reg_ns = now_ns() - t0;
	flt_info("registered ok=%zu failed=%llu seconds=%.2f",
		 (size_t)atomic_load(&s->reg_ok),
		 (unsigned long long)atomic_load(&s->reg_failed),
		 secs(s->reg_ns));
	if (interrupted || atomic_load(&s->reg_ok) == 0) {
		flt_error("no sync phase: %s",
			  interrupted ? "interrupted" : "no agent registered");
		s->meas_stop = s->meas_start;
		goto report;
	}

	/* Sync. */
	s->sync_start = now_ns() + 100 * NS_PER_MS;
	s->meas_start = s->sync_start + warmup_s * NS_PER_S;
	s->meas_end = s->meas_start + duration_s * NS_PER_S;
	atomic_store(&s->syncing, true);
	if ((rc = pthread_create(&sched, NULL, sched_main, s)) != 0) {
		flt_error("scheduler thread: %s", strerror(rc));
		rc = 1;
		goto out;
	}
	if (s->nkilled && pthread_create(&poller, NULL, poll_main, s) == 0)
		poller_started = true;
	timeline(s);
	atomic_store(&s->syncing, false);
	pthread_join(sched, NULL);
	if (poller_started)
		pthread_join(poller, NULL);

	/* Let calls in flight finish (or time out) before counting. */
	int64_t deadline = now_ns() + (timeout_ms + 500) * NS_PER_MS;
	for (size_t i = 0; i < s->n; i++)
		while (!atomic_load(&s->agents[i].killed) &&
		       atomic_load(&s->agents[i].busy) && now_ns() < deadline)
			sleep_until(now_ns() + NS_PER_MS);
	if (s->closer_started) {
		if (!join_within(s->closer, CLOSE_WAIT_NS))
			flt_warn("killed sockets still closing after %.0f s",
				 secs(CLOSE_WAIT_NS));
		else
			s->closer_started = false;
	}
report:
	report(s);
	rc = 0;
out:
	atomic_store(&s->stopping, true);
	/*
	 * With the coordinator gone, thousands of dialers are redialing and
	 * nng_close can take seconds each: give up waiting rather than hang;
	 * the process exit releases everything.
	 */
	t0 = now_ns();
	if (s->closer_started || s->lost_at)
		return rc;
	if (pthread_create(&closer, NULL, close_all_main, s) != 0 ||
	    !join_within(closer, CLOSE_WAIT_NS)) {
		flt_warn("sockets still closing after %.0f s; exiting",
			 secs(CLOSE_WAIT_NS));
		return rc;
	}
	flt_info("closed seconds=%.2f", secs(now_ns() - t0));
	free(s->agents);
	free(s->seen);
	free(s->killed);
	free(s->reg_lat.v);
	free(s->sync_lat.v);
	free(s->poll_lat.v);
	pthread_mutex_destroy(&s->note_mtx);
	return rc;
}

int main(int argc, char **argv)
{
	flt_error_t err;
	flt_log_level_t level;
	int next;

	flt_log_init("agentsim", FLT_LOG_WARN);
	int rc = flt_flags_parse(flags, argc, argv, &next, &err);
	if (rc == 1) {
		flt_flags_usage(stdout,
				"Usage: agentsim [OPTIONS]\n\n"
				"Simulates a fleet of agents against a real "
				"coordinator and reports\nsync throughput, "
				"latency and failure detection.",
				flags);
		return 0;
	}
	if (rc < 0 || next < argc) {
		fprintf(stderr, "agentsim: %s\n",
			rc < 0 ? err.msg : "unexpected argument");
		return 2;
	}
	if (flt_log_level_parse(log_level, &level) < 0) {
		fprintf(stderr,
			"agentsim: --log-level: \"%s\" is not one of error, "
			"warn, info, debug\n",
			log_level);
		return 2;
	}
	flt_log_init("agentsim", level);
	if (!join_token) {
		fprintf(stderr, "agentsim: --join-token is required\n");
		return 2;
	}
	if (!flt_is_name(name_prefix, 50)) {
		fprintf(stderr, "agentsim: --name-prefix: must be 1 to 50 of "
				"[A-Za-z0-9._-]\n");
		return 2;
	}
	if (strcmp(poll_method, "list") != 0 &&
	    strcmp(poll_method, "get") != 0) {
		fprintf(stderr, "agentsim: --poll: \"%s\" is not list or get\n",
			poll_method);
		return 2;
	}
	if (kill_n && kill_n >= n_agents) {
		fprintf(stderr,
			"agentsim: --kill: must be fewer than --agents\n");
		return 2;
	}
	if (kill_n && kill_at_s >= warmup_s + duration_s)
		fprintf(stderr, "agentsim: warning: --kill-at is past the end "
				"of the run; nothing will be killed\n");
	if (sodium_init() < 0) {
		fprintf(stderr, "agentsim: libsodium failed\n");
		return 1;
	}
	uname(&host_uts);
	/* One descriptor per agent, plus nng's own and the API client. */
	raise_nofile((size_t)n_agents + 64);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = run();
	flt_flags_free(flags);
	return rc;
}
