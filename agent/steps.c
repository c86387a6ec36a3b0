#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/pkg.h"
#include "flotilla/util.h"
#include "steps.h"

#define ID_MAX 200
#define WATCH_EVERY_MS 100
/* The re-scan that ends a step may outlast the step's own deadline by
 * this much: the change is made, only its report waits. */
#define RESCAN_MIN_WAIT_MS 60000
#define RESTART_MAX 64 /* packages a settlement may restart users of */

/* A journal entry: the step's StepStatus and what settling it needs. */
typedef struct rec {
	char id[ID_MAX + 1];
	char package[65];
	Flotilla__StepAction action;
	bool restart; /* the step restarts the package's users */
	bool switched; /* the current link may have been switched */
	Flotilla__StepState state;
	char from[256], to[256];
	char message[FLT_ERROR_MSG_MAX + 256];
	bool rolled_back;
	int64_t started_at, finished_at;
	char inv_digest[FLT_SHA256_HEX];
} rec_t;

struct agent_steps {
	agent_steps_opts_t o;
	flt_db_t db;
	int log_fd;
	agent_tasks_t *tasks;
	agent_invscan_t *inv;
	pthread_mutex_t mtx;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t worker;
	bool started;
	atomic_bool stopping;
	/* The latest offer (copies) and the step under way. */
	Flotilla__PatchStep **listed;
	size_t nlisted;
	uint64_t offer_gen;
	char current[ID_MAX + 1];
	/* Settled at open: packages whose users restart at start. */
	char settled[RESTART_MAX][65];
	size_t nsettled;
};

static const char *action_name(Flotilla__StepAction a)
{
	return a == FLOTILLA__STEP_ACTION__STEP_ACTION_INSTALL    ? "install"
	       : a == FLOTILLA__STEP_ACTION__STEP_ACTION_ROLLBACK ? "rollback"
								  : "unknown";
}

static const char *state_name(Flotilla__StepState st)
{
	return flt_pb_enum_name(&flotilla__step_state__descriptor, st);
}

static bool in_progress(Flotilla__StepState st)
{
	return st == FLOTILLA__STEP_STATE__STEP_STATE_APPLYING ||
	       st == FLOTILLA__STEP_STATE__STEP_STATE_VERIFYING;
}

/* A version as people read it: "" is the absence of one. */
static const char *shown_version(const char *v)
{
	return *v ? v : "no version";
}

/* Step ids are reported back and written to steps.log as one word. */
static bool id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > ID_MAX)
		return false;
	for (; *id; id++)
		if (*id <= ' ' || *id > '~')
			return false;
	return true;
}

/* ---- the journal ------------------------------------------------------- */

static void status_view(const rec_t *r, Flotilla__StepStatus *st)
{
	flotilla__step_status__init(st);
	st->id = (char *)r->id;
	st->state = r->state;
	st->from_version = (char *)r->from;
	st->to_version = (char *)r->to;
	st->message = (char *)r->message;
	st->rolled_back = r->rolled_back;
	st->started_at_ms = r->started_at;
	st->finished_at_ms = r->finished_at;
	st->inventory_digest = (char *)r->inv_digest;
}

static int journal_put(agent_steps_t *s, const rec_t *r, flt_error_t *err)
{
	Flotilla__StepStatus st;
	flt_txn_t *txn;
	int rc;

	status_view(r, &st);
	json_t *j = json_object();
	json_object_set_new(j, "package", json_string(r->package));
	json_object_set_new(j, "action", json_string(action_name(r->action)));
	json_object_set_new(j, "restart", json_boolean(r->restart));
	json_object_set_new(j, "switched", json_boolean(r->switched));
	json_object_set_new(j, "status", flt_pb_to_json(&st.base));
	cleanup_free char *v = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!v)
		return flt_err(err, -ENOMEM, "step %s: not encoded", r->id);
	if ((rc = flt_txn_begin(s->o.store, true, &txn, err)) < 0)
		return rc;
	if ((rc = flt_txn_put(txn, s->db, r->id, strlen(r->id), v, strlen(v),
			      err)) < 0) {
		flt_txn_abort(txn);
		return rc;
	}
	return flt_txn_commit(txn, err);
}

