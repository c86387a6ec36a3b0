/*
 * What the engine's files share (see engine.h for the engine's contract):
 *
 *   engine.c     the thread, its queue, loading, the cycle
 *   plan.c       the plan of a cycle: working copies, the tables new
 *                objects enter, and the commit through the writer
 *   reconcile.c  reconciling a job's groups: placements, stops, in-place
 *                updates, rescheduling
 *   deploy.c     deployments: creation, health, promotion, failure,
 *                automatic revert
 *   jobs.c       the operator methods on jobs, allocations, deployments
 *   gc.c         garbage collection: what ended and aged out is marked
 *                for deletion in the cycle's plan (plan.c deletes it)
 *
 * Files depend downwards only: jobs.c uses engine.c's queue, deploy.c
 * and plan.c; engine.c uses gc.c, reconcile.c and plan.c; gc.c
 * uses plan.c; reconcile.c uses deploy.c
 * and plan.c; deploy.c uses plan.c. The engine runs an operator's request
 * through the function pointers of its op, never by calling jobs.c. The
 * lifecycle tables (lifecycle.h) are defined beside the code that moves
 * the records: allocations in reconcile.c, deployments in deploy.c,
 * evaluations in engine.c.
 *
 * Every object (job, allocation, deployment) is held twice at most: the
 * committed message, which readers see, and during a cycle a working copy
 * the cycle changes. The plan is the set of working copies; it is written
 * in one transaction, and only once that committed do the copies replace
 * what readers see. A failed commit throws the copies away and retries the
 * jobs later: memory never runs ahead of the store.
 */
#ifndef FLOTILLA_ENGINE_INTERNAL_H
#define FLOTILLA_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "flotilla/lock.h"
#include "flotilla/hash.h"
#include "flotilla/util.h"
#include "lifecycle.h"

#define EVALS_KEPT 10
#define MAX_PASSES 4

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
	bool del; /* deleted by this cycle's plan (gc.c) */
} ealloc_t;

typedef struct edep {
	Flotilla__Deployment *d, *wc;
	bool in_plan;
	bool del; /* deleted by this cycle's plan (gc.c) */
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
	/* Garbage collection (gc.c): the job is purged by an op of this
	 * cycle; what this cycle's plan deletes: the whole job, or some of
	 * its allocations and deployments (their del), its oldest evals and
	 * the versions listed. */
	bool purging;
	bool gc_in_plan, gc_job;
	size_t gc_evals;
	uint64_t *gc_versions;
	size_t ngc_versions;
};

typedef struct enode {
	char *id;
	ealloc_t **v;
	size_t n, cap;
} enode_t;

typedef struct cycle cycle_t;

enum op_kind {
	OP_REGISTER,
	OP_STOP,
	OP_PROMOTE, /* the deployment ops: promote, fail, pause, resume */
	OP_FAIL,
	OP_PAUSE,
	OP_RESUME,
	OP_PURGE, /* a stopped job, with everything hanging off it */
	OP_GC, /* a garbage collection now */
};

