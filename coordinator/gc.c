/*
 * Garbage collection (see engine-internal.h): what ended and aged out is
 * deleted from the store in the cycle's plan, and from memory once that
 * committed.
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
 *     gc_job_retention_ms: with everything hanging off it.
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

static void push_alloc(cycle_t *c, ealloc_t *ea)
{
	ptr_push((void ***)&c->dead_allocs, &c->ndead_allocs,
		 &c->dead_allocs_cap, ea);
}

static void push_dep(cycle_t *c, edep_t *ed)
{
	ptr_push((void ***)&c->dead_deps, &c->ndead_deps, &c->dead_deps_cap,
		 ed);
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

/* ---- the store ------------------------------------------------------------ */

static int del(flt_txn_t *txn, flt_db_t db, const void *k, size_t klen)
{
	int rc = flt_txn_del(txn, db, k, klen);
	return rc == -ENOENT ? 0 : rc;
}

static int del_version(flt_txn_t *txn, coord_engine_t *e, const ejob_t *ej,
		       uint64_t v)
{
	size_t kl;
	cleanup_free char *k = version_key(ej->name, v, &kl);
	return del(txn, e->db_versions, k, kl);
}

int gc_apply(flt_txn_t *txn, coord_engine_t *e, ejob_t *ej, flt_error_t *err)
{
	int rc = 0;
	bool all = ej->gc_job;
	if (all)
		rc = del(txn, e->db_jobs, ej->name, strlen(ej->name));
	for (size_t i = 0; rc == 0 && i < ej->nallocs; i++)
		if (all || ej->allocs[i]->del)
			rc = del(txn, e->db_allocs, ej->allocs[i]->id,
				 strlen(ej->allocs[i]->id));
	for (size_t i = 0; rc == 0 && i < ej->ndeps; i++) {
		const edep_t *ed = ej->deps[i];
		const Flotilla__Deployment *d = dcur(ed);
		if ((all || ed->del) && d)
			rc = del(txn, e->db_deps, d->id, strlen(d->id));
	}
	size_t ne = all ? ej->nevals : ej->gc_evals;
	for (size_t i = 0; rc == 0 && i < ne; i++)
		rc = del(txn, e->db_evals, ej->evals[i]->id,
			 strlen(ej->evals[i]->id));
	if (rc == 0 && all && ej->eval)
		rc = del(txn, e->db_evals, ej->eval->id, strlen(ej->eval->id));
	for (size_t i = 0; rc == 0 && all && i < ej->nversions; i++)
		rc = del_version(txn, e, ej, ej->versions[i]->version);
	for (size_t i = 0; rc == 0 && !all && i < ej->ngc_versions; i++)
		rc = del_version(txn, e, ej, ej->gc_versions[i]);
	if (rc < 0)
		return flt_err(err, FLT_ESTORE, "job %s: deleting failed: %s",
			       ej->name, strerror(-rc));
	return 0;
}

/* ---- memory ------------------------------------------------------------------ */

static void clear_marks(ejob_t *ej)
{
	for (size_t i = 0; i < ej->nallocs; i++)
		ej->allocs[i]->del = false;
	for (size_t i = 0; i < ej->ndeps; i++)
		ej->deps[i]->del = false;
	ej->gc_in_plan = ej->gc_job = ej->purging = false;
	ej->gc_evals = 0;
	free(ej->gc_versions);
	ej->gc_versions = NULL;
	ej->ngc_versions = 0;
}

/* What stays of a job that stays. */
static void publish_job(cycle_t *c, ejob_t *ej)
{
	size_t k = 0;
	for (size_t i = 0; i < ej->nallocs; i++) {
		if (ej->allocs[i]->del)
			push_alloc(c, ej->allocs[i]);
		else
			ej->allocs[k++] = ej->allocs[i];
	}
	ej->nallocs = k;
	k = 0;
	for (size_t i = 0; i < ej->ndeps; i++) {
		if (ej->deps[i]->del)
			push_dep(c, ej->deps[i]);
		else
			ej->deps[k++] = ej->deps[i];
	}
	ej->ndeps = k;
	if (ej->gc_evals) {
		for (size_t i = 0; i < ej->gc_evals; i++)
			pb_free(ej->evals[i]);
		memmove(ej->evals, ej->evals + ej->gc_evals,
			(ej->nevals - ej->gc_evals) * sizeof(*ej->evals));
		ej->nevals -= ej->gc_evals;
	}
	k = 0;
	for (size_t i = 0; i < ej->nversions; i++) {
		bool gone = false;
		for (size_t v = 0; v < ej->ngc_versions && !gone; v++)
			gone = ej->versions[i]->version == ej->gc_versions[v];
		if (gone)
			pb_free(ej->versions[i]);
		else
			ej->versions[k++] = ej->versions[i];
	}
	ej->nversions = k;
}

