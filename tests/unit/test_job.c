/* Unit tests for common/job.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla/job.h"
#include "flotilla/util.h"

/* Every field of Job and of what it holds, at least once. */
static const char full_job[] =
	"{\n"
	"  \"name\": \"shop-web\",\n"
	"  \"type\": \"service\",\n"
	"  \"priority\": 70,\n"
	"  \"groups\": [{\n"
	"    \"name\": \"frontend\",\n"
	"    \"count\": 3,\n"
	"    \"tasks\": [{\n"
	"      \"name\": \"server\",\n"
	"      \"command\": \"/usr/bin/python3\",\n"
	"      \"args\": [\"-m\", \"http.server\", \"8080\"],\n"
	"      \"env\": {\"PORT\": \"8080\", \"MODE\": \"prod\"},\n"
	"      \"workdir\": \"/srv\",\n"
	"      \"user\": \"1000:1000\",\n"
	"      \"resources\": {\"memory_mb\": 256, \"cpu_weight\": 200,\n"
	"                    \"cpu_quota_percent\": 150, \"max_pids\": 64},\n"
	"      \"network\": \"private\",\n"
	"      \"mounts\": [{\"source\": \"/srv/www\", \"target\": \"/www\"},\n"
	"                 {\"volume\": \"logs\", \"target\": \"/logs\",\n"
	"                  \"writable\": true}],\n"
	"      \"alloc_dir\": \"/data\",\n"
	"      \"capabilities\": [\"CAP_NET_BIND_SERVICE\"],\n"
	"      \"seccomp\": {\"profile\": \"default\", \"allow\": [\"ptrace\"]},\n"
	"      \"rlimits\": [{\"name\": \"nofile\", \"soft\": 1024,\n"
	"                   \"hard\": 4096}],\n"
	"      \"restart\": {\"attempts\": 3, \"interval_ms\": 60000,\n"
	"                  \"delay_ms\": 500, \"on\": \"always\"},\n"
	"      \"stop_signal\": \"SIGINT\",\n"
	"      \"kill_timeout_ms\": 10000,\n"
	"      \"logs\": {\"max_file_bytes\": 1048576, \"max_files\": 5},\n"
	"      \"checks\": [\n"
	"        {\"name\": \"http\", \"type\": \"http\",\n"
	"         \"address\": \"127.0.0.1:8080\", \"path\": \"/healthz\",\n"
	"         \"interval_ms\": 5000, \"timeout_ms\": 1000,\n"
	"         \"failures\": 2},\n"
	"        {\"name\": \"port\", \"type\": \"tcp\",\n"
	"         \"address\": \"[::1]:8080\"},\n"
	"        {\"name\": \"script\", \"type\": \"exec\",\n"
	"         \"command\": [\"/bin/sh\", \"-c\", \"true\"]}],\n"
	"      \"hostname\": \"frontend-1\"\n"
	"    }, {\n"
	"      \"name\": \"sidecar\", \"command\": \"/bin/sleep\",\n"
	"      \"args\": [\"infinity\"], \"user\": \"nobody\",\n"
	"      \"stop_signal\": \"15\"\n"
	"    }],\n"
	"    \"constraints\": [\n"
	"      {\"attribute\": \"attr.arch\", \"operator\": \"=\",\n"
	"       \"value\": \"x86_64\"},\n"
	"      {\"attribute\": \"attr.cpu_count\", \"operator\": \">=\",\n"
	"       \"value\": \"2\"},\n"
	"      {\"attribute\": \"attr.kernel\", \"operator\": \"regexp\",\n"
	"       \"value\": \"^(5|6)\\\\.[0-9]{1,3}\"},\n"
	"      {\"attribute\": \"attr.agent_version\", \"operator\": \"version\",\n"
	"       \"value\": \">= 0.1.0, < 2, != 1.0.0-rc.1+build.7\"},\n"
	"      {\"attribute\": \"label.features\", \"operator\": \"set_contains\",\n"
	"       \"value\": \"ssd,gpu\"},\n"
	"      {\"attribute\": \"label.zone\", \"operator\": \"in\",\n"
	"       \"value\": \"a, b, c\"},\n"
	"      {\"attribute\": \"label.rack\", \"operator\": \"is_set\"},\n"
	"      {\"attribute\": \"label.drain\", \"operator\": \"is_not_set\"},\n"
	"      {\"operator\": \"distinct_hosts\"},\n"
	"      {\"attribute\": \"label.rack\", \"operator\": \"distinct_property\",\n"
	"       \"value\": \"2\"},\n"
	"      {\"attribute\": \"node.name\", \"operator\": \"!=\",\n"
	"       \"value\": \"build-1\"}],\n"
	"    \"spreads\": [{\"attribute\": \"label.zone\", \"weight\": 80}],\n"
	"    \"reschedule\": {\"attempts\": 5, \"interval_ms\": 600000,\n"
	"                   \"delay_ms\": 10000}\n"
	"  }, {\n"
	"    \"name\": \"worker\",\n"
	"    \"tasks\": [{\"name\": \"worker\", \"command\": \"/usr/bin/worker\"}]\n"
	"  }],\n"
	"  \"constraints\": [{\"attribute\": \"attr.os_id\", \"operator\": \"=\",\n"
	"                   \"value\": \"debian\"}],\n"
	"  \"spreads\": [{\"attribute\": \"node.id\"}],\n"
	"  \"update\": {\"max_parallel\": 2, \"canary\": 1,\n"
	"             \"min_healthy_time_ms\": 5000,\n"
	"             \"healthy_deadline_ms\": 60000,\n"
	"             \"progress_deadline_ms\": 120000,\n"
	"             \"auto_revert\": true, \"auto_promote\": true}\n"
	"}\n";

