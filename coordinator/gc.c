/*
 * Garbage collection (see engine-internal.h): what ended and aged out is
 * marked here; the cycle's plan deletes it from the store, and from memory
 * once that committed (plan.c).
 *
 * What goes, and when (docs/operator-guide.md, "Garbage collection"):
 *   - an allocation that ended (complete, failed or lost) and is told to
 *     stop, gc_retention_ms after its last change, unless the running or
 *     paused deployment counts it, or the allocation it replaced still
 *     runs (a migration waits for its replacement through next_alloc);
 *   - a deployment that ended and is not its job's latest, the same;
 *   - evaluations beyond the last EVALS_KEPT (plan.c) and, older than the
 *     retention, all but a job's latest;
 *   - job versions beyond the newest gc_versions_kept, except the current
 *     one, the newest stable one (a failed deployment reverts to it) and
 *     any an allocation or deployment still names (the node's agent runs
 *     the tasks of the version its allocation names);
 *   - a job that ended -- stopped, or a batch job whose allocations all
 *     completed -- with every allocation ended (or told to stop for longer
 *     than the job retention: a node that never came back), after
 *     gc_job_retention_ms: with everything hanging off it. A completed
 *     batch job's allocations are still in their nodes' sets: the nodes
 *     are pushed, and let the tasks go.
 * A job purge deletes a stopped job now, whatever its allocations do:
 * they were told to stop when the job stopped (a node that still runs
 * one stops it, as it stops what it is no longer given).
 *
 * Nothing the cycle changed is collected in it (in_plan): a record is
 * never written and deleted by one plan, but for a purged job, whose
 * deletions come last and win.
 */
#include <errno.h>
#include <stdio.h>

#include "engine-internal.h"
#include "flotilla/log.h"

static int64_t opt_or(int64_t v, int64_t def) { return v > 0 ? v : def; }

static bool dep_live(const Flotilla__Deployment *d)
{
	return d && (d->status == DS(RUNNING) || d->status == DS(PAUSED));
}

/* Puts the job's PE_GC entry in the plan, once. */
static void gc_plan(cycle_t *c, ejob_t *ej)
{
	if (ej->gc_in_plan)
		return;
	ej->gc_in_plan = true;
	plan_add(c, PE_GC, ej);
}

/* Marks the whole job; counts what goes in n. */
static void mark_job(cycle_t *c, ejob_t *ej, Flotilla__GcResponse *n)
{
	ej->gc_job = true;
	n->jobs++;
	n->versions += (uint32_t)ej->nversions;
	n->allocs += (uint32_t)ej->nallocs;
	n->evals += (uint32_t)ej->nevals + (ej->eval != NULL);
	n->deployments += (uint32_t)ej->ndeps;
	gc_plan(c, ej);
}

/*
 * Whether a job ended, and since when: stopped (every allocation ended,
 * or was told to stop longer than stuck_ms ago), or a batch job whose
 * allocations all completed and that waits for no reschedule.
 */
static bool job_ended(const ejob_t *ej, int64_t now, int64_t stuck_ms,
		      int64_t *since)
{
	const Flotilla__JobRecord *r = ej->rec;
	if (!r || ej->wc || ej->in_plan || ej->wake_ms)
		return false;
	int64_t t = r->stopped_ms > r->submitted_ms ? r->stopped_ms
						    : r->submitted_ms;
	size_t live = 0;
	for (size_t i = 0; i < ej->nallocs; i++) {
		const ealloc_t *ea = ej->allocs[i];
		const Flotilla__Alloc *a = ea->a;
		if (!a || ea->in_plan)
			return false;
		if (runs(a)) {
			if (r->stopped || a->client_status != AS(COMPLETE))
				return false;
			live++;
		} else if (!terminal(a->client_status) &&
			   now - a->modify_ms < stuck_ms) {
			return false;
		}
		if (a->modify_ms > t)
			t = a->modify_ms;
	}
	if (!r->stopped && (!is(r->job->type, "batch") || !live))
		return false;
	for (size_t i = 0; i < ej->ndeps; i++)
		if (ej->deps[i]->in_plan || dep_live(ej->deps[i]->d))
			return false;
	*since = t;
	return true;
}

static bool alloc_garbage(coord_engine_t *e, const ealloc_t *ea,
			  const edep_t *live_dep, int64_t before)
{
	const Flotilla__Alloc *a = ea->a;
	if (!a || ea->in_plan || runs(a) || !terminal(a->client_status) ||
	    a->modify_ms > before)
		return false;
	if (live_dep && in_dep(a, live_dep->d))
		return false;
	if (a->previous_alloc[0]) {
		const ealloc_t *p =
			flt_map_get(&e->alloc_map, a->previous_alloc);
		if (p && p->a && runs(p->a))
			return false;
	}
	return true;
}

