/*
 * Reconciling a job (see engine-internal.h): what its current version
 * wants against the allocations it has. Lost allocations and failed ones
 * are replaced (within the reschedule policy), allocations on draining
 * nodes migrate, a new version is applied in place when the tasks are the
 * same and by replacement otherwise (paced by the deployment), and the
 * count is kept.
 */
#include <errno.h>
#include <stdio.h>

#include "engine-internal.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"

/* ---- the allocation lifecycle ------------------------------------------- */

#define R FLT_FSM_REFUSE
#define I FLT_FSM_IGNORE

static const char *const alloc_events[COORD_ALLOC_NEVENTS] = {
	[COORD_ALLOC_PLACE] = "place", [COORD_ALLOC_WAIT] = "wait",
	[COORD_ALLOC_RUN] = "run",     [COORD_ALLOC_COMPLETE] = "complete",
	[COORD_ALLOC_FAIL] = "fail",   [COORD_ALLOC_LOSE] = "lose",
};

/* Rows: AllocClientStatus; columns: the events above. */
#define PEN AS(PENDING)
#define RUN AS(RUNNING)
#define COM AS(COMPLETE)
#define FAI AS(FAILED)
#define LOS AS(LOST)
/* clang-format off */
static const signed char alloc_next_tab[6 * COORD_ALLOC_NEVENTS] = {
/*                place  wait   run    complete  fail   lose */
/* unknown  */    PEN,   R,     R,     R,        R,     R,
/* pending  */    R,     PEN,   RUN,   COM,      FAI,   LOS,
/* running  */    R,     PEN,   RUN,   COM,      FAI,   LOS,
/* complete */    R,     I,     I,     I,        I,     I,
/* failed   */    R,     I,     I,     I,        I,     I,
/* lost     */    R,     I,     I,     I,        I,     I,
};
/* clang-format on */
#undef PEN
#undef RUN
#undef COM
#undef FAI
#undef LOS

const flt_fsm_t coord_alloc_fsm = {
	.name = "allocation",
	.doc = "An allocation's status, as its node reports its tasks. A new "
	       "allocation is pending until every task runs; it completes when "
	       "every task exited well (or stopped when it was told to stop), "
	       "fails when a task fails, and is lost when its node goes down. "
	       "An allocation that ended stays as it ended: a replacement is a "
	       "new allocation. What is wanted of it (`run`, `stop`) and its "
	       "health in a deployment (undecided: `\"\"`, `healthy`, `unhealthy`) "
	       "are fields beside its status.",
	.states = &flotilla__alloc_client_status__descriptor,
	.n_states = 6,
	.events = alloc_events,
	.n_events = COORD_ALLOC_NEVENTS,
	.next = alloc_next_tab,
};

#undef R
#undef I