/* An operator's request, queued for the engine's next cycle. */
typedef struct eop {
	enum op_kind kind;
	/* What the request does inside the cycle. */
	void (*run)(cycle_t *c, struct eop *op);
	/* Answers it once the cycle's plan is committed (committed true) or
	 * failed (cerr); frees a request's op. A direct call's op is the
	 * caller's: the engine sets its done afterwards. */
	void (*reply)(coord_engine_t *e, struct eop *op, bool committed,
		      uint64_t index, const flt_error_t *cerr);
	Flotilla__Job *job; /* register: owned */
	char *name; /* stop, purge: job; the deployment ops: deployment */
	flt_request_t *r; /* NULL: a direct call waiting on done */
	/* A direct call's results, copied when it is answered. */
	Flotilla__JobRegisterResponse *resp_out;
	Flotilla__Deployment *dep_out;
	/* Results. */
	int rc;
	flt_error_t err;
	Flotilla__JobRegisterResponse resp;
	Flotilla__GcResponse gc; /* purge, gc: what was deleted */
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
/* A PE_GC entry deletes what its job's gc marks say (gc.c marks, plan.c
 * deletes from the store and then from memory); they come
 * after every other entry, so that a deletion wins over a write of the
 * same record in one plan. */
typedef enum { PE_JOB, PE_ALLOC, PE_DEP, PE_GC } pe_kind_t;

typedef struct pentry {
	pe_kind_t kind;
	void *obj;
} pentry_t;

/* One cycle's plan. */
struct cycle {
	coord_engine_t *e;
	int64_t now;
	struct eop *ops; /* the operators' requests of this cycle */
	sched_fleet_t *fleet;
	bool fleet_failed;
	pentry_t *pe;
	size_t npe, cap;
	ealloc_t **pushed; /* committed: their nodes are told */
	size_t npushed, pushed_cap;
	ejob_t **dirty;
	size_t ndirty;
	uint32_t placed, stopped, unplaced;
	char why[512];
	bool gc_force; /* an operator asked for a collection (OP_GC) */
	Flotilla__GcResponse gc; /* what this cycle's collection deletes */
	/* Deleted by the committed plan: out of every table, freed once the
	 * cycle's replies and pushes are done with them. */
	ejob_t **dead_jobs;
	size_t ndead_jobs;
	ealloc_t **dead_allocs;
	size_t ndead_allocs, dead_allocs_cap;
	edep_t **dead_deps;
	size_t ndead_deps, dead_deps_cap;
};

/* A node's last report, in the engine's inbox (queue_mtx). */
typedef struct einbox {
	char *node_id;
	uint8_t *buf; /* packed NodeTasks; NULL: none, or forgotten */
	size_t len;
	bool queued; /* listed in inbox_q for the next cycle */
} einbox_t;

/*
 * The engine, and its locks.
 *
 * The engine thread alone changes the engine's state. What it works on
 * during a cycle -- the working copies (wc, new_version, eval), the marks
 * of the plan (in_plan, push, dirty, trigger, wake_ms, version_restable),
 * what it folds reports into (gone, report_new, reported[]), the fleet it
 * keeps, the cycle itself -- is its own: no lock, no other thread reads it.
 * The writer's thread reads and stamps the working copies in plan_apply
 * while the engine thread waits for it (plan_commit).
 *
 * queue_mtx guards the work queued for the engine: ops, events, the inbox
 * of reports (inbox_map, each einbox, inbox_q), force_cycle, stopping,
 * cycles_started, cycles_done and every op's done; with cond, on which
 * the engine thread waits for work, and done_cond, on which direct callers
 * (engine_call, coord_engine_settle) wait for a cycle's end. Taken by any
 * thread that queues work or waits for it (the API's and agents' server
 * threads, nodes.c's tick, direct callers) and by the engine thread to
 * take the queue and to mark a cycle done. Held for a few pointer moves
 * and one memcmp of a report: nothing is called while holding it, no other
 * lock is taken under it.
 *
 * view_mtx guards what readers see: the tables (jobs[], job_map,
 * alloc_map, node_map, allocs[], each job's allocs[], deps[], versions[]
 * and evals[], each node's v[]), the committed messages (rec, a, d,
 * versions, evals), each allocation's report and index. Readers (the
 * operator reads of jobs.c, coord_engine_node_allocs for a Sync,
 * coord_engine_job) take it to copy what they answer. The engine thread
 * reads all of it without the lock -- it is the only writer -- and takes
 * it only to change it: a table growing (job_add, alloc_index,
 * deploy_start), a report recorded, and the plan made visible after its
 * commit (plan_commit). Under it, only memory is touched: no callback
 * (fleet, push, drained), no writer, no reply, no other lock.
 *
 * The two are never held together, so they have no order between them;
 * the engine thread calls the callbacks of coord_engine_opts_t and the
 * writer holding neither, so callers may hold their own locks when they
 * call the engine as long as those callbacks do not need them.
 */
struct coord_engine {
	coord_engine_opts_t o;
	flt_db_t db_jobs, db_versions, db_allocs, db_deps, db_evals;

	flt_mutex_t queue_mtx;
	pthread_cond_t cond, done_cond;
	eop_t *ops, **ops_tail;
	nevent_t *events;
	flt_map_t inbox_map;
	einbox_t **inbox_q; /* with a report the engine has not taken */
	size_t ninbox_q, inbox_q_cap;
	bool force_cycle;
	bool stopping;
	uint64_t cycles_started, cycles_done;

	flt_mutex_t view_mtx;
	ejob_t **jobs;
	size_t njobs;
	flt_map_t job_map, alloc_map, node_map;
	ealloc_t **allocs; /* every allocation, for prefix lookups */
	size_t nallocs, allocs_cap;
	uint64_t index;

	/* The engine thread's own. */
	ealloc_t **reported; /* with a report the cycle has not folded in */
	size_t nreported, reported_cap;
	sched_fleet_t *fleet; /* kept between cycles while fleet_gen holds */
	uint64_t fleet_gen;
	int64_t gc_next_ms; /* wall clock: the next periodic collection */
	pthread_t thread;
	bool started;
};

/* ---- small helpers ------------------------------------------------------ */

static inline void pb_free(void *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

static inline void ptr_push(void ***v, size_t *n, size_t *cap, void *p)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*v = flt_xrealloc(*v, *cap * sizeof(void *));
	}
	(*v)[(*n)++] = p;
}

static inline bool is(const char *s, const char *v)
{
	return strcmp(s, v) == 0;
}

