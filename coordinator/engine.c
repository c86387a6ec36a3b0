/*
 * The engine (see engine.h): one thread evaluates jobs and commits plans.
 *
 * Every object (job, allocation, deployment) is held twice at most: the
 * committed message, which readers see, and during a cycle a working copy
 * the cycle changes. The plan is the set of working copies; it is written
 * in one transaction, and only once that committed do the copies replace
 * what readers see. A failed commit throws the copies away and retries the
 * jobs later: memory never runs ahead of the store.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "flotilla/job.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define EVALS_KEPT 10
#define MAX_PASSES 4
#define DEFAULT_DRAIN_MS 3600000

typedef struct ejob ejob_t;

typedef struct ealloc {
	char id[37]; /* the key of alloc_map: messages come and go */
	Flotilla__Alloc *a, *wc;
	ejob_t *job;
	bool in_plan, push;
	/* The agent's last report of its tasks (packed NodeTasks). */
	uint8_t *report;
	size_t report_len;
	bool report_new; /* listed in reported[] */
	bool gone; /* the node's last report did not list it */
} ealloc_t;

typedef struct edep {
	Flotilla__Deployment *d, *wc;
	bool in_plan;
} edep_t;

struct ejob {
	char *name;
	Flotilla__JobRecord *rec, *wc;
	Flotilla__JobRecord **versions; /* committed, oldest first */
	size_t nversions;
	Flotilla__JobRecord *new_version; /* written with this cycle */
	bool version_restable; /* rewrite versions[] stable */
	ealloc_t **allocs;
	size_t nallocs, allocs_cap;
	edep_t **deps; /* oldest first */
	size_t ndeps;
	Flotilla__Eval **evals; /* committed, oldest first */
	size_t nevals;
	Flotilla__Eval *eval; /* this cycle's */
	bool in_plan, dirty;
	char trigger[32];
	char trigger_node[37];
	int64_t wake_ms;
};

typedef struct enode {
	char *id;
	ealloc_t **v;
	size_t n, cap;
} enode_t;

/* A string-keyed open-addressing map (no deletion). */
typedef struct smap {
	const char **keys;
	void **vals;
	size_t n, nslots;
} smap_t;

enum op_kind { OP_REGISTER, OP_STOP, OP_PROMOTE, OP_FAIL };

typedef struct eop {
	enum op_kind kind;
	Flotilla__Job *job; /* register: owned */
	char *name; /* stop: job; promote/fail: deployment */
	flt_request_t *r; /* NULL: a direct call waiting on done */
	/* Results. */
	int rc;
	flt_error_t err;
	Flotilla__JobRegisterResponse resp;
	char eval_id[37], dep_id[37];
	bool done;
	ejob_t *ej;
	edep_t *ed;
	struct eop *next;
} eop_t;

typedef struct nevent {
	char id[37];
	enum coord_node_event ev;
	struct nevent *next;
} nevent_t;

/* A job entry carries its new version, stable mark and evaluation. */
typedef enum { PE_JOB, PE_ALLOC, PE_DEP } pe_kind_t;

typedef struct pentry {
	pe_kind_t kind;
	void *obj;
} pentry_t;

/* One cycle's plan. */
typedef struct cycle {
	coord_engine_t *e;
	int64_t now;
	sched_fleet_t *fleet;
	bool fleet_failed;
	pentry_t *pe;
	size_t npe, cap;
	ejob_t **dirty;
	size_t ndirty;
	uint32_t placed, stopped, unplaced;
	char why[512];
} cycle_t;

struct coord_engine {
	coord_engine_opts_t o;
	flt_db_t db_jobs, db_versions, db_allocs, db_deps, db_evals;
	pthread_mutex_t mtx;
	pthread_cond_t cond, done_cond;
	ejob_t **jobs;
	size_t njobs;
	smap_t job_map, alloc_map, node_map;
	ealloc_t **allocs; /* every allocation, for prefix lookups */
	size_t nallocs, allocs_cap;
	eop_t *ops, **ops_tail;
	nevent_t *events;
	ealloc_t **reported; /* with a report the engine has not seen */
	size_t nreported, reported_cap;
	bool force_cycle;
	bool stopping;
	sched_fleet_t *fleet; /* kept between cycles while fleet_gen holds */
	uint64_t fleet_gen;
	pthread_t thread;
	bool started;
	uint64_t cycles_started, cycles_done;
	uint64_t index;
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static void *smap_get(const smap_t *m, const char *key)
{
	if (!m->nslots)
		return NULL;
	size_t s = fnv(key) & (m->nslots - 1);
	while (m->keys[s]) {
		if (strcmp(m->keys[s], key) == 0)
			return m->vals[s];
		s = (s + 1) & (m->nslots - 1);
	}
	return NULL;
}

static void smap_put(smap_t *m, const char *key, void *val);

static void smap_grow(smap_t *m)
{
	smap_t old = *m;
	m->nslots = old.nslots ? old.nslots * 2 : 64;
	m->keys = flt_xcalloc(m->nslots, sizeof(*m->keys));
	m->vals = flt_xcalloc(m->nslots, sizeof(*m->vals));
	m->n = 0;
	for (size_t i = 0; i < old.nslots; i++)
		if (old.keys[i])
			smap_put(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

/* key must outlive the map (it points into the value). */
static void smap_put(smap_t *m, const char *key, void *val)
{
	if ((m->n + 1) * 2 > m->nslots)
		smap_grow(m);
	size_t s = fnv(key) & (m->nslots - 1);
	while (m->keys[s]) {
		if (strcmp(m->keys[s], key) == 0) {
			m->vals[s] = val;
			return;
		}
		s = (s + 1) & (m->nslots - 1);
	}
	m->keys[s] = key;
	m->vals[s] = val;
	m->n++;
}

static void smap_free(smap_t *m)
{
	free(m->keys);
	free(m->vals);
}

/* Sets a protobuf-c string field (never frees the shared empty string). */
static void set_str(char **field, const char *v)
{
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = flt_xstrdup(v ? v : "");
}

static void *pb_dup(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = flt_xmalloc(len ? len : 1);
	protobuf_c_message_pack(m, buf);
	ProtobufCMessage *c =
		protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	if (!c)
		abort(); /* only out of memory */
	return c;
}

static void pb_free(void *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

static bool pb_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	if (la != lb)
		return false;
	uint8_t *x = flt_xmalloc(la + 1), *y = flt_xmalloc(lb + 1);
	protobuf_c_message_pack(a, x);
	protobuf_c_message_pack(b, y);
	bool eq = memcmp(x, y, la) == 0;
	free(x);
	free(y);
	return eq;
}

static bool is(const char *s, const char *v) { return strcmp(s, v) == 0; }

static bool terminal(const char *client_status)
{
	return is(client_status, "complete") || is(client_status, "failed") ||
	       is(client_status, "lost");
}

/* ---- views: the working copy when there is one ------------------------ */

static const Flotilla__Alloc *acur(const ealloc_t *ea)
{
	return ea->wc ? ea->wc : ea->a;
}

static const Flotilla__JobRecord *jcur(const ejob_t *ej)
{
	return ej->wc ? ej->wc : ej->rec;
}

static const Flotilla__Deployment *dcur(const edep_t *ed)
{
	return ed->wc ? ed->wc : ed->d;
}

static void plan_add(cycle_t *c, pe_kind_t kind, void *obj)
{
	if (c->npe == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->pe = flt_xrealloc(c->pe, c->cap * sizeof(*c->pe));
	}
	c->pe[c->npe++] = (pentry_t){ kind, obj };
}

/* The working copy of an object (made from the committed one on first
 * use), with the object put in the plan once. */
static void *working(cycle_t *c, pe_kind_t kind, void *obj, void *wcp,
		     const void *committed, bool *in_plan)
{
	ProtobufCMessage **wc = wcp;
	if (!*wc)
		*wc = pb_dup(committed);
	if (!*in_plan) {
		*in_plan = true;
		plan_add(c, kind, obj);
	}
	return *wc;
}

static Flotilla__Alloc *awc(cycle_t *c, ealloc_t *ea)
{
	return working(c, PE_ALLOC, ea, &ea->wc, ea->a, &ea->in_plan);
}

static Flotilla__JobRecord *jwc(cycle_t *c, ejob_t *ej)
{
	return working(c, PE_JOB, ej, &ej->wc, ej->rec, &ej->in_plan);
}

static Flotilla__Deployment *dwc(cycle_t *c, edep_t *ed)
{
	return working(c, PE_DEP, ed, &ed->wc, ed->d, &ed->in_plan);
}

static void mark_dirty(cycle_t *c, ejob_t *ej, const char *trigger,
		       const char *node)
{
	if (trigger && (!ej->trigger[0] || !is(trigger, "timer")))
		snprintf(ej->trigger, sizeof(ej->trigger), "%s", trigger);
	if (node)
		snprintf(ej->trigger_node, sizeof(ej->trigger_node), "%s",
			 node);
	if (ej->dirty)
		return;
	ej->dirty = true;
	c->dirty = flt_xrealloc(c->dirty, (c->ndirty + 1) * sizeof(ejob_t *));
	c->dirty[c->ndirty++] = ej;
}

static void wake_at(ejob_t *ej, int64_t when)
{
	if (!ej->wake_ms || when < ej->wake_ms)
		ej->wake_ms = when;
}

/* ---- tables ------------------------------------------------------------- */

static ejob_t *job_find(coord_engine_t *e, const char *name)
{
	return smap_get(&e->job_map, name);
}

static ejob_t *job_add(coord_engine_t *e, const char *name)
{
	ejob_t *ej = flt_xcalloc(1, sizeof(*ej));
	ej->name = flt_xstrdup(name);
	e->jobs = flt_xrealloc(e->jobs, (e->njobs + 1) * sizeof(*e->jobs));
	e->jobs[e->njobs++] = ej;
	smap_put(&e->job_map, ej->name, ej);
	return ej;
}

static enode_t *node_get(coord_engine_t *e, const char *id, bool add)
{
	enode_t *nd = smap_get(&e->node_map, id);
	if (nd || !add)
		return nd;
	nd = flt_xcalloc(1, sizeof(*nd));
	nd->id = flt_xstrdup(id);
	smap_put(&e->node_map, nd->id, nd);
	return nd;
}

static void ptr_push(void ***v, size_t *n, size_t *cap, void *p)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*v = flt_xrealloc(*v, *cap * sizeof(void *));
	}
	(*v)[(*n)++] = p;
}

/* Indexes a new allocation (its message is in wc or a). */
static void alloc_index(coord_engine_t *e, ejob_t *ej, ealloc_t *ea)
{
	const Flotilla__Alloc *a = acur(ea);
	ea->job = ej;
	ptr_push((void ***)&ej->allocs, &ej->nallocs, &ej->allocs_cap, ea);
	ptr_push((void ***)&e->allocs, &e->nallocs, &e->allocs_cap, ea);
	snprintf(ea->id, sizeof(ea->id), "%s", a->id);
	smap_put(&e->alloc_map, ea->id, ea);
	enode_t *nd = node_get(e, a->node_id, true);
	ptr_push((void ***)&nd->v, &nd->n, &nd->cap, ea);
}

static const Flotilla__Job *job_at(const ejob_t *ej, uint64_t version)
{
	const Flotilla__JobRecord *cur = jcur(ej);
	if (cur && cur->version == version)
		return cur->job;
	for (size_t i = ej->nversions; i-- > 0;)
		if (ej->versions[i]->version == version)
			return ej->versions[i]->job;
	return NULL;
}

static const Flotilla__TaskGroup *group_of(const Flotilla__Job *job,
					   const char *name)
{
	for (size_t g = 0; job && g < job->n_groups; g++)
		if (is(job->groups[g]->name, name))
			return job->groups[g];
	return NULL;
}

/* The tasks an allocation runs are the same (an in-place update). */
static bool tasks_equal(const Flotilla__TaskGroup *a,
			const Flotilla__TaskGroup *b)
{
	if (!a || !b || a->n_tasks != b->n_tasks)
		return false;
	for (size_t i = 0; i < a->n_tasks; i++)
		if (!pb_equal(&a->tasks[i]->base, &b->tasks[i]->base))
			return false;
	return true;
}

static edep_t *latest_dep(const ejob_t *ej)
{
	return ej->ndeps ? ej->deps[ej->ndeps - 1] : NULL;
}

/* ---- what the agents report ------------------------------------------- */

/* Queues ea for the next cycle; true when it was not queued yet. */
static bool mark_reported(coord_engine_t *e, ealloc_t *ea)
{
	if (ea->report_new)
		return false;
	ea->report_new = true;
	ptr_push((void ***)&e->reported, &e->nreported, &e->reported_cap, ea);
	return true;
}

void coord_engine_report(coord_engine_t *e, const char *node_id,
			 Flotilla__TaskStatus *const *tasks, size_t n)
{
	pthread_mutex_lock(&e->mtx);
	enode_t *nd = node_get(e, node_id, false);
	if (!nd) {
		pthread_mutex_unlock(&e->mtx);
		return;
	}
	bool any = false;
	Flotilla__TaskStatus **mine = flt_xcalloc(n + 1, sizeof(*mine));
	for (size_t i = 0; i < nd->n; i++) {
		ealloc_t *ea = nd->v[i];
		const Flotilla__Alloc *a = ea->a;
		if (!a)
			continue;
		size_t k = 0;
		for (size_t t = 0; t < n; t++)
			if (is(tasks[t]->alloc_id, a->id))
				mine[k++] = tasks[t];
		if (!k) {
			if (!ea->gone) {
				ea->gone = true;
				any |= mark_reported(e, ea);
			}
			continue;
		}
		ea->gone = false;
		Flotilla__NodeTasks nt = FLOTILLA__NODE_TASKS__INIT;
		nt.n_tasks = k;
		nt.tasks = mine;
		size_t len = protobuf_c_message_get_packed_size(&nt.base);
		uint8_t *buf = flt_xmalloc(len + 1);
		protobuf_c_message_pack(&nt.base, buf);
		if (ea->report && ea->report_len == len &&
		    memcmp(ea->report, buf, len) == 0) {
			free(buf);
			continue;
		}
		free(ea->report);
		ea->report = buf;
		ea->report_len = len;
		any |= mark_reported(e, ea);
	}
	free(mine);
	if (any)
		pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mtx);
}

