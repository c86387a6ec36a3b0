/*
 * Deployments (see engine-internal.h): one rolls a job version out over
 * the job's allocations. Created with the version, it counts what is placed
 * and healthy, waits for canaries and their promotion, succeeds (marking
 * the version stable) or fails, and on failure may revert the job to its
 * last stable version.
 */
#include <errno.h>
#include <stdio.h>

#include "engine-internal.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"

/* ---- the deployment lifecycle ------------------------------------------- */

#define R FLT_FSM_REFUSE
#define I FLT_FSM_IGNORE

static const char *const deploy_events[COORD_DEPLOY_NEVENTS] = {
	[COORD_DEPLOY_START] = "start",     [COORD_DEPLOY_PAUSE] = "pause",
	[COORD_DEPLOY_RESUME] = "resume",   [COORD_DEPLOY_PROMOTE] = "promote",
	[COORD_DEPLOY_SUCCEED] = "succeed", [COORD_DEPLOY_FAIL] = "fail",
	[COORD_DEPLOY_CANCEL] = "cancel",
};

/* Rows: DeploymentStatus; columns: the events above. */
#define RUN DS(RUNNING)
#define PAU DS(PAUSED)
#define SUC DS(SUCCESSFUL)
#define FAI DS(FAILED)
#define CAN DS(CANCELLED)
/* clang-format off */
static const signed char deploy_next_tab[6 * COORD_DEPLOY_NEVENTS] = {
/*                  start  pause  resume promote succeed fail   cancel */
/* none       */    RUN,   R,     R,     R,      R,      R,     R,
/* running    */    R,     PAU,   R,     RUN,    SUC,    FAI,   CAN,
/* paused     */    R,     R,     RUN,   R,      R,      FAI,   CAN,
/* successful */    R,     R,     R,     R,      R,      R,     I,
/* failed     */    R,     R,     R,     R,      R,      R,     I,
/* cancelled  */    R,     R,     R,     R,      R,      R,     I,
};
/* clang-format on */
#undef RUN
#undef PAU
#undef SUC
#undef FAI
#undef CAN

const flt_fsm_t coord_deploy_fsm = {
	.name = "deployment",
	.doc = "A deployment rolls one version of a service job out over its "
	       "allocations: it starts with the version, places canaries "
	       "first when the update policy asks for them and waits for their "
	       "promotion, succeeds once every allocation of the version is "
	       "healthy (the version becomes stable), and fails on an "
	       "unhealthy allocation, at its progress deadline, or by an "
	       "operator (reverting the job to its last stable version with "
	       "`auto_revert`). A newer version of the job, or the job "
	       "stopped, cancels it. While an operator has it paused it places "
	       "nothing new and neither promotes nor advances; its progress "
	       "deadline is extended by the time it spent paused.",
	.states = &flotilla__deployment_status__descriptor,
	.n_states = 6,
	.events = deploy_events,
	.n_events = COORD_DEPLOY_NEVENTS,
	.next = deploy_next_tab,
};

#undef R
#undef I

int deploy_step(cycle_t *c, edep_t *ed, enum coord_deploy_event ev,
		flt_error_t *err)
{
	const Flotilla__Deployment *d = dcur(ed);
	int state = (int)d->status;
	char id[9];
	snprintf(id, sizeof(id), "%.8s", d->id);
	int rc = flt_fsm_step(&coord_deploy_fsm, id, &state, (int)ev, err);
	if (rc == 1)
		dwc(c, ed)->status = (Flotilla__DeploymentStatus)state;
	return rc;
}

const Flotilla__DeploymentGroup *deploy_group(const Flotilla__Deployment *d,
					      const char *name)
{
	for (size_t i = 0; d && i < d->n_groups; i++)
		if (is(d->groups[i]->group, name))
			return d->groups[i];
	return NULL;
}

