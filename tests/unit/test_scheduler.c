/* The scheduler core on synthetic fleets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla/version.h"
#include "scheduler.h"

/* A job with one group of one task asking cpu/memory; constraints and
 * spreads are added by the tests. */
typedef struct jobfix {
	Flotilla__Job job;
	Flotilla__TaskGroup group, *groups[1];
	Flotilla__TaskSpec task, *tasks[1];
	Flotilla__Resources res;
	Flotilla__Constraint cons[4], *consp[4];
	Flotilla__Spread spread, *spreadp[1];
} jobfix_t;

static void job_init(jobfix_t *j, const char *type, uint32_t cpu, uint64_t mem)
{
	memset(j, 0, sizeof(*j));
	flotilla__job__init(&j->job);
	flotilla__task_group__init(&j->group);
	flotilla__task_spec__init(&j->task);
	flotilla__resources__init(&j->res);
	j->job.type = (char *)type;
	j->res.cpu_quota_percent = cpu;
	j->res.memory_mb = mem;
	j->res.max_pids = 10;
	j->task.resources = &j->res;
	j->tasks[0] = &j->task;
	j->group.tasks = j->tasks;
	j->group.n_tasks = 1;
	j->groups[0] = &j->group;
	j->job.groups = j->groups;
	j->job.n_groups = 1;
}

static void add_cons(jobfix_t *j, const char *attr, const char *op,
		     const char *value)
{
	size_t n = j->group.n_constraints;
	flotilla__constraint__init(&j->cons[n]);
	j->cons[n].attribute = (char *)attr;
	j->cons[n].operator_ = (char *)op;
	j->cons[n].value = (char *)value;
	j->consp[n] = &j->cons[n];
	j->group.constraints = j->consp;
	j->group.n_constraints = n + 1;
}

static void add_spread(jobfix_t *j, const char *attr, uint32_t weight)
{
	flotilla__spread__init(&j->spread);
	j->spread.attribute = (char *)attr;
	j->spread.weight = weight;
	j->spreadp[0] = &j->spread;
	j->group.spreads = j->spreadp;
	j->group.n_spreads = 1;
}

/* Nodes n0..n5 with varied attributes. */
static sched_fleet_t *fleet6(void)
{
	static const char *const keys[] = {
		"node.name",         "attr.os_id", "attr.kernel",
		"attr.cpu_count",    "label.zone", "label.features",
		"attr.agent_version"
	};
	static const char *const rows[6][7] = {
		{ "n0", "debian", "6.1.0", "2", "a", "gpu,ssd", "1.2.0" },
		{ "n1", "debian", "6.18.4", "8", "a", "ssd", "1.3.1" },
		{ "n2", "ubuntu", "5.15.0", "4", "b", "gpu", "2.0.0-rc.1" },
		{ "n3", "ubuntu", "6.8.0", "16", "b", "", "2.0.0" },
		{ "n4", "alpine", "6.6.1", "32", "c", "gpu,ssd,nvme", "0.9.0" },
		{ "n5", "debian", "6.1.0", "2", NULL, "ssd", "1.2.5" },
	};
	sched_fleet_t *f = sched_fleet_new();
	for (int i = 0; i < 6; i++)
		sched_fleet_add(f, rows[i][0], 7, keys, rows[i], 400, 4096,
				1000, true);
	return f;
}

/* The names of the nodes a system job lands on, as "n0,n1,...". */
static void feasible_set(const char *attr, const char *op, const char *value,
			 char *out, size_t len)
{
	sched_fleet_t *f = fleet6();
	jobfix_t j;
	job_init(&j, "system", 10, 10);
	add_cons(&j, attr, op, value);
	sched_request_t rq = { .job = &j.job, .group = &j.group };
	sched_result_t r;
	flt_error_t err;
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	char names[6] = { 0 };
	for (size_t i = 0; i < r.nplaced; i++)
		names[r.placed[i]] = 1;
	out[0] = '\0';
	for (int i = 0; i < 6; i++)
		if (names[i]) {
			size_t l = strlen(out);
			snprintf(out + l, len - l, "%sn%d", l ? "," : "", i);
		}
	sched_result_free(&r);
	sched_fleet_free(f);
}