static Flotilla__NodeTasks *report_of(const ealloc_t *ea)
{
	if (!ea->report)
		return NULL;
	return flotilla__node_tasks__unpack(NULL, ea->report_len, ea->report);
}

/*
 * What the tasks' states say of the allocation: client status, message,
 * and whether every task runs and passes its checks.
 */
static void derive(const ealloc_t *ea, const Flotilla__Alloc *a,
		   const Flotilla__TaskGroup *g, const char **status, char *msg,
		   size_t msglen, bool *healthy)
{
	*status = a->client_status;
	*healthy = false;
	msg[0] = 0;
	if (terminal(a->client_status))
		return;
	if (is(a->desired, "stop")) {
		Flotilla__NodeTasks *nt = report_of(ea);
		bool done = ea->gone;
		if (nt && !done) {
			done = true;
			for (size_t i = 0; i < nt->n_tasks; i++) {
				Flotilla__TaskState s = nt->tasks[i]->state;
				if (s != FLOTILLA__TASK_STATE__TASK_STATE_EXITED &&
				    s != FLOTILLA__TASK_STATE__TASK_STATE_FAILED &&
				    s != FLOTILLA__TASK_STATE__TASK_STATE_STOPPED)
					done = false;
			}
		}
		if (done)
			*status = "complete";
		pb_free(nt);
		return;
	}
	Flotilla__NodeTasks *nt = report_of(ea);
	if (!nt)
		return;
	size_t want = g ? g->n_tasks : nt->n_tasks;
	size_t running = 0, exited_ok = 0, good = 0;
	for (size_t i = 0; i < nt->n_tasks; i++) {
		const Flotilla__TaskStatus *t = nt->tasks[i];
		switch (t->state) {
		case FLOTILLA__TASK_STATE__TASK_STATE_FAILED:
			*status = "failed";
			snprintf(msg, msglen, "task %s failed: %s", t->name,
				 t->message);
			pb_free(nt);
			return;
		case FLOTILLA__TASK_STATE__TASK_STATE_EXITED:
			if (t->exit_code != 0 || t->exit_signal) {
				*status = "failed";
				snprintf(msg, msglen,
					 "task %s exited with code %d%s",
					 t->name, t->exit_code,
					 t->exit_signal ? " (signal)" : "");
				pb_free(nt);
				return;
			}
			exited_ok++;
			break;
		case FLOTILLA__TASK_STATE__TASK_STATE_RUNNING:
			running++;
			good += t->healthy;
			break;
		case FLOTILLA__TASK_STATE__TASK_STATE_RESTARTING:
			running++;
			break;
		default: break;
		}
	}
	if (nt->n_tasks >= want && exited_ok == nt->n_tasks)
		*status = "complete";
	else if (nt->n_tasks >= want && running + exited_ok == nt->n_tasks)
		*status = "running";
	else
		*status = "pending";
	*healthy = nt->n_tasks >= want && good == nt->n_tasks;
	pb_free(nt);
}

/* Folds new reports into the allocations; marks the jobs to evaluate. */
static void take_reports(cycle_t *c)
{
	coord_engine_t *e = c->e;
	for (size_t i = 0; i < e->nreported; i++) {
		ealloc_t *ea = e->reported[i];
		ea->report_new = false;
		if (!ea->a)
			continue;
		const Flotilla__Alloc *a = acur(ea);
		const Flotilla__TaskGroup *g =
			group_of(job_at(ea->job, a->job_version), a->group);
		const char *status;
		char msg[256];
		bool healthy;
		derive(ea, a, g, &status, msg, sizeof(msg), &healthy);
		bool hs = a->healthy_since_ms != 0;
		if (!is(status, a->client_status) ||
		    (msg[0] && !is(msg, a->client_message)) ||
		    (healthy != hs && is(a->desired, "run"))) {
			Flotilla__Alloc *w = awc(c, ea);
			if (!is(status, w->client_status))
				flt_info("allocation %s alloc=%s job=%s "
					 "group=%s[%u] node=%s%s%s",
					 status, w->id, w->job, w->group,
					 w->index, w->node_name,
					 msg[0] ? " message=" : "", msg);
			set_str(&w->client_status, status);
			if (msg[0])
				set_str(&w->client_message, msg);
			w->modify_ms = c->now;
			if (healthy != hs)
				w->healthy_since_ms = healthy ? c->now : 0;
			mark_dirty(c, ea->job,
				   is(status, "failed") ? "alloc-failed"
							: "alloc-update",
				   NULL);
		}
	}
	e->nreported = 0;
}

/* ---- the fleet ------------------------------------------------------------ */

static sched_ask_t ask_of(const ealloc_t *ea)
{
	sched_ask_t ask = { 0 };
	const Flotilla__Alloc *a = acur(ea);
	const Flotilla__TaskGroup *g =
		group_of(job_at(ea->job, a->job_version), a->group);
	if (g)
		sched_ask_of(g, &ask);
	return ask;
}

static bool holds_resources(const Flotilla__Alloc *a)
{
	return is(a->desired, "run") && !terminal(a->client_status);
}

/*
 * The fleet for this cycle, with what every live allocation holds
 * reserved. The nodes are read again only when they changed.
 */
static sched_fleet_t *fleet(cycle_t *c)
{
	coord_engine_t *e = c->e;
	if (c->fleet || c->fleet_failed)
		return c->fleet;
	uint64_t gen = e->o.fleet_gen ? e->o.fleet_gen(e->o.ctx) : 0;
	if (e->fleet && e->o.fleet_gen && gen == e->fleet_gen) {
		sched_fleet_reset_usage(e->fleet);
	} else {
		flt_error_t err;
		sched_fleet_free(e->fleet);
		e->fleet = e->o.fleet(e->o.ctx, &err);
		e->fleet_gen = gen;
		if (!e->fleet) {
			flt_error("evaluation cannot read the fleet: %s",
				  err.msg);
			c->fleet_failed = true;
			return NULL;
		}
	}
	c->fleet = e->fleet;
	for (size_t i = 0; i < c->e->nallocs; i++) {
		ealloc_t *ea = c->e->allocs[i];
		const Flotilla__Alloc *a = acur(ea);
		if (!a || !holds_resources(a))
			continue;
		long ni = sched_fleet_find(c->fleet, a->node_id);
		if (ni >= 0) {
			sched_ask_t ask = ask_of(ea);
			sched_reserve(c->fleet, (size_t)ni, &ask);
		}
	}
	return c->fleet;
}

/* ---- plan steps ----------------------------------------------------------- */

static void stop_alloc(cycle_t *c, ealloc_t *ea, const char *why,
		       const char *client_status)
{
	const Flotilla__Alloc *a = acur(ea);
	if (c->fleet && holds_resources(a)) {
		long ni = sched_fleet_find(c->fleet, a->node_id);
		if (ni >= 0) {
			sched_ask_t ask = ask_of(ea);
			sched_release(c->fleet, (size_t)ni, &ask);
		}
	}
	Flotilla__Alloc *w = awc(c, ea);
	set_str(&w->desired, "stop");
	set_str(&w->desired_reason, why);
	if (client_status)
		set_str(&w->client_status, client_status);
	w->modify_ms = c->now;
	ea->push = true;
	c->stopped++;
	flt_info("allocation to stop alloc=%s job=%s group=%s[%u] node=%s "
		 "reason=\"%s\"",
		 w->id, w->job, w->group, w->index, w->node_name, why);
}

typedef struct want {
	uint32_t index;
	ealloc_t *prev;
	bool canary;
	bool resched; /* after a failure: counts against the policy */
	bool migrate; /* off a draining node: prev stops later */
} want_t;

typedef struct gstate {
	const Flotilla__JobRecord *rec;
	const Flotilla__TaskGroup *g;
	edep_t *dep; /* running deployment of this version, or NULL */
	ealloc_t **live;
	size_t nlive;
	want_t *w;
	size_t nw;
} gstate_t;

static void want_add(gstate_t *s, want_t w)
{
	s->w = flt_xrealloc(s->w, (s->nw + 1) * sizeof(*s->w));
	s->w[s->nw++] = w;
}

static bool index_used(const gstate_t *s, uint32_t idx)
{
	for (size_t i = 0; i < s->nlive; i++)
		if (acur(s->live[i])->index == idx &&
		    is(acur(s->live[i])->desired, "run"))
			return true;
	for (size_t i = 0; i < s->nw; i++)
		if (s->w[i].index == idx)
			return true;
	return false;
}

static uint32_t free_index(const gstate_t *s)
{
	uint32_t i = 0;
	while (index_used(s, i))
		i++;
	return i;
}