int deploy_fail(cycle_t *c, ejob_t *ej, edep_t *ed, const char *why,
		flt_error_t *err)
{
	int rc = deploy_step(c, ed, COORD_DEPLOY_FAIL, err);
	if (rc <= 0)
		return rc;
	Flotilla__Deployment *d = dwc(c, ed);
	flt_pb_set_str(&d->status_description, why);
	d->modify_ms = c->now;
	flt_warn("deployment failed deployment=%s job=%s version=%llu "
		 "reason=\"%s\"",
		 d->id, d->job, (unsigned long long)d->job_version, why);
	if (!d->auto_revert)
		return 0;
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
		flt_pb_set_str(&d->status_description, msg);
		return 0;
	}
	d->reverted_to = stable->version;
	char msg[600];
	snprintf(msg, sizeof(msg), "%s; rolling back to version %llu", why,
		 (unsigned long long)stable->version);
	flt_pb_set_str(&d->status_description, msg);

	Flotilla__JobRecord *w = jwc(c, ej);
	pb_free(w->job);
	w->job = flt_pb_dup(&stable->job->base);
	w->version++;
	w->stable = false;
	w->submitted_ms = c->now;
	snprintf(msg, sizeof(msg),
		 "reverted to version %llu: deployment %.8s "
		 "failed",
		 (unsigned long long)stable->version, d->id);
	flt_pb_set_str(&w->description, msg);
	pb_free(ej->new_version);
	ej->new_version = flt_pb_dup(&w->base);
	flt_warn("job reverted job=%s version=%llu to=%llu", ej->name,
		 (unsigned long long)w->version,
		 (unsigned long long)stable->version);
	deploy_start(c, ej, true);
	mark_dirty(c, ej, "deployment-revert", NULL);
	return 0;
}

