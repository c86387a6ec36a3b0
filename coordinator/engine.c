/*
 * The engine (see engine.h and engine-internal.h): the thread, the queue of
 * work, loading, and the cycle: operator requests, node events and the
 * agents' reports mark jobs to evaluate; each is reconciled, and the plan is
 * committed in one transaction.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "flotilla/log.h"
#include "flotilla/pb.h"

/* ---- what the agents report ------------------------------------------- */

/*
 * A Sync's report goes to the node's inbox under queue_mtx: compared with
 * the last one the node sent (the common case is the same again, and costs
 * a memcmp), queued when it differs. The cycle takes the inbox and splits
 * each report over the node's allocations. A node whose allocations
 * changed is forgotten (inbox_forget), so that its next report is looked
 * at even if it is the same: an allocation it does not list yet, or any
 * more, is one it has not started, or has finished.
 */
void coord_engine_report(coord_engine_t *e, const char *node_id,
			 Flotilla__TaskStatus *const *tasks, size_t n)
{
	Flotilla__NodeTasks nt = FLOTILLA__NODE_TASKS__INIT;
	nt.n_tasks = n;
	nt.tasks = (Flotilla__TaskStatus **)tasks;
	size_t len = protobuf_c_message_get_packed_size(&nt.base);
	uint8_t *buf = flt_xmalloc(len + 1);
	protobuf_c_message_pack(&nt.base, buf);

	flt_mutex_lock(&e->queue_mtx);
	einbox_t *ib = flt_map_get(&e->inbox_map, node_id);
	if (!ib) {
		ib = flt_xcalloc(1, sizeof(*ib));
		ib->node_id = flt_xstrdup(node_id);
		flt_map_put(&e->inbox_map, ib->node_id, ib);
	}
	if (ib->buf && ib->len == len && memcmp(ib->buf, buf, len) == 0) {
		flt_mutex_unlock(&e->queue_mtx);
		free(buf);
		return;
	}
	free(ib->buf);
	ib->buf = steal_ptr(&buf);
	ib->len = len;
	if (!ib->queued) {
		ib->queued = true;
		ptr_push((void ***)&e->inbox_q, &e->ninbox_q, &e->inbox_q_cap,
			 ib);
		pthread_cond_signal(&e->cond);
	}
	flt_mutex_unlock(&e->queue_mtx);
}

/* The next report of each node is looked at, even if the same. */
static void inbox_forget(coord_engine_t *e, const char *const *nodes, size_t n)
{
	flt_mutex_lock(&e->queue_mtx);
	for (size_t i = 0; i < n; i++) {
		einbox_t *ib = flt_map_get(&e->inbox_map, nodes[i]);
		if (ib && !ib->queued) {
			free(ib->buf);
			ib->buf = NULL;
			ib->len = 0;
		}
	}
	flt_mutex_unlock(&e->queue_mtx);
}

/* A node's report taken from the inbox (a copy). */
typedef struct taken {
	char node_id[37];
	uint8_t *buf;
	size_t len;
} taken_t;

/* Queues ea for take_reports, once. */
static void mark_reported(coord_engine_t *e, ealloc_t *ea)
{
	if (ea->report_new)
		return;
	ea->report_new = true;
	ptr_push((void ***)&e->reported, &e->nreported, &e->reported_cap, ea);
}

/* Splits a node's report over its committed allocations: each keeps the
 * tasks of its own, and is looked at when they changed or it is gone. */