static int parse(const char *text, Flotilla__Job **job, flt_error_t *err)
{
	return flt_job_parse(text, strlen(text), job, err);
}

static void test_full_job(void **state)
{
	flt_error_t err = { 0 };
	Flotilla__Job *job = NULL;

	(void)state;
	int rc = parse(full_job, &job, &err);
	if (rc != 0)
		print_error("%s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_non_null(job);

	assert_string_equal(job->name, "shop-web");
	assert_int_equal(job->priority, 70);
	assert_int_equal(job->n_groups, 2);
	Flotilla__TaskGroup *g = job->groups[0];
	assert_int_equal(g->count, 3);
	assert_int_equal(g->n_tasks, 2);
	assert_int_equal(g->n_constraints, 11);
	Flotilla__TaskSpec *t = g->tasks[0];
	assert_int_equal(t->n_env, 2);
	assert_int_equal(t->resources->memory_mb, 256);
	assert_int_equal(t->n_checks, 3);
	assert_string_equal(t->checks[1]->address, "[::1]:8080");
	assert_string_equal(g->constraints[8]->operator_, "distinct_hosts");
	assert_int_equal(g->spreads[0]->weight, 80);
	assert_int_equal(g->reschedule->attempts, 5);
	assert_int_equal(g->reschedule->interval_ms, 600000);
	assert_int_equal(g->reschedule->delay_ms, 10000);

	/* Defaults filled where fields were left out. */
	Flotilla__TaskGroup *w = job->groups[1];
	assert_int_equal(w->count, 1);
	assert_non_null(w->reschedule);
	assert_int_equal(w->reschedule->attempts, 2);
	assert_int_equal(w->reschedule->interval_ms, 3600000);
	assert_int_equal(w->reschedule->delay_ms, 30000);
	assert_int_equal(job->spreads[0]->weight, 50);
	assert_int_equal(job->update->max_parallel, 2);
	assert_int_equal(job->update->canary, 1);
	assert_int_equal(job->update->min_healthy_time_ms, 5000);
	assert_true(job->update->auto_revert);
	assert_true(job->update->auto_promote);

	/* Checking again changes nothing. */
	assert_int_equal(flt_job_check(job, &err), 0);
	assert_int_equal(job->groups[1]->count, 1);
	flotilla__job__free_unpacked(job, NULL);
}

static void test_minimal_defaults(void **state)
{
	static const char text[] =
		"{\"name\": \"j\", \"groups\": [{\"name\": \"g\", "
		"\"tasks\": [{\"name\": \"t\", \"command\": \"/bin/true\"}]}]}";
	flt_error_t err = { 0 };
	Flotilla__Job *job = NULL;

	(void)state;
	assert_int_equal(parse(text, &job, &err), 0);
	assert_string_equal(job->type, "service");
	assert_int_equal(job->priority, 50);
	assert_int_equal(job->groups[0]->count, 1);
	assert_non_null(job->update);
	assert_int_equal(job->update->max_parallel, 1);
	assert_int_equal(job->update->canary, 0);
	assert_int_equal(job->update->min_healthy_time_ms, 10000);
	assert_int_equal(job->update->healthy_deadline_ms, 300000);
	assert_int_equal(job->update->progress_deadline_ms, 600000);
	assert_int_equal(job->groups[0]->reschedule->attempts, 2);
	flotilla__job__free_unpacked(job, NULL);
}

static void test_system_and_batch(void **state)
{
	static const char system_job[] =
		"{\"name\": \"logs\", \"type\": \"system\", \"groups\": "
		"[{\"name\": \"g\", \"count\": 1, \"tasks\": [{\"name\": \"t\", "
		"\"command\": \"/bin/true\"}]}]}";
	static const char batch_job[] =
		"{\"name\": \"etl\", \"type\": \"batch\", \"groups\": "
		"[{\"name\": \"g\", \"count\": 20, \"tasks\": [{\"name\": \"t\", "
		"\"command\": \"/bin/true\"}]}], \"update\": "
		"{\"max_parallel\": 5}}";
	flt_error_t err = { 0 };
	Flotilla__Job *job = NULL;

	(void)state;
	assert_int_equal(parse(system_job, &job, &err), 0);
	assert_int_equal(job->groups[0]->count, 0); /* ignored */
	flotilla__job__free_unpacked(job, NULL);
	assert_int_equal(parse(batch_job, &job, &err), 0);
	assert_int_equal(job->groups[0]->count, 20);
	assert_int_equal(job->update->max_parallel, 5);
	flotilla__job__free_unpacked(job, NULL);
}

/* A message built in code has no JSON: its 0 means "default". */
static void test_check_message(void **state)
{
	Flotilla__Job *job = flt_xmalloc(sizeof(*job));
	Flotilla__TaskGroup *g = flt_xmalloc(sizeof(*g));
	Flotilla__TaskSpec *t = flt_xmalloc(sizeof(*t));
	flt_error_t err = { 0 };

	(void)state;
	flotilla__job__init(job);
	flotilla__task_group__init(g);
	flotilla__task_spec__init(t);
	job->name = flt_xstrdup("coded");
	g->name = flt_xstrdup("g");
	t->name = flt_xstrdup("t");
	t->command = flt_xstrdup("/bin/true");
	job->groups = flt_xmalloc(sizeof(*job->groups));
	job->groups[0] = g;
	job->n_groups = 1;
	g->tasks = flt_xmalloc(sizeof(*g->tasks));
	g->tasks[0] = t;
	g->n_tasks = 1;
	assert_int_equal(flt_job_check(job, &err), 0);
	assert_int_equal(job->priority, 50);
	assert_int_equal(g->count, 1);

	t->user = flt_xstrdup("0:0");
	assert_int_equal(flt_job_check(job, &err), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	assert_string_equal(err.msg,
			    "groups[0].tasks[0].user: \"0:0\" is root; tasks "
			    "run as an unprivileged user (keep capabilities "
			    "with \"capabilities\" instead)");
	flotilla__job__free_unpacked(job, NULL);
}

static void test_task_check_prefix(void **state)
{
	Flotilla__TaskSpec t = FLOTILLA__TASK_SPEC__INIT;
	flt_error_t err = { 0 };

	(void)state;
	t.name = "t";
	t.command = "/bin/true";
	assert_int_equal(flt_task_check(&t, NULL, &err), 0);
	t.network = "bridge";
	assert_int_equal(flt_task_check(&t, NULL, &err), -EINVAL);
	assert_string_equal(err.msg, "network: must be \"none\", \"private\" "
				     "or \"host\"");
	assert_int_equal(flt_task_check(&t, "tasks[2]", &err), -EINVAL);
	assert_string_equal(err.msg, "tasks[2].network: must be \"none\", "
				     "\"private\" or \"host\"");
}

static void test_uses(void **state)
{
	char *uses[16];
	char names[16][8];
	Flotilla__TaskSpec t = FLOTILLA__TASK_SPEC__INIT;
	flt_error_t err = { 0 };
	char env[FLT_PKG_ENV_MAX];

	(void)state;
	t.name = "t";
	t.command = "/bin/true";
	for (size_t i = 0; i < 16; i++) {
		snprintf(names[i], sizeof(names[i]), "p-%zu", i);
		uses[i] = names[i];
	}
	t.uses = uses;
	t.n_uses = 16;
	t.packages_dir = "/opt/packages";
	assert_int_equal(flt_task_check(&t, "tasks[0]", &err), 0);
	uses[3] = "log4j_2.17";
	assert_int_equal(flt_task_check(&t, "tasks[0]", &err), 0);
	uses[5] = "../etc";
	assert_int_equal(flt_task_check(&t, "tasks[0]", &err), -EINVAL);
	assert_string_equal(err.msg, "tasks[0].uses[5]: \"../etc\" is not a "
				     "package name");

	flt_pkg_env_name("demo-lib", env);
	assert_string_equal(env, "FLOTILLA_PACKAGE_DEMO_LIB_VERSION");
	flt_pkg_env_name("Log4j.Core2", env);
	assert_string_equal(env, "FLOTILLA_PACKAGE_LOG4J_CORE2_VERSION");
	char longest[65];
	memset(longest, 'z', 64);
	longest[64] = '\0';
	flt_pkg_env_name(longest, env);
	assert_int_equal(strlen(env), 17 + 64 + 8);
	assert_string_equal(env + 17 + 64, "_VERSION");
}

static void test_size_limit(void **state)
{
	size_t n = FLT_JOB_SPEC_MAX + 1;
	char *text = flt_xmalloc(n);
	flt_error_t err = { 0 };
	Flotilla__Job *job = NULL;

	(void)state;
	memset(text, ' ', n);
	assert_int_equal(flt_job_parse(text, n, &job, &err), -EFBIG);
	assert_null(job);
	assert_string_equal(err.msg, "job spec larger than 1 MiB");
	free(text);
}

/* One group "g" whose one task "t" has the given extra fields. */
#define TASK_JOB(fields)                                                    \
	"{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{\"name\":" \
	"\"t\",\"command\":\"/bin/true\"" fields "}]}]}"
/* One group "g" of one task, with the given extra group fields. */
#define GROUP_JOB(fields)                                                   \
	"{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{\"name\":" \
	"\"t\",\"command\":\"/bin/true\"}]" fields "}]}"
/* One group "g" of one task, with the given extra job fields. */
#define JOB(fields)                                                         \
	"{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{\"name\":" \
	"\"t\",\"command\":\"/bin/true\"}]}]" fields "}"
/* A group "g" of one task, for lists of groups. */
#define G                                                         \
	"{\"name\":\"g\",\"tasks\":[{\"name\":\"t\",\"command\":" \
	"\"/bin/true\"}]}"

static const struct bad_case {
	const char *what;
	const char *json;
	const char *msg;
} bad_cases[] = {
	{ "malformed JSON", "{\"name\": \"j\",}",
	  "line 1 column 14: string or '}' expected near '}'" },
	{ "duplicate key", "{\"name\": \"a\", \"name\": \"b\"}",
	  "line 1 column 20: duplicate object key near '\"name\"'" },
	{ "not an object", "[1, 2]", "Job: must be a JSON object" },
	{ "unknown field", TASK_JOB(",\"memory\":256"),
	  "groups[0].tasks[0].memory: unknown field" },
	{ "wrong type", GROUP_JOB(",\"count\":\"3\""),
	  "groups[0].count: must be a whole number from 0 to 4294967295" },
	{ "control character", TASK_JOB(",\"args\":[\"a\\u001bb\"]"),
	  "groups[0].tasks[0].args[0]: control character at byte 1" },
	{ "C1 control character", TASK_JOB(",\"args\":[\"ab\\u009b\"]"),
	  "groups[0].tasks[0].args[0]: control character at byte 2" },
	{ "NUL in a list", TASK_JOB(",\"args\":[\"a\\u0000b\"]"),
	  "groups[0].tasks[0].args[0]: NUL character at byte 1" },
	{ "NUL in a name", "{\"name\":\"t\\u0000x\",\"groups\":[" G "]}",
	  "name: NUL character at byte 1" },
	{ "NUL in a map value", TASK_JOB(",\"env\":{\"A\":\"\\u0000\"}"),
	  "groups[0].tasks[0].env.A: NUL character at byte 0" },
	{ "job name with a space", "{\"name\":\"my job\",\"groups\":[" G "]}",
	  "name: must be 1 to 63 of [A-Za-z0-9._-]" },
	{ "job name ..", "{\"name\":\"..\",\"groups\":[" G "]}",
	  "name: \"..\" is not a plain name (it names a directory on the "
	  "agents)" },
	{ "job name .", "{\"name\":\".\",\"groups\":[" G "]}",
	  "name: \".\" is not a plain name (it names a directory on the "
	  "agents)" },
	{ "job name -rf", "{\"name\":\"-rf\",\"groups\":[" G "]}",
	  "name: \"-rf\" must not start with '-' (it would read as an "
	  "option)" },
	{ "job name with a slash", "{\"name\":\"a/b\",\"groups\":[" G "]}",
	  "name: must be 1 to 63 of [A-Za-z0-9._-]" },
	{ "job name with a tab", "{\"name\":\"a\\tb\",\"groups\":[" G "]}",
	  "name: must be 1 to 63 of [A-Za-z0-9._-]" },
	{ "job name with an escape",
	  "{\"name\":\"a\\u001bb\",\"groups\":[" G "]}",
	  "name: control character at byte 1" },
	{ "group name ..",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"..\",\"tasks\":[{"
	  "\"name\":\"t\",\"command\":\"/bin/true\"}]}]}",
	  "groups[0].name: \"..\" is not a plain name (it names a directory "
	  "on the agents)" },
	{ "group name -g",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"-g\",\"tasks\":[{"
	  "\"name\":\"t\",\"command\":\"/bin/true\"}]}]}",
	  "groups[0].name: \"-g\" must not start with '-' (it would read as "
	  "an option)" },
	{ "task name .",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{"
	  "\"name\":\".\",\"command\":\"/bin/true\"}]}]}",
	  "groups[0].tasks[0].name: \".\" is not a plain name (it names a "
	  "directory on the agents)" },
	{ "task name with a slash",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{"
	  "\"name\":\"../x\",\"command\":\"/bin/true\"}]}]}",
	  "groups[0].tasks[0].name: must be 1 to 63 of [A-Za-z0-9._-]" },
	{ "tmp_size_mb too large", TASK_JOB(",\"tmp_size_mb\":65537"),
	  "groups[0].tasks[0].tmp_size_mb: must be at most 65536" },
	{ "unknown type", JOB(",\"type\":\"cron\""),
	  "type: must be \"service\", \"batch\" or \"system\"" },
	{ "priority 0", JOB(",\"priority\":0"), "priority: must be 1 to 100" },
	{ "priority 101", JOB(",\"priority\":101"),
	  "priority: must be 1 to 100" },
	{ "empty groups", "{\"name\":\"j\",\"groups\":[]}",
	  "groups: a job needs at least one group" },
	{ "duplicate group names", "{\"name\":\"j\",\"groups\":[" G "," G "]}",
	  "groups[1].name: \"g\" is used by groups[0]" },
	{ "count 0", GROUP_JOB(",\"count\":0"),
	  "groups[0].count: must be 1 to 10000" },
	{ "system job with count 3",
	  "{\"name\":\"j\",\"type\":\"system\",\"groups\":[{\"name\":\"g\","
	  "\"count\":3,\"tasks\":[{\"name\":\"t\",\"command\":\"/bin/true\"}]}"
	  "]}",
	  "groups[0].count: system jobs run one allocation per eligible node; "
	  "leave count out" },
	{ "group without tasks",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[]}]}",
	  "groups[0].tasks: a group needs at least one task" },
	{ "duplicate task names",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{\"name\":"
	  "\"t\",\"command\":\"/bin/true\"},{\"name\":\"t\",\"command\":"
	  "\"/bin/false\"}]}]}",
	  "groups[0].tasks[1].name: \"t\" is used by groups[0].tasks[0]" },
	{ "bad task command",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{\"name\":"
	  "\"t\",\"command\":\"bin/true\"}]}]}",
	  "groups[0].tasks[0].command: must be an absolute path" },
	{ "workdir with ..", TASK_JOB(",\"workdir\":\"/srv/../etc\""),
	  "groups[0].tasks[0].workdir: must be an absolute path" },
	{ "bad env name", TASK_JOB(",\"env\":{\"1X\":\"y\"}"),
	  "groups[0].tasks[0].env.1X: not a valid variable name" },
	{ "root user", TASK_JOB(",\"user\":\"root\""),
	  "groups[0].tasks[0].user: \"root\" is root; tasks run as an "
	  "unprivileged user (keep capabilities with \"capabilities\" "
	  "instead)" },
	{ "uid (uid_t)-1", TASK_JOB(",\"user\":\"4294967295\""),
	  "groups[0].tasks[0].user: \"4294967295\" is not a name or uid[:gid] "
	  "(ids below 4294967295)" },
	{ "gid 0", TASK_JOB(",\"user\":\"1000:0\""),
	  "groups[0].tasks[0].user: group 0 (root) is refused" },
	{ "bad memory", TASK_JOB(",\"resources\":{\"memory_mb\":2}"),
	  "groups[0].tasks[0].resources.memory_mb: must be 0 (no limit) or at "
	  "least 4" },
	{ "bad network", TASK_JOB(",\"network\":\"bridge\""),
	  "groups[0].tasks[0].network: must be \"none\", \"private\" or "
	  "\"host\"" },
	{ "mount target /",
	  TASK_JOB(",\"mounts\":[{\"source\":\"/srv\",\"target\":\"/\"}]"),
	  "groups[0].tasks[0].mounts[0].target: must be an absolute path "
	  "other than /" },
	{ "bad capability", TASK_JOB(",\"capabilities\":[\"net_admin\"]"),
	  "groups[0].tasks[0].capabilities[0]: \"net_admin\" is not a "
	  "capability name such as CAP_NET_BIND_SERVICE" },
	{ "bad rlimit", TASK_JOB(",\"rlimits\":[{\"name\":\"files\"}]"),
	  "groups[0].tasks[0].rlimits[0].name: unknown limit \"files\"" },
	{ "bad stop signal", TASK_JOB(",\"stop_signal\":\"SIGFOO\""),
	  "groups[0].tasks[0].stop_signal: unknown signal \"SIGFOO\"" },
	{ "bad check address",
	  TASK_JOB(",\"checks\":[{\"type\":\"http\",\"address\":\"localhost\"}"
		   "]"),
	  "groups[0].tasks[0].checks[0].address: must be host:port" },
	{ "check timeout past interval",
	  TASK_JOB(",\"checks\":[{\"type\":\"tcp\",\"address\":\"db:5432\","
		   "\"interval_ms\":1000}]"),
	  "groups[0].tasks[0].checks[0].timeout_ms: must be less than "
	  "interval_ms (2000 >= 1000)" },
	{ "relative exec check",
	  TASK_JOB(",\"checks\":[{\"type\":\"exec\",\"command\":[\"true\"]}]"),
	  "groups[0].tasks[0].checks[0].command[0]: must be an absolute "
	  "path" },
	{ "bad constraint operator",
	  JOB(",\"constraints\":[{\"attribute\":\"attr.arch\",\"operator\":"
	      "\"~=\",\"value\":\"x86_64\"}]"),
	  "constraints[0].operator: unknown operator \"~=\"" },
	{ "unknown attribute",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"attr.gpu\","
		    "\"operator\":\"is_set\"}]"),
	  "groups[0].constraints[0].attribute: unknown node attribute "
	  "\"attr.gpu\"" },
	{ "bad regexp",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"attr.kernel\","
		    "\"operator\":\"regexp\",\"value\":\"^(5|6\"}]"),
	  "groups[0].constraints[0].value: regular expression: at byte 5: "
	  "missing closing parenthesis" },
	{ "regexp too complex",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"attr.kernel\","
		    "\"operator\":\"regexp\",\"value\":"
		    "\"((a{255}){255}){255}\"}]"),
	  "groups[0].constraints[0].value: regular expression: at byte 20: "
	  "regular expression is too large" },
	{ "regexp repeating a repetition",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"attr.kernel\","
		    "\"operator\":\"regexp\",\"value\":"
		    "\"((a+)+)++++++++++++++++++++++++++\"}]"),
	  "groups[0].constraints[0].value: regular expression: at byte 9: "
	  "quantifier does not follow a repeatable item" },
	{ "bad version range",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"attr.agent_version\","
		    "\"operator\":\"version\",\"value\":\">= 1.2.x\"}]"),
	  "groups[0].constraints[0].value: not a valid version range: "
	  "\">= 1.2.x\" is not an operator and a version such as "
	  "\">= 1.2.0\"" },
	{ "version range with an empty clause",
	  JOB(",\"constraints\":[{\"attribute\":\"attr.kernel\","
	      "\"operator\":\"version\",\"value\":\">= 1.0,\"}]"),
	  "constraints[0].value: not a valid version range: empty clause" },
	{ "distinct_hosts with attribute",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"node.name\","
		    "\"operator\":\"distinct_hosts\"}]"),
	  "groups[0].constraints[0].attribute: distinct_hosts takes no "
	  "attribute" },
	{ "distinct_property 0",
	  GROUP_JOB(",\"constraints\":[{\"attribute\":\"label.rack\","
		    "\"operator\":\"distinct_property\",\"value\":\"0\"}]"),
	  "groups[0].constraints[0].value: must be empty (1) or a whole "
	  "number from 1 to 10000" },
	{ "missing value",
	  JOB(",\"constraints\":[{\"attribute\":\"node.name\","
	      "\"operator\":\"=\"}]"),
	  "constraints[0].value: required for \"=\"" },
	{ "spread weight 101",
	  JOB(",\"spreads\":[{\"attribute\":\"label.zone\",\"weight\":101}]"),
	  "spreads[0].weight: must be at most 100" },
	{ "canary > count",
	  "{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"count\":3,\"tasks\":["
	  "{\"name\":\"t\",\"command\":\"/bin/true\"}]}],\"update\":{"
	  "\"canary\":4}}",
	  "update.canary: must not exceed the group count (3)" },
	{ "batch with canary",
	  "{\"name\":\"j\",\"type\":\"batch\",\"groups\":[" G "],\"update\":{"
	  "\"canary\":1}}",
	  "update.canary: batch jobs are not updated in place" },
	{ "batch with auto_revert",
	  "{\"name\":\"j\",\"type\":\"batch\",\"groups\":[" G "],\"update\":{"
	  "\"auto_revert\":true}}",
	  "update.auto_revert: batch jobs are not updated in place" },
	{ "min healthy past healthy deadline",
	  JOB(",\"update\":{\"min_healthy_time_ms\":400000}"),
	  "update.min_healthy_time_ms: must be less than healthy_deadline_ms "
	  "(400000 >= 300000)" },
	{ "max_parallel too large", JOB(",\"update\":{\"max_parallel\":1001}"),
	  "update.max_parallel: must be at most 1000" },
	{ "uses: a path", TASK_JOB(",\"uses\":[\"ok\",\"bad/name\"]"),
	  "groups[0].tasks[0].uses[1]: \"bad/name\" is not a package name" },
	{ "uses: hidden name", TASK_JOB(",\"uses\":[\".x\"]"),
	  "groups[0].tasks[0].uses[0]: \".x\" is not a package name" },
	{ "uses: empty name", TASK_JOB(",\"uses\":[\"\"]"),
	  "groups[0].tasks[0].uses[0]: \"\" is not a package name" },
	{ "uses: twice", TASK_JOB(",\"uses\":[\"a\",\"b\",\"a\"]"),
	  "groups[0].tasks[0].uses[2]: \"a\" is listed twice" },
	{ "uses: one variable for two", TASK_JOB(",\"uses\":[\"a-b\",\"A.b\"]"),
	  "groups[0].tasks[0].uses[1]: \"A.b\" and uses[0] \"a-b\" would "
	  "share one FLOTILLA_PACKAGE_ variable" },
	{ "uses: 17 packages",
	  TASK_JOB(",\"uses\":[\"p1\",\"p2\",\"p3\",\"p4\",\"p5\",\"p6\","
		   "\"p7\",\"p8\",\"p9\",\"p10\",\"p11\",\"p12\",\"p13\","
		   "\"p14\",\"p15\",\"p16\",\"p17\"]"),
	  "groups[0].tasks[0].uses: at most 16 packages" },
	{ "packages_dir relative", TASK_JOB(",\"packages_dir\":\"pkgs\""),
	  "groups[0].tasks[0].packages_dir: must be an absolute path other "
	  "than /" },
	{ "packages_dir /", TASK_JOB(",\"packages_dir\":\"/\""),
	  "groups[0].tasks[0].packages_dir: must be an absolute path other "
	  "than /" },
	{ "packages_dir with ..", TASK_JOB(",\"packages_dir\":\"/a/../b\""),
	  "groups[0].tasks[0].packages_dir: must be an absolute path other "
	  "than /" },
};