/* Places every wanted allocation of a group in one scheduler run. */
static void place_wanted(cycle_t *c, ejob_t *ej, gstate_t *s)
{
	if (!s->nw)
		return;
	sched_fleet_t *f = fleet(c);
	if (!f) {
		c->unplaced += (uint32_t)s->nw;
		return;
	}
	size_t *existing = flt_xcalloc(s->nlive + 1, sizeof(size_t));
	size_t nex = 0;
	for (size_t i = 0; i < s->nlive; i++) {
		const Flotilla__Alloc *a = acur(s->live[i]);
		long ni = sched_fleet_find(f, a->node_id);
		if (ni >= 0 && is(a->desired, "run"))
			existing[nex++] = (size_t)ni;
	}
	bool system = is(s->rec->job->type, "system");
	sched_request_t rq = { .job = s->rec->job,
			       .group = s->g,
			       .count = (uint32_t)s->nw,
			       .existing = existing,
			       .nexisting = nex,
			       .seed = (uint64_t)c->now };
	sched_result_t res;
	flt_error_t err;
	if (sched_place(f, &rq, &res, &err) < 0) {
		flt_error("placing job=%s group=%s: %s", ej->name, s->g->name,
			  err.msg);
		c->unplaced += (uint32_t)s->nw;
		free(existing);
		return;
	}
	free(existing);
	const Flotilla__Deployment *d = s->dep ? dcur(s->dep) : NULL;
	for (size_t i = 0; i < res.nplaced; i++) {
		want_t w = system ? (want_t){ .index = 0 } : s->w[i];
		Flotilla__Alloc *a = flt_xmalloc(sizeof(*a));
		flotilla__alloc__init(a);
		char id[37];
		flt_uuid_v4(id);
		set_str(&a->id, id);
		set_str(&a->job, ej->name);
		set_str(&a->group, s->g->name);
		a->index = w.index;
		a->job_version = s->rec->version;
		set_str(&a->node_id, sched_node_id(f, res.placed[i]));
		set_str(&a->node_name,
			sched_node_attr(f, res.placed[i], "node.name"));
		set_str(&a->desired, "run");
		set_str(&a->client_status, "pending");
		if (d) {
			set_str(&a->deployment_id, d->id);
			a->canary = w.canary;
		}
		a->create_ms = a->modify_ms = c->now;
		if (w.prev) {
			Flotilla__Alloc *p = awc(c, w.prev);
			set_str(&a->previous_alloc, p->id);
			set_str(&p->next_alloc, a->id);
			if (w.migrate)
				p->migrating = true;
			if (w.resched) {
				a->reschedule_attempts =
					p->reschedule_attempts + 1;
				a->n_reschedule_times_ms =
					p->n_reschedule_times_ms + 1;
				a->reschedule_times_ms =
					flt_xcalloc(a->n_reschedule_times_ms,
						    sizeof(int64_t));
				if (p->n_reschedule_times_ms)
					memcpy(a->reschedule_times_ms,
					       p->reschedule_times_ms,
					       p->n_reschedule_times_ms *
						       sizeof(int64_t));
				a->reschedule_times_ms
					[p->n_reschedule_times_ms] = c->now;
			} else {
				a->reschedule_attempts = p->reschedule_attempts;
			}
		}
		ealloc_t *ea = flt_xcalloc(1, sizeof(*ea));
		ea->wc = a;
		ea->in_plan = ea->push = true;
		alloc_index(c->e, ej, ea);
		plan_add(c, PE_ALLOC, ea);
		ptr_push((void ***)&s->live, &s->nlive, &(size_t){ s->nlive },
			 ea);
		c->placed++;
		flt_info("allocation placed alloc=%s job=%s group=%s[%u] "
			 "version=%llu node=%s%s",
			 a->id, a->job, a->group, a->index,
			 (unsigned long long)a->job_version, a->node_name,
			 a->canary ? " canary" : "");
	}
	if (res.unplaced) {
		c->unplaced += res.unplaced;
		snprintf(c->why, sizeof(c->why), "%s: %s", s->g->name, res.why);
		flt_warn("allocations not placed job=%s group=%s count=%u "
			 "why=\"%s\"",
			 ej->name, s->g->name, res.unplaced, res.why);
	}
	sched_result_free(&res);
}

/*
 * May a failed allocation be replaced, and when? The policy allows
 * `attempts` replacements within `interval_ms` along the chain of
 * replacements, each after `delay_ms`.
 */
static bool resched_allowed(const Flotilla__Alloc *a,
			    const Flotilla__ReschedulePolicy *p, int64_t now,
			    int64_t *when)
{
	if (!p || !p->attempts || is(a->desired_reason, "exhausted"))
		return false;
	uint32_t recent = 0;
	for (size_t i = 0; i < a->n_reschedule_times_ms; i++)
		if (now - a->reschedule_times_ms[i] < (int64_t)p->interval_ms)
			recent++;
	if (recent >= p->attempts)
		return false;
	*when = a->modify_ms + p->delay_ms;
	return true;
}

static bool needs_replacement(const Flotilla__Job *job,
			      const Flotilla__Alloc *a)
{
	if (is(a->client_status, "failed"))
		return true;
	/* A service is meant to run: its ending is a failure too. */
	return is(a->client_status, "complete") && is(job->type, "service");
}

/* Sorts candidates to stop: not running first, then the highest index. */
static int stop_order(const void *x, const void *y)
{
	const Flotilla__Alloc *a = acur(*(ealloc_t *const *)x);
	const Flotilla__Alloc *b = acur(*(ealloc_t *const *)y);
	bool ra = is(a->client_status, "running");
	bool rb = is(b->client_status, "running");
	if (ra != rb)
		return ra ? 1 : -1;
	return a->index < b->index ? 1 : a->index > b->index ? -1 : 0;
}

/* ---- deployments --------------------------------------------------------- */

static Flotilla__DeploymentGroup *dep_group(const Flotilla__Deployment *d,
					    const char *name)
{
	for (size_t i = 0; d && i < d->n_groups; i++)
		if (is(d->groups[i]->group, name))
			return d->groups[i];
	return NULL;
}

static bool in_dep(const Flotilla__Alloc *a, const Flotilla__Deployment *d)
{
	return d && is(a->deployment_id, d->id);
}

static void start_deployment(cycle_t *c, ejob_t *ej, bool revert);

/* Marks a deployment failed; with auto_revert, registers the last stable
 * version again as a new version. */
static void fail_deployment(cycle_t *c, ejob_t *ej, edep_t *ed, const char *why)
{
	Flotilla__Deployment *d = dwc(c, ed);
	set_str(&d->status, "failed");
	set_str(&d->status_description, why);
	d->modify_ms = c->now;
	flt_warn("deployment failed deployment=%s job=%s version=%llu "
		 "reason=\"%s\"",
		 d->id, d->job, (unsigned long long)d->job_version, why);
	if (!d->auto_revert)
		return;
	const Flotilla__JobRecord *stable = NULL;
	for (size_t i = ej->nversions; i-- > 0;)
		if (ej->versions[i]->stable &&
		    ej->versions[i]->version < d->job_version) {
			stable = ej->versions[i];
			break;
		}
	if (!stable) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s; no stable version to revert to",
			 why);
		set_str(&d->status_description, msg);
		return;
	}
	d->reverted_to = stable->version;
	char msg[600];
	snprintf(msg, sizeof(msg), "%s; rolling back to version %llu", why,
		 (unsigned long long)stable->version);
	set_str(&d->status_description, msg);

	Flotilla__JobRecord *w = jwc(c, ej);
	pb_free(w->job);
	w->job = pb_dup(&stable->job->base);
	w->version++;
	w->stable = false;
	w->submitted_ms = c->now;
	snprintf(msg, sizeof(msg),
		 "reverted to version %llu: deployment %.8s "
		 "failed",
		 (unsigned long long)stable->version, d->id);
	set_str(&w->description, msg);
	pb_free(ej->new_version);
	ej->new_version = pb_dup(&w->base);
	flt_warn("job reverted job=%s version=%llu to=%llu", ej->name,
		 (unsigned long long)w->version,
		 (unsigned long long)stable->version);
	start_deployment(c, ej, true);
	mark_dirty(c, ej, "deployment-revert", NULL);
}

static void start_deployment(cycle_t *c, ejob_t *ej, bool revert)
{
	const Flotilla__JobRecord *rec = jcur(ej);
	const Flotilla__Job *job = rec->job;
	for (size_t i = 0; i < ej->ndeps; i++) {
		const Flotilla__Deployment *o = dcur(ej->deps[i]);
		if (is(o->status, "running") || is(o->status, "paused")) {
			Flotilla__Deployment *w = dwc(c, ej->deps[i]);
			set_str(&w->status, "cancelled");
			set_str(&w->status_description,
				"cancelled by a newer version of the job");
			w->modify_ms = c->now;
		}
	}
	if (!is(job->type, "service"))
		return;
	const Flotilla__UpdatePolicy *u = job->update;
	Flotilla__Deployment *d = flt_xmalloc(sizeof(*d));
	flotilla__deployment__init(d);
	char id[37];
	flt_uuid_v4(id);
	set_str(&d->id, id);
	set_str(&d->job, ej->name);
	d->job_version = rec->version;
	set_str(&d->status, "running");
	set_str(&d->status_description, "Deployment is running");
	d->create_ms = d->modify_ms = c->now;
	d->progress_by_ms = c->now + (u ? u->progress_deadline_ms : 600000);
	d->auto_revert = u && u->auto_revert;
	d->auto_promote = u && u->auto_promote;
	d->n_groups = job->n_groups;
	d->groups = flt_xcalloc(job->n_groups + 1, sizeof(*d->groups));
	for (size_t g = 0; g < job->n_groups; g++) {
		const Flotilla__TaskGroup *tg = job->groups[g];
		Flotilla__DeploymentGroup *dg = flt_xmalloc(sizeof(*dg));
		flotilla__deployment_group__init(dg);
		set_str(&dg->group, tg->name);
		dg->desired_total = tg->count;
		/* Canaries only where running allocations must change. */
		bool destructive = false;
		for (size_t i = 0; i < ej->nallocs && !revert; i++) {
			const Flotilla__Alloc *a = acur(ej->allocs[i]);
			if (!a || !is(a->group, tg->name) ||
			    !is(a->desired, "run"))
				continue;
			if (!tasks_equal(group_of(job_at(ej, a->job_version),
						  a->group),
					 tg))
				destructive = true;
		}
		dg->desired_canaries = destructive && u ? u->canary : 0;
		if (dg->desired_canaries > tg->count)
			dg->desired_canaries = tg->count;
		d->groups[g] = dg;
	}
	edep_t *ed = flt_xcalloc(1, sizeof(*ed));
	ed->wc = d;
	ed->in_plan = true;
	ej->deps = flt_xrealloc(ej->deps, (ej->ndeps + 1) * sizeof(*ej->deps));
	ej->deps[ej->ndeps++] = ed;
	plan_add(c, PE_DEP, ed);
	flt_info("deployment started deployment=%s job=%s version=%llu", d->id,
		 d->job, (unsigned long long)d->job_version);
}

/* Decides the health of the deployment's undecided allocations. */
static void dep_health(cycle_t *c, ejob_t *ej, edep_t *ed)
{
	const Flotilla__Deployment *d = dcur(ed);
	const Flotilla__UpdatePolicy *u = jcur(ej)->job->update;
	int64_t min_healthy = u ? u->min_healthy_time_ms : 10000;
	int64_t deadline = u ? u->healthy_deadline_ms : 300000;
	for (size_t i = 0; i < ej->nallocs; i++) {
		ealloc_t *ea = ej->allocs[i];
		const Flotilla__Alloc *a = acur(ea);
		if (!a || !in_dep(a, d) || a->health[0])
			continue;
		const char *verdict = NULL;
		if (is(a->client_status, "failed") ||
		    is(a->client_status, "lost") ||
		    is(a->client_status, "complete"))
			verdict = "unhealthy";
		else if (is(a->desired, "stop"))
			continue;
		else if (a->healthy_since_ms &&
			 c->now - a->healthy_since_ms >= min_healthy)
			verdict = "healthy";
		else if (c->now - a->create_ms >= deadline)
			verdict = "unhealthy";
		if (!verdict) {
			wake_at(ej, a->healthy_since_ms
					    ? a->healthy_since_ms + min_healthy
					    : a->create_ms + deadline);
			continue;
		}
		Flotilla__Alloc *w = awc(c, ea);
		set_str(&w->health, verdict);
		w->modify_ms = c->now;
		if (is(verdict, "unhealthy") && !w->client_message[0])
			set_str(&w->client_message,
				is(a->client_status, "running") ||
						is(a->client_status, "pending")
					? "not healthy within the healthy "
					  "deadline"
					: "ended before it was healthy");
		flt_info("allocation %s alloc=%s job=%s deployment=%s", verdict,
			 w->id, w->job, d->id);
		if (is(verdict, "healthy")) {
			Flotilla__Deployment *dw = dwc(c, ed);
			dw->progress_by_ms =
				c->now + (u ? u->progress_deadline_ms : 600000);
		}
	}
}