static bool version_needed(const ejob_t *ej, uint64_t v, uint64_t stable)
{
	if (v == ej->rec->version || v == stable)
		return true;
	for (size_t i = 0; i < ej->nallocs; i++)
		if (!ej->allocs[i]->del && ej->allocs[i]->a &&
		    ej->allocs[i]->a->job_version == v)
			return true;
	for (size_t i = 0; i < ej->ndeps; i++)
		if (!ej->deps[i]->del && ej->deps[i]->d &&
		    ej->deps[i]->d->job_version == v)
			return true;
	return false;
}

/* The retention of one job that stays: its old allocations, deployments,
 * evaluations and versions. */
static void collect_job(cycle_t *c, ejob_t *ej, int64_t before)
{
	coord_engine_t *e = c->e;
	bool any = false;
	edep_t *ld = latest_dep(ej);
	const edep_t *live = ld && ld->d && dep_live(ld->d) ? ld : NULL;
	for (size_t i = 0; i < ej->nallocs; i++) {
		ealloc_t *ea = ej->allocs[i];
		if (alloc_garbage(e, ea, live, before)) {
			ea->del = any = true;
			c->gc.allocs++;
		}
	}
	for (size_t i = 0; i < ej->ndeps; i++) {
		edep_t *ed = ej->deps[i];
		if (ed == ld || !ed->d || ed->in_plan || dep_live(ed->d) ||
		    ed->d->modify_ms > before)
			continue;
		ed->del = any = true;
		c->gc.deployments++;
	}
	/* The latest evaluation stays: it says what happened last. */
	size_t ne = 0;
	while (ne + 1 < ej->nevals && ej->evals[ne]->create_ms <= before)
		ne++;
	if (ne) {
		ej->gc_evals = ne;
		c->gc.evals += (uint32_t)ne;
		any = true;
	}
	size_t kept = opt_or(e->o.gc_versions_kept, COORD_GC_VERSIONS_KEPT);
	uint64_t stable = 0;
	for (size_t i = 0; i < ej->nversions; i++)
		if (ej->versions[i]->stable)
			stable = ej->versions[i]->version;
	for (size_t i = 0; i + kept < ej->nversions; i++) {
		uint64_t v = ej->versions[i]->version;
		if (version_needed(ej, v, stable))
			continue;
		ej->gc_versions =
			flt_xrealloc(ej->gc_versions,
				     (ej->ngc_versions + 1) * sizeof(uint64_t));
		ej->gc_versions[ej->ngc_versions++] = v;
		c->gc.versions++;
		any = true;
	}
	if (any)
		gc_plan(c, ej);
}

static void collect(cycle_t *c);

void gc_cycle(cycle_t *c)
{
	coord_engine_t *e = c->e;
	/* The purges asked in this cycle. */
	for (eop_t *op = c->ops; op; op = op->next) {
		if (op->kind != OP_PURGE || op->rc < 0)
			continue;
		ejob_t *ej = job_find(e, op->name);
		if (!ej || ej->gc_job)
			continue;
		mark_job(c, ej, &op->gc);
		c->gc.jobs++;
		c->gc.versions += op->gc.versions;
		c->gc.allocs += op->gc.allocs;
		c->gc.evals += op->gc.evals;
		c->gc.deployments += op->gc.deployments;
	}
	if (c->gc_force || c->now >= e->gc_next_ms)
		collect(c);
	for (eop_t *op = c->ops; op; op = op->next)
		if (op->kind == OP_GC)
			op->gc = c->gc;
}

/* The periodic collection, over every job. */
static void collect(cycle_t *c)
{
	coord_engine_t *e = c->e;
	int64_t ret = opt_or(e->o.gc_retention_ms, COORD_GC_RETENTION_MS);
	int64_t jret =
		opt_or(e->o.gc_job_retention_ms, COORD_GC_JOB_RETENTION_MS);
	int64_t every = e->o.gc_interval_ms;
	if (every <= 0)
		every = ret < COORD_GC_INTERVAL_MS ? ret : COORD_GC_INTERVAL_MS;
	e->gc_next_ms = c->now + every;
	Flotilla__GcResponse before = c->gc;
	for (size_t j = 0; j < e->njobs; j++) {
		ejob_t *ej = e->jobs[j];
		int64_t since;
		if (ej->gc_job || ej->in_plan || !ej->rec)
			continue;
		if (job_ended(ej, c->now, jret, &since) &&
		    c->now - since >= jret)
			mark_job(c, ej, &c->gc);
		else
			collect_job(c, ej, c->now - ret);
	}
	if (c->gc.jobs != before.jobs || c->gc.allocs != before.allocs ||
	    c->gc.evals != before.evals ||
	    c->gc.deployments != before.deployments ||
	    c->gc.versions != before.versions)
		flt_info(
			"garbage collection jobs=%u versions=%u allocations=%u "
			"evaluations=%u deployments=%u",
			c->gc.jobs - before.jobs,
			c->gc.versions - before.versions,
			c->gc.allocs - before.allocs,
			c->gc.evals - before.evals,
			c->gc.deployments - before.deployments);
}