static bool copy_str(char *dst, size_t len, const char *src)
{
	if (!src || strlen(src) >= len)
		return false;
	memcpy(dst, src, strlen(src) + 1);
	return true;
}

/* Decodes a journal value into r (id set by the caller). */
static int rec_decode(const void *val, size_t len, rec_t *r)
{
	json_error_t je;
	flt_error_t err;
	Flotilla__StepStatus *st = NULL;
	int rc = -EINVAL;

	json_t *j = json_loadb(val, len, 0, &je);
	if (!j)
		return -EINVAL;
	const char *action = json_string_value(json_object_get(j, "action"));
	if (!copy_str(r->package, sizeof(r->package),
		      json_string_value(json_object_get(j, "package"))) ||
	    !action ||
	    flt_pb_from_json(&flotilla__step_status__descriptor,
			     json_object_get(j, "status"),
			     (ProtobufCMessage **)&st, &err) < 0)
		goto out;
	r->action = !strcmp(action, "install")
			    ? FLOTILLA__STEP_ACTION__STEP_ACTION_INSTALL
		    : !strcmp(action, "rollback")
			    ? FLOTILLA__STEP_ACTION__STEP_ACTION_ROLLBACK
			    : FLOTILLA__STEP_ACTION__STEP_ACTION_UNKNOWN;
	r->restart = json_is_true(json_object_get(j, "restart"));
	r->switched = json_is_true(json_object_get(j, "switched"));
	r->state = st->state;
	r->rolled_back = st->rolled_back;
	r->started_at = st->started_at_ms;
	r->finished_at = st->finished_at_ms;
	if (copy_str(r->from, sizeof(r->from), st->from_version) &&
	    copy_str(r->to, sizeof(r->to), st->to_version) &&
	    copy_str(r->inv_digest, sizeof(r->inv_digest),
		     st->inventory_digest)) {
		snprintf(r->message, sizeof(r->message), "%s", st->message);
		rc = 0;
	}
out:
	if (st)
		flotilla__step_status__free_unpacked(st, NULL);
	json_decref(j);
	return rc;
}

/* 0 with r filled, -ENOENT when id is not in the journal, or an error. */
static int journal_get(agent_steps_t *s, const char *id, rec_t *r)
{
	flt_txn_t *txn;
	const void *v;
	size_t vl;

	memset(r, 0, sizeof(*r));
	if (flt_txn_begin(s->o.store, false, &txn, NULL) < 0)
		return FLT_ESTORE;
	int rc = flt_txn_get(txn, s->db, id, strlen(id), &v, &vl);
	if (rc == 0) {
		rc = rec_decode(v, vl, r);
		snprintf(r->id, sizeof(r->id), "%s", id);
	}
	flt_txn_abort(txn);
	return rc;
}

/* ---- steps.log ----------------------------------------------------------- */