/* Counts, promotion, success and failure of a running deployment. */
static void dep_progress(cycle_t *c, ejob_t *ej, edep_t *ed)
{
	const Flotilla__Deployment *d = dcur(ed);
	const Flotilla__Job *job = jcur(ej)->job;
	if (!is(d->status, "running"))
		return;
	bool done = true, failed = false, waiting_promotion = false;
	for (size_t gi = 0; gi < d->n_groups; gi++) {
		const Flotilla__DeploymentGroup *dg = d->groups[gi];
		uint32_t placed = 0, healthy = 0, unhealthy = 0, chealthy = 0;
		uint32_t live_new_healthy = 0, live_other = 0;
		size_t ncan = 0;
		char **can = flt_xcalloc(ej->nallocs + 1, sizeof(char *));
		for (size_t i = 0; i < ej->nallocs; i++) {
			const Flotilla__Alloc *a = acur(ej->allocs[i]);
			if (!a || !is(a->group, dg->group))
				continue;
			bool live = is(a->desired, "run");
			if (!in_dep(a, d)) {
				live_other += live;
				continue;
			}
			placed++;
			healthy += is(a->health, "healthy");
			unhealthy += is(a->health, "unhealthy");
			if (a->canary) {
				can[ncan++] = a->id;
				chealthy += is(a->health, "healthy");
			}
			live_new_healthy += live && is(a->health, "healthy");
		}
		if (placed != dg->placed || healthy != dg->healthy ||
		    unhealthy != dg->unhealthy || ncan != dg->n_canaries) {
			Flotilla__Deployment *w = dwc(c, ed);
			Flotilla__DeploymentGroup *wg = w->groups[gi];
			wg->placed = placed;
			wg->healthy = healthy;
			wg->unhealthy = unhealthy;
			for (size_t k = 0; k < wg->n_canaries; k++)
				free(wg->canaries[k]);
			free(wg->canaries);
			wg->canaries = flt_xcalloc(ncan + 1, sizeof(char *));
			for (size_t k = 0; k < ncan; k++)
				wg->canaries[k] = flt_xstrdup(can[k]);
			wg->n_canaries = ncan;
			w->modify_ms = c->now;
		}
		free(can);
		if (unhealthy)
			failed = true;
		if (dg->desired_canaries && !dg->promoted) {
			done = false;
			if (chealthy >= dg->desired_canaries) {
				if (d->auto_promote) {
					Flotilla__Deployment *w = dwc(c, ed);
					w->groups[gi]->promoted = true;
					flt_info("deployment promoted "
						 "automatically deployment=%s "
						 "group=%s",
						 d->id, dg->group);
					mark_dirty(c, ej, "deployment-promote",
						   NULL);
				} else {
					waiting_promotion = true;
				}
			}
			continue;
		}
		const Flotilla__TaskGroup *tg = group_of(job, dg->group);
		uint32_t want = tg ? tg->count : 0;
		if (live_new_healthy < want || live_other)
			done = false;
	}
	d = dcur(ed);
	if (failed) {
		fail_deployment(c, ej, ed,
				"Failed due to unhealthy allocations");
		return;
	}
	if (c->now >= d->progress_by_ms && !waiting_promotion) {
		fail_deployment(c, ej, ed, "Failed due to progress deadline");
		return;
	}
	if (done) {
		Flotilla__Deployment *w = dwc(c, ed);
		set_str(&w->status, "successful");
		set_str(&w->status_description,
			"Deployment completed successfully");
		w->modify_ms = c->now;
		Flotilla__JobRecord *jr = jwc(c, ej);
		if (jr->version == d->job_version) {
			jr->stable = true;
			ej->version_restable = true;
		}
		flt_info("deployment successful deployment=%s job=%s "
			 "version=%llu",
			 d->id, d->job, (unsigned long long)d->job_version);
		return;
	}
	const char *desc = waiting_promotion
				   ? "Deployment is running but requires "
				     "manual promotion"
				   : "Deployment is running";
	if (!is(d->status_description, desc)) {
		Flotilla__Deployment *w = dwc(c, ed);
		set_str(&w->status_description, desc);
	}
	if (!waiting_promotion)
		wake_at(ej, d->progress_by_ms);
}

/* ---- reconcile ------------------------------------------------------------ */

static void reconcile_group(cycle_t *c, ejob_t *ej, gstate_t *s)
{
	const Flotilla__JobRecord *rec = s->rec;
	const Flotilla__Job *job = rec->job;
	const Flotilla__TaskGroup *g = s->g;
	bool system = is(job->type, "system");
	sched_fleet_t *f = fleet(c);
	if (!f)
		return;
	size_t lcap = 0;
	ealloc_t **migrating = NULL;
	size_t nmig = 0, migcap = 0;

	for (size_t i = 0; i < ej->nallocs; i++) {
		ealloc_t *ea = ej->allocs[i];
		const Flotilla__Alloc *a = acur(ea);
		if (!a || !is(a->group, g->name) || !is(a->desired, "run"))
			continue;
		long ni = sched_fleet_find(f, a->node_id);
		if (ni < 0 || sched_node_down(f, (size_t)ni)) {
			char why[96];
			snprintf(why, sizeof(why), "node %s is down",
				 a->node_name);
			bool was_done = terminal(a->client_status);
			stop_alloc(c, ea, why, was_done ? NULL : "lost");
			if (!system &&
			    !(was_done && !needs_replacement(job, a)))
				want_add(s, (want_t){ .index = a->index,
						      .prev = ea });
			continue;
		}
		if (!system && needs_replacement(job, a)) {
			int64_t when;
			if (resched_allowed(a, g->reschedule, c->now, &when)) {
				if (c->now >= when) {
					stop_alloc(
						c, ea,
						"rescheduled after it failed",
						NULL);
					want_add(s,
						 (want_t){ .index = a->index,
							   .prev = ea,
							   .resched = true });
					continue;
				}
				wake_at(ej, when);
			}
		}
		int64_t deadline;
		if (!system && sched_node_draining(f, (size_t)ni, &deadline)) {
			ptr_push((void ***)&migrating, &nmig, &migcap, ea);
			continue;
		}
		ptr_push((void ***)&s->live, &s->nlive, &lcap, ea);
	}

	/* Draining nodes: a replacement first, the old one stops when the
	 * replacement runs healthy (or at the deadline). */
	for (size_t i = 0; i < nmig; i++) {
		ealloc_t *ea = migrating[i];
		const Flotilla__Alloc *a = acur(ea);
		int64_t deadline;
		sched_node_draining(f, sched_fleet_find(f, a->node_id),
				    &deadline);
		ealloc_t *next = a->next_alloc[0] ? smap_get(&c->e->alloc_map,
							     a->next_alloc)
						  : NULL;
		const Flotilla__Alloc *n = next ? acur(next) : NULL;
		bool past = c->now >= deadline;
		if (n &&
		    (past || n->healthy_since_ms ||
		     terminal(n->client_status) || is(n->desired, "stop"))) {
			stop_alloc(c, ea, "node drained", NULL);
		} else if (!n) {
			if (past)
				stop_alloc(c, ea, "drain deadline passed",
					   NULL);
			want_add(s, (want_t){ .index = a->index,
					      .prev = ea,
					      .migrate = !past });
		} else {
			wake_at(ej, deadline);
		}
	}
	free(migrating);

	/* Versions: in place when the tasks are the same. */
	ealloc_t **old = flt_xcalloc(s->nlive + 1, sizeof(*old));
	size_t nold = 0, ncur = 0, ncanary = 0, inflight = 0;
	const Flotilla__Deployment *d = s->dep ? dcur(s->dep) : NULL;
	for (size_t i = 0; i < s->nlive; i++) {
		ealloc_t *ea = s->live[i];
		const Flotilla__Alloc *a = acur(ea);
		if (a->job_version != rec->version &&
		    tasks_equal(group_of(job_at(ej, a->job_version), g->name),
				g)) {
			Flotilla__Alloc *w = awc(c, ea);
			w->job_version = rec->version;
			w->modify_ms = c->now;
			/* It joins the deployment with the health it has. */
			if (d && !in_dep(w, d)) {
				set_str(&w->deployment_id, d->id);
				w->canary = false;
			}
			ea->push = true;
			a = w;
		}
		if (a->job_version != rec->version) {
			old[nold++] = ea;
			continue;
		}
		ncur++;
		if (in_dep(a, d) && a->canary)
			ncanary++;
		if (in_dep(a, d) && !a->health[0])
			inflight++;
	}
	for (size_t i = 0; i < s->nw; i++)
		inflight += d != NULL;
	qsort(old, nold, sizeof(*old), stop_order);

	char why[96];
	snprintf(why, sizeof(why), "replaced by version %llu",
		 (unsigned long long)rec->version);
	if (system) {
		for (size_t i = 0; i < nold; i++)
			stop_alloc(c, old[i], why, NULL);
		for (size_t i = 0; i < nold; i++)
			for (size_t k = 0; k < s->nlive; k++)
				if (s->live[k] == old[i])
					s->live[k] = s->live[--s->nlive];
		/* sched_place fills every feasible node that has none. */
		s->nw = 1;
		s->w = flt_xrealloc(s->w, sizeof(*s->w));
		s->w[0] = (want_t){ 0 };
		place_wanted(c, ej, s);
		free(old);
		return;
	}

	uint32_t want = g->count;
	const Flotilla__DeploymentGroup *dg = dep_group(d, g->name);
	size_t nnew = ncur + s->nw;
	size_t canaries = 0;
	if (dg && dg->desired_canaries && !dg->promoted) {
		/* Canaries beside the old version, which keeps serving. */
		for (size_t i = ncanary; i < dg->desired_canaries; i++)
			want_add(s, (want_t){ .index = free_index(s),
					      .canary = true });
		canaries = ncanary > dg->desired_canaries
				   ? ncanary
				   : dg->desired_canaries;
		size_t serving = nold + nnew - ncanary;
		for (size_t i = serving; i < want; i++)
			want_add(s, (want_t){ .index = free_index(s) });
	} else if (dg) {
		/* Rolling: at most max_parallel new allocations not yet
		 * healthy at once. */
		uint32_t maxp = job->update ? job->update->max_parallel : 1;
		size_t budget = maxp > inflight ? maxp - inflight : 0;
		while (nold && nold + nnew > want)
			stop_alloc(c, old[--nold], why, NULL);
		/* What no old allocation holds is placed at once (a first
		 * version, a count raised); replacing is paced. */
		while (nold + nnew < want) {
			want_add(s, (want_t){ .index = free_index(s) });
			nnew++;
		}
		while (budget && nold) {
			ealloc_t *prev = old[--nold];
			stop_alloc(c, prev, why, NULL);
			want_add(s, (want_t){ .index = acur(prev)->index,
					      .prev = prev });
			budget--;
		}
	} else {
		/* No deployment: replace what changed at once. Keep the old
		 * version when this version's deployment ended (failed). */
		const edep_t *last = latest_dep(ej);
		bool keep_old = last && dcur(last)->job_version == rec->version;
		for (size_t i = 0; i < nold && !keep_old; i++) {
			stop_alloc(c, old[i], why, NULL);
			want_add(s, (want_t){ .index = acur(old[i])->index,
					      .prev = old[i] });
		}
		if (!keep_old)
			nold = 0;
		nnew = ncur + s->nw;
		while (nold + nnew < want) {
			want_add(s, (want_t){ .index = free_index(s) });
			nnew++;
		}
	}
	flt_debug(
		"reconcile job=%s group=%s want=%u old=%zu cur=%zu wanted=%zu "
		"migrating=%zu canaries=%zu dep=%s",
		ej->name, g->name, want, nold, ncur, s->nw, nmig, canaries,
		d ? d->status : "none");
	/* Too many (a count lowered): stop the surplus, the old version
	 * first. Canaries waiting for promotion are beside the count. */
	size_t total = nold + ncur + s->nw - canaries;
	if (total > want) {
		ealloc_t **cand = flt_xcalloc(s->nlive + 1, sizeof(*cand));
		for (int pass = 0; pass < 2 && total > want; pass++) {
			size_t nc = 0;
			for (size_t i = 0; i < s->nlive; i++) {
				const Flotilla__Alloc *a = acur(s->live[i]);
				if (is(a->desired, "run") &&
				    !(a->canary && in_dep(a, d)) &&
				    (a->job_version == rec->version) == pass)
					cand[nc++] = s->live[i];
			}
			qsort(cand, nc, sizeof(*cand), stop_order);
			for (size_t i = 0; i < nc && total > want; i++, total--)
				stop_alloc(c, cand[i],
					   "more allocations than the count",
					   NULL);
		}
		free(cand);
	}
	free(old);
	place_wanted(c, ej, s);
}

