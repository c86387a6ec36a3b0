/*
 * agentsim: a fleet of simulated agents in one process, to load a real
 * coordinator the way real agents do.
 *
 * Every simulated agent owns one REQ socket with its own dialer, so N agents
 * are N TCP connections, and one nng_aio that carries its calls (send, then
 * receive; the callback decides what comes next): no thread per agent.
 * All of them come from one address, 127.0.0.1: the coordinator must run
 * with --max-conns-per-source 0 (or at least N), as bench/run-*.sh start
 * it; its default of 100 refuses the rest right after the handshake.
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
 * Campaigns (--inventory N): every simulated agent also reports an
 * inventory of N items, dpkg packages and Java archives named from fixed
 * pools, log4j-core 2.14.1 (org.apache.logging.log4j) among them on every
 * agent, sorted and hashed by the agent's own code (agent_inv_finish). It
 * sends the whole inventory only while its digest differs from the one the
 * coordinator says it holds. Patch steps are answered as scripted: on
 * first seeing a step id the agent reports APPLYING at once; after the
 * step's min_healthy_ms (the health gate a real agent waits) it reports
 * SUCCEEDED with log4j-core at the step's version in a new inventory,
 * re-scanned (new digest, sent along), or, on --campaign-fail-percent P% of
 * the agents (those where i * P / 100 steps up, spread evenly; agent 0
 * never fails unless P is 100), FAILED with rolled_back set. A step id is never run twice. Every change of a step's
 * state is reported by a sync sent at once, not at the next interval (at
 * most one sync per agent in flight: a sync wanted meanwhile follows the
 * current one as soon as it ends).
 *
 * --watch: every agent also long-polls (Watch with its known index) as the
 * real agent does, on a second nng context of the same socket. REQ
 * contexts carry one request each, so one connection holds the Watch and
 * the Sync at the same time: no descriptor per agent is added, and neither
 * call waits for the other. A Watch that reports a change triggers a sync
 * at once and then rests until a sync has brought the agent's known index
 * up to the one the Watch announced (watching before that would return at
 * once); the next Watch starts from that sync's answer.
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
#include <time.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent.h"
#include "flotilla/flags.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"
#include "inventory.h"

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
static long timeout_ms = AGENT_CALL_TIMEOUT_MS;
static long reg_inflight = 500;
static long connect_wait_s = 60;
static long poll_ms = 100;
static const char *log_level = "warn";
static long inv_items;
static long fail_percent = 1;
static bool watch;
static long watch_wait_ms = AGENT_WATCH_WAIT_MS;
static const char *step_times;

static const flt_flag_t flags[] = {
	{ "coordinator", FLT_FLAG_STRING, &coordinator_url, "URL",
	  "the coordinator's agent address", 0, 0, "FLOTILLA_COORDINATOR" },
	{ "join-token", FLT_FLAG_STRING, &join_token, "TOKEN",
	  "secret the agents register with", 0, 0, "FLOTILLA_JOIN_TOKEN" },
	{ "agents", FLT_FLAG_INT, &n_agents, "N",
	  "simulated agents, one TCP connection each (default 100)", 1, 1000000,
	  NULL },
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
	  "when to kill, in seconds from the first sync (default 10)", 0, 86400,
	  NULL },
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
	  "registrations in flight at once (default 500)", 1, 1000000, NULL },
	{ "connect-wait", FLT_FLAG_INT, &connect_wait_s, "S",
	  "longest wait for all connections (default 60)", 1, 3600, NULL },
	{ "log-level", FLT_FLAG_STRING, &log_level, "LEVEL",
	  "error, warn, info or debug (default warn)", 0, 0, NULL },
	{ "inventory", FLT_FLAG_INT, &inv_items, "N",
	  "report an inventory of N items, log4j-core 2.14.1 among them "
	  "(default 0: none)",
	  0, 50000, NULL },
	{ "campaign-fail-percent", FLT_FLAG_INT, &fail_percent, "P",
	  "patch steps fail (and roll back) on P% of the agents (default 1)", 0,
	  100, NULL },
	{ "watch", FLT_FLAG_BOOL, &watch, NULL,
	  "long-poll for pushed changes (Watch), as the agent does", 0, 0,
	  NULL },
	{ "watch-wait", FLT_FLAG_INT, &watch_wait_ms, "MS",
	  "longest wait of one Watch (default 30000, the agent's)", 100, 600000,
	  NULL },
	{ "step-times", FLT_FLAG_STRING, &step_times, "FILE",
	  "at the end, write one line per step: agent, step id, outcome, "
	  "wall ms when seen, done and acknowledged",
	  0, 0, NULL },
	{ NULL, 0, NULL, NULL, NULL, 0, 0, NULL },
};

static volatile sig_atomic_t interrupted;
/* This host as the agent fingerprints it: the simulated hosts report its
 * kernel, machine and agent version. */
static agent_fingerprint_t host_fp;

/* ---- types ----------------------------------------------------------- */

enum call_state { CS_SEND, CS_RECV, CS_SLEEP };
enum call_op { OP_REGISTER, OP_SYNC };
/* The long-poll: off (not started, or stopped by an error at shutdown), a
 * call (or its retry pause) under way, or resting until a sync catches
 * up with the index a Watch announced. */
enum watch_state { W_OFF, W_CALL, W_PARKED };

typedef struct sim sim_t;
typedef struct sim_agent sim_agent_t;

#define STEP(x) FLOTILLA__STEP_STATE__STEP_STATE_##x
#define ACTION(x) FLOTILLA__STEP_ACTION__STEP_ACTION_##x

/* One patch step as a simulated agent runs it; guarded by its agent's
 * mtx. Never freed before the end: its id must stay known. */