/* Lookups by id, on an empty fleet too (a coordinator before any node). */
static void test_find(void **state)
{
	(void)state;
	sched_fleet_t *e = sched_fleet_new();
	assert_int_equal(sched_fleet_find(e, ""), -1);
	assert_int_equal(sched_fleet_find(e, "n0"), -1);
	sched_fleet_free(e);
	sched_fleet_t *f = fleet6();
	assert_int_equal(sched_fleet_find(f, "n4"), 4);
	assert_int_equal(sched_fleet_find(f, "n0"), 0);
	assert_int_equal(sched_fleet_find(f, "n6"), -1);
	sched_fleet_free(f);
}

static void test_operators(void **state)
{
	static const struct {
		const char *attr, *op, *value, *want;
	} cases[] = {
		{ "attr.os_id", "=", "debian", "n0,n1,n5" },
		{ "attr.os_id", "!=", "debian", "n2,n3,n4" },
		{ "attr.cpu_count", ">", "4", "n1,n3,n4" },
		{ "attr.cpu_count", ">=", "4", "n1,n2,n3,n4" },
		{ "attr.cpu_count", "<", "8", "n0,n2,n5" },
		{ "attr.cpu_count", "<=", "8", "n0,n1,n2,n5" },
		{ "attr.kernel", "regexp", "^6\\.(1|6)\\.", "n0,n4,n5" },
		/* 2.0.0-rc.1 is below 2.0.0, but pre-releases match only
		 * ranges that name one (as in npm). */
		{ "attr.agent_version", "version", ">= 1.2.1, < 2.0.0",
		  "n1,n5" },
		{ "attr.agent_version", "version", ">= 2.0.0-rc.1", "n2,n3" },
		{ "attr.agent_version", "version", "^1.2.0", "n0,n1,n5" },
		{ "attr.agent_version", "version", "~1.2.0", "n0,n5" },
		{ "label.features", "set_contains", "gpu,ssd", "n0,n4" },
		{ "attr.os_id", "in", "ubuntu, alpine", "n2,n3,n4" },
		{ "label.zone", "is_set", "", "n0,n1,n2,n3,n4" },
		{ "label.zone", "is_not_set", "", "n5" },
		{ "label.missing", "=", "x", "" },
		{ "node.name", "=", "n3", "n3" },
	};
	char got[64];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		feasible_set(cases[i].attr, cases[i].op, cases[i].value, got,
			     sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s %s \"%s\": got {%s}, want {%s}",
				 cases[i].attr, cases[i].op, cases[i].value,
				 got, cases[i].want);
	}
}

static void test_binpack_fills_in_order(void **state)
{
	sched_fleet_t *f = sched_fleet_new();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	(void)state;
	for (int i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof(id), "b%d", i);
		sched_fleet_add(f, id, 0, NULL, NULL, 400, 4096, 1000, true);
	}
	job_init(&j, "service", 100, 1024);
	sched_request_t rq = {
		.job = &j.job, .group = &j.group, .count = 10, .sample = 3
	};
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 10);
	/* Four fit a node: the first four share one node, the next four
	 * another, the last two the third. */
	for (int a = 1; a < 4; a++)
		assert_int_equal(r.placed[a], r.placed[0]);
	for (int a = 5; a < 8; a++)
		assert_int_equal(r.placed[a], r.placed[4]);
	assert_int_not_equal(r.placed[4], r.placed[0]);
	assert_int_equal(r.placed[9], r.placed[8]);
	assert_int_not_equal(r.placed[8], r.placed[0]);
	assert_int_not_equal(r.placed[8], r.placed[4]);
	uint32_t cpu, pids;
	uint64_t mem;
	sched_node_free_resources(f, r.placed[0], &cpu, &mem, &pids);
	assert_int_equal(cpu, 0);
	assert_int_equal(mem, 0);
	sched_result_free(&r);

	/* Full: the 13th allocation has nowhere to go, and says why. */
	rq.count = 3;
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 2);
	assert_int_equal(r.unplaced, 1);
	assert_non_null(strstr(r.why, "1 of 3 allocations not placed"));
	assert_non_null(strstr(r.why, "cpu exhausted on 3 nodes"));
	sched_result_free(&r);
	sched_fleet_free(f);
}

