/*
 * The engine on a real LMDB store and writer, with a synthetic fleet the
 * test controls (nodes up, down, draining) and the agents' reports fed in
 * directly: placement, rescheduling on node down and on failure, drain,
 * system jobs, canary deployments, automatic revert, and a restart in the
 * middle of a deployment.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "flotilla/job.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "flotilla/wire.h"
#include "testutil.h"

/* States by their JSON names, as operators read them. */
#define DESIRED(a)                                                    \
	flt_pb_enum_name(&flotilla__alloc_desired_status__descriptor, \
			 (a)->desired)
#define STATUS(a)                                                    \
	flt_pb_enum_name(&flotilla__alloc_client_status__descriptor, \
			 (a)->client_status)
#define HEALTH(a) \
	flt_pb_enum_name(&flotilla__alloc_health__descriptor, (a)->health)
#define DSTATUS(d) \
	flt_pb_enum_name(&flotilla__deployment_status__descriptor, (d)->status)

#define MAX_NODES 16

typedef struct tnode {
	char id[37], name[16];
	bool down, draining;
	int64_t deadline;
	char rack[8];
} tnode_t;

typedef struct fixture {
	char *dir;
	char store_dir[256]; /* "" : dir */
	size_t map_size; /* 0: 64 MiB */
	flt_store_t *store;
	coord_writer_t *writer;
	coord_engine_t *engine;
	pthread_mutex_t mtx;
	tnode_t nodes[MAX_NODES];
	size_t nnodes;
	unsigned pushes;
	uint64_t gen; /* bumped with every change to nodes[] */
	char drained[MAX_NODES][37];
	size_t ndrained;
	/* hold: the engine's next fleet callback waits (in_fleet) until it
	 * is cleared: a cycle stuck in the middle of an evaluation. */
	pthread_cond_t cond;
	bool hold, in_fleet;
	/* Garbage collection: 0 for the engine's defaults. */
	int64_t gc_ret_ms, gc_job_ret_ms, gc_every_ms;
	uint32_t gc_versions;
} fixture_t;

static sched_fleet_t *fleet_cb(void *ctx, flt_error_t *err)
{
	fixture_t *f = ctx;
	(void)err;
	sched_fleet_t *fl = sched_fleet_new();
	pthread_mutex_lock(&f->mtx);
	while (f->hold) {
		f->in_fleet = true;
		pthread_cond_broadcast(&f->cond);
		pthread_cond_wait(&f->cond, &f->mtx);
	}
	f->in_fleet = false;
	for (size_t i = 0; i < f->nnodes; i++) {
		tnode_t *n = &f->nodes[i];
		const char *k[] = { "node.name", "node.id", "label.rack" };
		const char *v[] = { n->name, n->id, n->rack };
		size_t x = sched_fleet_add(fl, n->id, 3, k, v, 400, 4096,
					   1 << 20, !n->down && !n->draining);
		sched_node_set_state(fl, x, n->down, n->draining, n->deadline);
	}
	pthread_mutex_unlock(&f->mtx);
	return fl;
}

static uint64_t gen_cb(void *ctx)
{
	fixture_t *f = ctx;
	pthread_mutex_lock(&f->mtx);
	uint64_t g = f->gen;
	pthread_mutex_unlock(&f->mtx);
	return g;
}

static void push_cb(void *ctx, const char *node, uint64_t index)
{
	fixture_t *f = ctx;
	(void)node;
	(void)index;
	pthread_mutex_lock(&f->mtx);
	f->pushes++;
	pthread_mutex_unlock(&f->mtx);
}

static void drained_cb(void *ctx, const char *node)
{
	fixture_t *f = ctx;
	pthread_mutex_lock(&f->mtx);
	for (size_t i = 0; i < f->nnodes; i++)
		if (!strcmp(f->nodes[i].id, node) && f->nodes[i].draining) {
			f->nodes[i].draining = false;
			f->gen++;
			snprintf(f->drained[f->ndrained++], 37, "%s", node);
		}
	pthread_mutex_unlock(&f->mtx);
}

static void engine_start(fixture_t *f)
{
	flt_error_t err;
	coord_engine_opts_t o = { .store = f->store,
				  .writer = f->writer,
				  .fleet = fleet_cb,
				  .fleet_gen = gen_cb,
				  .push = push_cb,
				  .drained = drained_cb,
				  .ctx = f,
				  .tick_ms = 20,
				  .gc_retention_ms = f->gc_ret_ms,
				  .gc_job_retention_ms = f->gc_job_ret_ms,
				  .gc_versions_kept = f->gc_versions,
				  .gc_interval_ms = f->gc_every_ms };
	assert_int_equal(coord_engine_open(&o, &f->engine, &err), 0);
}

static void open_all(fixture_t *f)
{
	static const char *const dbs[] = { "nodes",  "jobs",  "job_versions",
					   "allocs", "evals", "deployments",
					   NULL };
	flt_store_opts_t so = { .dbs = dbs,
				.map_size =
					f->map_size ? f->map_size : 64 << 20 };
	flt_error_t err;
	assert_int_equal(flt_store_open(f->store_dir[0] ? f->store_dir : f->dir,
					&so, &f->store, &err),
			 0);
	assert_int_equal(coord_writer_start(f->store, &f->writer, &err), 0);
	engine_start(f);
}

static void close_all(fixture_t *f)
{
	coord_engine_stop(f->engine);
	coord_writer_stop(f->writer);
	coord_engine_free(f->engine);
	coord_writer_free(f->writer);
	flt_store_close(f->store);
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	if (tmpdir_setup((void **)&f->dir) < 0)
		return -1;
	pthread_mutex_init(&f->mtx, NULL);
	pthread_cond_init(&f->cond, NULL);
	for (size_t i = 0; i < 4; i++) {
		tnode_t *n = &f->nodes[f->nnodes++];
		flt_uuid_v4(n->id);
		snprintf(n->name, sizeof(n->name), "n%zu", i);
		snprintf(n->rack, sizeof(n->rack), "r%zu", i % 2);
	}
	open_all(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	close_all(f);
	void *d = f->dir;
	tmpdir_teardown(&d);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static Flotilla__Job *job_of(const char *json)
{
	Flotilla__Job *j;
	flt_error_t err;
	if (flt_job_parse(json, strlen(json), &j, &err) < 0 ||
	    flt_job_check(j, &err) < 0)
		fail_msg("job: %s", err.msg);
	return j;
}

#define SERVICE(name, count, cmd, update)                           \
	"{\"name\":\"" name                                         \
	"\",\"groups\":[{\"name\":\"web\",\"count\":" #count        \
	",\"reschedule\":{\"attempts\":2,\"delay_ms\":1},"          \
	"\"tasks\":[{\"name\":\"srv\",\"command\":\"" cmd "\"}]}]," \
	"\"update\":{" update "}}"

static Flotilla__JobRegisterResponse *run_job(fixture_t *f, const char *json)
{
	Flotilla__Job *j = job_of(json);
	Flotilla__JobRegisterResponse *r;
	flt_error_t err;
	if (coord_engine_register(f->engine, j, &r, &err) < 0)
		fail_msg("register: %s", err.msg);
	flotilla__job__free_unpacked(j, NULL);
	return r;
}

static Flotilla__JobGetResponse *get(fixture_t *f, const char *name)
{
	Flotilla__JobGetResponse *g;
	flt_error_t err;
	coord_engine_settle(f->engine);
	if (coord_engine_job(f->engine, name, &g, &err) < 0)
		fail_msg("get: %s", err.msg);
	return g;
}

static size_t count_allocs(const Flotilla__JobGetResponse *g,
			   const char *desired, const char *status)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n_allocs; i++)
		n += (!desired || !strcmp(DESIRED(g->allocs[i]), desired)) &&
		     (!status || !strcmp(STATUS(g->allocs[i]), status));
	return n;
}