Flotilla__AllocClientStatus alloc_next(const Flotilla__Alloc *a,
				       enum coord_alloc_event ev)
{
	int next =
		flt_fsm_next(&coord_alloc_fsm, (int)a->client_status, (int)ev);
	return next >= 0 ? (Flotilla__AllocClientStatus)next : a->client_status;
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
	return runs(a) && !terminal(a->client_status);
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

/* Tells ea to stop; lost: because its node is down. */
static void stop_alloc(cycle_t *c, ealloc_t *ea, const char *why, bool lost)
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
	w->desired = AD(STOP);
	flt_pb_set_str(&w->desired_reason, why);
	if (lost)
		w->client_status = alloc_next(w, COORD_ALLOC_LOSE);
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

/* One group under reconciliation. */
typedef struct gstate {
	const Flotilla__JobRecord *rec;
	const Flotilla__TaskGroup *g;
	edep_t *dep; /* running or paused deployment of this version */
	const Flotilla__Deployment *d; /* dep's current message */
	bool paused; /* dep is paused */
	bool system;
	ealloc_t **live; /* should run, on a node that is up */
	size_t nlive, live_cap;
	ealloc_t **migrating; /* should run, on a draining node */
	size_t nmig, mig_cap;
	ealloc_t **old; /* live, of an older version: to replace */
	size_t nold;
	size_t ncur; /* live, of the current version */
	size_t ncanary; /* of those, canaries of the deployment */
	size_t inflight; /* of the deployment, health undecided or wanted */
	want_t *w; /* to place */
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
		if (acur(s->live[i])->index == idx && runs(acur(s->live[i])))
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

/* A new allocation of the group on node ni of the fleet, for w. */
static Flotilla__Alloc *new_alloc(cycle_t *c, ejob_t *ej, const gstate_t *s,
				  size_t ni, const want_t *w)
{
	Flotilla__Alloc *a = flt_xmalloc(sizeof(*a));
	flotilla__alloc__init(a);
	char id[37];
	flt_uuid_v4(id);
	flt_pb_set_str(&a->id, id);
	flt_pb_set_str(&a->job, ej->name);
	flt_pb_set_str(&a->group, s->g->name);
	a->index = w->index;
	a->job_version = s->rec->version;
	flt_pb_set_str(&a->node_id, sched_node_id(c->fleet, ni));
	flt_pb_set_str(&a->node_name,
		       sched_node_attr(c->fleet, ni, "node.name"));
	a->desired = AD(RUN);
	a->client_status = alloc_next(a, COORD_ALLOC_PLACE);
	if (s->d) {
		flt_pb_set_str(&a->deployment_id, s->d->id);
		a->canary = w->canary;
	}
	a->create_ms = a->modify_ms = c->now;
	if (!w->prev)
		return a;
	/* A replacement: the chain links both ways, and a reschedule after a
	 * failure counts against the policy. */
	Flotilla__Alloc *p = awc(c, w->prev);
	flt_pb_set_str(&a->previous_alloc, p->id);
	flt_pb_set_str(&p->next_alloc, a->id);
	if (w->migrate)
		p->migrating = true;
	if (!w->resched) {
		a->reschedule_attempts = p->reschedule_attempts;
		return a;
	}
	a->reschedule_attempts = p->reschedule_attempts + 1;
	a->n_reschedule_times_ms = p->n_reschedule_times_ms + 1;
	a->reschedule_times_ms =
		flt_xcalloc(a->n_reschedule_times_ms, sizeof(int64_t));
	if (p->n_reschedule_times_ms)
		memcpy(a->reschedule_times_ms, p->reschedule_times_ms,
		       p->n_reschedule_times_ms * sizeof(int64_t));
	a->reschedule_times_ms[p->n_reschedule_times_ms] = c->now;
	return a;
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
		if (ni >= 0 && runs(a))
			existing[nex++] = (size_t)ni;
	}
	sched_request_t rq = { .job = s->rec->job,
			       .group = s->g,
			       .count = (uint32_t)s->nw,
			       .existing = existing,
			       .nexisting = nex,
			       .seed = (uint64_t)c->now };
	sched_result_t res;
	flt_error_t err;
	int rc = sched_place(f, &rq, &res, &err);
	free(existing);
	if (rc < 0) {
		flt_error("placing job=%s group=%s: %s", ej->name, s->g->name,
			  err.msg);
		c->unplaced += (uint32_t)s->nw;
		return;
	}
	for (size_t i = 0; i < res.nplaced; i++) {
		want_t w = s->system ? (want_t){ .index = 0 } : s->w[i];
		Flotilla__Alloc *a = new_alloc(c, ej, s, res.placed[i], &w);
		ealloc_t *ea = flt_xcalloc(1, sizeof(*ea));
		ea->wc = a;
		ea->in_plan = ea->push = true;
		alloc_index(c->e, ej, ea);
		plan_add(c, PE_ALLOC, ea);
		ptr_push((void ***)&s->live, &s->nlive, &s->live_cap, ea);
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
	if (a->client_status == AS(FAILED))
		return true;
	/* A service is meant to run: its ending is a failure too. */
	return a->client_status == AS(COMPLETE) && is(job->type, "service");
}

/* Sorts candidates to stop: not running first, then the highest index. */
static int stop_order(const void *x, const void *y)
{
	const Flotilla__Alloc *a = acur(*(ealloc_t *const *)x);
	const Flotilla__Alloc *b = acur(*(ealloc_t *const *)y);
	bool ra = a->client_status == AS(RUNNING);
	bool rb = b->client_status == AS(RUNNING);
	if (ra != rb)
		return ra ? 1 : -1;
	return a->index < b->index ? 1 : a->index > b->index ? -1 : 0;
}

/* ---- reconcile ------------------------------------------------------------ */

/*
 * Sorts the group's allocations that should run: those on a node that is
 * down are stopped as lost and replaced, failed ones are replaced when the
 * reschedule policy allows, those on a draining node go to migrating[],
 * the rest to s->live.
 */
static void sort_live(cycle_t *c, ejob_t *ej, gstate_t *s)
{
	const Flotilla__Job *job = s->rec->job;
	const Flotilla__TaskGroup *g = s->g;
	sched_fleet_t *f = c->fleet;
	for (size_t i = 0; i < ej->nallocs; i++) {
		ealloc_t *ea = ej->allocs[i];
		const Flotilla__Alloc *a = acur(ea);
		if (!a || !is(a->group, g->name) || !runs(a))
			continue;
		long ni = sched_fleet_find(f, a->node_id);
		if (ni < 0 || sched_node_down(f, (size_t)ni)) {
			char why[96];
			snprintf(why, sizeof(why), "node %s is down",
				 a->node_name);
			bool was_done = terminal(a->client_status);
			stop_alloc(c, ea, why, true);
			if (!s->system &&
			    !(was_done && !needs_replacement(job, a)))
				want_add(s, (want_t){ .index = a->index,
						      .prev = ea });
			continue;
		}
		if (!s->system && needs_replacement(job, a)) {
			int64_t when;
			if (resched_allowed(a, g->reschedule, c->now, &when)) {
				if (c->now >= when) {
					stop_alloc(
						c, ea,
						"rescheduled after it failed",
						false);
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
		if (!s->system &&
		    sched_node_draining(f, (size_t)ni, &deadline)) {
			ptr_push((void ***)&s->migrating, &s->nmig, &s->mig_cap,
				 ea);
			continue;
		}
		ptr_push((void ***)&s->live, &s->nlive, &s->live_cap, ea);
	}
}

/* Draining nodes: a replacement first, the old one stops when the
 * replacement runs healthy (or at the deadline). */
static void migrate(cycle_t *c, ejob_t *ej, gstate_t *s)
{
	sched_fleet_t *f = c->fleet;
	for (size_t i = 0; i < s->nmig; i++) {
		ealloc_t *ea = s->migrating[i];
		const Flotilla__Alloc *a = acur(ea);
		int64_t deadline;
		sched_node_draining(f, sched_fleet_find(f, a->node_id),
				    &deadline);
		ealloc_t *next =
			a->next_alloc[0]
				? flt_map_get(&c->e->alloc_map, a->next_alloc)
				: NULL;
		const Flotilla__Alloc *n = next ? acur(next) : NULL;
		bool past = c->now >= deadline;
		if (n && (past || n->healthy_since_ms ||
			  terminal(n->client_status) || !runs(n))) {
			stop_alloc(c, ea, "node drained", false);
		} else if (!n) {
			if (past)
				stop_alloc(c, ea, "drain deadline passed",
					   false);
			want_add(s, (want_t){ .index = a->index,
					      .prev = ea,
					      .migrate = !past });
		} else {
			wake_at(ej, deadline);
		}
	}
}

/*
 * Versions: a live allocation of another version whose tasks are the same
 * is updated in place; the others are old (s->old, to stop first sorted
 * first). Counts the current version's allocations, canaries and those
 * of the deployment whose health is undecided.
 */
static void sort_versions(cycle_t *c, ejob_t *ej, gstate_t *s)
{
	const Flotilla__JobRecord *rec = s->rec;
	const Flotilla__Deployment *d = s->d;
	s->old = flt_xcalloc(s->nlive + 1, sizeof(*s->old));
	for (size_t i = 0; i < s->nlive; i++) {
		ealloc_t *ea = s->live[i];
		const Flotilla__Alloc *a = acur(ea);
		if (a->job_version != rec->version &&
		    tasks_equal(
			    group_of(job_at(ej, a->job_version), s->g->name),
			    s->g)) {
			Flotilla__Alloc *w = awc(c, ea);
			w->job_version = rec->version;
			w->modify_ms = c->now;
			/* It joins the deployment with the health it has. */
			if (d && !in_dep(w, d)) {
				flt_pb_set_str(&w->deployment_id, d->id);
				w->canary = false;
			}
			ea->push = true;
			a = w;
		}
		if (a->job_version != rec->version) {
			s->old[s->nold++] = ea;
			continue;
		}
		s->ncur++;
		if (in_dep(a, d) && a->canary)
			s->ncanary++;
		if (in_dep(a, d) && a->health == AH(UNSET))
			s->inflight++;
	}
	for (size_t i = 0; i < s->nw; i++)
		s->inflight += d != NULL;
	qsort(s->old, s->nold, sizeof(*s->old), stop_order);
}

/* A system job: the old version stops, every feasible node without one
 * gets an allocation (sched_place fills them). */
static void replace_system(cycle_t *c, ejob_t *ej, gstate_t *s, const char *why)
{
	for (size_t i = 0; i < s->nold; i++)
		stop_alloc(c, s->old[i], why, false);
	for (size_t i = 0; i < s->nold; i++)
		for (size_t k = 0; k < s->nlive; k++)
			if (s->live[k] == s->old[i])
				s->live[k] = s->live[--s->nlive];
	s->nw = 1;
	s->w = flt_xrealloc(s->w, sizeof(*s->w));
	s->w[0] = (want_t){ 0 };
	place_wanted(c, ej, s);
}

/* Canaries beside the old version, which keeps serving; returns how many
 * allocations are canaries beside the count. */
static size_t want_canaries(gstate_t *s, const Flotilla__DeploymentGroup *dg)
{
	size_t serving = s->nold + s->ncur + s->nw - s->ncanary;
	for (size_t i = s->ncanary; i < dg->desired_canaries; i++)
		want_add(s, (want_t){ .index = free_index(s), .canary = true });
	for (size_t i = serving; i < s->g->count; i++)
		want_add(s, (want_t){ .index = free_index(s) });
	return s->ncanary > dg->desired_canaries ? s->ncanary
						 : dg->desired_canaries;
}

/* Rolling: at most max_parallel new allocations not yet healthy at once. */
static void want_rolling(cycle_t *c, gstate_t *s, const char *why)
{
	const Flotilla__Job *job = s->rec->job;
	uint32_t want = s->g->count;
	uint32_t maxp = job->update ? job->update->max_parallel : 1;
	size_t budget = maxp > s->inflight ? maxp - s->inflight : 0;
	size_t nnew = s->ncur + s->nw;
	while (s->nold && s->nold + nnew > want)
		stop_alloc(c, s->old[--s->nold], why, false);
	/* What no old allocation holds is placed at once (a first version, a
	 * count raised); replacing is paced. */
	while (s->nold + nnew < want) {
		want_add(s, (want_t){ .index = free_index(s) });
		nnew++;
	}
	while (budget && s->nold) {
		ealloc_t *prev = s->old[--s->nold];
		stop_alloc(c, prev, why, false);
		want_add(s,
			 (want_t){ .index = acur(prev)->index, .prev = prev });
		budget--;
	}
}

/* No deployment: replace what changed at once. Keep the old version when
 * this version's deployment ended (failed). */
static void want_replaced(cycle_t *c, ejob_t *ej, gstate_t *s, const char *why)
{
	const edep_t *last = latest_dep(ej);
	bool keep_old = last && dcur(last)->job_version == s->rec->version;
	for (size_t i = 0; i < s->nold && !keep_old; i++) {
		stop_alloc(c, s->old[i], why, false);
		want_add(s, (want_t){ .index = acur(s->old[i])->index,
				      .prev = s->old[i] });
	}
	if (!keep_old)
		s->nold = 0;
	size_t nnew = s->ncur + s->nw;
	while (s->nold + nnew < s->g->count) {
		want_add(s, (want_t){ .index = free_index(s) });
		nnew++;
	}
}

/* Too many (a count lowered): stops the surplus, the old version first.
 * Canaries waiting for promotion are beside the count. */
static void stop_surplus(cycle_t *c, gstate_t *s, size_t canaries)
{
	size_t want = s->g->count;
	size_t total = s->nold + s->ncur + s->nw - canaries;
	if (total <= want)
		return;
	ealloc_t **cand = flt_xcalloc(s->nlive + 1, sizeof(*cand));
	for (int pass = 0; pass < 2 && total > want; pass++) {
		size_t nc = 0;
		for (size_t i = 0; i < s->nlive; i++) {
			const Flotilla__Alloc *a = acur(s->live[i]);
			if (runs(a) && !(a->canary && in_dep(a, s->d)) &&
			    (a->job_version == s->rec->version) == pass)
				cand[nc++] = s->live[i];
		}
		qsort(cand, nc, sizeof(*cand), stop_order);
		for (size_t i = 0; i < nc && total > want; i++, total--)
			stop_alloc(c, cand[i],
				   "more allocations than the count", false);
	}
	free(cand);
}

static void reconcile_group(cycle_t *c, ejob_t *ej, gstate_t *s)
{
	if (!fleet(c))
		return;
	s->system = is(s->rec->job->type, "system");
	s->d = s->dep ? dcur(s->dep) : NULL;
	s->paused = s->d && s->d->status == DS(PAUSED);
	sort_live(c, ej, s);
	migrate(c, ej, s);
	sort_versions(c, ej, s);

	char why[96];
	snprintf(why, sizeof(why), "replaced by version %llu",
		 (unsigned long long)s->rec->version);
	if (s->system) {
		replace_system(c, ej, s, why);
		return;
	}
	const Flotilla__DeploymentGroup *dg = deploy_group(s->d, s->g->name);
	size_t canaries = 0;
	if (s->paused) {
		/* A paused deployment keeps the job whole (what was lost,
		 * failed or is migrating is still replaced) and does nothing
		 * else: no canaries, no replacements of the old version, no
		 * change of count (as Nomad's). */
	} else if (dg && dg->desired_canaries && !dg->promoted) {
		canaries = want_canaries(s, dg);
	} else if (dg) {
		want_rolling(c, s, why);
	} else {
		want_replaced(c, ej, s, why);
	}
	flt_debug(
		"reconcile job=%s group=%s want=%u old=%zu cur=%zu wanted=%zu "
		"migrating=%zu canaries=%zu dep=%s",
		ej->name, s->g->name, s->g->count, s->nold, s->ncur, s->nw,
		s->nmig, canaries,
		flt_pb_enum_name(&flotilla__deployment_status__descriptor,
				 s->d ? (int)s->d->status : 0));
	if (!s->paused)
		stop_surplus(c, s, canaries);
	place_wanted(c, ej, s);
}

bool reconcile(cycle_t *c, ejob_t *ej)
{
	const Flotilla__JobRecord *rec = jcur(ej);
	if (!rec)
		return true;
	edep_t *dep = latest_dep(ej);
	if (dep && ((dcur(dep)->status != DS(RUNNING) &&
		     dcur(dep)->status != DS(PAUSED)) ||
		    dcur(dep)->job_version != rec->version))
		dep = NULL;
	if (rec->stopped) {
		for (size_t i = 0; i < ej->nallocs; i++) {
			const Flotilla__Alloc *a = acur(ej->allocs[i]);
			if (a && runs(a))
				stop_alloc(c, ej->allocs[i], "job stopped",
					   false);
		}
		if (dep && deploy_step(c, dep, COORD_DEPLOY_CANCEL, NULL) == 1)
			flt_pb_set_str(&dwc(c, dep)->status_description,
				       "the job was stopped");
		return true;
	}
	if (!fleet(c)) {
		wake_at(ej, c->now + 1000);
		return false;
	}
	if (dep)
		deploy_health(c, ej, dep);
	const Flotilla__Job *job = rec->job;
	for (size_t g = 0; g < job->n_groups; g++) {
		gstate_t s = { .rec = rec, .g = job->groups[g], .dep = dep };
		reconcile_group(c, ej, &s);
		free(s.live);
		free(s.migrating);
		free(s.old);
		free(s.w);
	}
	/* Groups no longer in the job. */
	for (size_t i = 0; i < ej->nallocs; i++) {
		const Flotilla__Alloc *a = acur(ej->allocs[i]);
		if (a && runs(a) && !group_of(job, a->group))
			stop_alloc(c, ej->allocs[i],
				   "its group was removed from the job", false);
	}
	if (dep) {
		deploy_health(c, ej, dep);
		deploy_progress(c, ej, dep);
	}
	return true;
}