static void test_spread_balances(void **state)
{
	static const char *const keys[] = { "label.zone" };
	static const char *const zones[] = { "a", "a", "a", "b", "c", "c" };
	sched_fleet_t *f = sched_fleet_new();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	(void)state;
	for (int i = 0; i < 6; i++) {
		char id[8];
		snprintf(id, sizeof(id), "s%d", i);
		sched_fleet_add(f, id, 1, keys, &zones[i], 10000, 1 << 20,
				100000, true);
	}
	job_init(&j, "service", 10, 10);
	add_spread(&j, "label.zone", 100);
	sched_request_t rq = {
		.job = &j.job, .group = &j.group, .count = 12, .sample = 6
	};
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 12);
	int per_zone[3] = { 0 };
	for (size_t a = 0; a < r.nplaced; a++)
		per_zone[zones[r.placed[a]][0] - 'a']++;
	assert_int_equal(per_zone[0], 4);
	assert_int_equal(per_zone[1], 4);
	assert_int_equal(per_zone[2], 4);
	sched_result_free(&r);
	sched_fleet_free(f);
}

static void test_no_feasible_node_reason(void **state)
{
	sched_fleet_t *f = fleet6();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	(void)state;
	job_init(&j, "service", 10, 10);
	add_cons(&j, "attr.os_id", "=", "debian");
	add_cons(&j, "attr.cpu_count", ">", "4");
	sched_request_t rq = { .job = &j.job, .group = &j.group, .count = 2 };
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 2); /* only n1 qualifies: both there */
	assert_int_equal(r.placed[0], 1);
	assert_int_equal(r.placed[1], 1);
	sched_result_free(&r);

	add_cons(&j, "label.zone", "=", "z");
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 0);
	assert_int_equal(r.unplaced, 2);
	assert_string_equal(r.why,
			    "2 of 2 allocations not placed: constraint "
			    "attr.os_id = debian filtered 3 nodes; constraint "
			    "attr.cpu_count > 4 filtered 2 nodes; constraint "
			    "label.zone = z filtered 1 nodes");
	sched_result_free(&r);

	/* A bad regexp is the job's fault, not a placement failure. */
	job_init(&j, "service", 10, 10);
	add_cons(&j, "attr.kernel", "regexp", "(unclosed");
	assert_int_equal(sched_place(f, &rq, &r, &err), -EINVAL);
	assert_non_null(strstr(
		err.msg, "regular expression: at byte 9: missing closing"));
	sched_fleet_free(f);
}

static void test_distinct(void **state)
{
	sched_fleet_t *f = fleet6();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	(void)state;
	job_init(&j, "service", 10, 10);
	add_cons(&j, "", "distinct_hosts", "");
	sched_request_t rq = {
		.job = &j.job, .group = &j.group, .count = 8, .sample = 6
	};
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 6);
	assert_int_equal(r.unplaced, 2);
	for (size_t a = 0; a < r.nplaced; a++)
		for (size_t b = a + 1; b < r.nplaced; b++)
			assert_int_not_equal(r.placed[a], r.placed[b]);
	assert_non_null(strstr(r.why, "distinct constraints filtered 6 nodes"));
	sched_result_free(&r);
	sched_fleet_free(f);

	/* At most two per zone: zones a, b, c (and n5 without) take 2 each. */
	f = fleet6();
	job_init(&j, "service", 10, 10);
	add_cons(&j, "label.zone", "distinct_property", "2");
	add_cons(&j, "label.zone", "is_set", "");
	rq.count = 7;
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 6);
	assert_int_equal(r.unplaced, 1);
	sched_result_free(&r);
	sched_fleet_free(f);
}