/* What an agent would say of every running allocation on its node. */
static void report_node(fixture_t *f, const char *node,
			const Flotilla__JobGetResponse *g,
			Flotilla__TaskState state, bool healthy,
			uint64_t only_version)
{
	Flotilla__TaskStatus ts[32], *tp[32];
	size_t n = 0;
	for (size_t i = 0; i < g->n_allocs && n < 32; i++) {
		const Flotilla__Alloc *a = g->allocs[i];
		if (strcmp(a->node_id, node) || strcmp(DESIRED(a), "run"))
			continue;
		flotilla__task_status__init(&ts[n]);
		ts[n].name = "srv";
		ts[n].alloc_id = a->id;
		bool mine = !only_version || a->job_version == only_version;
		ts[n].state =
			mine ? state : FLOTILLA__TASK_STATE__TASK_STATE_RUNNING;
		ts[n].healthy = mine ? healthy : true;
		ts[n].message = mine && !healthy ? "check failed" : "";
		tp[n] = &ts[n];
		n++;
	}
	coord_engine_report(f->engine, node, tp, n);
}

static void report_all(fixture_t *f, const char *job, Flotilla__TaskState state,
		       bool healthy, uint64_t only_version)
{
	Flotilla__JobGetResponse *g = get(f, job);
	for (size_t i = 0; i < f->nnodes; i++)
		if (!f->nodes[i].down)
			report_node(f, f->nodes[i].id, g, state, healthy,
				    only_version);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

#define RUNNING FLOTILLA__TASK_STATE__TASK_STATE_RUNNING
#define FAILED FLOTILLA__TASK_STATE__TASK_STATE_FAILED

/* Reports every allocation running and healthy until the deployment
 * leaves "running" (or the time runs out); returns its status. */
static char *await_deployment(fixture_t *f, const char *job, bool healthy,
			      uint64_t only_version, int ms)
{
	static char status[32];
	for (int t = 0; t < ms; t += 20) {
		report_all(f, job, healthy ? RUNNING : FAILED, healthy,
			   only_version);
		Flotilla__JobGetResponse *g = get(f, job);
		snprintf(status, sizeof(status), "%s",
			 g->deployment ? DSTATUS(g->deployment) : "none");
		bool waiting =
			g->deployment &&
			strstr(g->deployment->status_description, "promotion");
		flotilla__job_get_response__free_unpacked(g, NULL);
		if (strcmp(status, "running") || waiting)
			return status;
		usleep(20 * 1000);
	}
	return status;
}

/* ---- tests --------------------------------------------------------------- */

static void test_place_and_succeed(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r =
		run_job(f, SERVICE("web", 3, "/bin/true",
				   "\"min_healthy_time_ms\":50"));
	assert_int_equal(r->job_version, 1);
	assert_int_equal(r->placed, 3);
	assert_int_equal(r->unplaced, 0);
	assert_true(r->eval_id[0]);
	assert_true(r->deployment_id[0]);
	flotilla__job_register_response__free_unpacked(r, NULL);

	Flotilla__JobGetResponse *g = get(f, "web");
	assert_int_equal(count_allocs(g, "run", "pending"), 3);
	assert_true(f->pushes >= 3);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* Submitting the same spec again changes nothing. */
	r = run_job(f, SERVICE("web", 3, "/bin/true",
			       "\"min_healthy_time_ms\":50"));
	assert_true(r->unchanged);
	assert_int_equal(r->job_version, 1);
	flotilla__job_register_response__free_unpacked(r, NULL);

	assert_string_equal(await_deployment(f, "web", true, 0, 3000),
			    "successful");
	g = get(f, "web");
	assert_true(g->record->stable);
	assert_int_equal(g->summary->running, 3);
	assert_int_equal(g->summary->healthy, 3);
	assert_string_equal(g->summary->status, "running");
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_node_down_reschedules(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, "{\"name\":\"api\",\"groups\":[{\"name\":\"g\",\"count\":2,"
		   "\"constraints\":[{\"operator\":\"distinct_hosts\"}],"
		   "\"tasks\":[{\"name\":\"srv\",\"command\":\"/bin/true\"}]}],"
		   "\"update\":{\"min_healthy_time_ms\":20}}");
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "api", true, 0, 3000),
			    "successful");
	Flotilla__JobGetResponse *g = get(f, "api");
	const char *victim = g->allocs[0]->node_id;
	char victim_id[37];
	snprintf(victim_id, sizeof(victim_id), "%s", victim);
	char lost_alloc[37];
	snprintf(lost_alloc, sizeof(lost_alloc), "%s", g->allocs[0]->id);
	flotilla__job_get_response__free_unpacked(g, NULL);

	pthread_mutex_lock(&f->mtx);
	for (size_t i = 0; i < f->nnodes; i++)
		if (!strcmp(f->nodes[i].id, victim_id))
			f->nodes[i].down = true;
	f->gen++;
	pthread_mutex_unlock(&f->mtx);
	coord_engine_node_event(f->engine, victim_id, COORD_NODE_DOWN);

	g = get(f, "api");
	size_t lost = 0, live = 0;
	for (size_t i = 0; i < g->n_allocs; i++) {
		const Flotilla__Alloc *a = g->allocs[i];
		if (!strcmp(a->id, lost_alloc)) {
			assert_string_equal(STATUS(a), "lost");
			assert_string_equal(DESIRED(a), "stop");
			assert_true(a->next_alloc[0]);
			lost++;
		} else if (!strcmp(DESIRED(a), "run")) {
			assert_string_not_equal(a->node_id, victim_id);
			live++;
		}
	}
	assert_int_equal(lost, 1);
	assert_int_equal(live, 2);
	/* The replacement keeps the name (index) of the allocation lost. */
	assert_int_equal(g->n_evals >= 2, 1);
	assert_string_equal(g->evals[g->n_evals - 1]->trigger, "node-down");
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_failure_reschedules_then_gives_up(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, "{\"name\":\"b\",\"type\":\"batch\",\"groups\":[{\"name\":"
		   "\"g\",\"count\":1,\"reschedule\":{\"attempts\":2,"
		   "\"interval_ms\":600000,\"delay_ms\":1},\"tasks\":[{"
		   "\"name\":\"srv\",\"command\":\"/bin/false\"}]}]}");
	assert_int_equal(r->placed, 1);
	assert_false(r->deployment_id[0]); /* batch: no deployment */
	flotilla__job_register_response__free_unpacked(r, NULL);

	/* Fails three times: replaced twice (attempts 1, 2), then kept. */
	for (int round = 0; round < 3; round++) {
		report_all(f, "b", FAILED, false, 0);
		usleep(30 * 1000);
		coord_engine_settle(f->engine);
	}
	Flotilla__JobGetResponse *g = get(f, "b");
	assert_int_equal(g->n_allocs, 3);
	uint32_t max_attempts = 0;
	for (size_t i = 0; i < g->n_allocs; i++) {
		assert_string_equal(STATUS(g->allocs[i]), "failed");
		if (g->allocs[i]->reschedule_attempts > max_attempts)
			max_attempts = g->allocs[i]->reschedule_attempts;
	}
	assert_int_equal(max_attempts, 2);
	assert_int_equal(count_allocs(g, "run", "failed"), 1);
	assert_int_equal(g->summary->failed, 1);
	assert_string_equal(g->summary->status, "failed");
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_drain_migrates_first(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, SERVICE("d", 4, "/bin/true", "\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "d", true, 0, 3000),
			    "successful");
	Flotilla__JobGetResponse *g = get(f, "d");
	char node[37];
	snprintf(node, sizeof(node), "%s", g->allocs[0]->node_id);
	size_t on_node = 0;
	for (size_t i = 0; i < g->n_allocs; i++)
		on_node += !strcmp(g->allocs[i]->node_id, node);
	flotilla__job_get_response__free_unpacked(g, NULL);

	pthread_mutex_lock(&f->mtx);
	for (size_t i = 0; i < f->nnodes; i++)
		if (!strcmp(f->nodes[i].id, node)) {
			f->nodes[i].draining = true;
			f->nodes[i].deadline = flt_now_wall_ms() + 60000;
		}
	f->gen++;
	pthread_mutex_unlock(&f->mtx);
	coord_engine_node_event(f->engine, node, COORD_NODE_DRAIN);

	/* Replacements are placed; the old ones keep running until the
	 * replacements are healthy. */
	g = get(f, "d");
	size_t old_running = 0, new_pending = 0;
	for (size_t i = 0; i < g->n_allocs; i++) {
		const Flotilla__Alloc *a = g->allocs[i];
		if (!strcmp(a->node_id, node))
			old_running += !strcmp(DESIRED(a), "run");
		else
			new_pending += !strcmp(STATUS(a), "pending");
	}
	assert_int_equal(old_running, on_node);
	assert_int_equal(new_pending, on_node);
	assert_int_equal(f->ndrained, 0);
	flotilla__job_get_response__free_unpacked(g, NULL);

	for (int t = 0; t < 100 && !f->ndrained; t++) {
		report_all(f, "d", RUNNING, true, 0);
		usleep(20 * 1000);
		coord_engine_settle(f->engine);
	}
	assert_int_equal(f->ndrained, 1);
	assert_string_equal(f->drained[0], node);
	g = get(f, "d");
	size_t live = 0;
	for (size_t i = 0; i < g->n_allocs; i++) {
		const Flotilla__Alloc *a = g->allocs[i];
		if (!strcmp(DESIRED(a), "run")) {
			assert_string_not_equal(a->node_id, node);
			live++;
		} else {
			assert_string_equal(a->desired_reason, "node drained");
		}
	}
	assert_int_equal(live, 4);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_system_job_on_every_node(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, "{\"name\":\"s\",\"type\":\"system\",\"groups\":[{\"name\":"
		   "\"g\",\"tasks\":[{\"name\":\"srv\",\"command\":"
		   "\"/bin/true\"}]}]}");
	assert_int_equal(r->placed, 4);
	flotilla__job_register_response__free_unpacked(r, NULL);

	/* A node that joins later gets one too. */
	pthread_mutex_lock(&f->mtx);
	tnode_t *n = &f->nodes[f->nnodes++];
	flt_uuid_v4(n->id);
	snprintf(n->name, sizeof(n->name), "late");
	snprintf(n->rack, sizeof(n->rack), "r9");
	f->gen++;
	pthread_mutex_unlock(&f->mtx);
	coord_engine_node_event(f->engine, n->id, COORD_NODE_UP);
	Flotilla__JobGetResponse *g = get(f, "s");
	assert_int_equal(count_allocs(g, "run", NULL), 5);
	size_t on_late = 0;
	for (size_t i = 0; i < g->n_allocs; i++)
		on_late += !strcmp(g->allocs[i]->node_id, n->id);
	assert_int_equal(on_late, 1);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_canary_then_auto_revert(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, SERVICE("c", 3, "/bin/v1",
			   "\"canary\":1,\"auto_promote\":true,"
			   "\"auto_revert\":true,\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "c", true, 0, 3000),
			    "successful");

	/* v2 is healthy: one canary first, beside the three of v1. */
	r = run_job(f,
		    SERVICE("c", 3, "/bin/v2",
			    "\"canary\":1,\"auto_promote\":true,"
			    "\"auto_revert\":true,\"min_healthy_time_ms\":20"));
	assert_int_equal(r->job_version, 2);
	assert_int_equal(r->placed, 1);
	flotilla__job_register_response__free_unpacked(r, NULL);
	Flotilla__JobGetResponse *g = get(f, "c");
	size_t v1 = 0, canaries = 0;
	for (size_t i = 0; i < g->n_allocs; i++) {
		const Flotilla__Alloc *a = g->allocs[i];
		if (strcmp(DESIRED(a), "run"))
			continue;
		v1 += a->job_version == 1;
		canaries += a->canary && a->job_version == 2;
	}
	assert_int_equal(v1, 3);
	assert_int_equal(canaries, 1);
	flotilla__job_get_response__free_unpacked(g, NULL);
	assert_string_equal(await_deployment(f, "c", true, 0, 5000),
			    "successful");
	g = get(f, "c");
	assert_int_equal(count_allocs(g, "run", NULL), 3);
	for (size_t i = 0; i < g->n_allocs; i++)
		if (!strcmp(DESIRED(g->allocs[i]), "run"))
			assert_int_equal(g->allocs[i]->job_version, 2);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* v3 fails its checks: the canary is unhealthy, the deployment
	 * fails, and the job reverts to v2, which never stopped serving. */
	r = run_job(f,
		    SERVICE("c", 3, "/bin/v3",
			    "\"canary\":1,\"auto_promote\":true,"
			    "\"auto_revert\":true,\"min_healthy_time_ms\":20,"
			    "\"healthy_deadline_ms\":300"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	/* The revert is a deployment of its own, which succeeds. */
	assert_string_equal(await_deployment(f, "c", false, 3, 5000),
			    "successful");
	g = get(f, "c");
	assert_int_equal(g->record->version, 4);
	assert_non_null(
		strstr(g->record->description, "reverted to version 2"));
	size_t bad = 0;
	for (size_t i = 0; i < g->n_allocs; i++)
		if (g->allocs[i]->job_version == 3) {
			assert_true(g->allocs[i]->canary);
			assert_string_equal(HEALTH(g->allocs[i]), "unhealthy");
			assert_string_equal(DESIRED(g->allocs[i]), "stop");
			bad++;
		}
	assert_int_equal(bad, 1);
	assert_string_equal(g->record->job->groups[0]->tasks[0]->command,
			    "/bin/v2");
	size_t serving = 0;
	for (size_t i = 0; i < g->n_allocs; i++) {
		const Flotilla__Alloc *a = g->allocs[i];
		if (!strcmp(DESIRED(a), "run")) {
			/* Updated in place: the same allocations as v2. */
			assert_int_equal(a->job_version, 4);
			assert_false(a->canary);
			serving++;
		}
	}
	assert_int_equal(serving, 3);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_restart_resumes_deployment(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, SERVICE("p", 2, "/bin/v1", "\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "p", true, 0, 3000),
			    "successful");
	r = run_job(f, SERVICE("p", 2, "/bin/v2",
			       "\"canary\":1,\"min_healthy_time_ms\":20"));
	char dep[37];
	snprintf(dep, sizeof(dep), "%s", r->deployment_id);
	flotilla__job_register_response__free_unpacked(r, NULL);
	/* Waits for promotion (auto_promote is off). */
	assert_string_equal(await_deployment(f, "p", true, 0, 3000), "running");

	/* The coordinator goes away and comes back on the same store. */
	close_all(f);
	open_all(f);
	Flotilla__JobGetResponse *g = get(f, "p");
	assert_string_equal(g->deployment->id, dep);
	assert_string_equal(DSTATUS(g->deployment), "running");
	assert_int_equal(g->deployment->groups[0]->healthy, 1);
	assert_int_equal(count_allocs(g, "run", NULL), 3);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

/* ---- a plan that cannot be stored ------------------------------------------ */

static void test_failed_commit_leaves_nothing(void **state)
{
	fixture_t *f = *state;
	close_all(f);
	/* A store with room for a small job, not for a large one. */
	snprintf(f->store_dir, sizeof(f->store_dir), "%s/small", f->dir);
	assert_int_equal(mkdir(f->store_dir, 0700), 0);
	f->map_size = 512 << 10;
	open_all(f);
	Flotilla__JobRegisterResponse *r = run_job(
		f, SERVICE("a", 1, "/bin/true", "\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);

	/* 12 variables of 60000 bytes: more than the whole map. */
	size_t val = 60000, nvars = 12;
	char *json = malloc(nvars * (val + 16) + 512);
	int n = sprintf(json, "{\"name\":\"b\",\"groups\":[{\"name\":\"web\","
			      "\"count\":1,\"tasks\":[{\"name\":\"srv\","
			      "\"command\":\"/bin/true\",\"env\":{");
	for (size_t i = 0; i < nvars; i++) {
		n += sprintf(json + n, "%s\"B%zu\":\"", i ? "," : "", i);
		memset(json + n, 'x', val);
		n += (int)val;
		json[n++] = '"';
	}
	sprintf(json + n, "}}]}]}");
	Flotilla__Job *j = job_of(json);
	free(json);
	flt_error_t err;
	assert_true(coord_engine_register(f->engine, j, &r, &err) < 0);
	assert_non_null(strstr(err.msg, "not stored"));
	flotilla__job__free_unpacked(j, NULL);

	/* Nothing of it is seen, and the engine goes on: the next cycles,
	 * the stored job, and the same name again, small enough now. */
	coord_engine_settle(f->engine);
	coord_engine_settle(f->engine);
	Flotilla__JobGetResponse *g;
	assert_int_equal(coord_engine_job(f->engine, "b", &g, &err),
			 FLT_ENOTFOUND);
	assert_string_equal(await_deployment(f, "a", true, 0, 3000),
			    "successful");
	r = run_job(f,
		    SERVICE("b", 1, "/bin/true", "\"min_healthy_time_ms\":20"));
	assert_int_equal(r->job_version, 1);
	assert_true(r->deployment_id[0]);
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "b", true, 0, 3000),
			    "successful");
}

/* ---- what never waits for a cycle ------------------------------------------ */

typedef struct sync_call {
	fixture_t *f;
	const Flotilla__JobGetResponse *g;
	const char *node;
	size_t allocs; /* what node_allocs listed */
	char status[16]; /* of the first allocation, as coord_engine_job saw */
	bool done;
} sync_call_t;

/* What a node's Sync does in the engine: report, then read what to run;
 * and an operator's read. */
static void *sync_thread(void *arg)
{
	sync_call_t *s = arg;
	report_node(s->f, s->node, s->g, RUNNING, true, 0);
	Flotilla__SyncResponse resp = FLOTILLA__SYNC_RESPONSE__INIT;
	coord_engine_node_allocs(s->f->engine, s->node, &resp);
	Flotilla__JobGetResponse *j;
	flt_error_t err;
	assert_int_equal(coord_engine_job(s->f->engine, "rw", &j, &err), 0);
	pthread_mutex_lock(&s->f->mtx);
	s->allocs = resp.n_allocs;
	snprintf(s->status, sizeof(s->status), "%s", STATUS(j->allocs[0]));
	s->done = true;
	pthread_cond_broadcast(&s->f->cond);
	pthread_mutex_unlock(&s->f->mtx);
	coord_engine_node_allocs_free(&resp);
	flotilla__job_get_response__free_unpacked(j, NULL);
	return NULL;
}

static void test_sync_never_waits_for_a_cycle(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, "{\"name\":\"rw\",\"type\":\"batch\",\"groups\":[{\"name\":"
		   "\"g\",\"count\":1,\"tasks\":[{\"name\":\"srv\","
		   "\"command\":\"/bin/true\"}]}]}");
	flotilla__job_register_response__free_unpacked(r, NULL);
	Flotilla__JobGetResponse *g = get(f, "rw");
	char node[37];
	snprintf(node, sizeof(node), "%s", g->allocs[0]->node_id);

	/* A cycle that is stuck evaluating: a node came up, and the fleet
	 * it reads does not come. */
	pthread_mutex_lock(&f->mtx);
	f->hold = true;
	f->gen++;
	pthread_mutex_unlock(&f->mtx);
	coord_engine_node_event(f->engine, f->nodes[0].id, COORD_NODE_UP);
	pthread_mutex_lock(&f->mtx);
	while (!f->in_fleet)
		pthread_cond_wait(&f->cond, &f->mtx);
	pthread_mutex_unlock(&f->mtx);

	/* Meanwhile a Sync reports and reads, and an operator reads: each
	 * answered from what was committed, without waiting. */
	sync_call_t s = { .f = f, .g = g, .node = node };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sync_thread, &s), 0);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&f->mtx);
	while (!s.done &&
	       pthread_cond_timedwait(&f->cond, &f->mtx, &until) == 0)
		;
	bool answered = s.done;
	f->hold = false;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mtx);
	pthread_join(t, NULL);
	assert_true(answered);
	assert_int_equal(s.allocs, 1);
	assert_string_equal(s.status, "pending");
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* The report was queued, and the next cycle took it. */
	g = get(f, "rw");
	assert_string_equal(STATUS(g->allocs[0]), "running");
	flotilla__job_get_response__free_unpacked(g, NULL);
}