static void split_report(coord_engine_t *e, const taken_t *t)
{
	enode_t *nd = node_get(e, t->node_id, false);
	Flotilla__NodeTasks *all =
		nd ? flotilla__node_tasks__unpack(NULL, t->len, t->buf) : NULL;
	if (!all)
		return;
	Flotilla__TaskStatus **mine =
		flt_xcalloc(all->n_tasks + 1, sizeof(*mine));
	for (size_t i = 0; i < nd->n; i++) {
		ealloc_t *ea = nd->v[i];
		const Flotilla__Alloc *a = ea->a;
		if (!a)
			continue;
		size_t k = 0;
		for (size_t j = 0; j < all->n_tasks; j++)
			if (is(all->tasks[j]->alloc_id, a->id))
				mine[k++] = all->tasks[j];
		if (!k) {
			if (!ea->gone) {
				ea->gone = true;
				mark_reported(e, ea);
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
		flt_mutex_lock(&e->view_mtx);
		free(ea->report);
		ea->report = buf;
		ea->report_len = len;
		flt_mutex_unlock(&e->view_mtx);
		mark_reported(e, ea);
	}
	free(mine);
	pb_free(all);
}

/*
 * What the tasks' states say of the allocation: the event of its lifecycle
 * (-1: none), a message, and whether every task runs and passes its checks.
 */
static int derive(const ealloc_t *ea, const Flotilla__Alloc *a,
		  const Flotilla__TaskGroup *g, char *msg, size_t msglen,
		  bool *healthy)
{
	*healthy = false;
	msg[0] = 0;
	if (terminal(a->client_status))
		return -1;
	if (!runs(a)) {
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
		pb_free(nt);
		return done ? COORD_ALLOC_COMPLETE : -1;
	}
	Flotilla__NodeTasks *nt = report_of(ea);
	if (!nt)
		return -1;
	size_t want = g ? g->n_tasks : nt->n_tasks;
	size_t running = 0, exited_ok = 0, good = 0;
	for (size_t i = 0; i < nt->n_tasks; i++) {
		const Flotilla__TaskStatus *t = nt->tasks[i];
		switch (t->state) {
		case FLOTILLA__TASK_STATE__TASK_STATE_FAILED:
			snprintf(msg, msglen, "task %s failed: %s", t->name,
				 t->message);
			pb_free(nt);
			return COORD_ALLOC_FAIL;
		case FLOTILLA__TASK_STATE__TASK_STATE_EXITED:
			if (t->exit_code != 0 || t->exit_signal) {
				snprintf(msg, msglen,
					 "task %s exited with code %d%s",
					 t->name, t->exit_code,
					 t->exit_signal ? " (signal)" : "");
				pb_free(nt);
				return COORD_ALLOC_FAIL;
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
	int ev = COORD_ALLOC_WAIT;
	if (nt->n_tasks >= want && exited_ok == nt->n_tasks)
		ev = COORD_ALLOC_COMPLETE;
	else if (nt->n_tasks >= want && running + exited_ok == nt->n_tasks)
		ev = COORD_ALLOC_RUN;
	*healthy = nt->n_tasks >= want && good == nt->n_tasks;
	pb_free(nt);
	return ev;
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
		char msg[256];
		bool healthy;
		int ev = derive(ea, a, g, msg, sizeof(msg), &healthy);
		Flotilla__AllocClientStatus status =
			ev < 0 ? a->client_status : alloc_next(a, ev);
		bool hs = a->healthy_since_ms != 0;
		if (status != a->client_status ||
		    (msg[0] && !is(msg, a->client_message)) ||
		    (healthy != hs && runs(a))) {
			Flotilla__Alloc *w = awc(c, ea);
			if (status != w->client_status)
				flt_info(
					"allocation %s alloc=%s job=%s "
					"group=%s[%u] node=%s%s%s",
					flt_pb_enum_name(
						&flotilla__alloc_client_status__descriptor,
						status),
					w->id, w->job, w->group, w->index,
					w->node_name, msg[0] ? " message=" : "",
					msg);
			w->client_status = status;
			if (msg[0])
				flt_pb_set_str(&w->client_message, msg);
			w->modify_ms = c->now;
			if (healthy != hs)
				w->healthy_since_ms = healthy ? c->now : 0;
			mark_dirty(c, ea->job,
				   status == AS(FAILED) ? "alloc-failed"
							: "alloc-update",
				   NULL);
		}
	}
	e->nreported = 0;
}

/* ---- evaluations ----------------------------------------------------------- */

#define R FLT_FSM_REFUSE
#define I FLT_FSM_IGNORE

static const char *const eval_events[COORD_EVAL_NEVENTS] = {
	[COORD_EVAL_CREATE] = "create",
	[COORD_EVAL_COMPLETE] = "complete",
	[COORD_EVAL_FAIL] = "fail",
};

/* Rows: EvalStatus; columns: the events above. */
/* clang-format off */
static const signed char eval_next_tab[4 * COORD_EVAL_NEVENTS] = {
/*                create       complete      fail */
/* unknown  */    ES(PENDING), R,            R,
/* pending  */    R,           ES(COMPLETE), ES(FAILED),
/* complete */    R,           I,            R,
/* failed   */    R,           R,            I,
};
/* clang-format on */

const flt_fsm_t coord_eval_fsm = {
	.name = "evaluation",
	.doc = "An evaluation records why the engine looked at a job (its "
	       "trigger) and the plan it made: placed, stopped and unplaced "
	       "allocations. It is pending while the cycle evaluates the job, "
	       "and is committed with the plan: complete, or failed when no "
	       "plan could be made (the fleet could not be read; the job is "
	       "evaluated again a second later). A job evaluated twice in one "
	       "cycle keeps one evaluation, which ends once.",
	.states = &flotilla__eval_status__descriptor,
	.n_states = 4,
	.events = eval_events,
	.n_events = COORD_EVAL_NEVENTS,
	.next = eval_next_tab,
};

#undef R
#undef I

static void eval_step(Flotilla__Eval *ev, enum coord_eval_event event)
{
	int state = (int)ev->status;
	if (flt_fsm_step(&coord_eval_fsm, ev->id, &state, (int)event, NULL) ==
	    1)
		ev->status = (Flotilla__EvalStatus)state;
}

static void new_eval(cycle_t *c, ejob_t *ej)
{
	if (ej->eval)
		return;
	Flotilla__Eval *ev = flt_xmalloc(sizeof(*ev));
	flotilla__eval__init(ev);
	char id[37];
	flt_uuid_v4(id);
	flt_pb_set_str(&ev->id, id);
	flt_pb_set_str(&ev->job, ej->name);
	flt_pb_set_str(&ev->trigger,
		       ej->trigger[0] ? ej->trigger : "job-register");
	eval_step(ev, COORD_EVAL_CREATE);
	flt_pb_set_str(&ev->node_id, ej->trigger_node);
	ev->create_ms = c->now;
	ej->eval = ev;
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
		if (a && runs(a))
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

/* ---- the cycle ---------------------------------------------------------------- */

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
			busy = a && runs(a);
		}
		if (!busy)
			e->o.drained(e->o.ctx, id);
	}
}

/* What a cycle takes from the queue. */
typedef struct intake {
	eop_t *ops;
	nevent_t *events;
	taken_t *reports;
	size_t nreports;
} intake_t;

/*
 * Waits for work, or for the next tick while timers or running deployments
 * need looking at, and takes what is queued. False when the engine stops.
 * The timers are the engine thread's own state: read before the lock.
 */
static bool engine_take(coord_engine_t *e, intake_t *in)
{
	bool timers = false;
	for (size_t j = 0; j < e->njobs && !timers; j++) {
		const edep_t *ld = latest_dep(e->jobs[j]);
		timers = e->jobs[j]->wake_ms ||
			 (ld && ld->d && ld->d->status == DS(RUNNING));
	}
	flt_mutex_lock(&e->queue_mtx);
	bool work = e->ops || e->events || e->ninbox_q || e->force_cycle ||
		    e->stopping;
	if (!work) {
		/* Until the next tick while timers run, else until the next
		 * garbage collection is due. */
		int64_t wait_ms = e->gc_next_ms - flt_now_wall_ms();
		if (timers && wait_ms > (int64_t)e->o.tick_ms)
			wait_ms = e->o.tick_ms;
		if (wait_ms < 1)
			wait_ms = 1;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = ts.tv_nsec + wait_ms % 1000 * 1000000;
		ts.tv_sec += wait_ms / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		flt_cond_timedwait(&e->cond, &e->queue_mtx, &ts);
	}
	if (e->stopping && !e->ops) {
		flt_mutex_unlock(&e->queue_mtx);
		return false;
	}
	e->cycles_started++;
	e->force_cycle = false;
	in->ops = e->ops;
	e->ops = NULL;
	e->ops_tail = &e->ops;
	in->events = e->events;
	e->events = NULL;
	in->nreports = e->ninbox_q;
	in->reports = flt_xcalloc(e->ninbox_q + 1, sizeof(*in->reports));
	for (size_t i = 0; i < e->ninbox_q; i++) {
		einbox_t *ib = e->inbox_q[i];
		taken_t *t = &in->reports[i];
		snprintf(t->node_id, sizeof(t->node_id), "%s", ib->node_id);
		t->buf = flt_xmalloc(ib->len + 1);
		memcpy(t->buf, ib->buf, ib->len);
		t->len = ib->len;
		ib->queued = false;
	}
	e->ninbox_q = 0;
	flt_mutex_unlock(&e->queue_mtx);
	return true;
}

/* Evaluates the dirty jobs, a few passes at most: evaluating one may
 * mark another (a revert) or itself again (a promotion). */
static void evaluate(cycle_t *c)
{
	for (int pass = 0; pass < MAX_PASSES && c->ndirty; pass++) {
		ejob_t **dirty = c->dirty;
		size_t nd = c->ndirty;
		c->dirty = NULL;
		c->ndirty = 0;
		for (size_t i = 0; i < nd; i++) {
			ejob_t *ej = dirty[i];
			ej->dirty = false;
			ej->wake_ms = 0;
			c->placed = c->stopped = c->unplaced = 0;
			c->why[0] = 0;
			bool planned = reconcile(c, ej);
			bool eventful = !is(ej->trigger, "timer") &&
					!is(ej->trigger, "alloc-update");
			if (eventful || c->placed || c->stopped ||
			    c->unplaced) {
				new_eval(c, ej);
				ej->eval->placed += c->placed;
				ej->eval->stopped += c->stopped;
				ej->eval->unplaced += c->unplaced;
				if (c->why[0])
					flt_pb_set_str(&ej->eval->why, c->why);
				if (!planned)
					flt_pb_set_str(
						&ej->eval->status_description,
						"no plan: the fleet could not "
						"be read");
				eval_step(ej->eval,
					  planned ? COORD_EVAL_COMPLETE
						  : COORD_EVAL_FAIL);
				jwc(c, ej);
			}
			ej->trigger[0] = 0;
			ej->trigger_node[0] = 0;
		}
		free(dirty);
	}
	/* Jobs still dirty after the passes wait for the next. */
	for (size_t i = 0; i < c->ndirty; i++) {
		c->dirty[i]->dirty = false;
		wake_at(c->dirty[i], c->now);
	}
	free(c->dirty);
	c->dirty = NULL;
	c->ndirty = 0;
}

/* Tells the nodes whose allocations the commit changed, and looks at
 * their next reports whatever they say. */
static void tell_nodes(cycle_t *c, uint64_t index)
{
	coord_engine_t *e = c->e;
	const char **ids = flt_xcalloc(c->npushed + 1, sizeof(*ids));
	for (size_t i = 0; i < c->npushed; i++) {
		ids[i] = c->pushed[i]->a->node_id;
		e->o.push(e->o.ctx, ids[i], index);
	}
	inbox_forget(e, ids, c->npushed);
	free(ids);
	free(c->pushed);
}

/* Answers the cycle's ops, then marks the cycle done for those who wait:
 * the direct callers (their ops' done) and coord_engine_settle. */
static void answer_ops(coord_engine_t *e, eop_t *ops, bool ok, uint64_t index,
		       const flt_error_t *cerr)
{
	eop_t *direct = NULL;
	for (eop_t *op = ops, *next; op; op = next) {
		next = op->next;
		bool is_direct = !op->r;
		op->reply(e, op, ok, index, ok ? NULL : cerr);
		if (is_direct) {
			op->next = direct;
			direct = op;
		}
	}
	flt_mutex_lock(&e->queue_mtx);
	for (eop_t *op = direct; op; op = op->next)
		op->done = true;
	e->cycles_done++;
	pthread_cond_broadcast(&e->done_cond);
	flt_mutex_unlock(&e->queue_mtx);
}

/* One cycle: the queued work in, the jobs evaluated, the plan committed,
 * the requests answered. The engine thread holds no lock but to publish. */
static void cycle(coord_engine_t *e, intake_t *in)
{
	cycle_t c = { .e = e, .now = flt_now_wall_ms(), .ops = in->ops };
	flotilla__gc_response__init(&c.gc);
	for (eop_t *op = in->ops; op; op = op->next)
		op->run(&c, op);
	for (nevent_t *ev = in->events; ev; ev = ev->next)
		take_event(&c, ev);
	for (size_t i = 0; i < in->nreports; i++) {
		split_report(e, &in->reports[i]);
		free(in->reports[i].buf);
	}
	free(in->reports);
	take_reports(&c);
	for (size_t j = 0; j < e->njobs; j++) {
		ejob_t *ej = e->jobs[j];
		const edep_t *ld = latest_dep(ej);
		if ((ej->wake_ms && ej->wake_ms <= c.now) ||
		    (ld && dcur(ld)->status == DS(RUNNING)))
			mark_dirty(&c, ej, "timer", NULL);
	}
	evaluate(&c);
	gc_cycle(&c);

	bool ok = true;
	uint64_t index = 0;
	flt_error_t cerr = { 0 };
	if (c.npe)
		ok = plan_commit(&c, &index, &cerr) == 0;
	tell_nodes(&c, index);
	check_drains(&c);
	free(c.pe);
	answer_ops(e, in->ops, ok, index, &cerr);
	plan_free_dead(&c);
	while (in->events) {
		nevent_t *n = in->events->next;
		free(in->events);
		in->events = n;
	}
}

static void *engine_main(void *arg)
{
	coord_engine_t *e = arg;
	intake_t in;
	while (engine_take(e, &in))
		cycle(e, &in);
	return NULL;
}

/* ---- loading ---------------------------------------------------------------- */

typedef struct loader {
	coord_engine_t *e;
	int rc;
} loader_t;

/*
 * Records written before the states were enums hold them as strings, in
 * the fields now named legacy_*: an unset enum takes the state the string
 * names, and the string is cleared so that the next write of the record
 * leaves it out. Returns the enum's value.
 */
static int legacy_state(const ProtobufCEnumDescriptor *d, int value,
			char **legacy, const char *what, const char *id)
{
	if (!*legacy || !(*legacy)[0])
		return value;
	int v;
	if (value == 0 && flt_pb_enum_value(d, *legacy, &v) == 0)
		value = v;
	else if (value == 0)
		flt_warn("stored %s %s: unknown state \"%s\"", what, id,
			 *legacy);
	flt_pb_set_str(legacy, "");
	return value;
}

/* The legacy fields are deprecated for every other use: only here are
 * they read. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static void migrate_alloc(Flotilla__Alloc *a)
{
	a->client_status =
		legacy_state(&flotilla__alloc_client_status__descriptor,
			     (int)a->client_status, &a->legacy_client_status,
			     "allocation", a->id);
	a->desired = legacy_state(&flotilla__alloc_desired_status__descriptor,
				  (int)a->desired, &a->legacy_desired,
				  "allocation", a->id);
	a->health = legacy_state(&flotilla__alloc_health__descriptor,
				 (int)a->health, &a->legacy_health,
				 "allocation", a->id);
}

static void migrate_dep(Flotilla__Deployment *d)
{
	d->status = legacy_state(&flotilla__deployment_status__descriptor,
				 (int)d->status, &d->legacy_status,
				 "deployment", d->id);
}

static void migrate_eval(Flotilla__Eval *ev)
{
	ev->status = legacy_state(&flotilla__eval_status__descriptor,
				  (int)ev->status, &ev->legacy_status,
				  "evaluation", ev->id);
}

#pragma GCC diagnostic pop

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
	migrate_alloc(a);
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
	migrate_dep(d);
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
	migrate_eval(ev);
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
		running += ld && ld->d->status == DS(RUNNING);
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
	flt_mutex_init(&e->queue_mtx, COORD_LOCK_ENGINE_QUEUE, "engine queue");
	flt_mutex_init(&e->view_mtx, COORD_LOCK_ENGINE_VIEW, "engine view");
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
	flt_mutex_lock(&e->queue_mtx);
	e->stopping = true;
	pthread_cond_signal(&e->cond);
	flt_mutex_unlock(&e->queue_mtx);
	pthread_join(e->thread, NULL);
	e->started = false;
}

void coord_engine_free(coord_engine_t *e)
{
	if (!e)
		return;
	coord_engine_stop(e);
	for (size_t j = 0; j < e->njobs; j++)
		job_free(e->jobs[j]);
	free(e->jobs);
	for (size_t i = 0; i < e->nallocs; i++) {
		pb_free(e->allocs[i]->a);
		free(e->allocs[i]->report);
		free(e->allocs[i]);
	}
	free(e->allocs);
	free(e->reported);
	sched_fleet_free(e->fleet);
	const char *key;
	void *val;
	for (size_t pos = 0; flt_map_next(&e->node_map, &pos, &key, &val);) {
		enode_t *nd = val;
		free(nd->v);
		free(nd->id);
		free(nd);
	}
	flt_map_free(&e->node_map);
	flt_map_free(&e->job_map);
	flt_map_free(&e->alloc_map);
	while (e->events) {
		nevent_t *n = e->events->next;
		free(e->events);
		e->events = n;
	}
	for (size_t pos = 0; flt_map_next(&e->inbox_map, &pos, &key, &val);) {
		einbox_t *ib = val;
		free(ib->buf);
		free(ib->node_id);
		free(ib);
	}
	flt_map_free(&e->inbox_map);
	free(e->inbox_q);
	flt_mutex_destroy(&e->queue_mtx);
	flt_mutex_destroy(&e->view_mtx);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->done_cond);
	free(e);
}

/* ---- queueing work ---------------------------------------------------------- */

void engine_enqueue(coord_engine_t *e, eop_t *op)
{
	flt_mutex_lock(&e->queue_mtx);
	op->next = NULL;
	*e->ops_tail = op;
	e->ops_tail = &op->next;
	pthread_cond_signal(&e->cond);
	flt_mutex_unlock(&e->queue_mtx);
}

void coord_engine_node_event(coord_engine_t *e, const char *node_id,
			     enum coord_node_event ev)
{
	nevent_t *n = flt_xcalloc(1, sizeof(*n));
	snprintf(n->id, sizeof(n->id), "%s", node_id);
	n->ev = ev;
	flt_mutex_lock(&e->queue_mtx);
	n->next = e->events;
	e->events = n;
	pthread_cond_signal(&e->cond);
	flt_mutex_unlock(&e->queue_mtx);
}

void engine_call(coord_engine_t *e, eop_t *op)
{
	engine_enqueue(e, op);
	flt_mutex_lock(&e->queue_mtx);
	while (!op->done)
		flt_cond_wait(&e->done_cond, &e->queue_mtx);
	flt_mutex_unlock(&e->queue_mtx);
}

void coord_engine_settle(coord_engine_t *e)
{
	flt_mutex_lock(&e->queue_mtx);
	uint64_t target = e->cycles_started + 1;
	e->force_cycle = true;
	pthread_cond_signal(&e->cond);
	while (e->cycles_done < target)
		flt_cond_wait(&e->done_cond, &e->queue_mtx);
	flt_mutex_unlock(&e->queue_mtx);
}

/* ---- what a node must run ---------------------------------------------------- */

void coord_engine_node_allocs(coord_engine_t *e, const char *node_id,
			      Flotilla__SyncResponse *resp)
{
	resp->allocs_set = true;
	resp->n_allocs = 0;
	resp->allocs = NULL;
	flt_mutex_lock(&e->view_mtx);
	enode_t *nd = node_get(e, node_id, false);
	size_t n = 0;
	for (size_t i = 0; nd && i < nd->n; i++)
		n += nd->v[i]->a && runs(nd->v[i]->a);
	resp->allocs = flt_xcalloc(n + 1, sizeof(*resp->allocs));
	for (size_t i = 0; nd && i < nd->n; i++) {
		const Flotilla__Alloc *a = nd->v[i]->a;
		if (!a || !runs(a))
			continue;
		const Flotilla__TaskGroup *g = group_of(
			committed_job_at(nd->v[i]->job, a->job_version),
			a->group);
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
			as->tasks[t] = flt_pb_dup(&g->tasks[t]->base);
		resp->allocs[resp->n_allocs++] = as;
	}
	flt_mutex_unlock(&e->view_mtx);
}

void coord_engine_node_allocs_free(Flotilla__SyncResponse *resp)
{
	for (size_t i = 0; i < resp->n_allocs; i++)
		pb_free(resp->allocs[i]);
	free(resp->allocs);
	resp->allocs = NULL;
	resp->n_allocs = 0;
}