static void reconcile(cycle_t *c, ejob_t *ej)
{
	const Flotilla__JobRecord *rec = jcur(ej);
	if (!rec)
		return;
	edep_t *dep = latest_dep(ej);
	if (dep && (!is(dcur(dep)->status, "running") ||
		    dcur(dep)->job_version != rec->version))
		dep = NULL;
	if (rec->stopped) {
		for (size_t i = 0; i < ej->nallocs; i++) {
			const Flotilla__Alloc *a = acur(ej->allocs[i]);
			if (a && is(a->desired, "run"))
				stop_alloc(c, ej->allocs[i], "job stopped",
					   NULL);
		}
		if (dep) {
			Flotilla__Deployment *w = dwc(c, dep);
			set_str(&w->status, "cancelled");
			set_str(&w->status_description, "the job was stopped");
		}
		return;
	}
	if (!fleet(c)) {
		wake_at(ej, c->now + 1000);
		return;
	}
	if (dep)
		dep_health(c, ej, dep);
	const Flotilla__Job *job = rec->job;
	for (size_t g = 0; g < job->n_groups; g++) {
		gstate_t s = { .rec = rec, .g = job->groups[g], .dep = dep };
		reconcile_group(c, ej, &s);
		free(s.live);
		free(s.w);
	}
	/* Groups no longer in the job. */
	for (size_t i = 0; i < ej->nallocs; i++) {
		const Flotilla__Alloc *a = acur(ej->allocs[i]);
		if (a && is(a->desired, "run") && !group_of(job, a->group))
			stop_alloc(c, ej->allocs[i],
				   "its group was removed from the job", NULL);
	}
	if (dep) {
		dep_health(c, ej, dep);
		dep_progress(c, ej, dep);
	}
}

/* ---- operator requests --------------------------------------------------- */

static edep_t *dep_find(coord_engine_t *e, const char *q, ejob_t **job,
			flt_error_t *err)
{
	ejob_t *ej = job_find(e, q);
	if (ej && latest_dep(ej) && latest_dep(ej)->d) {
		*job = ej;
		return latest_dep(ej);
	}
	edep_t *found = NULL;
	size_t n = strlen(q), matches = 0;
	for (size_t j = 0; j < e->njobs; j++)
		for (size_t i = 0; i < e->jobs[j]->ndeps; i++) {
			edep_t *ed = e->jobs[j]->deps[i];
			if (ed->d && n >= 4 && strncmp(ed->d->id, q, n) == 0) {
				found = ed;
				*job = e->jobs[j];
				matches++;
			}
		}
	if (matches == 1)
		return found;
	flt_err(err, matches ? FLT_ECONFLICT : FLT_ENOTFOUND,
		matches ? "deployment %s: ambiguous prefix"
			: "deployment %s: no such deployment or job",
		q);
	return NULL;
}

static void new_eval(cycle_t *c, ejob_t *ej)
{
	if (ej->eval)
		return;
	Flotilla__Eval *ev = flt_xmalloc(sizeof(*ev));
	flotilla__eval__init(ev);
	char id[37];
	flt_uuid_v4(id);
	set_str(&ev->id, id);
	set_str(&ev->job, ej->name);
	set_str(&ev->trigger, ej->trigger[0] ? ej->trigger : "job-register");
	set_str(&ev->status, "complete");
	set_str(&ev->node_id, ej->trigger_node);
	ev->create_ms = c->now;
	ej->eval = ev;
}

static void run_op(cycle_t *c, eop_t *op)
{
	coord_engine_t *e = c->e;
	switch (op->kind) {
	case OP_REGISTER: {
		ejob_t *ej = job_find(e, op->job->name);
		const Flotilla__JobRecord *cur = ej ? jcur(ej) : NULL;
		if (cur && !cur->stopped &&
		    pb_equal(&cur->job->base, &op->job->base)) {
			op->resp.unchanged = true;
			op->resp.job_version = cur->version;
			return;
		}
		if (!ej)
			ej = job_add(e, op->job->name);
		if (!ej->rec && !ej->wc) {
			ej->wc = flt_xmalloc(sizeof(*ej->wc));
			flotilla__job_record__init(ej->wc);
			ej->in_plan = true;
			plan_add(c, PE_JOB, ej);
		}
		Flotilla__JobRecord *w = jwc(c, ej);
		pb_free(w->job);
		w->job = pb_dup(&op->job->base);
		w->version++;
		w->stopped = false;
		w->stable = false;
		w->submitted_ms = c->now;
		set_str(&w->description, "submitted");
		pb_free(ej->new_version);
		ej->new_version = pb_dup(&w->base);
		op->ej = ej;
		op->resp.job_version = w->version;
		flt_info("job registered job=%s version=%llu type=%s", ej->name,
			 (unsigned long long)w->version, w->job->type);
		start_deployment(c, ej, false);
		edep_t *ld = latest_dep(ej);
		if (ld && ld->wc && !ld->d)
			op->ed = ld;
		mark_dirty(c, ej, "job-register", NULL);
		return;
	}
	case OP_STOP: {
		ejob_t *ej = job_find(e, op->name);
		if (!ej || !jcur(ej)) {
			op->rc = flt_err(&op->err, FLT_ENOTFOUND,
					 "job %s: no such job", op->name);
			return;
		}
		Flotilla__JobRecord *w = jwc(c, ej);
		w->stopped = true;
		set_str(&w->description, "stopped");
		op->ej = ej;
		op->resp.job_version = w->version;
		mark_dirty(c, ej, "job-stop", NULL);
		return;
	}
	case OP_PROMOTE:
	case OP_FAIL: {
		ejob_t *ej;
		edep_t *ed = dep_find(e, op->name, &ej, &op->err);
		if (!ed) {
			op->rc = op->err.code;
			return;
		}
		const Flotilla__Deployment *d = dcur(ed);
		op->ed = ed;
		if (!is(d->status, "running") && !is(d->status, "paused")) {
			op->rc = flt_err(&op->err, FLT_ECONFLICT,
					 "deployment %.8s is %s", d->id,
					 d->status);
			return;
		}
		if (op->kind == OP_FAIL) {
			fail_deployment(c, ej, ed,
					"Deployment marked as failed by an "
					"operator");
			mark_dirty(c, ej, "deployment-fail", NULL);
			return;
		}
		bool any = false;
		for (size_t g = 0; g < d->n_groups; g++) {
			const Flotilla__DeploymentGroup *dg = d->groups[g];
			if (!dg->desired_canaries || dg->promoted)
				continue;
			uint32_t healthy = 0;
			for (size_t i = 0; i < ej->nallocs; i++) {
				const Flotilla__Alloc *a = acur(ej->allocs[i]);
				healthy += a && in_dep(a, d) && a->canary &&
					   is(a->health, "healthy");
			}
			if (healthy < dg->desired_canaries) {
				op->rc = flt_err(
					&op->err, FLT_ECONFLICT,
					"deployment %.8s: group %s has %u of "
					"%u canaries healthy; promote once "
					"they are",
					d->id, dg->group, healthy,
					dg->desired_canaries);
				return;
			}
			any = true;
		}
		if (!any) {
			op->rc = flt_err(&op->err, FLT_ECONFLICT,
					 "deployment %.8s has no canaries "
					 "waiting for promotion",
					 d->id);
			return;
		}
		Flotilla__Deployment *w = dwc(c, ed);
		for (size_t g = 0; g < w->n_groups; g++)
			w->groups[g]->promoted = true;
		w->modify_ms = c->now;
		flt_info("deployment promoted deployment=%s job=%s", w->id,
			 w->job);
		mark_dirty(c, ej, "deployment-promote", NULL);
		return;
	}
	}
}

/* ---- node events ------------------------------------------------------------ */

static void take_event(cycle_t *c, const nevent_t *ev)
{
	coord_engine_t *e = c->e;
	static const char *const names[] = { "node-down", "node-up",
					     "node-drain", "node-eligible" };
	enode_t *nd = node_get(e, ev->id, false);
	for (size_t i = 0; nd && i < nd->n; i++) {
		const Flotilla__Alloc *a = acur(nd->v[i]);
		if (a && is(a->desired, "run"))
			mark_dirty(c, nd->v[i]->job, names[ev->ev], ev->id);
	}
	/* A node that joins or comes back may take system allocations, and
	 * allocations that found no room before. */
	if (ev->ev == COORD_NODE_UP || ev->ev == COORD_NODE_ELIGIBLE) {
		for (size_t j = 0; j < e->njobs; j++) {
			const Flotilla__JobRecord *r = jcur(e->jobs[j]);
			if (r && !r->stopped)
				mark_dirty(c, e->jobs[j], names[ev->ev],
					   ev->id);
		}
	}
}

/* ---- committing ------------------------------------------------------------ */

static char *version_key(const char *name, uint64_t v, size_t *len)
{
	size_t n = strlen(name);
	char *k = flt_xmalloc(n + 9);
	memcpy(k, name, n + 1);
	for (int i = 0; i < 8; i++)
		k[n + 1 + i] = (char)(v >> (56 - 8 * i));
	*len = n + 9;
	return k;
}

static int put_pb_key(flt_txn_t *txn, flt_db_t db, const void *key, size_t klen,
		      const ProtobufCMessage *m, flt_error_t *err)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = flt_xmalloc(len + 1);
	protobuf_c_message_pack(m, buf);
	int rc = flt_txn_put(txn, db, key, klen, buf, len, err);
	free(buf);
	return rc;
}

typedef struct waiter {
	cycle_t *c;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool done;
	int rc;
	uint64_t index;
	flt_error_t err;
} waiter_t;