/* ---- pausing a deployment ------------------------------------------------ */

static Flotilla__Deployment *act(fixture_t *f, Flotilla__Method m,
				 const char *id)
{
	Flotilla__Deployment *d;
	flt_error_t err;
	if (coord_engine_deployment_act(f->engine, m, id, &d, &err) < 0)
		fail_msg("%s %s: %s", flt_method_name(m), id, err.msg);
	return d;
}

#define PAUSE FLOTILLA__METHOD__METHOD_DEPLOYMENT_PAUSE
#define RESUME FLOTILLA__METHOD__METHOD_DEPLOYMENT_RESUME
#define PROMOTE FLOTILLA__METHOD__METHOD_DEPLOYMENT_PROMOTE

/* Live allocations of version v. */
static size_t live_of(const Flotilla__JobGetResponse *g, uint64_t v)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n_allocs; i++)
		n += !strcmp(DESIRED(g->allocs[i]), "run") &&
		     g->allocs[i]->job_version == v;
	return n;
}

static void test_pause_stops_progress(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, SERVICE("pz", 3, "/bin/v1", "\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "pz", true, 0, 3000),
			    "successful");

	/* v2 rolls one allocation at a time; paused after the first. */
	r = run_job(f,
		    SERVICE("pz", 3, "/bin/v2",
			    "\"max_parallel\":1,\"min_healthy_time_ms\":20"));
	assert_int_equal(r->placed, 1);
	char dep[37];
	snprintf(dep, sizeof(dep), "%s", r->deployment_id);
	flotilla__job_register_response__free_unpacked(r, NULL);
	Flotilla__Deployment *d = act(f, PAUSE, dep);
	assert_string_equal(DSTATUS(d), "paused");
	assert_true(d->paused_ms > 0);
	flotilla__deployment__free_unpacked(d, NULL);

	/* Healthy reports: the health of the new allocation is recorded,
	 * nothing more of v2 is placed, nothing old stops. */
	for (int t = 0; t < 10; t++) {
		report_all(f, "pz", RUNNING, true, 0);
		usleep(20 * 1000);
	}
	Flotilla__JobGetResponse *g = get(f, "pz");
	assert_string_equal(DSTATUS(g->deployment), "paused");
	assert_int_equal(live_of(g, 2), 1);
	assert_int_equal(live_of(g, 1), 2);
	for (size_t i = 0; i < g->n_allocs; i++)
		if (g->allocs[i]->job_version == 2)
			assert_string_equal(HEALTH(g->allocs[i]), "healthy");
	assert_int_equal(g->deployment->groups[0]->healthy, 1);
	/* A healthy allocation restarts the progress deadline: from the
	 * pause, since its clock stands still while paused. */
	assert_int_equal(
		g->deployment->progress_by_ms,
		g->deployment->paused_ms +
			(int64_t)g->record->job->update->progress_deadline_ms);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* What the table refuses changes nothing. */
	flt_error_t err;
	assert_int_equal(
		coord_engine_deployment_act(f->engine, PAUSE, dep, &d, &err),
		FLT_ECONFLICT);
	char want[128];
	snprintf(want, sizeof(want),
		 "deployment %.8s: cannot pause when paused", dep);
	assert_string_equal(err.msg, want);
	assert_int_equal(
		coord_engine_deployment_act(f->engine, PROMOTE, dep, &d, &err),
		FLT_ECONFLICT);
	snprintf(want, sizeof(want),
		 "deployment %.8s: cannot promote when paused", dep);
	assert_string_equal(err.msg, want);

	/* Resumed, it goes on to the end. */
	d = act(f, RESUME, dep);
	assert_string_equal(DSTATUS(d), "running");
	assert_int_equal(d->paused_ms, 0);
	flotilla__deployment__free_unpacked(d, NULL);
	assert_string_equal(await_deployment(f, "pz", true, 0, 5000),
			    "successful");
	g = get(f, "pz");
	assert_int_equal(live_of(g, 2), 3);
	assert_int_equal(live_of(g, 1), 0);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* Ended: pausing is refused with the table's message. */
	assert_int_equal(
		coord_engine_deployment_act(f->engine, PAUSE, "pz", &d, &err),
		FLT_ECONFLICT);
	snprintf(want, sizeof(want),
		 "deployment %.8s: cannot pause when successful", dep);
	assert_string_equal(err.msg, want);
	assert_int_equal(
		coord_engine_deployment_act(f->engine, RESUME, "pz", &d, &err),
		FLT_ECONFLICT);
	g = get(f, "pz");
	assert_string_equal(DSTATUS(g->deployment), "successful");
	flotilla__job_get_response__free_unpacked(g, NULL);
}

