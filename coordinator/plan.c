/*
 * The plan of a cycle (see engine-internal.h): the working copies the cycle
 * changes, the tables new objects enter, and the commit of the whole plan
 * in one transaction through the writer.
 */
#include <errno.h>
#include <stdio.h>

#include "engine-internal.h"
#include "flotilla/log.h"

void plan_add(cycle_t *c, pe_kind_t kind, void *obj)
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
		*wc = flt_pb_dup(committed);
	if (!*in_plan) {
		*in_plan = true;
		plan_add(c, kind, obj);
	}
	return *wc;
}

Flotilla__Alloc *awc(cycle_t *c, ealloc_t *ea)
{
	return working(c, PE_ALLOC, ea, &ea->wc, ea->a, &ea->in_plan);
}

Flotilla__JobRecord *jwc(cycle_t *c, ejob_t *ej)
{
	return working(c, PE_JOB, ej, &ej->wc, ej->rec, &ej->in_plan);
}

Flotilla__Deployment *dwc(cycle_t *c, edep_t *ed)
{
	return working(c, PE_DEP, ed, &ed->wc, ed->d, &ed->in_plan);
}

void mark_dirty(cycle_t *c, ejob_t *ej, const char *trigger, const char *node)
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

/* ---- tables ------------------------------------------------------------- */

ejob_t *job_add(coord_engine_t *e, const char *name)
{
	ejob_t *ej = flt_xcalloc(1, sizeof(*ej));
	ej->name = flt_xstrdup(name);
	flt_mutex_lock(&e->view_mtx);
	e->jobs = flt_xrealloc(e->jobs, (e->njobs + 1) * sizeof(*e->jobs));
	e->jobs[e->njobs++] = ej;
	flt_map_put(&e->job_map, ej->name, ej);
	flt_mutex_unlock(&e->view_mtx);
	return ej;
}

/* Adding: called with view_mtx held (alloc_index). */
enode_t *node_get(coord_engine_t *e, const char *id, bool add)
{
	enode_t *nd = flt_map_get(&e->node_map, id);
	if (nd || !add)
		return nd;
	nd = flt_xcalloc(1, sizeof(*nd));
	nd->id = flt_xstrdup(id);
	flt_map_put(&e->node_map, nd->id, nd);
	return nd;
}

/* Indexes a new allocation (its message is in wc or a). */
void alloc_index(coord_engine_t *e, ejob_t *ej, ealloc_t *ea)
{
	const Flotilla__Alloc *a = acur(ea);
	ea->job = ej;
	flt_mutex_lock(&e->view_mtx);
	ptr_push((void ***)&ej->allocs, &ej->nallocs, &ej->allocs_cap, ea);
	ptr_push((void ***)&e->allocs, &e->nallocs, &e->allocs_cap, ea);
	snprintf(ea->id, sizeof(ea->id), "%s", a->id);
	flt_map_put(&e->alloc_map, ea->id, ea);
	enode_t *nd = node_get(e, a->node_id, true);
	ptr_push((void ***)&nd->v, &nd->n, &nd->cap, ea);
	flt_mutex_unlock(&e->view_mtx);
}

/* ---- committing ------------------------------------------------------------ */

char *version_key(const char *name, uint64_t v, size_t *len)
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

/* ---- deleting: the PE_GC entries gc.c marked -------------------------------- */

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

static int gc_apply(flt_txn_t *txn, coord_engine_t *e, ejob_t *ej,
		    flt_error_t *err)
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

/* Under view_mtx, after the commit: what was deleted leaves the tables
 * (ok), or the marks are cleared (failed). */
static void gc_publish(cycle_t *c, bool ok)
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
				/* A completed batch job's allocation is still in
				 * its node's set: the node is told it left, and
				 * lets its task go. */
				if (ea->a && runs(ea->a))
					ptr_push((void ***)&c->pushed,
						 &c->npushed, &c->pushed_cap,
						 ea);
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

void plan_free_dead(cycle_t *c)
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

typedef struct waiter {
	cycle_t *c;
	flt_mutex_t mtx;
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
	/* The operators' changes go with their audit records. */
	for (eop_t *op = c->ops; op; op = op->next) {
		int arc = op->r && op->rc == 0
				  ? coord_audit_in_txn(txn, op->r, err)
				  : 0;
		if (arc < 0)
			return arc;
	}
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
		case PE_GC: rc = gc_apply(txn, e, p->obj, err); break;
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
	flt_mutex_lock(&w->mtx);
	w->rc = rc;
	w->index = index;
	if (err)
		w->err = *err;
	w->done = true;
	pthread_cond_signal(&w->cond);
	flt_mutex_unlock(&w->mtx);
}

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
					ptr_push((void ***)&c->pushed,
						 &c->npushed, &c->pushed_cap,
						 ea);
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
	gc_publish(c, ok);
	c->npe = 0;
	if (ok)
		e->index = index;
}

int plan_commit(cycle_t *c, uint64_t *index, flt_error_t *cerr)
{
	coord_engine_t *e = c->e;
	waiter_t w = { .c = c, .done = false };
	flt_mutex_init(&w.mtx, COORD_LOCK_PLAN_COMMIT, "plan commit");
	pthread_cond_init(&w.cond, NULL);
	coord_writer_submit(e->o.writer, plan_apply, plan_done, &w);
	flt_mutex_lock(&w.mtx);
	while (!w.done)
		flt_cond_wait(&w.cond, &w.mtx);
	flt_mutex_unlock(&w.mtx);
	flt_mutex_destroy(&w.mtx);
	pthread_cond_destroy(&w.cond);
	bool ok = w.rc == 0;
	*index = w.index;
	*cerr = w.err;
	if (!ok)
		flt_error("plan not stored, retrying: %s", w.err.msg);
	flt_mutex_lock(&e->view_mtx);
	finish_plan(c, ok, w.index);
	flt_mutex_unlock(&e->view_mtx);
	return w.rc;
}