static void test_system_jobs_and_new_nodes(void **state)
{
	static const char *const keys[] = { "attr.os_id" };
	static const char *const os[] = { "debian" };
	sched_fleet_t *f = sched_fleet_new();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	(void)state;
	sched_fleet_add(f, "x0", 1, keys, os, 400, 4096, 1000, true);
	sched_fleet_add(f, "x1", 1, keys, os, 400, 4096, 1000, false);
	sched_fleet_add(f, "x2", 1, keys, os, 400, 4096, 1000, true);
	job_init(&j, "system", 10, 10);
	sched_request_t rq = { .job = &j.job, .group = &j.group };
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 2); /* x1 is not eligible (drained) */
	assert_int_equal(r.placed[0], 0);
	assert_int_equal(r.placed[1], 2);
	size_t existing[2] = { r.placed[0], r.placed[1] };
	sched_result_free(&r);

	/* A node joins: only it gets an allocation. */
	size_t x3 =
		sched_fleet_add(f, "x3", 1, keys, os, 400, 4096, 1000, true);
	rq.existing = existing;
	rq.nexisting = 2;
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 1);
	assert_int_equal(r.placed[0], x3);
	sched_result_free(&r);
	sched_fleet_free(f);
}

/* Allocations go only where the agent allows what the tasks ask. */
static void test_allowances(void **state)
{
	static const char *const keys[] = { "attr.os_id" };
	static const char *const os[] = { "debian" };
	sched_fleet_t *f = sched_fleet_new();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	char *caps[] = { "CAP_NET_ADMIN" }, *caps2[] = { "CAP_NET_RAW" };
	Flotilla__Allowances a = FLOTILLA__ALLOWANCES__INIT,
			     b = FLOTILLA__ALLOWANCES__INIT;
	(void)state;
	a.capabilities = caps;
	a.n_capabilities = 1;
	b.capabilities = caps2;
	b.n_capabilities = 1;
	/* Alike but for their allowances: not one class. */
	for (int i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "p%d", i);
		size_t n = sched_fleet_add(f, id, 1, keys, os, 400, 4096, 1000,
					   true);
		if (i == 2)
			sched_node_set_allowances(f, n, &a);
		if (i == 3)
			sched_node_set_allowances(f, n, &b);
	}
	job_init(&j, "service", 10, 10);
	char *want[] = { "CAP_NET_ADMIN" };
	j.task.capabilities = want;
	j.task.n_capabilities = 1;
	add_cons(&j, "", "distinct_hosts", "");
	sched_request_t rq = { .job = &j.job, .group = &j.group, .count = 2 };
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 1);
	assert_int_equal(r.placed[0], 2);
	assert_int_equal(r.unplaced, 1);
	printf("[  INFO    ] why: %s\n", r.why);
	assert_non_null(strstr(r.why,
			       "3 nodes do not allow cap "
			       "CAP_NET_ADMIN (tasks[0].capabilities[0]: "
			       "--allow-cap NET_ADMIN)"));
	sched_result_free(&r);

	/* The submit-time check: allowed somewhere, and nowhere. */
	flt_priv_t *v = NULL;
	size_t n = 0;
	bool nowhere;
	flt_group_privileges(&j.group, "groups[0]", &v, &n);
	assert_int_equal(sched_fleet_privileges_check(f, v, n, &nowhere), -1);
	j.task.n_capabilities = 0;
	j.task.network = "host";
	free(v);
	v = NULL;
	n = 0;
	flt_group_privileges(&j.group, "groups[0]", &v, &n);
	assert_int_equal(sched_fleet_privileges_check(f, v, n, &nowhere), 0);
	assert_true(nowhere);
	/* Each allowed somewhere, not both on one node. */
	free(v);
	v = NULL;
	n = 0;
	j.task.network = "";
	char *both[] = { "CAP_NET_ADMIN", "CAP_NET_RAW" };
	j.task.capabilities = both;
	j.task.n_capabilities = 2;
	flt_group_privileges(&j.group, "groups[0]", &v, &n);
	assert_true(sched_fleet_privileges_check(f, v, n, &nowhere) >= 0);
	assert_false(nowhere);
	free(v);
	sched_fleet_free(f);
}