/* ---- states: the enums of flotilla.proto, moved by lifecycle.h's tables */

#define AS(x) FLOTILLA__ALLOC_CLIENT_STATUS__ALLOC_CLIENT_STATUS_##x
#define AD(x) FLOTILLA__ALLOC_DESIRED_STATUS__ALLOC_DESIRED_STATUS_##x
#define AH(x) FLOTILLA__ALLOC_HEALTH__ALLOC_HEALTH_##x
#define DS(x) FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_##x
#define ES(x) FLOTILLA__EVAL_STATUS__EVAL_STATUS_##x

/* The allocation ended: no report moves it any more. */
static inline bool terminal(Flotilla__AllocClientStatus s)
{
	return s == AS(COMPLETE) || s == AS(FAILED) || s == AS(LOST);
}

static inline bool runs(const Flotilla__Alloc *a)
{
	return a->desired == AD(RUN);
}

/* ---- views: the working copy when there is one ------------------------ */

static inline const Flotilla__Alloc *acur(const ealloc_t *ea)
{
	return ea->wc ? ea->wc : ea->a;
}

static inline const Flotilla__JobRecord *jcur(const ejob_t *ej)
{
	return ej->wc ? ej->wc : ej->rec;
}

static inline const Flotilla__Deployment *dcur(const edep_t *ed)
{
	return ed->wc ? ed->wc : ed->d;
}

static inline ejob_t *job_find(coord_engine_t *e, const char *name)
{
	return flt_map_get(&e->job_map, name);
}

/* The job as it was at version (the working record's when it is that). */
static inline const Flotilla__Job *job_at(const ejob_t *ej, uint64_t version)
{
	const Flotilla__JobRecord *cur = jcur(ej);
	if (cur && cur->version == version)
		return cur->job;
	for (size_t i = ej->nversions; i-- > 0;)
		if (ej->versions[i]->version == version)
			return ej->versions[i]->job;
	return NULL;
}

static inline const Flotilla__TaskGroup *group_of(const Flotilla__Job *job,
						  const char *name)
{
	for (size_t g = 0; job && g < job->n_groups; g++)
		if (is(job->groups[g]->name, name))
			return job->groups[g];
	return NULL;
}

/* The tasks an allocation runs are the same (an in-place update). */
static inline bool tasks_equal(const Flotilla__TaskGroup *a,
			       const Flotilla__TaskGroup *b)
{
	if (!a || !b || a->n_tasks != b->n_tasks)
		return false;
	for (size_t i = 0; i < a->n_tasks; i++)
		if (!flt_pb_equal(&a->tasks[i]->base, &b->tasks[i]->base))
			return false;
	return true;
}

/* The job's latest deployment, in the cycle's view (it may be new). One
 * whose first commit failed has no message left, and is skipped. */
static inline edep_t *latest_dep(const ejob_t *ej)
{
	for (size_t i = ej->ndeps; i-- > 0;)
		if (ej->deps[i]->d || ej->deps[i]->wc)
			return ej->deps[i];
	return NULL;
}

/* The latest committed one: what readers see (view_mtx). */
static inline edep_t *latest_committed_dep(const ejob_t *ej)
{
	for (size_t i = ej->ndeps; i-- > 0;)
		if (ej->deps[i]->d)
			return ej->deps[i];
	return NULL;
}

/* The job as committed at version (view_mtx). */
static inline const Flotilla__Job *committed_job_at(const ejob_t *ej,
						    uint64_t version)
{
	if (ej->rec && ej->rec->version == version)
		return ej->rec->job;
	for (size_t i = ej->nversions; i-- > 0;)
		if (ej->versions[i]->version == version)
			return ej->versions[i]->job;
	return NULL;
}

/* The tasks an agent last reported for ea (NULL when none); free it. */
static inline Flotilla__NodeTasks *report_of(const ealloc_t *ea)
{
	if (!ea->report)
		return NULL;
	return flotilla__node_tasks__unpack(NULL, ea->report_len, ea->report);
}

static inline void wake_at(ejob_t *ej, int64_t when)
{
	if (!ej->wake_ms || when < ej->wake_ms)
		ej->wake_ms = when;
}

/* ---- plan.c: the plan of a cycle ----------------------------------------- */

void plan_add(cycle_t *c, pe_kind_t kind, void *obj);
/* The working copy of an object, made from the committed one on first use
 * and put in the plan once. */
Flotilla__Alloc *awc(cycle_t *c, ealloc_t *ea);
Flotilla__JobRecord *jwc(cycle_t *c, ejob_t *ej);
Flotilla__Deployment *dwc(cycle_t *c, edep_t *ed);
/* Queues ej for evaluation in this cycle, with what triggered it. */
void mark_dirty(cycle_t *c, ejob_t *ej, const char *trigger, const char *node);
/* The key of a job's version in job_versions: the name, a NUL, the
 * version big-endian (they sort by name, then version). Free it. */