static void test_pause_holds_deadline(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r = run_job(
		f, SERVICE("ph", 2, "/bin/v1", "\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "ph", true, 0, 3000),
			    "successful");
	r = run_job(f, SERVICE("ph", 2, "/bin/v2",
			       "\"max_parallel\":2,\"min_healthy_time_ms\":20,"
			       "\"progress_deadline_ms\":300,"
			       "\"healthy_deadline_ms\":300"));
	assert_int_equal(r->placed, 2);
	char dep[37];
	snprintf(dep, sizeof(dep), "%s", r->deployment_id);
	flotilla__job_register_response__free_unpacked(r, NULL);
	Flotilla__Deployment *d = act(f, PAUSE, dep);
	int64_t at = d->paused_ms;
	flotilla__deployment__free_unpacked(d, NULL);

	/* Every allocation healthy, the deadline long past: a paused
	 * deployment neither succeeds nor fails. */
	for (int t = 0; t < 25; t++) {
		report_all(f, "ph", RUNNING, true, 0);
		usleep(20 * 1000);
	}
	Flotilla__JobGetResponse *g = get(f, "ph");
	assert_string_equal(DSTATUS(g->deployment), "paused");
	assert_int_equal(g->deployment->groups[0]->healthy, 2);
	assert_int_equal(g->deployment->progress_by_ms, at + 300);
	assert_true(flt_now_wall_ms() > at + 300);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* Resumed: the deadline moved by the time paused, and it ends. */
	d = act(f, RESUME, dep);
	assert_int_equal(d->progress_by_ms, d->modify_ms + 300);
	flotilla__deployment__free_unpacked(d, NULL);
	assert_string_equal(await_deployment(f, "ph", true, 0, 3000),
			    "successful");
}

/* ---- stores written before the states were enums ------------------------ */

typedef struct rec {
	char *key;
	ProtobufCMessage *m;
} rec_t;

typedef struct recs {
	const ProtobufCMessageDescriptor *desc;
	rec_t v[64];
	size_t n;
} recs_t;

static int collect(const void *key, size_t klen, const void *val, size_t vlen,
		   void *arg)
{
	recs_t *r = arg;
	assert_true(r->n < 64);
	r->v[r->n].key = strndup(key, klen);
	r->v[r->n].m = protobuf_c_message_unpack(r->desc, NULL, vlen, val);
	assert_non_null(r->v[r->n].m);
	r->n++;
	return 0;
}

static void read_db(flt_store_t *st, const char *db, recs_t *r)
{
	flt_db_t d;
	flt_txn_t *txn;
	flt_error_t err;
	assert_int_equal(flt_store_db(st, db, &d), 0);
	assert_int_equal(flt_txn_begin(st, false, &txn, &err), 0);
	assert_int_equal(flt_txn_foreach(txn, d, NULL, 0, collect, r), 0);
	flt_txn_abort(txn);
}

static void write_db(flt_store_t *st, const char *db, recs_t *r)
{
	flt_db_t d;
	flt_txn_t *txn;
	flt_error_t err;
	assert_int_equal(flt_store_db(st, db, &d), 0);
	assert_int_equal(flt_txn_begin(st, true, &txn, &err), 0);
	for (size_t i = 0; i < r->n; i++)
		assert_int_equal(
			flt_txn_put_pb(txn, d, r->v[i].key, r->v[i].m, &err),
			0);
	assert_int_equal(flt_txn_commit(txn, &err), 0);
}

static void recs_free(recs_t *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].key);
		protobuf_c_message_free_unpacked(r->v[i].m, NULL);
	}
	r->n = 0;
}