typedef struct sim_step {
	sim_agent_t *a;
	char id[96];
	Flotilla__StepAction action;
	Flotilla__StepState state;
	bool fail; /* scripted: this install fails and rolls back */
	bool listed; /* in the coordinator's latest answer */
	bool rolled_back;
	char from[64], to[64];
	char digest[65]; /* succeeded: of the re-scan after the step */
	char message[160];
	uint32_t gate_ms; /* how long it runs before its outcome */
	int64_t started_ms, finished_ms; /* wall clock */
	int64_t acked_ms; /* the outcome's sync answered (wall clock) */
	int64_t changed_ns; /* state changed and not yet acknowledged, or 0 */
	Flotilla__StepState sent; /* state the sync in flight carries */
	nng_aio *timer; /* the health gate */
} sim_step_t;

struct sim_agent {
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
	atomic_bool up; /* a pipe is connected */
	atomic_bool killed; /* stopped by --kill: never sends again */
	enum call_op op;
	enum call_state state;
	bool in_window; /* sent inside the measured window */
	atomic_bool registered; /* id is set */
	int attempts;
	uint64_t next_id, req_id;
	int64_t t_send;
	int64_t last_send; /* send time of the latest sync */
	atomic_uint_fast64_t known_index;
	agent_identity_t id;
	/* A sync is wanted as soon as the one in flight ends. */
	atomic_bool again;

	/* Inventory, steps and the long-poll's state: guarded by mtx. */
	pthread_mutex_t mtx;
	char log4j[64]; /* log4j-core's version on this host */
	char digest[65]; /* of the inventory as it is now */
	char coord_digest[65]; /* the one the coordinator last said it holds */
	sim_step_t **steps;
	size_t nsteps;
	enum watch_state wstate;
	uint64_t parked_idx;

	/* --watch: the Watch call's own context and aio. */
	nng_ctx wctx;
	nng_aio *waio;
	enum call_state wcall;
	uint64_t wnext_id, wreq_id;
	int64_t wsend;
};

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
	bool flapped; /* live agent seen not "ready" after warmup */
} seen_t;

struct sim {
	sim_agent_t *agents;
	size_t n;
	int64_t period_ns;
	int64_t sync_start, meas_start, meas_end;
	int64_t meas_stop; /* meas_end, or earlier when the run was cut */
	int64_t lost_at; /* every connection gone since (0: never) */
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