static int plan_apply(flt_txn_t *txn, void *arg, flt_error_t *err)
{
	cycle_t *c = ((waiter_t *)arg)->c;
	coord_engine_t *e = c->e;
	uint64_t idx = flt_txn_index(txn);
	for (size_t i = 0; i < c->npe; i++) {
		pentry_t *p = &c->pe[i];
		int rc = 0;
		switch (p->kind) {
		case PE_JOB: {
			ejob_t *ej = p->obj;
			ej->wc->modify_index = idx;
			if (!ej->wc->create_index)
				ej->wc->create_index = idx;
			rc = flt_txn_put_pb(txn, e->db_jobs, ej->name,
					    &ej->wc->base, err);
			if (rc == 0 && ej->new_version) {
				ej->new_version->modify_index = idx;
				if (!ej->new_version->create_index)
					ej->new_version->create_index = idx;
				size_t kl;
				cleanup_free char *k = version_key(
					ej->name, ej->new_version->version,
					&kl);
				rc = put_pb_key(txn, e->db_versions, k, kl,
						&ej->new_version->base, err);
			}
			if (rc == 0 && ej->version_restable && ej->wc->stable) {
				size_t kl;
				cleanup_free char *k = version_key(
					ej->name, ej->wc->version, &kl);
				rc = put_pb_key(txn, e->db_versions, k, kl,
						&ej->wc->base, err);
			}
			if (rc == 0 && ej->eval) {
				Flotilla__Eval *ev = ej->eval;
				ev->create_index = ev->modify_index = idx;
				rc = flt_txn_put_pb(txn, e->db_evals, ev->id,
						    &ev->base, err);
				if (rc == 0 && ej->nevals >= EVALS_KEPT)
					rc = flt_txn_del(
						txn, e->db_evals,
						ej->evals[0]->id,
						strlen(ej->evals[0]->id));
				if (rc == -ENOENT)
					rc = 0;
			}
			break;
		}
		case PE_ALLOC: {
			ealloc_t *ea = p->obj;
			ea->wc->modify_index = idx;
			if (!ea->wc->create_index)
				ea->wc->create_index = idx;
			rc = flt_txn_put_pb(txn, e->db_allocs, ea->wc->id,
					    &ea->wc->base, err);
			break;
		}
		case PE_DEP: {
			edep_t *ed = p->obj;
			ed->wc->modify_index = idx;
			if (!ed->wc->create_index)
				ed->wc->create_index = idx;
			rc = flt_txn_put_pb(txn, e->db_deps, ed->wc->id,
					    &ed->wc->base, err);
			break;
		}
		default: break;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void plan_done(void *arg, int rc, uint64_t index, const flt_error_t *err)
{
	waiter_t *w = arg;
	pthread_mutex_lock(&w->mtx);
	w->rc = rc;
	w->index = index;
	if (err)
		w->err = *err;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mtx);
}

/* ---- the cycle ---------------------------------------------------------------- */

static void finish_plan(cycle_t *c, bool ok, uint64_t index)
{
	coord_engine_t *e = c->e;
	for (size_t i = 0; i < c->npe; i++) {
		pentry_t *p = &c->pe[i];
		switch (p->kind) {
		case PE_JOB: {
			ejob_t *ej = p->obj;
			ej->in_plan = false;
			if (ok) {
				pb_free(ej->rec);
				ej->rec = ej->wc;
				if (ej->new_version) {
					ej->versions = flt_xrealloc(
						ej->versions,
						(ej->nversions + 1) *
							sizeof(*ej->versions));
					ej->versions[ej->nversions++] =
						ej->new_version;
				}
				if (ej->version_restable && ej->rec->stable)
					for (size_t v = 0; v < ej->nversions;
					     v++)
						if (ej->versions[v]->version ==
						    ej->rec->version)
							ej->versions[v]
								->stable = true;
				if (ej->eval) {
					if (ej->nevals >= EVALS_KEPT) {
						pb_free(ej->evals[0]);
						memmove(ej->evals,
							ej->evals + 1,
							(ej->nevals -
							 1) * sizeof(*ej->evals));
						ej->nevals--;
					}
					ej->evals = flt_xrealloc(
						ej->evals,
						(ej->nevals + 1) *
							sizeof(*ej->evals));
					ej->evals[ej->nevals++] = ej->eval;
				}
			} else {
				pb_free(ej->wc);
				pb_free(ej->new_version);
				pb_free(ej->eval);
			}
			ej->wc = NULL;
			ej->new_version = NULL;
			ej->eval = NULL;
			ej->version_restable = false;
			break;
		}
		case PE_ALLOC: {
			ealloc_t *ea = p->obj;
			ea->in_plan = false;
			if (ok) {
				pb_free(ea->a);
				ea->a = ea->wc;
				if (ea->push)
					e->o.push(e->o.ctx, ea->a->node_id,
						  index);
			} else {
				pb_free(ea->wc);
			}
			ea->wc = NULL;
			ea->push = false;
			break;
		}
		case PE_DEP: {
			edep_t *ed = p->obj;
			ed->in_plan = false;
			if (ok) {
				pb_free(ed->d);
				ed->d = ed->wc;
			} else {
				pb_free(ed->wc);
			}
			ed->wc = NULL;
			break;
		}
		default: break;
		}
	}
	c->npe = 0;
	if (ok)
		e->index = index;
}

/* Drain done: nothing left to run on a draining node. */
static void check_drains(cycle_t *c)
{
	coord_engine_t *e = c->e;
	if (!c->fleet)
		return;
	for (size_t i = 0; i < sched_fleet_size(c->fleet); i++) {
		if (!sched_node_draining(c->fleet, i, NULL))
			continue;
		const char *id = sched_node_id(c->fleet, i);
		enode_t *nd = node_get(e, id, false);
		bool busy = false;
		for (size_t k = 0; nd && k < nd->n && !busy; k++) {
			const Flotilla__Alloc *a = nd->v[k]->a;
			busy = a && is(a->desired, "run");
		}
		if (!busy)
			e->o.drained(e->o.ctx, id);
	}
}

static void reply_op(coord_engine_t *e, eop_t *op, bool committed,
		     uint64_t index, const flt_error_t *cerr)
{
	if (op->rc == 0 && !committed && cerr)
		op->rc = flt_err(&op->err, cerr->code, "not stored: %s",
				 cerr->msg);
	op->resp.index = index ? index : e->index;
	if (op->ej && op->ej->nevals && op->rc == 0) {
		const Flotilla__Eval *ev = op->ej->evals[op->ej->nevals - 1];
		snprintf(op->eval_id, sizeof(op->eval_id), "%s", ev->id);
		op->resp.placed = ev->placed;
		op->resp.unplaced = ev->unplaced;
		op->resp.why = (char *)ev->why;
	}
	op->resp.eval_id = op->eval_id;
	if (op->ed && op->ed->d && op->kind == OP_REGISTER)
		snprintf(op->dep_id, sizeof(op->dep_id), "%s", op->ed->d->id);
	op->resp.deployment_id = op->dep_id;
	if (op->r) {
		if (op->rc < 0) {
			flt_request_fail(op->r, op->rc, "%s", op->err.msg);
		} else if (op->kind == OP_PROMOTE || op->kind == OP_FAIL) {
			Flotilla__DeploymentGetResponse r =
				FLOTILLA__DEPLOYMENT_GET_RESPONSE__INIT;
			r.deployment = op->ed->d;
			flt_request_reply(op->r, &r.base);
		} else {
			flt_request_reply(op->r, &op->resp.base);
		}
		pb_free(op->job);
		free(op->name);
		free(op);
		return;
	}
	op->done = true; /* the direct caller frees it */
}

static void *engine_main(void *arg)
{
	coord_engine_t *e = arg;
	pthread_mutex_lock(&e->mtx);
	for (;;) {
		bool timers = false;
		for (size_t j = 0; j < e->njobs && !timers; j++) {
			const edep_t *ld = latest_dep(e->jobs[j]);
			timers = e->jobs[j]->wake_ms ||
				 (ld && ld->d && is(ld->d->status, "running"));
		}
		bool work = e->ops || e->events || e->nreported ||
			    e->force_cycle || e->stopping;
		if (!work && !timers)
			pthread_cond_wait(&e->cond, &e->mtx);
		else if (!work) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t ns =
				ts.tv_nsec + (int64_t)e->o.tick_ms * 1000000;
			ts.tv_sec += ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&e->cond, &e->mtx, &ts);
		}
		if (e->stopping && !e->ops)
			break;
		e->cycles_started++;
		e->force_cycle = false;
		cycle_t c = { .e = e, .now = flt_now_wall_ms() };
		eop_t *ops = e->ops;
		e->ops = NULL;
		e->ops_tail = &e->ops;
		nevent_t *evs = e->events;
		e->events = NULL;

		for (eop_t *op = ops; op; op = op->next)
			run_op(&c, op);
		for (nevent_t *ev = evs; ev; ev = ev->next)
			take_event(&c, ev);
		take_reports(&c);
		for (size_t j = 0; j < e->njobs; j++) {
			ejob_t *ej = e->jobs[j];
			const edep_t *ld = latest_dep(ej);
			if ((ej->wake_ms && ej->wake_ms <= c.now) ||
			    (ld && is(dcur(ld)->status, "running")))
				mark_dirty(&c, ej, "timer", NULL);
		}
		for (int pass = 0; pass < MAX_PASSES && c.ndirty; pass++) {
			ejob_t **dirty = c.dirty;
			size_t nd = c.ndirty;
			c.dirty = NULL;
			c.ndirty = 0;
			for (size_t i = 0; i < nd; i++) {
				ejob_t *ej = dirty[i];
				ej->dirty = false;
				ej->wake_ms = 0;
				c.placed = c.stopped = c.unplaced = 0;
				c.why[0] = 0;
				reconcile(&c, ej);
				bool eventful =
					!is(ej->trigger, "timer") &&
					!is(ej->trigger, "alloc-update");
				if (eventful || c.placed || c.stopped ||
				    c.unplaced) {
					new_eval(&c, ej);
					ej->eval->placed += c.placed;
					ej->eval->stopped += c.stopped;
					ej->eval->unplaced += c.unplaced;
					if (c.why[0])
						set_str(&ej->eval->why, c.why);
					jwc(&c, ej);
				}
				ej->trigger[0] = 0;
				ej->trigger_node[0] = 0;
			}
			free(dirty);
		}
		/* Jobs still dirty after the passes wait for the next. */
		for (size_t i = 0; i < c.ndirty; i++) {
			c.dirty[i]->dirty = false;
			wake_at(c.dirty[i], c.now);
		}
		free(c.dirty);

		bool ok = true;
		uint64_t index = 0;
		flt_error_t cerr = { 0 };
		if (c.npe) {
			waiter_t w = { .c = &c, .done = false };
			pthread_mutex_init(&w.mtx, NULL);
			pthread_cond_init(&w.cond, NULL);
			pthread_mutex_unlock(&e->mtx);
			coord_writer_submit(e->o.writer, plan_apply, plan_done,
					    &w);
			pthread_mutex_lock(&w.mtx);
			while (!w.done)
				pthread_cond_wait(&w.cond, &w.mtx);
			pthread_mutex_unlock(&w.mtx);
			pthread_mutex_destroy(&w.mtx);
			pthread_cond_destroy(&w.cond);
			pthread_mutex_lock(&e->mtx);
			ok = w.rc == 0;
			index = w.index;
			cerr = w.err;
			if (!ok)
				flt_error("plan not stored, retrying: %s",
					  w.err.msg);
			finish_plan(&c, ok, index);
		}
		check_drains(&c);
		free(c.pe);
		for (eop_t *op = ops, *next; op; op = next) {
			next = op->next;
			reply_op(e, op, ok, index, ok ? NULL : &cerr);
		}
		while (evs) {
			nevent_t *n = evs->next;
			free(evs);
			evs = n;
		}
		e->cycles_done++;
		pthread_cond_broadcast(&e->done_cond);
	}
	pthread_mutex_unlock(&e->mtx);
	return NULL;
}

/* ---- loading ---------------------------------------------------------------- */

typedef struct loader {
	coord_engine_t *e;
	int rc;
} loader_t;

static int load_job(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	loader_t *l = arg;
	(void)key;
	(void)klen;
	Flotilla__JobRecord *r = flotilla__job_record__unpack(NULL, vlen, val);
	if (!r || !r->job) {
		flt_warn("stored job unreadable, skipped");
		pb_free(r);
		return 0;
	}
	ejob_t *ej = job_find(l->e, r->job->name);
	if (!ej)
		ej = job_add(l->e, r->job->name);
	ej->rec = r;
	return 0;
}

static int load_version(const void *key, size_t klen, const void *val,
			size_t vlen, void *arg)
{
	loader_t *l = arg;
	(void)klen;
	Flotilla__JobRecord *r = flotilla__job_record__unpack(NULL, vlen, val);
	ejob_t *ej = r ? job_find(l->e, key) : NULL;
	if (!ej) {
		pb_free(r);
		return 0;
	}
	/* Keys sort by name, then version: versions arrive in order. */
	ej->versions = flt_xrealloc(
		ej->versions, (ej->nversions + 1) * sizeof(*ej->versions));
	ej->versions[ej->nversions++] = r;
	return 0;
}