static flt_store_t *store_alone(fixture_t *f)
{
	static const char *const dbs[] = { "nodes",  "jobs",  "job_versions",
					   "allocs", "evals", "deployments",
					   NULL };
	flt_store_opts_t so = { .dbs = dbs, .map_size = 64 << 20 };
	flt_store_t *st;
	flt_error_t err;
	assert_int_equal(flt_store_open(f->dir, &so, &st, &err), 0);
	return st;
}

/* The legacy fields are what an earlier version wrote: only the test of
 * the migration touches them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* A state as an earlier version wrote it: the string, no enum. */
static void to_legacy(const ProtobufCEnumDescriptor *d, unsigned *value,
		      char **legacy)
{
	*legacy = strdup(flt_pb_enum_name(d, (int)*value));
	*value = 0;
}

/* Rewrites every allocation, deployment and evaluation of the store in the
 * form of the version before the enums. */
static void make_store_old(fixture_t *f)
{
	flt_store_t *st = store_alone(f);
	recs_t r = { .desc = &flotilla__alloc__descriptor };
	read_db(st, "allocs", &r);
	for (size_t i = 0; i < r.n; i++) {
		Flotilla__Alloc *a = (Flotilla__Alloc *)r.v[i].m;
		to_legacy(&flotilla__alloc_client_status__descriptor,
			  (unsigned *)&a->client_status,
			  &a->legacy_client_status);
		to_legacy(&flotilla__alloc_desired_status__descriptor,
			  (unsigned *)&a->desired, &a->legacy_desired);
		/* Undecided health was the empty string. */
		if (a->health)
			to_legacy(&flotilla__alloc_health__descriptor,
				  (unsigned *)&a->health, &a->legacy_health);
	}
	write_db(st, "allocs", &r);
	recs_free(&r);
	r.desc = &flotilla__deployment__descriptor;
	read_db(st, "deployments", &r);
	for (size_t i = 0; i < r.n; i++) {
		Flotilla__Deployment *d = (Flotilla__Deployment *)r.v[i].m;
		to_legacy(&flotilla__deployment_status__descriptor,
			  (unsigned *)&d->status, &d->legacy_status);
	}
	write_db(st, "deployments", &r);
	recs_free(&r);
	r.desc = &flotilla__eval__descriptor;
	read_db(st, "evals", &r);
	for (size_t i = 0; i < r.n; i++) {
		Flotilla__Eval *ev = (Flotilla__Eval *)r.v[i].m;
		to_legacy(&flotilla__eval_status__descriptor,
			  (unsigned *)&ev->status, &ev->legacy_status);
	}
	write_db(st, "evals", &r);
	recs_free(&r);
	flt_store_close(st);
}