	/* --inventory, patch steps and --watch. */
	pthread_mutex_t inv_mtx;
	struct inv_cached *inv_cache;
	atomic_uint_fast64_t inv_sent, inv_bytes;
	atomic_uint_fast64_t steps_seen, steps_ok, steps_failed, rollbacks;
	atomic_uint_fast64_t early_syncs;
	atomic_uint_fast64_t watch_answers, watch_changed, watch_errors;
	atomic_int_fast64_t first_step_at, last_step_done; /* 0: none */
	samples_t step_lat; /* a step's new state -> the sync reply */

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
		snprintf(s->notes[s->nnotes++], sizeof(s->notes[0]), "%s", msg);
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

/* ---- inventory ------------------------------------------------------- */

#define LOG4J_NAME "log4j-core"
#define LOG4J_GROUP "org.apache.logging.log4j"
#define LOG4J_BASE "2.14.1" /* every agent's, before a campaign */
#define PKG_DIR "/var/lib/flotilla/packages"

#define KIND(x) FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_##x

static const char *const dpkg_pool[] = {
	"adduser",
	"apt",
	"base-files",
	"bash",
	"bsdutils",
	"ca-certificates",
	"coreutils",
	"cron",
	"curl",
	"dash",
	"debconf",
	"debianutils",
	"diffutils",
	"dpkg",
	"e2fsprogs",
	"findutils",
	"gcc-12-base",
	"gpgv",
	"grep",
	"gzip",
	"hostname",
	"init-system-helpers",
	"iproute2",
	"iputils-ping",
	"less",
	"libacl1",
	"libapt-pkg6.0",
	"libattr1",
	"libaudit1",
	"libblkid1",
	"libbz2-1.0",
	"libc-bin",
	"libc6",
	"libcap2",
	"libcom-err2",
	"libcrypt1",
	"libcurl4",
	"libdb5.3",
	"libext2fs2",
	"libffi8",
	"libgcc-s1",
	"libgcrypt20",
	"libgmp10",
	"libgnutls30",
	"libgpg-error0",
	"libgssapi-krb5-2",
	"libhogweed6",
	"libidn2-0",
	"libk5crypto3",
	"libkeyutils1",
	"libkrb5-3",
	"libldap-2.5-0",
	"liblz4-1",
	"liblzma5",
	"libmd0",
	"libmount1",
	"libncursesw6",
	"libnettle8",
	"libnghttp2-14",
	"libp11-kit0",
	"libpam-modules",
	"libpam0g",
	"libpcre2-8-0",
	"libpsl5",
	"librtmp1",
	"libsasl2-2",
	"libseccomp2",
	"libselinux1",
	"libsemanage2",
	"libsepol2",
	"libsmartcols1",
	"libss2",
	"libssh2-1",
	"libssl3",
	"libstdc++6",
	"libsystemd0",
	"libtasn1-6",
	"libtinfo6",
	"libudev1",
	"libunistring2",
	"libuuid1",
	"libxxhash0",
	"libzstd1",
	"login",
	"logrotate",
	"mawk",
	"mount",
	"ncurses-base",
	"netbase",
	"openjdk-17-jre-headless",
	"openssl",
	"passwd",
	"perl-base",
	"procps",
	"sed",
	"sensible-utils",
	"systemd",
	"sysvinit-utils",
	"tar",
	"tzdata",
	"util-linux",
	"zlib1g",
};

static const char *const java_pool[][2] = {
	{ "com.fasterxml.jackson.core", "jackson-annotations" },
	{ "com.fasterxml.jackson.core", "jackson-core" },
	{ "com.fasterxml.jackson.core", "jackson-databind" },
	{ "org.apache.commons", "commons-lang3" },
	{ "org.apache.commons", "commons-text" },
	{ "commons-io", "commons-io" },
	{ "commons-codec", "commons-codec" },
	{ "org.apache.httpcomponents", "httpclient" },
	{ "org.apache.httpcomponents", "httpcore" },
	{ LOG4J_GROUP, "log4j-api" },
	{ "org.slf4j", "slf4j-api" },
	{ "com.google.guava", "guava" },
	{ "org.springframework", "spring-core" },
	{ "org.springframework", "spring-beans" },
	{ "org.springframework", "spring-context" },
	{ "org.springframework", "spring-web" },
	{ "org.yaml", "snakeyaml" },
	{ "io.netty", "netty-common" },
	{ "io.netty", "netty-buffer" },
	{ "io.netty", "netty-handler" },
	{ "org.eclipse.jetty", "jetty-server" },
	{ "org.eclipse.jetty", "jetty-util" },
	{ "javax.servlet", "javax.servlet-api" },
	{ "com.h2database", "h2" },
	{ "org.postgresql", "postgresql" },
	{ "ch.qos.logback", "logback-core" },
	{ "org.hibernate", "hibernate-core" },
	{ "com.zaxxer", "HikariCP" },
	{ "joda-time", "joda-time" },
	{ "org.apache.tomcat.embed", "tomcat-embed-core" },
};

#define N_DPKG (sizeof(dpkg_pool) / sizeof(dpkg_pool[0]))
#define N_JAVA (sizeof(java_pool) / sizeof(java_pool[0]))

/* A pool name, with a suffix once the pool has been used up. */
static void pool_name(char *out, size_t len, const char *base, size_t k,
		      size_t pool)
{
	if (k < pool)
		snprintf(out, len, "%s", base);
	else
		snprintf(out, len, "%s-%zu", base, k / pool);
}

/* Item versions vary with idx % 3 and idx % 4: a dozen variants. */
#define INV_VARIANTS 12

/*
 * The inventory of variant idx (0 to INV_VARIANTS - 1) with log4j-core at
 * version v: the Java archive the application ships while v is
 * LOG4J_BASE; after a patch step, the archive from the managed package's
 * directory plus the managed package itself. Sorted and hashed by the
 * agent's own code, as a real agent's scan is.
 */
static Flotilla__Inventory *inv_build(size_t idx, const char *v)
{
	size_t n = (size_t)inv_items;
	bool patched = strcmp(v, LOG4J_BASE) != 0;
	size_t total = n + patched;
	size_t nj = n ? (n - 1) / 4 : 0, nd = n ? n - 1 - nj : 0;
	agent_inv_list_t l = { 0 };

	for (size_t k = 0; k < total; k++) {
		Flotilla__InventoryItem it;
		char name[64], ver[32], path[160] = "";
		flotilla__inventory_item__init(&it);
		it.name = name;
		it.version = ver;
		it.path = path;
		if (k < nd) {
			it.kind = KIND(DPKG);
			pool_name(name, sizeof(name), dpkg_pool[k % N_DPKG], k,
				  N_DPKG);
			snprintf(ver, sizeof(ver), "%zu.%zu.%zu-%zu", 1 + k % 7,
				 (k * 5) % 17, (k + idx % 3) % 10, 1 + k % 3);
			it.arch = "amd64";
		} else if (k < nd + nj) {
			size_t j = k - nd;
			it.kind = KIND(JAVA);
			pool_name(name, sizeof(name), java_pool[j % N_JAVA][1],
				  j, N_JAVA);
			it.group = (char *)java_pool[j % N_JAVA][0];
			snprintf(ver, sizeof(ver), "%zu.%zu.%zu", 1 + j % 5,
				 (j * 3) % 13, (j + idx % 4) % 7);
			snprintf(path, sizeof(path), "/opt/app/lib/%s-%s.jar",
				 name, ver);
			it.source = "pom.properties";
		} else if (k == nd + nj) {
			it.kind = KIND(JAVA);
			snprintf(name, sizeof(name), "%s", LOG4J_NAME);
			it.group = LOG4J_GROUP;
			snprintf(ver, sizeof(ver), "%s", v);
			if (patched)
				snprintf(path, sizeof(path),
					 PKG_DIR "/%s/%s/%s-%s.jar", LOG4J_NAME,
					 v, LOG4J_NAME, v);
			else
				snprintf(path, sizeof(path),
					 "/opt/app/lib/%s-%s.jar", LOG4J_NAME,
					 v);
			it.source = "pom.properties";
			it.jndi_lookup = !patched;
		} else {
			it.kind = KIND(MANAGED);
			snprintf(name, sizeof(name), "%s", LOG4J_NAME);
			snprintf(ver, sizeof(ver), "%s", v);
			snprintf(path, sizeof(path), PKG_DIR "/%s/current",
				 LOG4J_NAME);
		}
		agent_inv_add(&l, &it);
	}
	return agent_inv_finish(&l);
}

/*
 * Inventories are built once per variant and log4j-core version and then
 * shared, read only: building, sorting and hashing 200 items for each of
 * the 2,000 hosts of a wave, at the instant their gates end, would make
 * the simulator late (each real host re-scans on its own CPU).
 */
typedef struct inv_cached {
	size_t variant;
	char version[64];
	Flotilla__Inventory *inv;
	struct inv_cached *next;
} inv_cached_t;

static const Flotilla__Inventory *inv_get(sim_t *s, size_t idx, const char *v)
{
	size_t var = idx % INV_VARIANTS;
	pthread_mutex_lock(&s->inv_mtx);
	inv_cached_t *c = s->inv_cache;
	while (c && (c->variant != var || strcmp(c->version, v) != 0))
		c = c->next;
	if (!c) {
		c = flt_xcalloc(1, sizeof(*c));
		c->variant = var;
		snprintf(c->version, sizeof(c->version), "%s", v);
		c->inv = inv_build(var, v);
		c->next = s->inv_cache;
		s->inv_cache = c;
	}
	pthread_mutex_unlock(&s->inv_mtx);
	return c->inv;
}

static void inv_cache_free(sim_t *s)
{
	while (s->inv_cache) {
		inv_cached_t *c = s->inv_cache;
		s->inv_cache = c->next;
		flotilla__inventory__free_unpacked(c->inv, NULL);
		free(c);
	}
}

/* Re-scans agent a's inventory (its digest); a->mtx held. */
static void inv_rescan(sim_agent_t *a)
{
	const Flotilla__Inventory *inv = inv_get(a->sim, a->idx, a->log4j);
	snprintf(a->digest, sizeof(a->digest), "%s", inv->digest);
}

/* Exactly P% of the agents, spread evenly: i where i * P / 100 steps up. */
static bool agent_fails(size_t i)
{
	size_t p = (size_t)fail_percent;
	return (i + 1) * p / 100 > i * p / 100;
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

/* A plausible host: this one as the agent reports it, with the name, OS
 * and size of a simulated one. */
static void fill_fingerprint(Flotilla__Fingerprint *fp, const char *host)
{
	*fp = host_fp.fp;
	fp->hostname = (char *)host;
	fp->os_id = "debian";
	fp->os_version = "12";
	fp->os_name = "Debian GNU/Linux 12 (bookworm)";
	fp->cpu_count = 4;
	fp->memory_bytes = 8ull << 30;
	fp->cgroup_version = "v2";
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

	if (rep->error &&
	    rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE) {
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
	bool ok = agent_identity_from_reply(resp, &a->id) == 0;
	if (ok) {
		atomic_store(&a->registered, true);
		samples_add(&a->sim->reg_lat, now - a->t_send);
	} else {
		note_error(a->sim, "register %s: malformed identity", a->name);
	}
	flotilla__register_response__free_unpacked(resp, NULL);
	reg_end(a, ok, !ok);
}

static void sync_send(sim_agent_t *a, int64_t now);
static void watch_send(sim_agent_t *a);

/*
 * Sends the sync wanted (a->again) unless one is in flight, in which case
 * the call that ends it sends it (call_done). Whoever takes busy with again
 * still set sends; checking again after letting busy go closes the race
 * with a call that ends meanwhile.
 */
static void sync_pending(sim_agent_t *a)
{
	sim_t *s = a->sim;
	while (atomic_load(&a->again)) {
		if (atomic_load(&a->killed) || atomic_load(&s->stopping) ||
		    !atomic_load(&a->registered))
			return;
		if (atomic_exchange(&a->busy, true))
			return;
		if (!atomic_exchange(&a->again, false)) {
			atomic_store(&a->busy, false);
			continue;
		}
		atomic_fetch_add(&s->early_syncs, 1);
		sync_send(a, now_ns());
		return;
	}
}

/* A sync now: a step's state changed, or the coordinator pushed. */
static void sync_kick(sim_agent_t *a)
{
	atomic_store(&a->again, true);
	sync_pending(a);
}

/* Ends the agent's sync call; sends the next one if one is wanted. */
static void call_done(sim_agent_t *a)
{
	atomic_store(&a->busy, false);
	if (atomic_load(&a->again))
		sync_pending(a);
}

/* The scheduled heartbeat. */
static void sync_fire(sim_agent_t *a, int64_t now)
{
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
	/* This sync carries whatever an early one was wanted for. */
	atomic_store(&a->again, false);
	sync_send(a, now);
}

/* Builds and sends one sync; busy must be held. */
static void sync_send(sim_agent_t *a, int64_t now)
{
	Flotilla__SyncRequest req = FLOTILLA__SYNC_REQUEST__INIT;
	Flotilla__Credentials c;
	Flotilla__StepStatus *sv = NULL, **sp = NULL;
	sim_t *s = a->sim;

	bool win = now >= s->meas_start && now < s->meas_end;
	agent_identity_creds(&a->id, &c);
	req.known_index = atomic_load(&a->known_index);
	a->in_window = win;
	a->last_send = now;

	pthread_mutex_lock(&a->mtx);
	if (inv_items) {
		req.inventory_digest = a->digest;
		if (strcmp(a->digest, a->coord_digest) != 0) {
			const Flotilla__Inventory *inv =
				inv_get(s, a->idx, a->log4j);
			/* Only read by the pack below. */
			req.inventory = (Flotilla__Inventory *)inv;
			atomic_fetch_add(&s->inv_sent, 1);
			atomic_fetch_add(
				&s->inv_bytes,
				protobuf_c_message_get_packed_size(&inv->base));
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < a->nsteps; i++)
		n += a->steps[i]->listed;
	if (n) {
		sv = flt_xcalloc(n, sizeof(*sv));
		sp = flt_xcalloc(n, sizeof(*sp));
		n = 0;
		for (size_t i = 0; i < a->nsteps; i++) {
			sim_step_t *st = a->steps[i];
			if (!st->listed)
				continue;
			Flotilla__StepStatus *o = &sv[n];
			flotilla__step_status__init(o);
			o->id = st->id;
			o->state = st->state;
			o->from_version = st->from;
			o->to_version = st->to;
			o->message = st->message;
			o->rolled_back = st->rolled_back;
			o->started_at_ms = st->started_ms;
			o->finished_at_ms = st->finished_ms;
			if (st->state == STEP(SUCCEEDED))
				o->inventory_digest = st->digest;
			st->sent = st->state;
			sp[n++] = o;
		}
		req.n_steps = n;
		req.steps = sp;
	}
	/* Packed at once: nothing above is read after this. */
	int rc = call_start(a, OP_SYNC, now, &c, &req.base);
	pthread_mutex_unlock(&a->mtx);
	free(sv);
	free(sp);
	if (rc < 0) {
		atomic_fetch_add(&s->all.bad, 1);
		if (win)
			atomic_fetch_add(&s->win.bad, 1);
		call_done(a);
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

static void note_time(atomic_int_fast64_t *v, int64_t t, bool first)
{
	int64_t cur = atomic_load(v);
	while ((cur == 0 || (first ? t < cur : t > cur)) &&
	       !atomic_compare_exchange_weak(v, &cur, t))
		;
}

/* The health gate of a step ran out: the scripted outcome. */
static void step_timer_cb(void *arg)
{
	sim_step_t *st = arg;
	sim_agent_t *a = st->a;
	sim_t *s = a->sim;

	if (nng_aio_result(st->timer) != 0)
		return; /* stopped at shutdown */
	pthread_mutex_lock(&a->mtx);
	st->finished_ms = flt_now_wall_ms();
	if (st->fail) {
		st->state = STEP(FAILED);
		st->rolled_back = true;
		snprintf(st->message, sizeof(st->message),
			 "tasks unhealthy within %s's health gate "
			 "(simulated): switched back to %s",
			 st->to, a->log4j);
		atomic_fetch_add(&s->steps_failed, 1);
	} else {
		snprintf(a->log4j, sizeof(a->log4j), "%s",
			 st->to[0] ? st->to : LOG4J_BASE);
		inv_rescan(a);
		memcpy(st->digest, a->digest, sizeof(st->digest));
		st->state = STEP(SUCCEEDED);
		/* Rollbacks always succeed; they are counted when seen. */
		if (st->action == ACTION(INSTALL))
			atomic_fetch_add(&s->steps_ok, 1);
	}
	st->changed_ns = now_ns();
	pthread_mutex_unlock(&a->mtx);
	note_time(&s->last_step_done, now_ns(), false);
	sync_kick(a);
}

#define ROLLBACK_MS 500

/*
 * The steps of a sync answer, a->mtx held: a new id starts at once
 * (APPLYING, its health gate timed); a known one is only marked listed.
 * Adds the timers to start to *start (at most n). Returns how many steps
 * are new.
 */
static size_t steps_take(sim_agent_t *a, Flotilla__PatchStep *const *v,
			 size_t n, int64_t now, sim_step_t **start)
{
	sim_t *s = a->sim;
	size_t nnew = 0;
	for (size_t i = 0; i < a->nsteps; i++)
		a->steps[i]->listed = false;
	for (size_t i = 0; i < n; i++) {
		const Flotilla__PatchStep *p = v[i];
		sim_step_t *st = NULL;
		for (size_t j = 0; j < a->nsteps && !st; j++)
			if (strcmp(a->steps[j]->id, p->id) == 0)
				st = a->steps[j];
		if (st) {
			st->listed = true;
			continue;
		}
		bool install = p->action == ACTION(INSTALL);
		if (!install && p->action != ACTION(ROLLBACK))
			continue;
		st = flt_xcalloc(1, sizeof(*st));
		st->a = a;
		snprintf(st->id, sizeof(st->id), "%s", p->id);
		st->action = p->action;
		st->state = STEP(APPLYING);
		st->listed = true;
		st->started_ms = flt_now_wall_ms();
		st->changed_ns = now;
		/* The managed package's version before ("" if none). */
		snprintf(st->from, sizeof(st->from), "%s",
			 strcmp(a->log4j, LOG4J_BASE) ? a->log4j : "");
		if (install)
			snprintf(st->to, sizeof(st->to), "%s",
				 p->package ? p->package->version : "");
		else
			snprintf(st->to, sizeof(st->to), "%s", p->rollback_to);
		st->fail = install && (agent_fails(a->idx) || !st->to[0]);
		st->gate_ms = install ? p->min_healthy_ms : ROLLBACK_MS;
		a->steps = flt_xrealloc(a->steps,
					(a->nsteps + 1) * sizeof(*a->steps));
		a->steps[a->nsteps++] = st;
		atomic_fetch_add(install ? &s->steps_seen : &s->rollbacks, 1);
		note_time(&s->first_step_at, now, true);
		start[nnew++] = st;
	}
	return nnew;
}

static void step_start_timer(sim_step_t *st)
{
	if (nng_aio_alloc(&st->timer, step_timer_cb, st) != 0) {
		note_error(st->a->sim, "%s: no aio for step %s", st->a->name,
			   st->id);
		return;
	}
	nng_sleep_aio((nng_duration)st->gate_ms, st->timer);
}

/* What a sync answer says besides the index: steps, the digest held. */
static void sync_took(sim_agent_t *a, const Flotilla__SyncResponse *resp,
		      int64_t now)
{
	sim_t *s = a->sim;
	size_t n = resp->n_steps;
	sim_step_t *one[4], **start = n <= 4 ? one : NULL;
	if (!start)
		start = flt_xcalloc(n, sizeof(*start));

	pthread_mutex_lock(&a->mtx);
	snprintf(a->coord_digest, sizeof(a->coord_digest), "%s",
		 resp->inventory_digest);
	/* The states this sync carried are acknowledged. */
	for (size_t i = 0; i < a->nsteps; i++) {
		sim_step_t *st = a->steps[i];
		if (st->changed_ns && st->sent == st->state) {
			samples_add(&s->step_lat, now - st->changed_ns);
			st->changed_ns = 0;
			if (st->finished_ms)
				st->acked_ms = flt_now_wall_ms();
		}
	}
	size_t nnew = steps_take(a, resp->steps, n, now, start);
	bool rewatch = false;
	uint64_t known = atomic_load(&a->known_index);
	if (watch && !atomic_load(&s->stopping) && !atomic_load(&a->killed) &&
	    (a->wstate == W_OFF ||
	     (a->wstate == W_PARKED && known >= a->parked_idx))) {
		a->wstate = W_CALL;
		rewatch = true;
	}
	pthread_mutex_unlock(&a->mtx);

	for (size_t i = 0; i < nnew; i++)
		step_start_timer(start[i]);
	if (start != one)
		free(start);
	/* APPLYING is reported at once. */
	if (nnew)
		atomic_store(&a->again, true);
	if (rewatch)
		watch_send(a);
}

static void sync_reply(sim_agent_t *a, const flt_envelope_t *rep, int64_t now)
{
	Flotilla__SyncResponse *resp;
	flt_error_t err;

	if (rep->error &&
	    rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE) {
		note_error(a->sim, "sync %s: %s", a->name, rep->error->message);
		sync_count(a, offsetof(counts_t, remote));
	} else if (flt_envelope_body(rep, &flotilla__sync_response__descriptor,
				     (ProtobufCMessage **)&resp, &err) < 0) {
		note_error(a->sim, "sync %s: bad reply: %s", a->name, err.msg);
		sync_count(a, offsetof(counts_t, bad));
	} else {
		atomic_store(&a->known_index, resp->index);
		sync_took(a, resp, now);
		flotilla__sync_response__free_unpacked(resp, NULL);
		sync_count(a, offsetof(counts_t, ok));
		if (a->in_window)
			samples_add(&a->sim->sync_lat, now - a->t_send);
	}
	call_done(a);
}

/* ---- the long-poll (--watch) ----------------------------------------- */

/* Starts a Watch on the agent's second context; its state is W_CALL. */
static void watch_send(sim_agent_t *a)
{
	Flotilla__WatchRequest req = FLOTILLA__WATCH_REQUEST__INIT;
	Flotilla__Credentials c;
	flt_envelope_t env = FLOTILLA__ENVELOPE__INIT;
	flt_error_t err;
	nng_msg *msg;

	agent_identity_creds(&a->id, &c);
	req.known_index = atomic_load(&a->known_index);
	req.max_wait_ms = (uint32_t)watch_wait_ms;
	env.version = FLT_WIRE_VERSION;
	env.method = FLOTILLA__METHOD__METHOD_WATCH;
	env.request_id = a->wreq_id = ++a->wnext_id;
	env.credentials = &c;
	if (flt_envelope_pack(&env, &req.base, &msg, &err) < 0) {
		note_error(a->sim, "watch %s: %s", a->name, err.msg);
		pthread_mutex_lock(&a->mtx);
		a->wstate = W_OFF;
		pthread_mutex_unlock(&a->mtx);
		return;
	}
	a->wcall = CS_SEND;
	a->wsend = now_ns();
	nng_aio_set_msg(a->waio, msg);
	nng_aio_set_timeout(a->waio, (nng_duration)timeout_ms);
	nng_ctx_send(a->wctx, a->waio);
}

static void watch_cb(void *arg)
{
	sim_agent_t *a = arg;
	sim_t *s = a->sim;
	int rc = nng_aio_result(a->waio);
	bool quit = atomic_load(&s->stopping) || atomic_load(&a->killed);

	if (a->wcall == CS_SLEEP) {
		if (rc == 0 && !quit) {
			watch_send(a);
			return;
		}
		goto off;
	}
	if (a->wcall == CS_SEND) {
		if (rc != 0) {
			nng_msg_free(nng_aio_get_msg(a->waio));
			nng_aio_set_msg(a->waio, NULL);
			goto failed;
		}
		a->wcall = CS_RECV;
		nng_aio_set_timeout(a->waio,
				    (nng_duration)(watch_wait_ms + timeout_ms));
		nng_ctx_recv(a->wctx, a->waio);
		return;
	}
	if (rc != 0)
		goto failed;
	nng_msg *msg = nng_aio_get_msg(a->waio);
	nng_aio_set_msg(a->waio, NULL);
	flt_envelope_t *rep;
	Flotilla__WatchResponse *resp;
	flt_error_t err;
	rc = flt_envelope_unpack_reply(nng_msg_body(msg), nng_msg_len(msg),
				       &rep, &err);
	nng_msg_free(msg);
	if (rc < 0) {
		note_error(s, "watch %s: bad reply: %s", a->name, err.msg);
		goto failed; /* rc < 0: noted, not an nng error */
	}
	if (rep->request_id != a->wreq_id ||
	    rep->method != FLOTILLA__METHOD__METHOD_WATCH) {
		note_error(s, "watch %s: request id or method do not match",
			   a->name);
		flt_envelope_free(rep);
		rc = -1;
		goto failed;
	}
	if (rep->error &&
	    rep->error->code != FLOTILLA__ERROR_CODE__ERROR_NONE) {
		note_error(s, "watch %s: %s", a->name, rep->error->message);
		flt_envelope_free(rep);
		rc = -1;
		goto failed;
	}
	rc = flt_envelope_body(rep, &flotilla__watch_response__descriptor,
			       (ProtobufCMessage **)&resp, &err);
	flt_envelope_free(rep);
	if (rc < 0) {
		note_error(s, "watch %s: bad reply: %s", a->name, err.msg);
		goto failed;
	}
	bool changed = resp->changed;
	uint64_t idx = resp->index;
	flotilla__watch_response__free_unpacked(resp, NULL);
	atomic_fetch_add(&s->watch_answers, 1);
	if (quit)
		goto off;
	if (!changed) {
		watch_send(a);
		return;
	}
	atomic_fetch_add(&s->watch_changed, 1);
	/* Parked before the sync is asked for: its answer unparks. */
	pthread_mutex_lock(&a->mtx);
	a->wstate = W_PARKED;
	a->parked_idx = idx;
	pthread_mutex_unlock(&a->mtx);
	sync_kick(a);
	return;

failed:
	if (quit)
		goto off;
	/* nng's errors are positive; the others were noted above. */
	if (rc > 0 && rc != NNG_ETIMEDOUT)
		note_error(s, "watch %s: %s", a->name, nng_strerror(rc));
	atomic_fetch_add(&s->watch_errors, 1);
	/* Again after a pause, as the agent does. */
	a->wcall = CS_SLEEP;
	nng_sleep_aio(AGENT_WATCH_RETRY_MS, a->waio);
	return;
off:
	pthread_mutex_lock(&a->mtx);
	a->wstate = W_OFF;
	pthread_mutex_unlock(&a->mtx);
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
	call_done(a);
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
			call_done(a);
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
	/* The long-poll's own context: the same connection. */
	if (watch && ((rc = nng_ctx_open(&a->wctx, a->sock)) != 0 ||
		      (rc = nng_aio_alloc(&a->waio, watch_cb, a)) != 0))
		return flt_err(err, FLT_ETRANSPORT, "agent %zu: watch: %s",
			       a->idx, nng_strerror(rc));
	if ((rc = nng_dialer_create(&a->dialer, a->sock, coordinator_url)) != 0)
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
	int rc = flt_client_call(
		api, FLOTILLA__METHOD__METHOD_NODE_LIST, NULL, &req.base,
		&flotilla__node_list_response__descriptor,
		(ProtobufCMessage **)&resp, (int)timeout_ms, &err);
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
		req.node = s->agents[i].id.node_id;
		int64_t c0 = now_ns();
		int rc = flt_client_call(
			api, FLOTILLA__METHOD__METHOD_NODE_GET, NULL, &req.base,
			&flotilla__node_get_response__descriptor,
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
 * Stops the agent's Watch and step timers (waiting for their callbacks),
 * so that its socket is never closed under a call. The caller holds busy
 * and has set killed or stopping: nothing restarts them.
 */
static void agent_quiesce(sim_agent_t *a)
{
	if (a->waio)
		nng_aio_stop(a->waio);
	pthread_mutex_lock(&a->mtx);
	size_t n = a->nsteps;
	sim_step_t **v = n ? flt_xcalloc(n, sizeof(*v)) : NULL;
	if (n)
		memcpy(v, a->steps, n * sizeof(*v));
	pthread_mutex_unlock(&a->mtx);
	for (size_t i = 0; i < n; i++)
		if (v[i]->timer)
			nng_aio_stop(v[i]->timer);
	free(v);
}

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
		agent_quiesce(a);
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
	s->closer_started =
		pthread_create(&s->closer, NULL, kill_close_main, s) == 0;
	for (size_t j = 0; j < s->nkilled; j++)
		flt_info("killed agent name=%s node=%s",
			 s->agents[s->killed[j]].name,
			 s->agents[s->killed[j]].id.node_id);
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
		agent_quiesce(a);
		nng_close(a->sock);
	}
	for (size_t i = 0; i < s->n; i++) {
		sim_agent_t *a = &s->agents[i];
		if (a->aio)
			nng_aio_free(a->aio);
		if (a->waio)
			nng_aio_free(a->waio);
		for (size_t j = 0; j < a->nsteps; j++) {
			if (a->steps[j]->timer)
				nng_aio_free(a->steps[j]->timer);
			free(a->steps[j]);
		}
		free(a->steps);
		a->steps = NULL;
		a->nsteps = 0;
	}
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
	int64_t kill_t =
		s->nkilled ? s->sync_start + kill_at_s * NS_PER_S : INT64_MAX;
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

/* --step-times: "agent step_id outcome seen_ms done_ms acked_ms". */
static void write_step_times(sim_t *s)
{
	FILE *f = fopen(step_times, "w");
	if (!f) {
		flt_error("%s: %s", step_times, strerror(errno));
		return;
	}
	for (size_t i = 0; i < s->n; i++) {
		sim_agent_t *a = &s->agents[i];
		pthread_mutex_lock(&a->mtx);
		for (size_t j = 0; j < a->nsteps; j++) {
			const sim_step_t *st = a->steps[j];
			const char *o = "unfinished";
			if (st->state == STEP(SUCCEEDED))
				o = "succeeded";
			else if (st->state == STEP(FAILED))
				o = "failed";
			fprintf(f, "%s %s %s %lld %lld %lld\n", a->name, st->id,
				o, (long long)st->started_ms,
				(long long)st->finished_ms,
				(long long)st->acked_ms);
		}
		pthread_mutex_unlock(&a->mtx);
	}
	if (fclose(f) != 0)
		flt_error("%s: %s", step_times, strerror(errno));
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
	double offered =
		meas_s > 0 ? agent_s / meas_s * 1000.0 / (double)interval_ms
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

	printf("agentsim: %zu agents, interval %ld ms, coordinator %s\n", s->n,
	       interval_ms, coordinator_url);
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
	pct_t sl = samples_pct(&s->step_lat);
	uint64_t seen = atomic_load(&s->steps_seen);
	int64_t first = atomic_load(&s->first_step_at);
	int64_t last = atomic_load(&s->last_step_done);
	if (inv_items)
		printf("  inventory: %ld items per agent; %llu inventories "
		       "sent (%.1f MB)\n",
		       inv_items, (unsigned long long)atomic_load(&s->inv_sent),
		       (double)atomic_load(&s->inv_bytes) / 1e6);
	if (seen || atomic_load(&s->rollbacks))
		printf("  steps:     %llu install steps (%llu succeeded, %llu "
		       "failed and rolled back), %llu rollback steps; from "
		       "t=%.1f s to t=%.1f s; a new state reported (sync "
		       "answered) p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		       (unsigned long long)seen,
		       (unsigned long long)atomic_load(&s->steps_ok),
		       (unsigned long long)atomic_load(&s->steps_failed),
		       (unsigned long long)atomic_load(&s->rollbacks),
		       first ? secs(first - s->sync_start) : 0,
		       last ? secs(last - s->sync_start) : 0, sl.p50, sl.p99,
		       sl.max);
	if (watch)
		printf("  watch:     %llu answers (%llu with a change), %llu "
		       "failed calls; %llu syncs sent early (a step changed "
		       "or a change was pushed)\n",
		       (unsigned long long)atomic_load(&s->watch_answers),
		       (unsigned long long)atomic_load(&s->watch_changed),
		       (unsigned long long)atomic_load(&s->watch_errors),
		       (unsigned long long)atomic_load(&s->early_syncs));
	else if (seen)
		printf("  early:     %llu syncs sent early (a step changed)\n",
		       (unsigned long long)atomic_load(&s->early_syncs));
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
		jset(j, "detect_min_s",
		     det.n ? json_real(det.min) : json_null());
		jset(j, "detect_max_s",
		     det.n ? json_real(det.max) : json_null());
		jset(j, "since_hb_min_s",
		     since_hb.n ? json_real(since_hb.min) : json_null());
		jset(j, "since_hb_max_s",
		     since_hb.n ? json_real(since_hb.max) : json_null());
		jset(j, "flaps",
		     strcmp(poll_method, "list") == 0
			     ? json_integer((json_int_t)s->nflapped)
			     : json_null());
		jset(j, "polls", json_integer((json_int_t)s->polls));
		jset(j, "poll_failed",
		     json_integer((json_int_t)s->poll_failed));
		jset(j, "poll_rejected",
		     json_integer((json_int_t)s->polls_rejected));
		jset(j, "poll_p50_ms", json_real(pl.p50));
		jset(j, "poll_max_ms", json_real(pl.max));
		jset(j, "list_bytes", json_integer((json_int_t)s->list_bytes));
	}
	if (inv_items || watch || seen) {
		jset(j, "inventory_items", json_integer(inv_items));
		jset(j, "inventories_sent",
		     json_integer((json_int_t)atomic_load(&s->inv_sent)));
		jset(j, "inventory_bytes",
		     json_integer((json_int_t)atomic_load(&s->inv_bytes)));
		jset(j, "fail_percent", json_integer(fail_percent));
		jset(j, "steps_seen", json_integer((json_int_t)seen));
		jset(j, "steps_succeeded",
		     json_integer((json_int_t)atomic_load(&s->steps_ok)));
		jset(j, "steps_failed",
		     json_integer((json_int_t)atomic_load(&s->steps_failed)));
		jset(j, "rollback_steps",
		     json_integer((json_int_t)atomic_load(&s->rollbacks)));
		jset(j, "step_report_p50_ms", json_real(sl.p50));
		jset(j, "step_report_p99_ms", json_real(sl.p99));
		jset(j, "step_report_max_ms", json_real(sl.max));
		jset(j, "watch", json_boolean(watch));
		jset(j, "watch_answers",
		     json_integer((json_int_t)atomic_load(&s->watch_answers)));
		jset(j, "watch_changed",
		     json_integer((json_int_t)atomic_load(&s->watch_changed)));
		jset(j, "watch_errors",
		     json_integer((json_int_t)atomic_load(&s->watch_errors)));
		jset(j, "early_syncs",
		     json_integer((json_int_t)atomic_load(&s->early_syncs)));
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
	pthread_mutex_init(&s->inv_mtx, NULL);
	s->period_ns = interval_ms * NS_PER_MS;
	s->agents = flt_xcalloc(s->n, sizeof(*s->agents));
	s->seen = flt_xcalloc(s->n, sizeof(*s->seen));
	samples_init(&s->reg_lat, s->n);
	samples_init(&s->sync_lat,
		     s->n * (size_t)(duration_s * 1000 / interval_ms + 2));
	samples_init(&s->step_lat, 4 * s->n);
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
		pthread_mutex_init(&a->mtx, NULL);
		snprintf(a->log4j, sizeof(a->log4j), "%s", LOG4J_BASE);
		if (inv_items)
			inv_rescan(a);
		if (agent_open(a, &err) < 0) {
			flt_error("%s", err.msg);
			goto out;
		}
	}
	bool all = wait_for(&s->connected, s->n, t0 + connect_wait_s * NS_PER_S,
			    "connect");
	s->connect_ns = now_ns() - t0;
	s->connected_first = atomic_load(&s->connected);
	if (!all)
		flt_warn("not all agents connected connected=%zu of=%zu",
			 s->connected_first, s->n);
	flt_info("connected count=%zu seconds=%.2f", s->connected_first,
		 secs(s->connect_ns));

	/* Register, a bounded number in flight; each reply starts the next. */
	t0 = now_ns();
	size_t first =
		(size_t)reg_inflight < s->n ? (size_t)reg_inflight : s->n;
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
	if (step_times)
		write_step_times(s);
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
	for (size_t i = 0; i < s->n; i++)
		pthread_mutex_destroy(&s->agents[i].mtx);
	free(s->agents);
	free(s->seen);
	free(s->killed);
	free(s->reg_lat.v);
	free(s->sync_lat.v);
	free(s->poll_lat.v);
	free(s->step_lat.v);
	inv_cache_free(s);
	pthread_mutex_destroy(&s->inv_mtx);
	pthread_mutex_destroy(&s->note_mtx);
	return rc;
}

int main(int argc, char **argv)
{
	int next;

	flt_log_init("agentsim", FLT_LOG_WARN);
	int rc = flt_flags_main(flags, argc, argv, &next, "agentsim",
				"Usage: agentsim [OPTIONS]\n\n"
				"Simulates a fleet of agents against a real "
				"coordinator and reports\nsync throughput, "
				"latency and failure detection.",
				false);
	if (rc >= 0)
		return rc;
	if ((rc = flt_program_start("agentsim", log_level)) != 0)
		return rc;
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
	agent_fingerprint_read(&host_fp, "/etc/os-release");
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