void deploy_start(cycle_t *c, ejob_t *ej, bool revert)
{
	const Flotilla__JobRecord *rec = jcur(ej);
	const Flotilla__Job *job = rec->job;
	for (size_t i = 0; i < ej->ndeps; i++) {
		if (!dcur(ej->deps[i]) ||
		    deploy_step(c, ej->deps[i], COORD_DEPLOY_CANCEL, NULL) < 1)
			continue;
		Flotilla__Deployment *w = dwc(c, ej->deps[i]);
		flt_pb_set_str(&w->status_description,
			       "cancelled by a newer version of the job");
		w->modify_ms = c->now;
	}
	if (!is(job->type, "service"))
		return;
	const Flotilla__UpdatePolicy *u = job->update;
	Flotilla__Deployment *d = flt_xmalloc(sizeof(*d));
	flotilla__deployment__init(d);
	char id[37];
	flt_uuid_v4(id);
	flt_pb_set_str(&d->id, id);
	flt_pb_set_str(&d->job, ej->name);
	d->job_version = rec->version;
	int state = (int)d->status;
	flt_fsm_step(&coord_deploy_fsm, id, &state, COORD_DEPLOY_START, NULL);
	d->status = (Flotilla__DeploymentStatus)state;
	flt_pb_set_str(&d->status_description, "Deployment is running");
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
		flt_pb_set_str(&dg->group, tg->name);
		dg->desired_total = tg->count;
		/* Canaries only where running allocations must change. */
		bool destructive = false;
		for (size_t i = 0; i < ej->nallocs && !revert; i++) {
			const Flotilla__Alloc *a = acur(ej->allocs[i]);
			if (!a || !is(a->group, tg->name) || !runs(a))
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
	flt_mutex_lock(&c->e->view_mtx);
	ej->deps = flt_xrealloc(ej->deps, (ej->ndeps + 1) * sizeof(*ej->deps));
	ej->deps[ej->ndeps++] = ed;
	flt_mutex_unlock(&c->e->view_mtx);
	plan_add(c, PE_DEP, ed);
	flt_info("deployment started deployment=%s job=%s version=%llu", d->id,
		 d->job, (unsigned long long)d->job_version);
}

void deploy_health(cycle_t *c, ejob_t *ej, edep_t *ed)
{
	const Flotilla__Deployment *d = dcur(ed);
	const Flotilla__UpdatePolicy *u = jcur(ej)->job->update;
	int64_t min_healthy = u ? u->min_healthy_time_ms : 10000;
	int64_t deadline = u ? u->healthy_deadline_ms : 300000;
	for (size_t i = 0; i < ej->nallocs; i++) {
		ealloc_t *ea = ej->allocs[i];
		const Flotilla__Alloc *a = acur(ea);
		if (!a || !in_dep(a, d) || a->health != AH(UNSET))
			continue;
		Flotilla__AllocHealth verdict = AH(UNSET);
		if (terminal(a->client_status))
			verdict = AH(UNHEALTHY);
		else if (!runs(a))
			continue;
		else if (a->healthy_since_ms &&
			 c->now - a->healthy_since_ms >= min_healthy)
			verdict = AH(HEALTHY);
		else if (c->now - a->create_ms >= deadline)
			verdict = AH(UNHEALTHY);
		if (verdict == AH(UNSET)) {
			wake_at(ej, a->healthy_since_ms
					    ? a->healthy_since_ms + min_healthy
					    : a->create_ms + deadline);
			continue;
		}
		Flotilla__Alloc *w = awc(c, ea);
		w->health = verdict;
		w->modify_ms = c->now;
		if (verdict == AH(UNHEALTHY) && !w->client_message[0])
			flt_pb_set_str(
				&w->client_message,
				!terminal(a->client_status)
					? "not healthy within the healthy "
					  "deadline"
					: "ended before it was healthy");
		flt_info("allocation %s alloc=%s job=%s deployment=%s",
			 flt_pb_enum_name(&flotilla__alloc_health__descriptor,
					  verdict),
			 w->id, w->job, d->id);
		if (verdict == AH(HEALTHY)) {
			/* Progress: the deadline starts again, from the pause
			 * when paused (its clock does not run meanwhile). */
			Flotilla__Deployment *dw = dwc(c, ed);
			int64_t from = dw->status == DS(PAUSED) ? dw->paused_ms
								: c->now;
			dw->progress_by_ms =
				from + (u ? u->progress_deadline_ms : 600000);
		}
	}
}

/* What one group of a deployment has, over the job's allocations. */
typedef struct tally {
	uint32_t placed, healthy, unhealthy, chealthy;
	uint32_t live_new_healthy, live_other;
	size_t ncan;
	char **can; /* the canaries' ids, borrowed */
} tally_t;

static void tally_group(const ejob_t *ej, const Flotilla__Deployment *d,
			const char *group, tally_t *t)
{
	*t = (tally_t){ .can = flt_xcalloc(ej->nallocs + 1, sizeof(char *)) };
	for (size_t i = 0; i < ej->nallocs; i++) {
		const Flotilla__Alloc *a = acur(ej->allocs[i]);
		if (!a || !is(a->group, group))
			continue;
		bool live = runs(a);
		if (!in_dep(a, d)) {
			t->live_other += live;
			continue;
		}
		t->placed++;
		t->healthy += a->health == AH(HEALTHY);
		t->unhealthy += a->health == AH(UNHEALTHY);
		if (a->canary) {
			t->can[t->ncan++] = a->id;
			t->chealthy += a->health == AH(HEALTHY);
		}
		t->live_new_healthy += live && a->health == AH(HEALTHY);
	}
}

/* Records the tally in group gi of the deployment when it changed. */
static void store_tally(cycle_t *c, edep_t *ed,
			const Flotilla__DeploymentGroup *dg, size_t gi,
			const tally_t *t)
{
	if (t->placed == dg->placed && t->healthy == dg->healthy &&
	    t->unhealthy == dg->unhealthy && t->ncan == dg->n_canaries)
		return;
	Flotilla__Deployment *w = dwc(c, ed);
	Flotilla__DeploymentGroup *wg = w->groups[gi];
	wg->placed = t->placed;
	wg->healthy = t->healthy;
	wg->unhealthy = t->unhealthy;
	for (size_t k = 0; k < wg->n_canaries; k++)
		free(wg->canaries[k]);
	free(wg->canaries);
	wg->canaries = flt_xcalloc(t->ncan + 1, sizeof(char *));
	for (size_t k = 0; k < t->ncan; k++)
		wg->canaries[k] = flt_xstrdup(t->can[k]);
	wg->n_canaries = t->ncan;
	w->modify_ms = c->now;
}

void deploy_progress(cycle_t *c, ejob_t *ej, edep_t *ed)
{
	const Flotilla__Deployment *d = dcur(ed);
	const Flotilla__Job *job = jcur(ej)->job;
	bool running = d->status == DS(RUNNING);
	if (!running && d->status != DS(PAUSED))
		return;
	bool done = true, failed = false, waiting_promotion = false;
	for (size_t gi = 0; gi < d->n_groups; gi++) {
		const Flotilla__DeploymentGroup *dg = d->groups[gi];
		tally_t t;
		tally_group(ej, d, dg->group, &t);
		store_tally(c, ed, dg, gi, &t);
		free(t.can);
		/* Paused: the counts are kept up to date, nothing advances. */
		if (!running)
			continue;
		if (t.unhealthy)
			failed = true;
		if (dg->desired_canaries && !dg->promoted) {
			done = false;
			if (t.chealthy >= dg->desired_canaries) {
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
		if (t.live_new_healthy < want || t.live_other)
			done = false;
	}
	if (!running)
		return;
	d = dcur(ed);
	if (failed) {
		deploy_fail(c, ej, ed, "Failed due to unhealthy allocations",
			    NULL);
		return;
	}
	if (c->now >= d->progress_by_ms && !waiting_promotion) {
		deploy_fail(c, ej, ed, "Failed due to progress deadline", NULL);
		return;
	}
	if (done && deploy_step(c, ed, COORD_DEPLOY_SUCCEED, NULL) == 1) {
		Flotilla__Deployment *w = dwc(c, ed);
		flt_pb_set_str(&w->status_description,
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
		flt_pb_set_str(&w->status_description, desc);
	}
	if (!waiting_promotion)
		wake_at(ej, d->progress_by_ms);
}

edep_t *deploy_find(coord_engine_t *e, const char *q, ejob_t **job,
		    flt_error_t *err)
{
	ejob_t *ej = job_find(e, q);
	edep_t *ld = ej ? latest_committed_dep(ej) : NULL;
	if (ld) {
		*job = ej;
		return ld;
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

int deploy_promote(cycle_t *c, ejob_t *ej, edep_t *ed, flt_error_t *err)
{
	int rc = deploy_step(c, ed, COORD_DEPLOY_PROMOTE, err);
	if (rc < 0)
		return rc;
	const Flotilla__Deployment *d = dcur(ed);
	bool any = false;
	for (size_t g = 0; g < d->n_groups; g++) {
		const Flotilla__DeploymentGroup *dg = d->groups[g];
		if (!dg->desired_canaries || dg->promoted)
			continue;
		uint32_t healthy = 0;
		for (size_t i = 0; i < ej->nallocs; i++) {
			const Flotilla__Alloc *a = acur(ej->allocs[i]);
			healthy += a && in_dep(a, d) && a->canary &&
				   a->health == AH(HEALTHY);
		}
		if (healthy < dg->desired_canaries)
			return flt_err(err, FLT_ECONFLICT,
				       "deployment %.8s: group %s has %u of "
				       "%u canaries healthy; promote once "
				       "they are",
				       d->id, dg->group, healthy,
				       dg->desired_canaries);
		any = true;
	}
	if (!any)
		return flt_err(err, FLT_ECONFLICT,
			       "deployment %.8s has no canaries "
			       "waiting for promotion",
			       d->id);
	Flotilla__Deployment *w = dwc(c, ed);
	for (size_t g = 0; g < w->n_groups; g++)
		w->groups[g]->promoted = true;
	w->modify_ms = c->now;
	flt_info("deployment promoted deployment=%s job=%s", w->id, w->job);
	mark_dirty(c, ej, "deployment-promote", NULL);
	return 0;
}

int deploy_pause(cycle_t *c, ejob_t *ej, edep_t *ed, flt_error_t *err)
{
	(void)ej;
	int rc = deploy_step(c, ed, COORD_DEPLOY_PAUSE, err);
	if (rc < 0)
		return rc;
	Flotilla__Deployment *w = dwc(c, ed);
	w->paused_ms = c->now;
	w->modify_ms = c->now;
	flt_pb_set_str(&w->status_description,
		       "Deployment is paused by an operator");
	flt_info("deployment paused deployment=%s job=%s", w->id, w->job);
	return 0;
}

int deploy_resume(cycle_t *c, ejob_t *ej, edep_t *ed, flt_error_t *err)
{
	int rc = deploy_step(c, ed, COORD_DEPLOY_RESUME, err);
	if (rc < 0)
		return rc;
	Flotilla__Deployment *w = dwc(c, ed);
	/* The time paused does not count against the progress deadline. */
	if (w->paused_ms && c->now > w->paused_ms)
		w->progress_by_ms += c->now - w->paused_ms;
	w->paused_ms = 0;
	w->modify_ms = c->now;
	flt_pb_set_str(&w->status_description, "Deployment is running");
	flt_info("deployment resumed deployment=%s job=%s progress_by_ms=%lld",
		 w->id, w->job, (long long)w->progress_by_ms);
	mark_dirty(c, ej, "deployment-resume", NULL);
	return 0;
}