void gc_publish(cycle_t *c, bool ok)
{
	coord_engine_t *e = c->e;
	bool jobs_gone = false;
	for (size_t i = 0; i < c->npe; i++) {
		if (c->pe[i].kind != PE_GC)
			continue;
		ejob_t *ej = c->pe[i].obj;
		if (!ok) {
			clear_marks(ej);
			continue;
		}
		if (ej->gc_job) {
			for (size_t k = 0; k < ej->nallocs; k++) {
				ealloc_t *ea = ej->allocs[k];
				ea->del = true;
				push_alloc(c, ea);
			}
			flt_map_del(&e->job_map, ej->name);
			c->dead_jobs = flt_xrealloc(
				c->dead_jobs,
				(c->ndead_jobs + 1) * sizeof(*c->dead_jobs));
			c->dead_jobs[c->ndead_jobs++] = ej;
			jobs_gone = true;
			flt_info("job deleted job=%s", ej->name);
			continue;
		}
		publish_job(c, ej);
		clear_marks(ej);
	}
	if (jobs_gone) {
		size_t k = 0;
		for (size_t j = 0; j < e->njobs; j++)
			if (!e->jobs[j]->gc_job)
				e->jobs[k++] = e->jobs[j];
		e->njobs = k;
	}
	if (!c->ndead_allocs)
		return;
	for (size_t i = 0; i < c->ndead_allocs; i++)
		flt_map_del(&e->alloc_map, c->dead_allocs[i]->id);
	size_t k = 0;
	for (size_t i = 0; i < e->nallocs; i++)
		if (!e->allocs[i]->del)
			e->allocs[k++] = e->allocs[i];
	e->nallocs = k;
	const char *key;
	void *val;
	for (size_t pos = 0; flt_map_next(&e->node_map, &pos, &key, &val);) {
		enode_t *nd = val;
		k = 0;
		for (size_t i = 0; i < nd->n; i++)
			if (!nd->v[i]->del)
				nd->v[k++] = nd->v[i];
		nd->n = k;
	}
}

void job_free(ejob_t *ej)
{
	pb_free(ej->rec);
	pb_free(ej->wc);
	pb_free(ej->new_version);
	pb_free(ej->eval);
	for (size_t i = 0; i < ej->nversions; i++)
		pb_free(ej->versions[i]);
	free(ej->versions);
	for (size_t i = 0; i < ej->ndeps; i++) {
		pb_free(ej->deps[i]->d);
		pb_free(ej->deps[i]->wc);
		free(ej->deps[i]);
	}
	free(ej->deps);
	for (size_t i = 0; i < ej->nevals; i++)
		pb_free(ej->evals[i]);
	free(ej->evals);
	free(ej->gc_versions);
	free(ej->allocs);
	free(ej->name);
	free(ej);
}

void gc_free_dead(cycle_t *c)
{
	for (size_t i = 0; i < c->ndead_allocs; i++) {
		ealloc_t *ea = c->dead_allocs[i];
		pb_free(ea->a);
		pb_free(ea->wc);
		free(ea->report);
		free(ea);
	}
	free(c->dead_allocs);
	for (size_t i = 0; i < c->ndead_deps; i++) {
		pb_free(c->dead_deps[i]->d);
		free(c->dead_deps[i]);
	}
	free(c->dead_deps);
	for (size_t i = 0; i < c->ndead_jobs; i++)
		job_free(c->dead_jobs[i]);
	free(c->dead_jobs);
}

/* ---- the operators' ops ---------------------------------------------------- */

void gc_run_purge(cycle_t *c, eop_t *op)
{
	ejob_t *ej = job_find(c->e, op->name);
	const char *ns = op->r ? coord_call_namespace(op->r) : NULL;
	const Flotilla__JobRecord *cur = ej ? jcur(ej) : NULL;
	if (!cur || (ns && strcmp(job_namespace(cur->job), ns) != 0)) {
		op->rc = flt_err(&op->err, FLT_ENOTFOUND,
				 "job %s: no such job%s%s", op->name,
				 ns ? " in namespace " : "", ns ? ns : "");
		return;
	}
	if (ej->purging) {
		op->rc = flt_err(&op->err, FLT_ECONFLICT,
				 "job %s: already being purged", op->name);
		return;
	}
	if (!cur->stopped || !ej->rec || !ej->rec->stopped) {
		op->rc = flt_err(&op->err, FLT_ECONFLICT,
				 "job %s: not stopped: stop it first "
				 "(flotilla job stop %s)",
				 op->name, op->name);
		return;
	}
	ej->purging = true;
	flt_info("job purge job=%s", ej->name);
}

void gc_run_force(cycle_t *c, eop_t *op)
{
	(void)op;
	c->gc_force = true;
}