static void log_line(agent_steps_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * One line per step start and end, appended and synced: what operators
 * (and the tests) count to see that a step ran exactly once.
 */
static void log_line(agent_steps_t *s, const char *fmt, ...)
{
	char line[2048], when[64];
	va_list ap;

	flt_format_time(flt_now_wall_ms(), when, sizeof(when));
	int n = snprintf(line, sizeof(line), "%s ", when);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	flt_utf8_trim(line);
	size_t len = strlen(line);
	line[len++] = '\n';
	/* A short write is retried, so that a full disk reads as one. */
	int rc = flt_write_all(s->log_fd, line, len, NULL);
	if (rc == 0 && fdatasync(s->log_fd) < 0)
		rc = -errno;
	if (rc < 0)
		flt_warn("steps.log not written path=%s/steps.log error=\"%s\"",
			 s->o.data_dir, flt_write_strerror(rc, s->o.data_dir));
}

static void log_start(agent_steps_t *s, const rec_t *r)
{
	log_line(s, "start %s %s %s %s -> %s", r->id, action_name(r->action),
		 *r->package ? r->package : "-", *r->from ? r->from : "(none)",
		 *r->to ? r->to : "(none)");
}

static void log_end(agent_steps_t *s, const rec_t *r)
{
	log_line(s, "end %s %s rolled_back=%s %s", r->id, state_name(r->state),
		 r->rolled_back ? "true" : "false", r->message);
}

static void changed(agent_steps_t *s)
{
	if (s->o.on_change)
		s->o.on_change(s->o.change_arg);
}

/* ---- settling what a previous run left under way ---------------------- */

static void note_settled(agent_steps_t *s, const char *pkg)
{
	for (size_t i = 0; i < s->nsettled; i++)
		if (!strcmp(s->settled[i], pkg))
			return;
	if (s->nsettled < RESTART_MAX)
		snprintf(s->settled[s->nsettled++], sizeof(s->settled[0]), "%s",
			 pkg);
}

static void settle(agent_steps_t *s, rec_t *r)
{
	char cur[256] = "";
	flt_error_t err;
	bool back = false;

	r->state = FLOTILLA__STEP_STATE__STEP_STATE_FAILED;
	r->finished_at = flt_now_wall_ms();
	r->rolled_back = r->switched;
	if (!flt_pkg_name_valid(r->package) ||
	    agent_pkgs_current(s->o.pkgs, r->package, cur, sizeof(cur)) < 0) {
		snprintf(r->message, sizeof(r->message),
			 "the agent restarted during the step; the package's "
			 "current version could not be read");
	} else if (*r->to && !strcmp(cur, r->to) && strcmp(r->from, r->to)) {
		/* Half a step is worse than none: one version, the one
		 * before, and the tasks restarted onto it. */
		if (agent_pkgs_switch(s->o.pkgs, r->package, r->from, &err) <
		    0) {
			r->rolled_back = false;
			snprintf(r->message, sizeof(r->message),
				 "the agent restarted during the step; could "
				 "not switch back to %s: %s",
				 shown_version(r->from), err.msg);
		} else {
			back = true;
			r->rolled_back = true;
			snprintf(r->message, sizeof(r->message),
				 "the agent restarted during the step; "
				 "switched back to %s",
				 shown_version(r->from));
		}
	} else {
		snprintf(r->message, sizeof(r->message),
			 "the agent restarted during the step; %s is current",
			 shown_version(cur));
	}
	flt_warn("patch step settled after a restart step=%s package=%s "
		 "message=\"%s\"",
		 r->id, r->package, r->message);
	if (back && r->restart)
		note_settled(s, r->package);
	if (journal_put(s, r, &err) < 0)
		flt_error("step %s: journal not written: %s", r->id, err.msg);
	log_end(s, r);
}

static int collect_open(const void *key, size_t klen, const void *val,
			size_t vlen, void *arg)
{
	rec_t **v = arg;
	rec_t r = { 0 };

	if (klen > ID_MAX || rec_decode(val, vlen, &r) < 0 ||
	    !in_progress(r.state))
		return 0;
	memcpy(r.id, key, klen);
	r.id[klen] = '\0';
	size_t n = 0;
	while (*v && (*v)[n].id[0])
		n++;
	*v = flt_xrealloc(*v, (n + 2) * sizeof(**v));
	(*v)[n] = r;
	memset(&(*v)[n + 1], 0, sizeof(**v));
	return 0;
}

/* ---- life ----------------------------------------------------------------- */

int agent_steps_open(const agent_steps_opts_t *o, agent_steps_t **out,
		     flt_error_t *err)
{
	agent_steps_t *s = flt_xcalloc(1, sizeof(*s));
	pthread_condattr_t ca;
	flt_txn_t *txn;
	char path[4200];
	int rc;

	s->o = *o;
	s->log_fd = -1;
	pthread_mutex_init(&s->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&s->stopping, false);
	if ((rc = flt_store_db(o->store, "steps", &s->db)) < 0) {
		agent_steps_close(s);
		return flt_err(err, rc, "store has no steps database");
	}
	snprintf(path, sizeof(path), "%s/steps.log", o->data_dir);
	s->log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (s->log_fd < 0) {
		rc = flt_err(err, -errno, "%s: %s", path, strerror(errno));
		agent_steps_close(s);
		return rc;
	}
	rec_t *open_steps = NULL;
	if ((rc = flt_txn_begin(o->store, false, &txn, err)) < 0) {
		agent_steps_close(s);
		return rc;
	}
	flt_txn_foreach(txn, s->db, NULL, 0, collect_open, &open_steps);
	flt_txn_abort(txn);
	for (size_t i = 0; open_steps && open_steps[i].id[0]; i++)
		settle(s, &open_steps[i]);
	free(open_steps);
	*out = s;
	return 0;
}

static void *worker_main(void *arg);

int agent_steps_start(agent_steps_t *s, agent_tasks_t *tasks,
		      agent_invscan_t *inv, flt_error_t *err)
{
	s->tasks = tasks;
	s->inv = inv;
	if (s->nsettled)
		agent_tasks_packages_changed(tasks);
	for (size_t i = 0; i < s->nsettled; i++)
		agent_tasks_restart_using(tasks, s->settled[i]);
	int rc = pthread_create(&s->worker, NULL, worker_main, s);
	if (rc != 0)
		return flt_err(err, -rc, "patch step thread: %s", strerror(rc));
	s->started = true;
	return 0;
}

static void free_listed(Flotilla__PatchStep **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		flotilla__patch_step__free_unpacked(v[i], NULL);
	free(v);
}

void agent_steps_close(agent_steps_t *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mtx);
	atomic_store(&s->stopping, true);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mtx);
	if (s->started)
		pthread_join(s->worker, NULL);
	free_listed(s->listed, s->nlisted);
	if (s->log_fd >= 0)
		close(s->log_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}