static int load_alloc(const void *key, size_t klen, const void *val,
		      size_t vlen, void *arg)
{
	loader_t *l = arg;
	(void)key;
	(void)klen;
	Flotilla__Alloc *a = flotilla__alloc__unpack(NULL, vlen, val);
	ejob_t *ej = a ? job_find(l->e, a->job) : NULL;
	if (!ej) {
		pb_free(a);
		return 0;
	}
	ealloc_t *ea = flt_xcalloc(1, sizeof(*ea));
	ea->a = a;
	alloc_index(l->e, ej, ea);
	return 0;
}

static int dep_order(const void *x, const void *y)
{
	const Flotilla__Deployment *a = (*(edep_t *const *)x)->d;
	const Flotilla__Deployment *b = (*(edep_t *const *)y)->d;
	return a->create_index < b->create_index   ? -1
	       : a->create_index > b->create_index ? 1
						   : 0;
}

static int load_dep(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	loader_t *l = arg;
	(void)key;
	(void)klen;
	Flotilla__Deployment *d = flotilla__deployment__unpack(NULL, vlen, val);
	ejob_t *ej = d ? job_find(l->e, d->job) : NULL;
	if (!ej) {
		pb_free(d);
		return 0;
	}
	edep_t *ed = flt_xcalloc(1, sizeof(*ed));
	ed->d = d;
	ej->deps = flt_xrealloc(ej->deps, (ej->ndeps + 1) * sizeof(*ej->deps));
	ej->deps[ej->ndeps++] = ed;
	return 0;
}

static int eval_order(const void *x, const void *y)
{
	const Flotilla__Eval *a = *(Flotilla__Eval *const *)x;
	const Flotilla__Eval *b = *(Flotilla__Eval *const *)y;
	return a->create_index < b->create_index   ? -1
	       : a->create_index > b->create_index ? 1
						   : 0;
}

static int load_eval(const void *key, size_t klen, const void *val, size_t vlen,
		     void *arg)
{
	loader_t *l = arg;
	(void)key;
	(void)klen;
	Flotilla__Eval *ev = flotilla__eval__unpack(NULL, vlen, val);
	ejob_t *ej = ev ? job_find(l->e, ev->job) : NULL;
	if (!ej) {
		pb_free(ev);
		return 0;
	}
	ej->evals =
		flt_xrealloc(ej->evals, (ej->nevals + 1) * sizeof(*ej->evals));
	ej->evals[ej->nevals++] = ev;
	return 0;
}

static int load(coord_engine_t *e, flt_error_t *err)
{
	flt_txn_t *txn;
	int rc = flt_txn_begin(e->o.store, false, &txn, err);
	if (rc < 0)
		return rc;
	loader_t l = { .e = e };
	if ((rc = flt_txn_foreach(txn, e->db_jobs, NULL, 0, load_job, &l)) <
		    0 ||
	    (rc = flt_txn_foreach(txn, e->db_versions, NULL, 0, load_version,
				  &l)) < 0 ||
	    (rc = flt_txn_foreach(txn, e->db_allocs, NULL, 0, load_alloc, &l)) <
		    0 ||
	    (rc = flt_txn_foreach(txn, e->db_deps, NULL, 0, load_dep, &l)) <
		    0 ||
	    (rc = flt_txn_foreach(txn, e->db_evals, NULL, 0, load_eval, &l)) <
		    0) {
		flt_txn_abort(txn);
		return flt_err(err, rc, "loading jobs failed");
	}
	flt_txn_abort(txn);
	size_t running = 0;
	for (size_t j = 0; j < e->njobs; j++) {
		ejob_t *ej = e->jobs[j];
		if (ej->ndeps)
			qsort(ej->deps, ej->ndeps, sizeof(*ej->deps),
			      dep_order);
		if (ej->nevals)
			qsort(ej->evals, ej->nevals, sizeof(*ej->evals),
			      eval_order);
		/* Evaluate every job once: whatever was under way when the
		 * coordinator stopped continues from its stored state. */
		ej->wake_ms = 1;
		const edep_t *ld = latest_dep(ej);
		running += ld && is(ld->d->status, "running");
	}
	e->index = flt_store_index(e->o.store);
	flt_info("jobs loaded jobs=%zu allocations=%zu running_deployments=%zu",
		 e->njobs, e->nallocs, running);
	return 0;
}

int coord_engine_open(const coord_engine_opts_t *o, coord_engine_t **out,
		      flt_error_t *err)
{
	coord_engine_t *e = flt_xcalloc(1, sizeof(*e));
	e->o = *o;
	if (!e->o.tick_ms)
		e->o.tick_ms = 200;
	e->ops_tail = &e->ops;
	pthread_mutex_init(&e->mtx, NULL);
	pthread_cond_init(&e->cond, NULL);
	pthread_cond_init(&e->done_cond, NULL);
	int rc;
	if ((rc = flt_store_db(o->store, "jobs", &e->db_jobs)) < 0 ||
	    (rc = flt_store_db(o->store, "job_versions", &e->db_versions)) <
		    0 ||
	    (rc = flt_store_db(o->store, "allocs", &e->db_allocs)) < 0 ||
	    (rc = flt_store_db(o->store, "deployments", &e->db_deps)) < 0 ||
	    (rc = flt_store_db(o->store, "evals", &e->db_evals)) < 0) {
		coord_engine_free(e);
		return flt_err(err, rc, "the store lacks the job databases");
	}
	if ((rc = load(e, err)) < 0) {
		coord_engine_free(e);
		return rc;
	}
	if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
		coord_engine_free(e);
		return flt_err(err, -EAGAIN, "cannot start the engine thread");
	}
	e->started = true;
	*out = e;
	return 0;
}

void coord_engine_stop(coord_engine_t *e)
{
	if (!e || !e->started)
		return;
	pthread_mutex_lock(&e->mtx);
	e->stopping = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mtx);
	pthread_join(e->thread, NULL);
	e->started = false;
}

void coord_engine_free(coord_engine_t *e)
{
	if (!e)
		return;
	coord_engine_stop(e);
	for (size_t j = 0; j < e->njobs; j++) {
		ejob_t *ej = e->jobs[j];
		pb_free(ej->rec);
		for (size_t i = 0; i < ej->nversions; i++)
			pb_free(ej->versions[i]);
		free(ej->versions);
		for (size_t i = 0; i < ej->ndeps; i++) {
			pb_free(ej->deps[i]->d);
			free(ej->deps[i]);
		}
		free(ej->deps);
		for (size_t i = 0; i < ej->nevals; i++)
			pb_free(ej->evals[i]);
		free(ej->evals);
		free(ej->allocs);
		free(ej->name);
		free(ej);
	}
	free(e->jobs);
	for (size_t i = 0; i < e->nallocs; i++) {
		pb_free(e->allocs[i]->a);
		free(e->allocs[i]->report);
		free(e->allocs[i]);
	}
	free(e->allocs);
	free(e->reported);
	sched_fleet_free(e->fleet);
	for (size_t i = 0; i < e->node_map.nslots; i++) {
		enode_t *nd = e->node_map.vals[i];
		if (!e->node_map.keys[i])
			continue;
		free(nd->v);
		free(nd->id);
		free(nd);
	}
	smap_free(&e->node_map);
	smap_free(&e->job_map);
	smap_free(&e->alloc_map);
	while (e->events) {
		nevent_t *n = e->events->next;
		free(e->events);
		e->events = n;
	}
	pthread_mutex_destroy(&e->mtx);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->done_cond);
	free(e);
}

/* ---- queueing work ---------------------------------------------------------- */

static void enqueue(coord_engine_t *e, eop_t *op)
{
	pthread_mutex_lock(&e->mtx);
	op->next = NULL;
	*e->ops_tail = op;
	e->ops_tail = &op->next;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mtx);
}

void coord_engine_node_event(coord_engine_t *e, const char *node_id,
			     enum coord_node_event ev)
{
	nevent_t *n = flt_xcalloc(1, sizeof(*n));
	snprintf(n->id, sizeof(n->id), "%s", node_id);
	n->ev = ev;
	pthread_mutex_lock(&e->mtx);
	n->next = e->events;
	e->events = n;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mtx);
}

/* Runs a direct op and waits for its cycle. The caller frees it. */
static void call(coord_engine_t *e, eop_t *op)
{
	enqueue(e, op);
	pthread_mutex_lock(&e->mtx);
	while (!op->done)
		pthread_cond_wait(&e->done_cond, &e->mtx);
	pthread_mutex_unlock(&e->mtx);
}

int coord_engine_register(coord_engine_t *e, const Flotilla__Job *job,
			  Flotilla__JobRegisterResponse **out, flt_error_t *err)
{
	eop_t *op = flt_xcalloc(1, sizeof(*op));
	op->kind = OP_REGISTER;
	op->job = pb_dup(&job->base);
	flotilla__job_register_response__init(&op->resp);
	call(e, op);
	int rc = op->rc;
	if (rc < 0)
		*err = op->err;
	else
		*out = pb_dup(&op->resp.base);
	pb_free(op->job);
	free(op);
	return rc;
}

void coord_engine_settle(coord_engine_t *e)
{
	pthread_mutex_lock(&e->mtx);
	uint64_t target = e->cycles_started + 1;
	e->force_cycle = true;
	pthread_cond_signal(&e->cond);
	while (e->cycles_done < target)
		pthread_cond_wait(&e->done_cond, &e->mtx);
	pthread_mutex_unlock(&e->mtx);
}

/* ---- what a node must run ---------------------------------------------------- */

void coord_engine_node_allocs(coord_engine_t *e, const char *node_id,
			      Flotilla__SyncResponse *resp)
{
	resp->allocs_set = true;
	resp->n_allocs = 0;
	resp->allocs = NULL;
	pthread_mutex_lock(&e->mtx);
	enode_t *nd = node_get(e, node_id, false);
	size_t n = 0;
	for (size_t i = 0; nd && i < nd->n; i++)
		n += nd->v[i]->a && is(nd->v[i]->a->desired, "run");
	resp->allocs = flt_xcalloc(n + 1, sizeof(*resp->allocs));
	for (size_t i = 0; nd && i < nd->n; i++) {
		const Flotilla__Alloc *a = nd->v[i]->a;
		if (!a || !is(a->desired, "run"))
			continue;
		const Flotilla__TaskGroup *g = group_of(
			job_at(nd->v[i]->job, a->job_version), a->group);
		if (!g)
			continue;
		Flotilla__AllocSpec *as = flt_xmalloc(sizeof(*as));
		flotilla__alloc_spec__init(as);
		as->id = flt_xstrdup(a->id);
		as->job = flt_xstrdup(a->job);
		as->group = flt_xstrdup(a->group);
		as->job_version = a->job_version;
		as->index = a->index;
		/* The tasks are copied: the job may change after we unlock. */
		as->n_tasks = g->n_tasks;
		as->tasks = flt_xcalloc(g->n_tasks + 1, sizeof(*as->tasks));
		for (size_t t = 0; t < g->n_tasks; t++)
			as->tasks[t] = pb_dup(&g->tasks[t]->base);
		resp->allocs[resp->n_allocs++] = as;
	}
	pthread_mutex_unlock(&e->mtx);
}

void coord_engine_node_allocs_free(Flotilla__SyncResponse *resp)
{
	for (size_t i = 0; i < resp->n_allocs; i++)
		pb_free(resp->allocs[i]);
	free(resp->allocs);
	resp->allocs = NULL;
	resp->n_allocs = 0;
}

/* ---- operator reads ---------------------------------------------------------- */