/* Every case is run and every mismatch shown before the test fails. */
static void test_constraint_ops(void **state)
{
	(void)state;
	assert_int_equal(flt_constraint_op("="), FLT_OP_EQ);
	assert_int_equal(flt_constraint_op(">="), FLT_OP_GE);
	assert_int_equal(flt_constraint_op("regexp"), FLT_OP_REGEXP);
	assert_int_equal(flt_constraint_op("distinct_property"),
			 FLT_OP_DISTINCT_PROPERTY);
	assert_int_equal(flt_constraint_op("~="), -1);
	assert_int_equal(flt_constraint_op(""), -1);
}

static void test_bad_jobs(void **state)
{
	size_t failed = 0;

	(void)state;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		flt_error_t err = { 0 };
		Flotilla__Job *job = NULL;
		int rc = parse(c->json, &job, &err);

		if (rc == -EINVAL && err.code == -EINVAL && !job &&
		    strcmp(err.msg, c->msg) == 0)
			continue;
		print_error("case %zu (%s): rc %d\n  got:  %s\n  want: %s\n", i,
			    c->what, rc, err.msg, c->msg);
		if (job)
			flotilla__job__free_unpacked(job, NULL);
		failed++;
	}
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_job),
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_system_and_batch),
		cmocka_unit_test(test_check_message),
		cmocka_unit_test(test_task_check_prefix),
		cmocka_unit_test(test_uses),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_bad_jobs),
		cmocka_unit_test(test_constraint_ops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