/* A deep copy (the message belongs to a SyncResponse about to go). */
static Flotilla__PatchStep *dup_step(const Flotilla__PatchStep *p)
{
	size_t len = flotilla__patch_step__get_packed_size(p);
	cleanup_free uint8_t *buf = flt_xmalloc(len ? len : 1);
	flotilla__patch_step__pack(p, buf);
	Flotilla__PatchStep *copy =
		flotilla__patch_step__unpack(NULL, len, buf);
	if (!copy)
		abort(); /* it was packed just above */
	return copy;
}

void agent_steps_offer(agent_steps_t *s, Flotilla__PatchStep *const *steps,
		       size_t n)
{
	Flotilla__PatchStep **v = flt_xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = dup_step(steps[i]);
	pthread_mutex_lock(&s->mtx);
	free_listed(s->listed, s->nlisted);
	s->listed = v;
	s->nlisted = n;
	s->offer_gen++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mtx);
}

size_t agent_steps_status(agent_steps_t *s, Flotilla__StepStatus ***out)
{
	pthread_mutex_lock(&s->mtx);
	size_t nids = 0;
	char(*ids)[ID_MAX + 1] = flt_xcalloc(s->nlisted + 1, sizeof(*ids));
	bool current_listed = false;
	for (size_t i = 0; i < s->nlisted; i++) {
		const char *id = s->listed[i]->id;
		if (!id_valid(id))
			continue;
		current_listed = current_listed || !strcmp(id, s->current);
		snprintf(ids[nids++], sizeof(ids[0]), "%s", id);
	}
	if (s->current[0] && !current_listed)
		snprintf(ids[nids++], sizeof(ids[0]), "%s", s->current);
	pthread_mutex_unlock(&s->mtx);

	Flotilla__StepStatus **v = flt_xcalloc(nids ? nids : 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < nids; i++) {
		rec_t r;
		Flotilla__StepStatus view;
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = !strcmp(ids[k], ids[i]);
		if (dup || journal_get(s, ids[i], &r) < 0)
			continue;
		status_view(&r, &view);
		Flotilla__StepStatus *st = flt_xcalloc(1, sizeof(*st));
		*st = view;
		st->id = flt_xstrdup(r.id);
		st->from_version = flt_xstrdup(r.from);
		st->to_version = flt_xstrdup(r.to);
		st->message = flt_xstrdup(r.message);
		st->inventory_digest = flt_xstrdup(r.inv_digest);
		v[n++] = st;
	}
	free(ids);
	*out = v;
	return n;
}

void agent_steps_status_free(Flotilla__StepStatus **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		flotilla__step_status__free_unpacked(v[i], NULL);
	free(v);
}