static void test_reschedule_from_down_node(void **state)
{
	sched_fleet_t *f = sched_fleet_new();
	jobfix_t j;
	sched_result_t r;
	flt_error_t err;
	(void)state;
	/* r0 went down (not eligible); its two allocations move, and
	 * distinct_hosts keeps them off r1 which already runs one. */
	sched_fleet_add(f, "r0", 0, NULL, NULL, 400, 4096, 1000, false);
	sched_fleet_add(f, "r1", 0, NULL, NULL, 400, 4096, 1000, true);
	sched_fleet_add(f, "r2", 0, NULL, NULL, 400, 4096, 1000, true);
	sched_fleet_add(f, "r3", 0, NULL, NULL, 400, 4096, 1000, true);
	job_init(&j, "service", 100, 100);
	add_cons(&j, "", "distinct_hosts", "");
	size_t existing[1] = { 1 };
	sched_request_t rq = { .job = &j.job,
			       .group = &j.group,
			       .count = 2,
			       .existing = existing,
			       .nexisting = 1,
			       .sample = 4 };
	assert_int_equal(sched_place(f, &rq, &r, &err), 0);
	assert_int_equal(r.nplaced, 2);
	for (size_t a = 0; a < 2; a++)
		assert_true(r.placed[a] == 2 || r.placed[a] == 3);
	assert_int_not_equal(r.placed[0], r.placed[1]);
	sched_result_free(&r);
	sched_fleet_free(f);
}

static void test_semver(void **state)
{
	static const struct {
		const char *a, *b;
		int want;
	} order[] = {
		{ "1.0.0", "2.0.0", -1 },
		{ "2.0.0", "2.1.0", -1 },
		{ "2.1.0", "2.1.1", -1 },
		{ "1.0.0-alpha", "1.0.0", -1 },
		{ "1.0.0-alpha", "1.0.0-alpha.1", -1 },
		{ "1.0.0-alpha.1", "1.0.0-alpha.beta", -1 },
		{ "1.0.0-alpha.beta", "1.0.0-beta", -1 },
		{ "1.0.0-beta.2", "1.0.0-beta.11", -1 },
		{ "1.0.0-beta.11", "1.0.0-rc.1", -1 },
		{ "1.0.0+build.1", "1.0.0+build.2", 0 },
		{ "v1.2", "1.2.0", 0 },
		{ "10.0.0", "9.9.9", 1 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int c = 99;
		assert_int_equal(flt_semver_cmp(order[i].a, order[i].b, &c), 0);
		if (c != order[i].want)
			fail_msg("%s vs %s: %d, want %d", order[i].a,
				 order[i].b, c, order[i].want);
	}
	int c;
	assert_int_equal(flt_semver_cmp("1.x", "1.0.0", &c), -EINVAL);
	assert_int_equal(flt_semver_cmp("1.0.0-", "1.0.0", &c), -EINVAL);
	bool m;
	flt_error_t err;
	assert_int_equal(
		flt_semver_range_match(">= 1.0, < 2", "1.5.0", &m, &err), 0);
	assert_true(m);
	assert_int_equal(flt_semver_range_match("^0.2.3", "0.3.0", &m, &err),
			 0);
	assert_false(m);
	assert_int_equal(flt_semver_range_match(">= nope", "1.0.0", &m, &err),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_operators),
		cmocka_unit_test(test_binpack_fills_in_order),
		cmocka_unit_test(test_spread_balances),
		cmocka_unit_test(test_no_feasible_node_reason),
		cmocka_unit_test(test_distinct),
		cmocka_unit_test(test_system_jobs_and_new_nodes),
		cmocka_unit_test(test_reschedule_from_down_node),
		cmocka_unit_test(test_allowances),
		cmocka_unit_test(test_semver),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