static void test_legacy_records_migrate(void **state)
{
	fixture_t *f = *state;
	Flotilla__JobRegisterResponse *r =
		run_job(f, SERVICE("old", 2, "/bin/true",
				   "\"min_healthy_time_ms\":20"));
	flotilla__job_register_response__free_unpacked(r, NULL);
	assert_string_equal(await_deployment(f, "old", true, 0, 3000),
			    "successful");
	close_all(f);
	make_store_old(f);

	/* The store holds strings only now. */
	flt_store_t *st = store_alone(f);
	recs_t raw = { .desc = &flotilla__alloc__descriptor };
	read_db(st, "allocs", &raw);
	assert_int_equal(raw.n, 2);
	for (size_t i = 0; i < raw.n; i++) {
		Flotilla__Alloc *a = (Flotilla__Alloc *)raw.v[i].m;
		assert_int_equal(a->client_status, 0);
		assert_string_equal(a->legacy_client_status, "running");
		assert_string_equal(a->legacy_health, "healthy");
	}
	recs_free(&raw);
	flt_store_close(st);

	/* Loaded, every state is the enum the string named. */
	open_all(f);
	Flotilla__JobGetResponse *g = get(f, "old");
	assert_int_equal(g->n_allocs, 2);
	for (size_t i = 0; i < g->n_allocs; i++) {
		assert_string_equal(DESIRED(g->allocs[i]), "run");
		assert_string_equal(STATUS(g->allocs[i]), "running");
		assert_string_equal(HEALTH(g->allocs[i]), "healthy");
		assert_string_equal(g->allocs[i]->legacy_client_status, "");
	}
	assert_string_equal(DSTATUS(g->deployment), "successful");
	assert_int_equal(
		g->summary->deployment_status,
		FLOTILLA__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_SUCCESSFUL);
	assert_true(g->n_evals >= 1);
	for (size_t i = 0; i < g->n_evals; i++)
		assert_int_equal(g->evals[i]->status,
				 FLOTILLA__EVAL_STATUS__EVAL_STATUS_COMPLETE);
	char failing[37];
	snprintf(failing, sizeof(failing), "%s", g->allocs[0]->id);
	char node[37];
	snprintf(node, sizeof(node), "%s", g->allocs[0]->node_id);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* The engine goes on from there: one allocation fails (and is
	 * replaced); its record is written again without the string. */
	g = get(f, "old");
	report_node(f, node, g, FAILED, false, 0);
	flotilla__job_get_response__free_unpacked(g, NULL);
	g = get(f, "old");
	bool seen = false;
	for (size_t i = 0; i < g->n_allocs; i++)
		if (!strcmp(g->allocs[i]->id, failing)) {
			assert_string_equal(STATUS(g->allocs[i]), "failed");
			seen = true;
		}
	assert_true(seen);
	flotilla__job_get_response__free_unpacked(g, NULL);
	close_all(f);

	st = store_alone(f);
	raw.desc = &flotilla__alloc__descriptor;
	read_db(st, "allocs", &raw);
	seen = false;
	for (size_t i = 0; i < raw.n; i++) {
		Flotilla__Alloc *a = (Flotilla__Alloc *)raw.v[i].m;
		if (strcmp(a->id, failing))
			continue;
		assert_string_equal(
			flt_pb_enum_name(
				&flotilla__alloc_client_status__descriptor,
				(int)a->client_status),
			"failed");
		assert_string_equal(a->legacy_client_status, "");
		assert_string_equal(a->legacy_desired, "");
		assert_string_equal(a->legacy_health, "");
		seen = true;
	}
	assert_true(seen);
	recs_free(&raw);
	flt_store_close(st);
	open_all(f); /* for the teardown */
}
#pragma GCC diagnostic pop