/* ---- running a step --------------------------------------------------- */

static bool stopping(agent_steps_t *s) { return atomic_load(&s->stopping); }

/* Sleeps ms, or less when the agent is stopping. */
static void nap(agent_steps_t *s, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&s->mtx);
	if (!stopping(s))
		pthread_cond_timedwait(&s->cond, &s->mtx, &ts);
	pthread_mutex_unlock(&s->mtx);
}

/* Journals r as it now stands and tells the sync thread. */
static int record(agent_steps_t *s, const rec_t *r)
{
	flt_error_t err;
	int rc = journal_put(s, r, &err);
	if (rc < 0)
		flt_error("patch step journal not written step=%s error=\"%s\"",
			  r->id, err.msg);
	changed(s);
	return rc;
}

/*
 * The first record of a step: from now on the id is taken. Not run at
 * all when it cannot be written (it comes again with the next offer).
 */
static int begin(agent_steps_t *s, rec_t *r)
{
	r->state = FLOTILLA__STEP_STATE__STEP_STATE_APPLYING;
	r->started_at = flt_now_wall_ms();
	if (record(s, r) < 0)
		return -1;
	log_start(s, r);
	flt_info("patch step started step=%s action=%s package=%s from=%s "
		 "to=%s",
		 r->id, action_name(r->action), r->package, r->from, r->to);
	return 0;
}