char *version_key(const char *name, uint64_t v, size_t *len);

/* The tables: a new job, a node's entry, a new allocation indexed. Those
 * that add take view_mtx. */
ejob_t *job_add(coord_engine_t *e, const char *name);
enode_t *node_get(coord_engine_t *e, const char *id, bool add);
void alloc_index(coord_engine_t *e, ejob_t *ej, ealloc_t *ea);

/* Frees what the committed plan deleted (PE_GC), once the cycle's replies
 * and pushes are done with it. */
void plan_free_dead(cycle_t *c);
/* Frees a job and everything it holds (its allocations are the caller's). */
void job_free(ejob_t *ej);

/*
 * Writes the plan in one transaction through the writer and waits for it;
 * then, under view_mtx, makes the working copies committed (ok) or throws
 * them away. The allocations whose nodes must be told are left in
 * c->pushed. Returns 0 or the writer's error (cerr).
 */
int plan_commit(cycle_t *c, uint64_t *index, flt_error_t *cerr);

/* ---- gc.c: garbage collection ------------------------------------------- */

/* Runs the collection when it is due or was asked for (c->gc_force), and
 * deletes the jobs purged by this cycle's ops: adds PE_GC entries to the
 * plan. Called after the jobs were evaluated. */
void gc_cycle(cycle_t *c);

/* ---- deploy.c: deployments ------------------------------------------------ */

/*
 * Moves the deployment on ev through coord_deploy_fsm, on its working copy
 * when the state changes. Returns 1 (moved), 0 (nothing to do), or
 * FLT_ECONFLICT with the table's refusal in err.
 */
int deploy_step(cycle_t *c, edep_t *ed, enum coord_deploy_event ev,
		flt_error_t *err);

/* Cancels the job's running deployments and, for a service, starts one for
 * its current version (revert: no canaries). */
void deploy_start(cycle_t *c, ejob_t *ej, bool revert);
/* Marks a deployment failed; with auto_revert, registers the last stable
 * version again as a new version. FLT_ECONFLICT (err) when the table
 * refuses: the deployment had ended. */
int deploy_fail(cycle_t *c, ejob_t *ej, edep_t *ed, const char *why,
		flt_error_t *err);
/* Decides the health of the deployment's undecided allocations. */
void deploy_health(cycle_t *c, ejob_t *ej, edep_t *ed);
/* Counts, promotion, success and failure of a running deployment. */
void deploy_progress(cycle_t *c, ejob_t *ej, edep_t *ed);
/* An operator's promotion: FLT_ECONFLICT (err) when the table refuses it,
 * nothing waits for it, or its canaries are not healthy yet. */
int deploy_promote(cycle_t *c, ejob_t *ej, edep_t *ed, flt_error_t *err);
/* An operator's pause: the deployment places nothing new, neither promotes
 * nor advances, and its progress deadline stands still until resumed.
 * FLT_ECONFLICT (err) when the table refuses it. */
int deploy_pause(cycle_t *c, ejob_t *ej, edep_t *ed, flt_error_t *err);
/* An operator's resume: the progress deadline moves by the time paused. */
int deploy_resume(cycle_t *c, ejob_t *ej, edep_t *ed, flt_error_t *err);
/* A committed deployment by id, unique id prefix, or job name (its latest
 * committed one). The engine thread, or a reader holding view_mtx. */
/* A job's namespace: "default" for one that names none. */
const char *job_namespace(const Flotilla__Job *job);

edep_t *deploy_find(coord_engine_t *e, const char *q, ejob_t **job,
		    flt_error_t *err);
const Flotilla__DeploymentGroup *deploy_group(const Flotilla__Deployment *d,
					      const char *name);

static inline bool in_dep(const Flotilla__Alloc *a,
			  const Flotilla__Deployment *d)
{
	return d && is(a->deployment_id, d->id);
}

/* ---- reconcile.c: a job's groups ----------------------------------------- */

/* Brings the job's allocations to what its current version wants. False
 * when no plan could be made (the fleet could not be read). */
bool reconcile(cycle_t *c, ejob_t *ej);
/* The client status an event moves a to (a's own when the table ignores or
 * refuses it: the engine raises only events its own code decided). */
Flotilla__AllocClientStatus alloc_next(const Flotilla__Alloc *a,
				       enum coord_alloc_event ev);

/* ---- engine.c: the queue --------------------------------------------------- */

/* Queues op for the next cycle. */
void engine_enqueue(coord_engine_t *e, eop_t *op);
/* Queues op and waits until its cycle answered it (op->done). */
void engine_call(coord_engine_t *e, eop_t *op);

#endif