/* ---- garbage collection ------------------------------------------------------ */

#define EXITED FLOTILLA__TASK_STATE__TASK_STATE_EXITED

/* Records in one of the engine's databases. */
static int count_one(const void *k, size_t kl, const void *v, size_t vl,
		     void *arg)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	(*(size_t *)arg)++;
	return 0;
}

static size_t stored(fixture_t *f, const char *db_name)
{
	flt_db_t db;
	flt_txn_t *txn;
	flt_error_t err;
	size_t n = 0;
	assert_int_equal(flt_store_db(f->store, db_name, &db), 0);
	assert_int_equal(flt_txn_begin(f->store, false, &txn, &err), 0);
	assert_int_equal(flt_txn_foreach(txn, db, NULL, 0, count_one, &n), 0);
	flt_txn_abort(txn);
	return n;
}

static Flotilla__GcResponse gc_now(fixture_t *f, const char *purge)
{
	Flotilla__GcResponse n;
	flt_error_t err;
	if (coord_engine_gc(f->engine, purge, &n, &err) < 0)
		fail_msg("gc: %s", err.msg);
	return n;
}

static void restart_with(fixture_t *f, int64_t ret, int64_t job_ret,
			 uint32_t versions)
{
	close_all(f);
	f->gc_ret_ms = ret;
	f->gc_job_ret_ms = job_ret;
	f->gc_versions = versions;
	open_all(f);
}

#define FAILING_BATCH                                                        \
	"{\"name\":\"b\",\"type\":\"batch\",\"groups\":[{\"name\":\"g\","    \
	"\"count\":1,\"reschedule\":{\"attempts\":2,\"interval_ms\":600000," \
	"\"delay_ms\":1},\"tasks\":[{\"name\":\"srv\",\"command\":"          \
	"\"/bin/false\"}]}]}"

/* Terminal allocations told to stop, and old evaluations, go once the
 * retention passed, not before; what the job still needs stays; a
 * stopped job stays for the job retention; a purge takes the rest. */
static void test_gc_retention(void **state)
{
	fixture_t *f = *state;
	f->gc_every_ms = 3600 * 1000; /* collected when asked only */
	restart_with(f, 300, 3600 * 1000, 0);
	flotilla__job_register_response__free_unpacked(
		run_job(f, FAILING_BATCH), NULL);
	for (int round = 0; round < 3; round++) {
		report_all(f, "b", FAILED, false, 0);
		usleep(30 * 1000);
		coord_engine_settle(f->engine);
	}
	Flotilla__JobGetResponse *g = get(f, "b");
	assert_int_equal(g->n_allocs, 3);
	size_t evals = g->n_evals;
	assert_true(evals >= 3);
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* Within the retention: nothing goes. */
	Flotilla__GcResponse n = gc_now(f, NULL);
	assert_int_equal(n.allocs, 0);
	assert_int_equal(n.evals, 0);
	assert_int_equal(stored(f, "allocs"), 3);

	usleep(400 * 1000);
	n = gc_now(f, NULL);
	/* The two replaced allocations go; the last one, failed but still
	 * wanted (the job's status), stays; so does the latest evaluation. */
	assert_int_equal(n.allocs, 2);
	assert_int_equal(n.evals, evals - 1);
	assert_int_equal(n.jobs, 0);
	g = get(f, "b");
	assert_int_equal(g->n_allocs, 1);
	assert_string_equal(DESIRED(g->allocs[0]), "run");
	assert_int_equal(g->n_evals, 1);
	assert_string_equal(g->summary->status, "failed");
	flotilla__job_get_response__free_unpacked(g, NULL);
	assert_int_equal(stored(f, "allocs"), 1);
	assert_int_equal(stored(f, "evals"), 1);
	size_t jobs, allocs;
	coord_engine_counts(f->engine, &jobs, &allocs);
	assert_int_equal(jobs, 1);
	assert_int_equal(allocs, 1);

	/* Stopped: its last allocation goes after the retention, the job
	 * stays for the job retention. */
	Flotilla__GcResponse refused;
	flt_error_t err;
	assert_int_equal(coord_engine_gc(f->engine, "b", &refused, &err),
			 FLT_ECONFLICT);
	assert_non_null(strstr(err.msg, "stop it first"));
	assert_int_equal(coord_engine_stop_job(f->engine, "b", &err), 0);
	report_all(f, "b", FAILED, false, 0);
	usleep(400 * 1000);
	n = gc_now(f, NULL);
	assert_int_equal(n.allocs, 1);
	assert_int_equal(n.jobs, 0);
	assert_int_equal(stored(f, "jobs"), 1);
	assert_int_equal(stored(f, "allocs"), 0);

	/* The same store, read again: what was deleted stays deleted. */
	restart_with(f, 300, 3600 * 1000, 0);
	g = get(f, "b");
	assert_int_equal(g->n_allocs, 0);
	assert_true(g->record->stopped);
	assert_string_equal(g->summary->status, "dead");
	flotilla__job_get_response__free_unpacked(g, NULL);
}