static void finish(agent_steps_t *s, rec_t *r, Flotilla__StepState st,
		   bool rolled_back, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void finish(agent_steps_t *s, rec_t *r, Flotilla__StepState st,
		   bool rolled_back, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	flt_utf8_trim(r->message);
	r->state = st;
	r->rolled_back = rolled_back;
	r->finished_at = flt_now_wall_ms();
	record(s, r);
	log_end(s, r);
	flt_log(st == FLOTILLA__STEP_STATE__STEP_STATE_SUCCEEDED ? FLT_LOG_INFO
								 : FLT_LOG_WARN,
		"patch step %s step=%s package=%s rolled_back=%d "
		"message=\"%s\"",
		state_name(st), r->id, r->package, rolled_back, r->message);
}

typedef struct fetch_ctx {
	agent_steps_t *s;
	int64_t deadline;
	uint32_t timeout_ms;
} fetch_ctx_t;

/* The coordinator's fetch, within the step's deadline. */
static int fetch_bounded(void *arg, const char *sha256, uint8_t **data,
			 size_t *len, flt_error_t *err)
{
	fetch_ctx_t *c = arg;
	if (stopping(c->s))
		return flt_err(err, -ECANCELED, "the agent is stopping");
	if (flt_now_mono_ms() >= c->deadline)
		return flt_err(err, -ETIMEDOUT,
			       "the step's timeout (%u ms) ran out while "
			       "fetching",
			       c->timeout_ms);
	return c->s->o.fetch(c->s->o.fetch_arg, sha256, data, len, err);
}

/* The package's version changed: tasks waiting for it may start, and the
 * inventory shows it. */
static uint64_t after_switch(agent_steps_t *s)
{
	agent_tasks_packages_changed(s->tasks);
	return agent_invscan_request(s->inv);
}

/* The re-scan after a step: the coordinator judges its result on it. */
static void rescan(agent_steps_t *s, rec_t *r, uint64_t ticket,
		   int64_t deadline)
{
	int64_t left = deadline - flt_now_mono_ms();
	if (left < RESCAN_MIN_WAIT_MS)
		left = RESCAN_MIN_WAIT_MS;
	for (;;) {
		int rc = agent_invscan_wait(s->inv, ticket, r->inv_digest,
					    WATCH_EVERY_MS * 5);
		if (rc == 0 || rc == -ECANCELED || stopping(s))
			return;
		left -= WATCH_EVERY_MS * 5;
		if (left <= 0) {
			agent_invscan_digest(s->inv, r->inv_digest);
			flt_warn("patch step: the re-scan is late, reporting "
				 "the latest inventory step=%s",
				 r->id);
			return;
		}
	}
}

/* What a task looked like when the watch began. */
typedef struct base {
	char key[128];
	uint64_t gen, runs;
	bool set;
} base_t;

static bool terminal_task(Flotilla__TaskState st)
{
	return st == FLOTILLA__TASK_STATE__TASK_STATE_EXITED ||
	       st == FLOTILLA__TASK_STATE__TASK_STATE_FAILED ||
	       st == FLOTILLA__TASK_STATE__TASK_STATE_STOPPED;
}

/*
 * Watches the tasks that use pkg: all of them must run healthy (those the
 * step restarted: once their new process is up), then stay so for
 * min_healthy_ms without a restart. A task whose check has failed as
 * often in a row as the check allows is bad at once: waiting for the
 * deadline would only keep a bad version running. Tasks that appear
 * meanwhile are not the step's concern. Returns 0, 1 with the first
 * problem in why, or -ECANCELED when the agent is stopping.
 */
static int watch(agent_steps_t *s, const char *pkg, int64_t deadline,
		 uint32_t timeout_ms, uint32_t min_healthy_ms, char *why,
		 size_t len)
{
	base_t *base = NULL;
	size_t nbase = 0;
	int64_t healthy_since = 0;
	bool first = true;
	int rc = 1;

	for (;; first = false) {
		if (stopping(s)) {
			rc = -ECANCELED;
			break;
		}
		agent_task_health_t *v = NULL;
		size_t n = agent_tasks_health_using(s->tasks, pkg, &v);
		int64_t now = flt_now_mono_ms();
		const agent_task_health_t *waiting = NULL;
		bool bad = false;
		for (size_t i = 0; i < n && !bad; i++) {
			const agent_task_health_t *h = &v[i];
			base_t *b = NULL;
			for (size_t k = 0; k < nbase && !b; k++)
				if (!strcmp(base[k].key, h->key))
					b = &base[k];
			if (!b) {
				if (!first)
					continue; /* not there at the switch */
				base = flt_xrealloc(
					base, (nbase + 1) * sizeof(*base));
				b = &base[nbase++];
				memset(b, 0, sizeof(*b));
				snprintf(b->key, sizeof(b->key), "%s", h->key);
			}
			if (h->starting) {
				if (healthy_since) {
					snprintf(why, len,
						 "task %s was restarted",
						 h->key);
					bad = true;
				}
				waiting = waiting ? waiting : h;
				continue;
			}
			if (!b->set) {
				b->gen = h->gen;
				b->runs = h->runs;
				b->set = true;
			}
			if (h->gen != b->gen) {
				snprintf(why, len, "task %s was replaced",
					 h->key);
				bad = true;
			} else if (h->runs != b->runs) {
				snprintf(why, len, "task %s restarted%s%s",
					 h->key, h->why[0] ? ": " : "", h->why);
				bad = true;
			} else if (terminal_task(h->state)) {
				snprintf(why, len, "task %s %s", h->key,
					 h->why);
				bad = true;
			} else if (h->failed_checks) {
				snprintf(why, len,
					 "task %s unhealthy: %s (%u failed "
					 "checks)",
					 h->key, h->why, (unsigned)h->failures);
				bad = true;
			} else if (!h->healthy) {
				if (healthy_since) {
					snprintf(why, len,
						 "task %s turned unhealthy: %s",
						 h->key, h->why);
					bad = true;
				}
				waiting = waiting ? waiting : h;
			}
		}
		if (!bad && !waiting && (nbase == 0 || !healthy_since))
			healthy_since = now;
		bool done = !bad && !waiting &&
			    (nbase == 0 ||
			     now - healthy_since >= (int64_t)min_healthy_ms);
		if (!bad && !done && now >= deadline) {
			if (waiting)
				snprintf(
					why, len,
					"task %s not healthy within the step's "
					"timeout (%u ms): %s",
					waiting->key, timeout_ms,
					waiting->why[0] ? waiting->why
							: "starting");
			else
				snprintf(why, len,
					 "the step's timeout (%u ms) ran out "
					 "before min_healthy_ms (%u ms)",
					 timeout_ms, min_healthy_ms);
			bad = true;
		}
		free(v);
		if (bad || done) {
			rc = bad ? 1 : 0;
			break;
		}
		nap(s, WATCH_EVERY_MS);
	}
	free(base);
	return rc;
}

/* A failed install: back to the version before, users restarted onto
 * it. */
static void switch_back(agent_steps_t *s, rec_t *r, const char *problem)
{
	flt_error_t err;
	if (agent_pkgs_switch(s->o.pkgs, r->package, r->from, &err) < 0) {
		finish(s, r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED, false,
		       "%s; could not switch back to %s: %s", problem,
		       shown_version(r->from), err.msg);
		return;
	}
	after_switch(s);
	if (r->restart)
		agent_tasks_restart_using(s->tasks, r->package);
	finish(s, r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED, true,
	       "%s; switched back to %s", problem, shown_version(r->from));
}

/* From the switch on: the same for installs and rollbacks. */
static void switch_and_verify(agent_steps_t *s, rec_t *r,
			      const Flotilla__PatchStep *p, int64_t deadline,
			      uint32_t timeout_ms)
{
	flt_error_t err;
	char why[FLT_ERROR_MSG_MAX];
	bool install = r->action == FLOTILLA__STEP_ACTION__STEP_ACTION_INSTALL;

	r->switched = true;
	if (record(s, r) < 0) {
		finish(s, r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED, false,
		       "the journal could not be written; nothing switched");
		return;
	}
	if (agent_pkgs_switch(s->o.pkgs, r->package, r->to, &err) < 0) {
		finish(s, r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED, false,
		       "switch to %s: %s", shown_version(r->to), err.msg);
		return;
	}
	after_switch(s);
	r->state = FLOTILLA__STEP_STATE__STEP_STATE_VERIFYING;
	if (record(s, r) < 0 && install) {
		switch_back(s, r, "the journal could not be written");
		return;
	}
	if (r->restart)
		agent_tasks_restart_using(s->tasks, r->package);
	int rc = watch(s, r->package, deadline, timeout_ms, p->min_healthy_ms,
		       why, sizeof(why));
	if (rc < 0)
		return; /* stopping: the next start settles the step */
	if (rc > 0) {
		if (install)
			switch_back(s, r, why);
		else
			finish(s, r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED,
			       false, "%s", why);
		return;
	}
	rescan(s, r, agent_invscan_request(s->inv), deadline);
	if (stopping(s))
		return;
	finish(s, r, FLOTILLA__STEP_STATE__STEP_STATE_SUCCEEDED, false,
	       "%s %s is current", r->package, shown_version(r->to));
	/* Every user of the package was restarted onto the current version:
	 * older versions are unused but for a rollback to r->from. Without
	 * the restart a task may still run one of them: nothing is removed. */
	if (r->restart)
		agent_pkgs_gc(s->o.pkgs, r->package, s->o.package_keep,
			      r->from);
}

/* Names the first reason p cannot run. */
static int step_check(const Flotilla__PatchStep *p, flt_error_t *err)
{
	switch (p->action) {
	case FLOTILLA__STEP_ACTION__STEP_ACTION_INSTALL:
		if (!p->package)
			return flt_err(err, -EINVAL,
				       "install step without a package");
		if (flt_pkg_manifest_check(p->package, err) < 0)
			return flt_err_prefix(err, "package");
		if (*p->package_name &&
		    strcmp(p->package_name, p->package->name) != 0)
			return flt_err(err, -EINVAL,
				       "package_name %s is not the manifest's "
				       "(%s)",
				       p->package_name, p->package->name);
		return 0;
	case FLOTILLA__STEP_ACTION__STEP_ACTION_ROLLBACK:
		if (!flt_pkg_name_valid(p->package_name))
			return flt_err(err, -EINVAL,
				       "package_name: not a package name");
		if (*p->rollback_to && !flt_pkg_version_valid(p->rollback_to))
			return flt_err(err, -EINVAL,
				       "rollback_to: not a version");
		return 0;
	default:
		return flt_err(err, -EINVAL, "unknown action %d",
			       (int)p->action);
	}
}

static void run_step(agent_steps_t *s, const Flotilla__PatchStep *p)
{
	rec_t r = { .action = p->action, .restart = p->restart };
	uint32_t timeout =
		p->timeout_ms ? p->timeout_ms : AGENT_STEP_TIMEOUT_MS;
	int64_t deadline = flt_now_mono_ms() + timeout;
	flt_error_t err;
	int rc;

	snprintf(r.id, sizeof(r.id), "%s", p->id);
	bool install = p->action == FLOTILLA__STEP_ACTION__STEP_ACTION_INSTALL;
	const char *name =
		install && p->package ? p->package->name : p->package_name;
	if (flt_pkg_name_valid(name))
		snprintf(r.package, sizeof(r.package), "%s", name);
	if ((rc = step_check(p, &err)) < 0) {
		if (begin(s, &r) == 0)
			finish(s, &r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED,
			       false, "refused by this node: %s", err.msg);
		return;
	}
	snprintf(r.to, sizeof(r.to), "%s",
		 install ? p->package->version : p->rollback_to);
	rc = agent_pkgs_current(s->o.pkgs, r.package, r.from, sizeof(r.from));
	if (begin(s, &r) < 0)
		return;
	if (rc < 0) {
		finish(s, &r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED, false,
		       "the current version of %s cannot be read: %s",
		       r.package, strerror(-rc));
		return;
	}
	if (install) {
		fetch_ctx_t fc = { .s = s,
				   .deadline = deadline,
				   .timeout_ms = timeout };
		rc = agent_pkgs_stage(s->o.pkgs, p->package, fetch_bounded, &fc,
				      &err);
		if (stopping(s))
			return;
		if (rc < 0) {
			finish(s, &r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED,
			       false, "%s", err.msg);
			return;
		}
	} else if (*r.to && !agent_pkgs_staged(s->o.pkgs, r.package, r.to)) {
		finish(s, &r, FLOTILLA__STEP_STATE__STEP_STATE_FAILED, false,
		       "%s %s is not staged on this host", r.package, r.to);
		return;
	}
	if (!strcmp(r.from, r.to)) {
		/* Nothing to switch, nobody to restart. */
		rescan(s, &r, agent_invscan_request(s->inv), deadline);
		if (!stopping(s))
			finish(s, &r,
			       FLOTILLA__STEP_STATE__STEP_STATE_SUCCEEDED,
			       false, "%s %s was current already", r.package,
			       shown_version(r.to));
		return;
	}
	switch_and_verify(s, &r, p, deadline, timeout);
}

static bool listed(agent_steps_t *s, const char *id)
{
	for (size_t i = 0; i < s->nlisted; i++)
		if (!strcmp(s->listed[i]->id, id))
			return true;
	return false;
}

/* Runs the steps of each offer that are not in the journal, in order. */
static void *worker_main(void *arg)
{
	agent_steps_t *s = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&s->mtx);
	while (!stopping(s)) {
		if (seen == s->offer_gen) {
			pthread_cond_wait(&s->cond, &s->mtx);
			continue;
		}
		seen = s->offer_gen;
		size_t n = s->nlisted;
		Flotilla__PatchStep **v = flt_xcalloc(n ? n : 1, sizeof(*v));
		for (size_t i = 0; i < n; i++)
			v[i] = dup_step(s->listed[i]);
		pthread_mutex_unlock(&s->mtx);
		for (size_t i = 0; i < n && !stopping(s); i++) {
			rec_t r;
			if (!id_valid(v[i]->id)) {
				flt_debug("patch step ignored: malformed id");
				continue;
			}
			if (journal_get(s, v[i]->id, &r) != -ENOENT)
				continue; /* run before (or unreadable) */
			/* A later offer may have dropped it meanwhile. */
			pthread_mutex_lock(&s->mtx);
			bool still = listed(s, v[i]->id);
			if (still)
				snprintf(s->current, sizeof(s->current), "%s",
					 v[i]->id);
			pthread_mutex_unlock(&s->mtx);
			if (!still)
				continue;
			run_step(s, v[i]);
			pthread_mutex_lock(&s->mtx);
			s->current[0] = '\0';
			pthread_mutex_unlock(&s->mtx);
		}
		free_listed(v, n);
		pthread_mutex_lock(&s->mtx);
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}