static void summarize(const ejob_t *ej, Flotilla__JobSummary *s)
{
	const Flotilla__JobRecord *r = ej->rec;
	flotilla__job_summary__init(s);
	s->name = (char *)r->job->name;
	s->type = (char *)r->job->type;
	s->version = r->version;
	s->submitted_ms = r->submitted_ms;
	bool system = is(r->job->type, "system");
	uint32_t live = 0, complete = 0;
	for (size_t i = 0; i < ej->nallocs; i++) {
		const Flotilla__Alloc *a = ej->allocs[i]->a;
		if (!a || !is(a->desired, "run"))
			continue;
		live++;
		if (is(a->client_status, "running")) {
			s->running++;
			s->healthy += a->healthy_since_ms != 0;
		} else if (is(a->client_status, "pending")) {
			s->pending++;
		} else if (is(a->client_status, "failed")) {
			s->failed++;
		} else if (is(a->client_status, "complete")) {
			complete++;
		}
	}
	if (!r->stopped)
		for (size_t g = 0; g < r->job->n_groups; g++)
			s->desired += r->job->groups[g]->count;
	if (system)
		s->desired = r->stopped ? 0 : live;
	/* A batch job whose allocations all ended is done, not pending. */
	s->status = r->stopped                 ? (live ? "stopping" : "dead")
		    : s->running               ? "running"
		    : live && complete == live ? "complete"
		    : live && complete + s->failed == live ? "failed"
							   : "pending";
	const edep_t *ld = latest_dep(ej);
	if (ld && ld->d) {
		s->deployment_id = ld->d->id;
		s->deployment_status = ld->d->status;
	}
}

static ealloc_t *alloc_lookup(coord_engine_t *e, const char *q,
			      flt_error_t *err)
{
	ealloc_t *ea = smap_get(&e->alloc_map, q);
	if (ea && ea->a)
		return ea;
	size_t n = strlen(q), matches = 0;
	for (size_t i = 0; i < e->nallocs && n >= 4; i++)
		if (e->allocs[i]->a &&
		    strncmp(e->allocs[i]->a->id, q, n) == 0) {
			ea = e->allocs[i];
			matches++;
		}
	if (matches == 1)
		return ea;
	flt_err(err, matches ? FLT_ECONFLICT : FLT_ENOTFOUND,
		matches ? "allocation %s: ambiguous prefix"
			: "allocation %s: no such allocation",
		q);
	return NULL;
}

/* An allocation with the tasks its agent last reported (a copy). */
static Flotilla__Alloc *alloc_view(const ealloc_t *ea)
{
	Flotilla__Alloc *a = pb_dup(&ea->a->base);
	Flotilla__NodeTasks *nt = report_of(ea);
	if (nt) {
		for (size_t i = 0; i < a->n_tasks; i++)
			pb_free(a->tasks[i]);
		free(a->tasks);
		a->tasks = nt->tasks;
		a->n_tasks = nt->n_tasks;
		nt->tasks = NULL;
		nt->n_tasks = 0;
		pb_free(nt);
	}
	return a;
}

static int alloc_cmp(const void *x, const void *y)
{
	const Flotilla__Alloc *a = *(Flotilla__Alloc *const *)x;
	const Flotilla__Alloc *b = *(Flotilla__Alloc *const *)y;
	bool la = is(a->desired, "run"), lb = is(b->desired, "run");
	if (la != lb)
		return la ? -1 : 1;
	if (a->index != b->index && la)
		return a->index < b->index ? -1 : 1;
	return a->create_ms > b->create_ms ? -1 : a->create_ms < b->create_ms;
}

static int job_get_locked(coord_engine_t *e, const char *name,
			  Flotilla__JobGetResponse **out, flt_error_t *err)
{
	ejob_t *ej = job_find(e, name);
	if (!ej || !ej->rec)
		return flt_err(err, FLT_ENOTFOUND, "job %s: no such job", name);
	Flotilla__JobGetResponse r = FLOTILLA__JOB_GET_RESPONSE__INIT;
	Flotilla__JobSummary s;
	summarize(ej, &s);
	r.summary = &s;
	r.record = ej->rec;
	r.allocs = flt_xcalloc(ej->nallocs + 1, sizeof(*r.allocs));
	for (size_t i = 0; i < ej->nallocs; i++)
		if (ej->allocs[i]->a)
			r.allocs[r.n_allocs++] = alloc_view(ej->allocs[i]);
	qsort(r.allocs, r.n_allocs, sizeof(*r.allocs), alloc_cmp);
	const edep_t *ld = latest_dep(ej);
	r.deployment = ld ? ld->d : NULL;
	r.evals = ej->evals;
	r.n_evals = ej->nevals;
	*out = pb_dup(&r.base);
	for (size_t i = 0; i < r.n_allocs; i++)
		pb_free(r.allocs[i]);
	free(r.allocs);
	return 0;
}

int coord_engine_job(coord_engine_t *e, const char *name,
		     Flotilla__JobGetResponse **out, flt_error_t *err)
{
	pthread_mutex_lock(&e->mtx);
	int rc = job_get_locked(e, name, out, err);
	pthread_mutex_unlock(&e->mtx);
	return rc;
}

bool coord_engine_serves(Flotilla__Method m)
{
	switch (m) {
	case FLOTILLA__METHOD__METHOD_JOB_REGISTER:
	case FLOTILLA__METHOD__METHOD_JOB_GET:
	case FLOTILLA__METHOD__METHOD_JOB_LIST:
	case FLOTILLA__METHOD__METHOD_JOB_STOP:
	case FLOTILLA__METHOD__METHOD_JOB_HISTORY:
	case FLOTILLA__METHOD__METHOD_ALLOC_GET:
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_GET:
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_PROMOTE:
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_FAIL: return true;
	default: return false;
	}
}

static void handle_register(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobRegisterRequest *req;
	flt_error_t err;
	if (flt_request_body(r, &flotilla__job_register_request__descriptor,
			     &req) < 0)
		return;
	if (!req->job) {
		pb_free(req);
		flt_request_fail(r, FLT_EPROTO, "job: required");
		return;
	}
	/* Checked again here: an invalid job changes nothing. */
	if (flt_job_check(req->job, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "job %s: %s", req->job->name,
				 err.msg);
		pb_free(req);
		return;
	}
	eop_t *op = flt_xcalloc(1, sizeof(*op));
	op->kind = OP_REGISTER;
	op->job = steal_ptr(&req->job);
	op->r = r;
	flotilla__job_register_response__init(&op->resp);
	pb_free(req);
	flt_request_defer(r);
	enqueue(e, op);
}

static void handle_named(coord_engine_t *e, flt_request_t *r, enum op_kind kind)
{
	char *name = NULL;
	if (kind == OP_STOP) {
		Flotilla__JobStopRequest *req;
		if (flt_request_body(r, &flotilla__job_stop_request__descriptor,
				     &req) < 0)
			return;
		name = flt_xstrdup(req->name);
		pb_free(req);
	} else {
		Flotilla__DeploymentGetRequest *req;
		if (flt_request_body(
			    r, &flotilla__deployment_get_request__descriptor,
			    &req) < 0)
			return;
		name = flt_xstrdup(req->id);
		pb_free(req);
	}
	if (!name[0]) {
		free(name);
		flt_request_fail(r, FLT_EPROTO, "%s: required",
				 kind == OP_STOP ? "name" : "id");
		return;
	}
	eop_t *op = flt_xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->name = name;
	op->r = r;
	flotilla__job_register_response__init(&op->resp);
	flt_request_defer(r);
	enqueue(e, op);
}

static void handle_read(coord_engine_t *e, flt_request_t *r)
{
	const flt_envelope_t *env = flt_request_envelope(r);
	flt_error_t err = { 0 };
	int rc = 0;
	ProtobufCMessage *resp = NULL;

	switch (env->method) {
	case FLOTILLA__METHOD__METHOD_JOB_GET:
	case FLOTILLA__METHOD__METHOD_JOB_HISTORY: {
		Flotilla__JobGetRequest *req;
		if (flt_request_body(r, &flotilla__job_get_request__descriptor,
				     &req) < 0)
			return;
		pthread_mutex_lock(&e->mtx);
		if (env->method == FLOTILLA__METHOD__METHOD_JOB_GET) {
			Flotilla__JobGetResponse *g;
			rc = job_get_locked(e, req->name, &g, &err);
			resp = rc == 0 ? &g->base : NULL;
		} else {
			ejob_t *ej = job_find(e, req->name);
			if (!ej || !ej->rec) {
				rc = flt_err(&err, FLT_ENOTFOUND,
					     "job %s: no such job", req->name);
			} else {
				Flotilla__JobHistoryResponse h =
					FLOTILLA__JOB_HISTORY_RESPONSE__INIT;
				h.versions = flt_xcalloc(ej->nversions + 1,
							 sizeof(*h.versions));
				for (size_t i = ej->nversions; i-- > 0;)
					h.versions[h.n_versions++] =
						ej->versions[i];
				resp = pb_dup(&h.base);
				free(h.versions);
			}
		}
		pthread_mutex_unlock(&e->mtx);
		pb_free(req);
		break;
	}
	case FLOTILLA__METHOD__METHOD_JOB_LIST: {
		Flotilla__JobListResponse l = FLOTILLA__JOB_LIST_RESPONSE__INIT;
		pthread_mutex_lock(&e->mtx);
		Flotilla__JobSummary *s = flt_xcalloc(e->njobs + 1, sizeof(*s));
		l.jobs = flt_xcalloc(e->njobs + 1, sizeof(*l.jobs));
		for (size_t j = 0; j < e->njobs; j++) {
			if (!e->jobs[j]->rec)
				continue;
			summarize(e->jobs[j], &s[l.n_jobs]);
			l.jobs[l.n_jobs] = &s[l.n_jobs];
			l.n_jobs++;
		}
		l.index = e->index;
		resp = pb_dup(&l.base);
		pthread_mutex_unlock(&e->mtx);
		free(s);
		free(l.jobs);
		break;
	}
	case FLOTILLA__METHOD__METHOD_ALLOC_GET: {
		Flotilla__AllocGetRequest *req;
		if (flt_request_body(r,
				     &flotilla__alloc_get_request__descriptor,
				     &req) < 0)
			return;
		pthread_mutex_lock(&e->mtx);
		ealloc_t *ea = alloc_lookup(e, req->id, &err);
		if (ea) {
			Flotilla__AllocGetResponse g =
				FLOTILLA__ALLOC_GET_RESPONSE__INIT;
			g.alloc = alloc_view(ea);
			resp = pb_dup(&g.base);
			pb_free(g.alloc);
		} else {
			rc = err.code;
		}
		pthread_mutex_unlock(&e->mtx);
		pb_free(req);
		break;
	}
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_GET: {
		Flotilla__DeploymentGetRequest *req;
		if (flt_request_body(
			    r, &flotilla__deployment_get_request__descriptor,
			    &req) < 0)
			return;
		pthread_mutex_lock(&e->mtx);
		ejob_t *ej;
		edep_t *ed = dep_find(e, req->id, &ej, &err);
		if (ed) {
			Flotilla__DeploymentGetResponse g =
				FLOTILLA__DEPLOYMENT_GET_RESPONSE__INIT;
			g.deployment = ed->d;
			resp = pb_dup(&g.base);
		} else {
			rc = err.code;
		}
		pthread_mutex_unlock(&e->mtx);
		pb_free(req);
		break;
	}
	default: rc = flt_err(&err, FLT_EMETHOD, "not served here");
	}
	if (rc < 0)
		flt_request_fail(r, rc, "%s", err.msg);
	else
		flt_request_reply(r, resp);
	pb_free(resp);
}

void coord_engine_handle_api(coord_engine_t *e, flt_request_t *r)
{
	switch (flt_request_envelope(r)->method) {
	case FLOTILLA__METHOD__METHOD_JOB_REGISTER:
		handle_register(e, r);
		return;
	case FLOTILLA__METHOD__METHOD_JOB_STOP:
		handle_named(e, r, OP_STOP);
		return;
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_PROMOTE:
		handle_named(e, r, OP_PROMOTE);
		return;
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_FAIL:
		handle_named(e, r, OP_FAIL);
		return;
	default: handle_read(e, r);
	}
}
