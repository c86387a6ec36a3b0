/*
 * The operator methods on jobs, allocations and deployments. Changes are
 * ops queued for the engine's next cycle, answered once its plan is
 * committed; reads copy the committed state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine-internal.h"
#include "flotilla/job.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"
#include "flotilla/privilege.h"
#include "flotilla/util.h"

/* ---- namespaces ----------------------------------------------------------- */

const char *job_namespace(const Flotilla__Job *job)
{
	return job && *job->namespace_ ? job->namespace_
				       : FLT_NAMESPACE_DEFAULT;
}

/* The namespace an op acts in: its request's ("default" for a direct
 * call, which acts for the coordinator itself). */
static const char *op_namespace(const eop_t *op)
{
	return op->r ? coord_call_namespace(op->r) : NULL;
}

/* Readers: whether a committed job is seen by a call in namespace ns
 * (NULL: every one). */
static bool job_in(const ejob_t *ej, const char *ns)
{
	return !ns || (ej->rec && strcmp(job_namespace(ej->rec->job), ns) == 0);
}

/* ---- changes, run inside the cycle ---------------------------------------- */

static void run_register(cycle_t *c, eop_t *op)
{
	coord_engine_t *e = c->e;
	ejob_t *ej = job_find(e, op->job->name);
	const Flotilla__JobRecord *cur = ej ? jcur(ej) : NULL;
	if (cur && strcmp(job_namespace(cur->job), job_namespace(op->job))) {
		/* Not which one: that namespace may be none of theirs. */
		op->rc = flt_err(&op->err, FLT_ECONFLICT,
				 "job %s: the name is taken in another "
				 "namespace (job names are unique across the "
				 "fleet)",
				 op->job->name);
		return;
	}
	if (ej && ej->purging) {
		op->rc = flt_err(&op->err, FLT_ECONFLICT,
				 "job %s: being purged; submit it again once "
				 "that is done",
				 op->job->name);
		return;
	}
	if (cur && !cur->stopped &&
	    flt_pb_equal(&cur->job->base, &op->job->base)) {
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
	w->job = flt_pb_dup(&op->job->base);
	w->version++;
	w->stopped = false;
	w->stopped_ms = 0;
	w->stable = false;
	w->submitted_ms = c->now;
	flt_pb_set_str(&w->description, "submitted");
	pb_free(ej->new_version);
	ej->new_version = flt_pb_dup(&w->base);
	op->ej = ej;
	op->resp.job_version = w->version;
	flt_info("job registered job=%s version=%llu type=%s", ej->name,
		 (unsigned long long)w->version, w->job->type);
	deploy_start(c, ej, false);
	edep_t *ld = latest_dep(ej);
	if (ld && ld->wc && !ld->d)
		op->ed = ld;
	mark_dirty(c, ej, "job-register", NULL);
}

static void run_stop(cycle_t *c, eop_t *op)
{
	ejob_t *ej = job_find(c->e, op->name);
	const char *ns = op_namespace(op);
	if (!ej || !jcur(ej) ||
	    (ns && strcmp(job_namespace(jcur(ej)->job), ns) != 0)) {
		op->rc = flt_err(&op->err, FLT_ENOTFOUND,
				 "job %s: no such job%s%s", op->name,
				 ns ? " in namespace " : "", ns ? ns : "");
		return;
	}
	Flotilla__JobRecord *w = jwc(c, ej);
	if (!w->stopped)
		w->stopped_ms = c->now;
	w->stopped = true;
	flt_pb_set_str(&w->description, "stopped");
	op->ej = ej;
	op->resp.job_version = w->version;
	mark_dirty(c, ej, "job-stop", NULL);
}

/* A purge: the job goes at the end of the cycle (gc.c), once stopped. */
static void run_purge(cycle_t *c, eop_t *op)
{
	ejob_t *ej = job_find(c->e, op->name);
	const char *ns = op_namespace(op);
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

static void run_gc(cycle_t *c, eop_t *op)
{
	(void)op;
	c->gc_force = true;
}

static bool deployment_op(enum op_kind kind)
{
	return kind == OP_PROMOTE || kind == OP_FAIL || kind == OP_PAUSE ||
	       kind == OP_RESUME;
}

/* Promote, fail, pause, resume: what the deployment's table refuses is
 * answered with its message (ERROR_CONFLICT) and changes nothing. */
static void run_deployment(cycle_t *c, eop_t *op)
{
	ejob_t *ej;
	edep_t *ed = deploy_find(c->e, op->name, &ej, &op->err);
	const char *ns = op_namespace(op);
	if (ed && ns && strcmp(job_namespace(jcur(ej)->job), ns) != 0) {
		ed = NULL;
		flt_err(&op->err, FLT_ENOTFOUND,
			"deployment %s: none in namespace %s", op->name, ns);
	}
	if (!ed) {
		op->rc = op->err.code;
		return;
	}
	op->ed = ed;
	switch (op->kind) {
	case OP_FAIL:
		op->rc = deploy_fail(c, ej, ed,
				     "Deployment marked as failed by an "
				     "operator",
				     &op->err);
		if (op->rc == 0)
			mark_dirty(c, ej, "deployment-fail", NULL);
		return;
	case OP_PROMOTE: op->rc = deploy_promote(c, ej, ed, &op->err); return;
	case OP_PAUSE: op->rc = deploy_pause(c, ej, ed, &op->err); return;
	case OP_RESUME: op->rc = deploy_resume(c, ej, ed, &op->err); return;
	default: return;
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
	op->gc.index = op->resp.index;
	bool gc = op->kind == OP_PURGE || op->kind == OP_GC;
	if (op->r) {
		if (op->rc < 0) {
			flt_request_fail(op->r, op->rc, "%s", op->err.msg);
		} else if (gc) {
			flt_request_reply(op->r, &op->gc.base);
		} else if (deployment_op(op->kind)) {
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
	/* A direct caller reads copies: the messages change with the next
	 * cycle, which may run before it looks. */
	if (op->rc == 0 && deployment_op(op->kind))
		op->dep_out = flt_pb_dup(&op->ed->d->base);
	else if (op->rc == 0 && !gc)
		op->resp_out = flt_pb_dup(&op->resp.base);
	op->done = true; /* the direct caller frees it */
}

/* A new op of kind, answered by reply_op. */
static eop_t *op_new(enum op_kind kind)
{
	eop_t *op = flt_xcalloc(1, sizeof(*op));
	op->kind = kind;
	switch (kind) {
	case OP_REGISTER: op->run = run_register; break;
	case OP_STOP: op->run = run_stop; break;
	case OP_PROMOTE:
	case OP_FAIL:
	case OP_PAUSE:
	case OP_RESUME: op->run = run_deployment; break;
	case OP_PURGE: op->run = run_purge; break;
	case OP_GC: op->run = run_gc; break;
	}
	op->reply = reply_op;
	flotilla__job_register_response__init(&op->resp);
	flotilla__gc_response__init(&op->gc);
	return op;
}

/* ---- direct calls --------------------------------------------------------- */

int coord_engine_register(coord_engine_t *e, const Flotilla__Job *job,
			  Flotilla__JobRegisterResponse **out, flt_error_t *err)
{
	eop_t *op = op_new(OP_REGISTER);
	op->job = flt_pb_dup(&job->base);
	engine_call(e, op);
	int rc = op->rc;
	if (rc < 0)
		*err = op->err;
	else
		*out = op->resp_out;
	pb_free(op->job);
	free(op);
	return rc;
}

int coord_engine_deployment_act(coord_engine_t *e, Flotilla__Method m,
				const char *id, Flotilla__Deployment **out,
				flt_error_t *err)
{
	enum op_kind kind;
	switch (m) {
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_PROMOTE:
		kind = OP_PROMOTE;
		break;
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_FAIL: kind = OP_FAIL; break;
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_PAUSE: kind = OP_PAUSE; break;
	case FLOTILLA__METHOD__METHOD_DEPLOYMENT_RESUME:
		kind = OP_RESUME;
		break;
	default:
		return flt_err(err, FLT_EMETHOD, "%s: not a deployment change",
			       flt_method_name(m));
	}
	eop_t *op = op_new(kind);
	op->name = flt_xstrdup(id);
	engine_call(e, op);
	int rc = op->rc;
	if (rc < 0)
		*err = op->err;
	else
		*out = op->dep_out;
	free(op->name);
	free(op);
	return rc;
}

int coord_engine_stop_job(coord_engine_t *e, const char *name, flt_error_t *err)
{
	eop_t *op = op_new(OP_STOP);
	op->name = flt_xstrdup(name);
	engine_call(e, op);
	int rc = op->rc;
	if (rc < 0)
		*err = op->err;
	pb_free(op->resp_out);
	free(op->name);
	free(op);
	return rc;
}

int coord_engine_gc(coord_engine_t *e, const char *name,
		    Flotilla__GcResponse *out, flt_error_t *err)
{
	eop_t *op = op_new(name ? OP_PURGE : OP_GC);
	op->name = name ? flt_xstrdup(name) : NULL;
	engine_call(e, op);
	int rc = op->rc;
	if (rc < 0)
		*err = op->err;
	else
		*out = op->gc;
	free(op->name);
	free(op);
	return rc;
}

bool coord_engine_uses_package(coord_engine_t *e, const char *name, char *who,
			       size_t len)
{
	bool found = false;
	flt_mutex_lock(&e->view_mtx);
	for (size_t j = 0; j < e->njobs && !found; j++) {
		const Flotilla__JobRecord *r = e->jobs[j]->rec;
		if (!r || r->stopped)
			continue;
		for (size_t g = 0; g < r->job->n_groups && !found; g++) {
			const Flotilla__TaskGroup *tg = r->job->groups[g];
			for (size_t t = 0; t < tg->n_tasks && !found; t++)
				for (size_t u = 0; u < tg->tasks[t]->n_uses;
				     u++)
					if (is(tg->tasks[t]->uses[u], name))
						found = true;
		}
		if (found)
			snprintf(who, len, "%s", r->job->name);
	}
	flt_mutex_unlock(&e->view_mtx);
	return found;
}

void coord_engine_counts(coord_engine_t *e, size_t *jobs, size_t *allocs)
{
	flt_mutex_lock(&e->view_mtx);
	*jobs = e->njobs;
	*allocs = e->nallocs;
	flt_mutex_unlock(&e->view_mtx);
}

/* ---- operator reads ---------------------------------------------------------- */

/* Readers hold view_mtx and look at committed messages only (a, rec, d,
 * versions, evals): never at a cycle's working copies. */

static void summarize(const ejob_t *ej, Flotilla__JobSummary *s)
{
	const Flotilla__JobRecord *r = ej->rec;
	flotilla__job_summary__init(s);
	s->name = (char *)r->job->name;
	s->namespace_ = (char *)job_namespace(r->job);
	s->type = (char *)r->job->type;
	s->version = r->version;
	s->submitted_ms = r->submitted_ms;
	bool system = is(r->job->type, "system");
	uint32_t live = 0, complete = 0;
	for (size_t i = 0; i < ej->nallocs; i++) {
		const Flotilla__Alloc *a = ej->allocs[i]->a;
		if (!a || !runs(a))
			continue;
		live++;
		switch (a->client_status) {
		case AS(RUNNING):
			s->running++;
			s->healthy += a->healthy_since_ms != 0;
			break;
		case AS(PENDING): s->pending++; break;
		case AS(FAILED): s->failed++; break;
		case AS(COMPLETE): complete++; break;
		default: break;
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
	const edep_t *ld = latest_committed_dep(ej);
	if (ld) {
		s->deployment_id = ld->d->id;
		s->deployment_status = ld->d->status;
	}
}

static ealloc_t *alloc_lookup(coord_engine_t *e, const char *q,
			      flt_error_t *err)
{
	ealloc_t *ea = flt_map_get(&e->alloc_map, q);
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
	Flotilla__Alloc *a = flt_pb_dup(&ea->a->base);
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
	bool la = runs(a), lb = runs(b);
	if (la != lb)
		return la ? -1 : 1;
	if (a->index != b->index && la)
		return a->index < b->index ? -1 : 1;
	return a->create_ms > b->create_ms ? -1 : a->create_ms < b->create_ms;
}

static int job_get_locked(coord_engine_t *e, const char *name, const char *ns,
			  Flotilla__JobGetResponse **out, flt_error_t *err)
{
	ejob_t *ej = job_find(e, name);
	if (!ej || !ej->rec || !job_in(ej, ns))
		return flt_err(err, FLT_ENOTFOUND, "job %s: no such job%s%s",
			       name, ns ? " in namespace " : "", ns ? ns : "");
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
	const edep_t *ld = latest_committed_dep(ej);
	r.deployment = ld ? ld->d : NULL;
	r.evals = ej->evals;
	r.n_evals = ej->nevals;
	*out = flt_pb_dup(&r.base);
	for (size_t i = 0; i < r.n_allocs; i++)
		pb_free(r.allocs[i]);
	free(r.allocs);
	return 0;
}

int coord_engine_job(coord_engine_t *e, const char *name,
		     Flotilla__JobGetResponse **out, flt_error_t *err)
{
	flt_mutex_lock(&e->view_mtx);
	int rc = job_get_locked(e, name, NULL, out, err);
	flt_mutex_unlock(&e->view_mtx);
	return rc;
}

/* ---- JobPlan: a dry run ------------------------------------------------------- */

/* A request's job, checked as on submission (as the CLI checks a file:
 * never trust a client); fails r and returns -1 when it is missing or
 * invalid. */
/*
 * What the job asks that weakens the sandbox must be allowed by some node
 * the coordinator knows (ready or not): else it could never run, and
 * saying so names the field and the agent flag it needs. Never-granted
 * requests were refused by flt_job_check already. A fleet without any
 * node yet refuses nothing here: the job waits for nodes, and the
 * scheduler leaves it unplaced, saying why, until one allows it.
 */
/*
 * What weakens the sandbox needs, besides an agent that allows it, the
 * submitter's `privileged` permission in the job's namespace: the first
 * such field is named in the refusal.
 */
static int check_privileged(flt_request_t *r, const Flotilla__Job *job,
			    const char *ns)
{
	cleanup_free flt_priv_t *v = NULL;
	size_t n = 0;
	flt_job_privileges(job, &v, &n);
	if (!n || coord_call_may(r, COORD_PERM_NS_PRIVILEGED, ns))
		return 0;
	char what[FLT_PRIV_PATH_MAX + FLT_PRIV_VALUE_MAX + 64];
	if (v[0].value[0])
		snprintf(what, sizeof(what), "job %s: %s (%s %s)", job->name,
			 v[0].path, flt_priv_kind_name(v[0].kind), v[0].value);
	else
		snprintf(what, sizeof(what), "job %s: %s (%s)", job->name,
			 v[0].path, flt_priv_kind_name(v[0].kind));
	coord_call_deny(r, COORD_PERM_NS_PRIVILEGED, ns, what);
	return -1;
}

static int check_allowed(coord_engine_t *e, flt_request_t *r,
			 const Flotilla__Job *job)
{
	cleanup_free flt_priv_t *v = NULL;
	size_t n = 0;
	flt_error_t err;
	char pre[32], why[FLT_PRIV_PATH_MAX + 2 * FLT_PRIV_VALUE_MAX];
	int rc = 0;

	flt_job_privileges(job, &v, &n);
	if (!n)
		return 0;
	sched_fleet_t *f = e->o.fleet(e->o.ctx, &err);
	if (!f) {
		flt_request_fail(r, err.code, "%s", err.msg);
		return -1;
	}
	size_t nodes = sched_fleet_size(f);
	for (size_t g = 0; g < job->n_groups && nodes && rc == 0; g++) {
		cleanup_free flt_priv_t *gv = NULL;
		size_t gn = 0;
		bool nowhere;
		snprintf(pre, sizeof(pre), "groups[%zu]", g);
		flt_group_privileges(job->groups[g], pre, &gv, &gn);
		long k = sched_fleet_privileges_check(f, gv, gn, &nowhere);
		if (k < 0)
			continue;
		flt_priv_describe(&gv[k], why, sizeof(why));
		if (nowhere)
			flt_request_fail(r, FLT_EPROTO,
					 "job %s: %s; none of the %zu nodes "
					 "allows it",
					 job->name, why, nodes);
		else
			flt_request_fail(r, FLT_EPROTO,
					 "job %s: %s; some nodes allow each "
					 "of what groups[%zu] asks, none all "
					 "of it",
					 job->name, why, g);
		rc = -1;
	}
	sched_fleet_free(f);
	return rc;
}

static int check_job(coord_engine_t *e, flt_request_t *r, Flotilla__Job *job)
{
	flt_error_t err;
	if (!job) {
		flt_request_fail(r, FLT_EPROTO, "job: required");
		return -1;
	}
	if (flt_job_check(job, &err) < 0) {
		flt_request_fail(r, FLT_EPROTO, "job %s: %s", job->name,
				 err.msg);
		return -1;
	}
	/* The permission was checked in the call's namespace: the job must
	 * live there. "default" is stored as no namespace. */
	const char *ns = coord_call_namespace(r);
	if (*job->namespace_ && strcmp(job->namespace_, ns) != 0) {
		flt_request_fail(r, FLT_EPROTO,
				 "job %s: namespace: the job is in %s but the "
				 "call is in %s (flotilla --namespace %s)",
				 job->name, job->namespace_, ns,
				 job->namespace_);
		return -1;
	}
	flt_pb_set_str(&job->namespace_,
		       strcmp(ns, FLT_NAMESPACE_DEFAULT) == 0 ? "" : ns);
	if (check_privileged(r, job, ns) < 0)
		return -1;
	return check_allowed(e, r, job);
}

/* The job checked as it would be on submission, and the scheduler run
 * against the fleet as it is, without changing anything. */
void coord_jobs_plan(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobPlanRequest *req;
	flt_error_t err;

	if (flt_request_body(r, &flotilla__job_plan_request__descriptor, &req) <
	    0)
		return;
	if (check_job(e, r, req->job) < 0) {
		flotilla__job_plan_request__free_unpacked(req, NULL);
		return;
	}
	sched_fleet_t *f = e->o.fleet(e->o.ctx, &err);
	if (!f) {
		flt_request_fail(r, err.code, "%s", err.msg);
		flotilla__job_plan_request__free_unpacked(req, NULL);
		return;
	}

	const Flotilla__Job *job = req->job;
	Flotilla__JobPlanResponse resp = FLOTILLA__JOB_PLAN_RESPONSE__INIT;
	Flotilla__GroupPlan *plans = flt_xcalloc(job->n_groups, sizeof(*plans));
	Flotilla__GroupPlan **pp = flt_xcalloc(job->n_groups, sizeof(*pp));
	char ***names = flt_xcalloc(job->n_groups, sizeof(*names));
	resp.groups = pp;
	resp.nodes_considered = (uint32_t)sched_fleet_size(f);
	int rc = 0;
	for (size_t g = 0; g < job->n_groups && rc == 0; g++) {
		sched_request_t rq = { .job = job,
				       .group = job->groups[g],
				       .count = job->groups[g]->count,
				       .seed = flt_now_mono_ms() };
		sched_result_t res;
		if ((rc = sched_place(f, &rq, &res, &err)) < 0) {
			flt_request_fail(r, rc, "job %s: groups[%zu].%s",
					 job->name, g, err.msg);
			break;
		}
		Flotilla__GroupPlan *gp = &plans[g];
		flotilla__group_plan__init(gp);
		gp->group = job->groups[g]->name;
		gp->wanted = (uint32_t)res.nplaced + res.unplaced;
		gp->unplaced = res.unplaced;
		gp->why = flt_xstrdup(res.why);
		names[g] = flt_xcalloc(res.nplaced + 1, sizeof(char *));
		for (size_t a = 0; a < res.nplaced; a++)
			names[g][a] = (char *)sched_node_id(f, res.placed[a]);
		gp->nodes = names[g];
		gp->n_nodes = res.nplaced;
		pp[resp.n_groups++] = gp;
		sched_result_free(&res);
	}
	if (rc == 0)
		flt_request_reply(r, &resp.base);
	for (size_t g = 0; g < resp.n_groups; g++)
		free(plans[g].why);
	for (size_t g = 0; g < job->n_groups; g++)
		free(names[g]);
	free(names);
	free(pp);
	free(plans);
	sched_fleet_free(f);
	flotilla__job_plan_request__free_unpacked(req, NULL);
}

/* ---- the methods -------------------------------------------------------------- */

/* Replies resp (then frees it), or fails with err when rc < 0. */
static void answer(flt_request_t *r, int rc, const flt_error_t *err,
		   ProtobufCMessage *resp)
{
	if (rc < 0)
		flt_request_fail(r, rc, "%s", err->msg);
	else
		flt_request_reply(r, resp);
	pb_free(resp);
}

/* Queues a change named by a job name or deployment id; the cycle that
 * commits it answers r. */
static void queue_named(coord_engine_t *e, flt_request_t *r, enum op_kind kind,
			const char *field, const char *name)
{
	if (!name[0]) {
		flt_request_fail(r, FLT_EPROTO, "%s: required", field);
		return;
	}
	eop_t *op = op_new(kind);
	op->name = flt_xstrdup(name);
	op->r = r;
	flt_request_defer(r);
	engine_enqueue(e, op);
}

/* A deployment change: the body is a DeploymentGetRequest. */
static void queue_deployment(coord_engine_t *e, flt_request_t *r,
			     enum op_kind kind)
{
	Flotilla__DeploymentGetRequest *req;
	if (flt_request_body(r, &flotilla__deployment_get_request__descriptor,
			     &req) < 0)
		return;
	queue_named(e, r, kind, "id", req->id);
	pb_free(req);
}

void coord_jobs_register(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobRegisterRequest *req;
	if (flt_request_body(r, &flotilla__job_register_request__descriptor,
			     &req) < 0)
		return;
	/* Checked again here: an invalid job changes nothing. */
	if (check_job(e, r, req->job) < 0) {
		pb_free(req);
		return;
	}
	eop_t *op = op_new(OP_REGISTER);
	op->job = steal_ptr(&req->job);
	op->r = r;
	pb_free(req);
	flt_request_defer(r);
	engine_enqueue(e, op);
}

void coord_jobs_stop(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobStopRequest *req;
	if (flt_request_body(r, &flotilla__job_stop_request__descriptor, &req) <
	    0)
		return;
	queue_named(e, r, OP_STOP, "name", req->name);
	pb_free(req);
}

void coord_jobs_purge(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobStopRequest *req;
	if (flt_request_body(r, &flotilla__job_stop_request__descriptor, &req) <
	    0)
		return;
	queue_named(e, r, OP_PURGE, "name", req->name);
	pb_free(req);
}

void coord_system_gc(coord_engine_t *e, flt_request_t *r)
{
	eop_t *op = op_new(OP_GC);
	op->r = r;
	flt_request_defer(r);
	engine_enqueue(e, op);
}

void coord_jobs_get(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobGetRequest *req;
	if (flt_request_body(r, &flotilla__job_get_request__descriptor, &req) <
	    0)
		return;
	flt_error_t err;
	Flotilla__JobGetResponse *g = NULL;
	flt_mutex_lock(&e->view_mtx);
	int rc =
		job_get_locked(e, req->name, coord_call_namespace(r), &g, &err);
	flt_mutex_unlock(&e->view_mtx);
	pb_free(req);
	answer(r, rc, &err, g ? &g->base : NULL);
}

void coord_jobs_history(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobGetRequest *req;
	if (flt_request_body(r, &flotilla__job_get_request__descriptor, &req) <
	    0)
		return;
	flt_error_t err;
	ProtobufCMessage *resp = NULL;
	int rc = 0;
	flt_mutex_lock(&e->view_mtx);
	ejob_t *ej = job_find(e, req->name);
	const char *ns = coord_call_namespace(r);
	if (!ej || !ej->rec || !job_in(ej, ns)) {
		rc = flt_err(&err, FLT_ENOTFOUND,
			     "job %s: no such job in namespace %s", req->name,
			     ns);
	} else {
		Flotilla__JobHistoryResponse h =
			FLOTILLA__JOB_HISTORY_RESPONSE__INIT;
		h.versions =
			flt_xcalloc(ej->nversions + 1, sizeof(*h.versions));
		for (size_t i = ej->nversions; i-- > 0;)
			h.versions[h.n_versions++] = ej->versions[i];
		resp = flt_pb_dup(&h.base);
		free(h.versions);
	}
	flt_mutex_unlock(&e->view_mtx);
	pb_free(req);
	answer(r, rc, &err, resp);
}

void coord_jobs_list(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__JobListResponse l = FLOTILLA__JOB_LIST_RESPONSE__INIT;
	const char *ns = coord_call_namespace(r);
	bool every = strcmp(ns, "*") == 0;
	flt_mutex_lock(&e->view_mtx);
	Flotilla__JobSummary *s = flt_xcalloc(e->njobs + 1, sizeof(*s));
	l.jobs = flt_xcalloc(e->njobs + 1, sizeof(*l.jobs));
	for (size_t j = 0; j < e->njobs; j++) {
		if (!e->jobs[j]->rec)
			continue;
		const char *jns = job_namespace(e->jobs[j]->rec->job);
		if (every ? !coord_call_may(r, COORD_PERM_NS_READ_JOB, jns)
			  : strcmp(jns, ns) != 0)
			continue;
		summarize(e->jobs[j], &s[l.n_jobs]);
		l.jobs[l.n_jobs] = &s[l.n_jobs];
		l.n_jobs++;
	}
	l.index = e->index;
	ProtobufCMessage *resp = flt_pb_dup(&l.base);
	flt_mutex_unlock(&e->view_mtx);
	free(s);
	free(l.jobs);
	answer(r, 0, NULL, resp);
}

void coord_allocs_get(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__AllocGetRequest *req;
	if (flt_request_body(r, &flotilla__alloc_get_request__descriptor,
			     &req) < 0)
		return;
	flt_error_t err;
	ProtobufCMessage *resp = NULL;
	int rc = 0;
	flt_mutex_lock(&e->view_mtx);
	ealloc_t *ea = alloc_lookup(e, req->id, &err);
	const char *ns = coord_call_namespace(r);
	if (ea) {
		const Flotilla__Alloc *a = ea->a;
		ejob_t *ej = a ? job_find(e, a->job) : NULL;
		if (!a || (ej && !job_in(ej, ns))) {
			ea = NULL;
			flt_err(&err, FLT_ENOTFOUND,
				"allocation %s: none in namespace %s", req->id,
				ns);
		}
	}
	if (ea) {
		Flotilla__AllocGetResponse g =
			FLOTILLA__ALLOC_GET_RESPONSE__INIT;
		g.alloc = alloc_view(ea);
		resp = flt_pb_dup(&g.base);
		pb_free(g.alloc);
	} else {
		rc = err.code;
	}
	flt_mutex_unlock(&e->view_mtx);
	pb_free(req);
	answer(r, rc, &err, resp);
}

int coord_allocs_node(coord_engine_t *e, const char *q, const char *ns,
		      char alloc_id[37], char node_id[37], flt_error_t *err)
{
	flt_mutex_lock(&e->view_mtx);
	ealloc_t *ea = alloc_lookup(e, q, err);
	if (ea && ns) {
		ejob_t *ej = ea->a ? job_find(e, ea->a->job) : NULL;
		if (!ea->a || !ej || !job_in(ej, ns)) {
			ea = NULL;
			flt_err(err, FLT_ENOTFOUND,
				"allocation %s: none in namespace %s", q, ns);
		}
	}
	if (ea) {
		snprintf(alloc_id, 37, "%s", ea->a->id);
		snprintf(node_id, 37, "%s", ea->a->node_id);
	}
	flt_mutex_unlock(&e->view_mtx);
	return ea ? 0 : err->code;
}

void coord_deployments_get(coord_engine_t *e, flt_request_t *r)
{
	Flotilla__DeploymentGetRequest *req;
	if (flt_request_body(r, &flotilla__deployment_get_request__descriptor,
			     &req) < 0)
		return;
	flt_error_t err;
	ProtobufCMessage *resp = NULL;
	int rc = 0;
	flt_mutex_lock(&e->view_mtx);
	ejob_t *ej;
	edep_t *ed = deploy_find(e, req->id, &ej, &err);
	const char *ns = coord_call_namespace(r);
	if (ed && !job_in(ej, ns)) {
		ed = NULL;
		flt_err(&err, FLT_ENOTFOUND,
			"deployment %s: none in namespace %s", req->id, ns);
	}
	if (ed) {
		Flotilla__DeploymentGetResponse g =
			FLOTILLA__DEPLOYMENT_GET_RESPONSE__INIT;
		g.deployment = ed->d;
		resp = flt_pb_dup(&g.base);
	} else {
		rc = err.code;
	}
	flt_mutex_unlock(&e->view_mtx);
	pb_free(req);
	answer(r, rc, &err, resp);
}

void coord_deployments_promote(coord_engine_t *e, flt_request_t *r)
{
	queue_deployment(e, r, OP_PROMOTE);
}

void coord_deployments_fail(coord_engine_t *e, flt_request_t *r)
{
	queue_deployment(e, r, OP_FAIL);
}

void coord_deployments_pause(coord_engine_t *e, flt_request_t *r)
{
	queue_deployment(e, r, OP_PAUSE);
}

void coord_deployments_resume(coord_engine_t *e, flt_request_t *r)
{
	queue_deployment(e, r, OP_RESUME);
}