/* A stopped job is purged with everything hanging off it, at once; one
 * that ended is collected after the job retention. */
static void test_gc_purge_and_job_retention(void **state)
{
	fixture_t *f = *state;
	f->gc_every_ms = 3600 * 1000;
	restart_with(f, 3600 * 1000, 300, 0);
	flotilla__job_register_response__free_unpacked(
		run_job(f, SERVICE("web", 2, "/bin/true",
				   "\"min_healthy_time_ms\":20")),
		NULL);
	assert_string_equal(await_deployment(f, "web", true, 0, 3000),
			    "successful");
	/* A complete batch job: collected after the job retention. */
	flotilla__job_register_response__free_unpacked(
		run_job(f, "{\"name\":\"once\",\"type\":\"batch\",\"groups\":"
			   "[{\"name\":\"g\",\"count\":2,\"tasks\":[{\"name\":"
			   "\"srv\",\"command\":\"/bin/true\"}]}]}"),
		NULL);
	report_all(f, "once", EXITED, false, 0);
	Flotilla__JobGetResponse *g = get(f, "once");
	assert_string_equal(g->summary->status, "complete");
	flotilla__job_get_response__free_unpacked(g, NULL);

	/* A running job is refused, and nothing changes. */
	Flotilla__GcResponse n;
	flt_error_t err;
	assert_int_equal(coord_engine_gc(f->engine, "web", &n, &err),
			 FLT_ECONFLICT);
	assert_non_null(strstr(err.msg, "not stopped: stop it first"));
	assert_int_equal(coord_engine_gc(f->engine, "nope", &n, &err),
			 FLT_ENOTFOUND);
	g = get(f, "web");
	assert_int_equal(count_allocs(g, "run", "running"), 2);
	flotilla__job_get_response__free_unpacked(g, NULL);

	usleep(400 * 1000);
	unsigned pushes = f->pushes;
	n = gc_now(f, NULL);
	assert_int_equal(n.jobs, 1); /* "once"; "web" runs */
	/* Its allocations were in their nodes' sets: the nodes are told. */
	assert_true(f->pushes > pushes);
	assert_int_equal(n.allocs, 2);
	assert_int_equal(coord_engine_job(f->engine, "once", &g, &err),
			 FLT_ENOTFOUND);
	assert_int_equal(stored(f, "jobs"), 1);

	/* Stopped, then purged at once, its allocations still stopping:
	 * the nodes are told (they stop them), the store keeps nothing. */
	assert_int_equal(coord_engine_stop_job(f->engine, "web", &err), 0);
	g = get(f, "web");
	assert_int_equal(count_allocs(g, "stop", NULL), 2);
	flotilla__job_get_response__free_unpacked(g, NULL);
	n = gc_now(f, "web");
	assert_int_equal(n.jobs, 1);
	assert_int_equal(n.allocs, 2);
	assert_true(n.versions >= 1);
	assert_true(n.evals >= 2);
	assert_int_equal(n.deployments, 1);
	assert_int_equal(coord_engine_job(f->engine, "web", &g, &err),
			 FLT_ENOTFOUND);
	const char *dbs[] = { "jobs", "job_versions", "allocs", "evals",
			      "deployments" };
	for (size_t i = 0; i < 5; i++)
		if (stored(f, dbs[i]))
			fail_msg("%s: %zu records left", dbs[i],
				 stored(f, dbs[i]));
	size_t jobs, allocs;
	coord_engine_counts(f->engine, &jobs, &allocs);
	assert_int_equal(jobs, 0);
	assert_int_equal(allocs, 0);
	/* The name is free again. */
	flotilla__job_register_response__free_unpacked(
		run_job(f, SERVICE("web", 1, "/bin/true", "")), NULL);
	g = get(f, "web");
	assert_int_equal(g->record->version, 1);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

/* Of a job's versions, the newest few stay, and any still needed. */
static void test_gc_versions(void **state)
{
	fixture_t *f = *state;
	restart_with(f, 200, 3600 * 1000, 2);
	char json[512];
	for (int v = 1; v <= 5; v++) {
		snprintf(json, sizeof(json),
			 "{\"name\":\"v\",\"type\":\"batch\",\"groups\":"
			 "[{\"name\":\"g\",\"count\":1,\"tasks\":[{"
			 "\"name\":\"srv\",\"command\":\"/bin/v%d\"}]}]}",
			 v);
		flotilla__job_register_response__free_unpacked(run_job(f, json),
							       NULL);
		report_all(f, "v", RUNNING, true, 0);
	}
	coord_engine_settle(f->engine);
	assert_int_equal(stored(f, "job_versions"), 5);
	/* The periodic collection (every 200 ms, the retention) does it. */
	for (int t = 0; t < 100 && stored(f, "job_versions") > 2; t++)
		usleep(20 * 1000);
	assert_int_equal(stored(f, "job_versions"), 2);
	assert_int_equal(stored(f, "allocs"), 1);
	Flotilla__GcResponse n = gc_now(f, NULL);
	assert_int_equal(n.versions, 0);
	assert_int_equal(n.allocs, 0);
	Flotilla__JobGetResponse *g = get(f, "v");
	assert_int_equal(g->n_allocs, 1);
	assert_int_equal(g->allocs[0]->job_version, 5);
	flotilla__job_get_response__free_unpacked(g, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_place_and_succeed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_node_down_reschedules,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failure_reschedules_then_gives_up, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_drain_migrates_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_system_job_on_every_node,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_canary_then_auto_revert,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_resumes_deployment,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_records_migrate,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_stops_progress,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_holds_deadline,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sync_never_waits_for_a_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_commit_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_retention, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_gc_purge_and_job_retention,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_versions, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
