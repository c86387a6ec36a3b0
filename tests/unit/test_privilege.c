/* Unit tests for common/privilege.c and the job checks that use it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flotilla/job.h"
#include "flotilla/privilege.h"
#include "flotilla/util.h"

static Flotilla__Job *parse_ok(const char *json)
{
	Flotilla__Job *job = NULL;
	flt_error_t err;
	int rc = flt_job_parse(json, strlen(json), &job, &err);
	if (rc < 0)
		fail_msg("parse failed: %s", err.msg);
	return job;
}

/* The job check's message for json, which must fail. */
static void parse_bad(const char *json, const char *want)
{
	Flotilla__Job *job = NULL;
	flt_error_t err;
	int rc = flt_job_parse(json, strlen(json), &job, &err);
	if (rc == 0)
		fail_msg("accepted: %s", json);
	if (!strstr(err.msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

#define JOB(task_extra)                                                     \
	"{\"name\":\"j\",\"groups\":[{\"name\":\"g\",\"tasks\":[{\"name\":" \
	"\"a\",\"command\":\"/bin/true\"},{\"name\":\"t\",\"command\":"     \
	"\"/bin/true\"" task_extra "}]}]}"

static void test_cap_normalize(void **state)
{
	(void)state;
	char out[FLT_CAP_NAME_MAX];
	assert_int_equal(flt_cap_normalize("net_admin", out), 0);
	assert_string_equal(out, "CAP_NET_ADMIN");
	assert_int_equal(flt_cap_normalize("CAP_NET_BIND_SERVICE", out), 0);
	assert_string_equal(out, "CAP_NET_BIND_SERVICE");
	assert_int_equal(flt_cap_normalize("cap_sys_admin", out), 0);
	assert_string_equal(out, "CAP_SYS_ADMIN");
	assert_int_equal(flt_cap_normalize("NET_ADMINX", out), -EINVAL);
	assert_int_equal(flt_cap_normalize("", out), -EINVAL);
	assert_int_equal(flt_cap_normalize("CAP_", out), -EINVAL);
}

static void test_never_table(void **state)
{
	(void)state;
	size_t n;
	const flt_never_t *t = flt_never_granted(&n);
	assert_true(n >= 20);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(t[i].name);
		assert_true(strlen(t[i].attack) > 10);
	}
	/* The list, and the choices made beside it. */
	const char *caps[] = { "CAP_SYS_MODULE",   "CAP_SYS_RAWIO",
			       "CAP_SYS_BOOT",     "CAP_MAC_ADMIN",
			       "CAP_MAC_OVERRIDE", "CAP_SYSLOG",
			       "sys_module" };
	for (size_t i = 0; i < sizeof(caps) / sizeof(*caps); i++)
		assert_non_null(flt_never_cap(caps[i]));
	const char *ok_caps[] = { "CAP_NET_ADMIN", "CAP_SYS_ADMIN",
				  "CAP_DAC_READ_SEARCH", "CAP_SETUID" };
	for (size_t i = 0; i < sizeof(ok_caps) / sizeof(*ok_caps); i++)
		assert_null(flt_never_cap(ok_caps[i]));
	const char *sys[] = { "open_by_handle_at", "kexec_load",
			      "kexec_file_load",   "init_module",
			      "finit_module",      "delete_module" };
	for (size_t i = 0; i < sizeof(sys) / sizeof(*sys); i++)
		assert_non_null(flt_never_syscall(sys[i]));
	assert_null(flt_never_syscall("ptrace"));
	assert_null(flt_never_syscall("name_to_handle_at"));
}

static void test_never_paths(void **state)
{
	(void)state;
	/* Is, lies inside, holds. */
	const char *bad[] = { "/",
			      "/proc",
			      "/proc/1/root",
			      "/sys/fs/cgroup",
			      "/run",
			      "/run/docker.sock",
			      "/var/run/docker.sock",
			      "/var",
			      "/var/lib",
			      "/var/lib/flotilla/agent",
			      "/dev",
			      "/dev/sda",
			      "/etc",
			      "/boot/grub",
			      "/var/lib/docker/overlay2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (!flt_never_path(bad[i]))
			fail_msg("%s was not refused", bad[i]);
	const char *good[] = { "/srv/data",    "/opt/app",      "/tmp/x",
			       "/var/log/app", "/data",         "/procfs",
			       "/runner",      "/etc/ssl/certs" };
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		if (flt_never_path(good[i]))
			fail_msg("%s was refused", good[i]);
}

static void test_path_within(void **state)
{
	(void)state;
	assert_true(flt_path_within("/srv/a", "/srv"));
	assert_true(flt_path_within("/srv", "/srv"));
	assert_true(flt_path_within("/srv", "/srv/"));
	assert_true(flt_path_within("/srv/a/b", "/"));
	assert_false(flt_path_within("/srv2", "/srv"));
	assert_false(flt_path_within("/sr", "/srv"));
	assert_false(flt_path_within("/", "/srv"));
}

/* Never granted: refused by the job check, whatever anyone allows. */
static void test_job_never_granted(void **state)
{
	(void)state;
	parse_bad(JOB(",\"capabilities\":[\"CAP_SYS_MODULE\"]"),
		  "groups[0].tasks[1].capabilities[0]: CAP_SYS_MODULE is "
		  "never granted");
	parse_bad(JOB(",\"capabilities\":[\"CAP_DAC_READ_SEARCH\"],"
		      "\"seccomp\":{\"allow\":[\"open_by_handle_at\"]}"),
		  "groups[0].tasks[1].seccomp.allow[0]: open_by_handle_at "
		  "is never granted (\"Shocker\"");
	parse_bad(JOB(",\"seccomp\":{\"allow\":[\"kexec_load\"]}"),
		  "kexec_load is never granted");
	parse_bad(JOB(",\"mounts\":[{\"source\":\"/run\",\"target\":\"/r\"}]"),
		  "groups[0].tasks[1].mounts[0].source: /run is never "
		  "granted");
	parse_bad(JOB(",\"mounts\":[{\"source\":\"/var/lib/flotilla/agent\","
		      "\"target\":\"/r\"}]"),
		  "mounts[0].source: /var/lib/flotilla/agent is never granted");
	parse_bad(JOB(",\"mounts\":[{\"source\":\"/\",\"target\":\"/r\"}]"),
		  "mounts[0].source: / is never granted");
	parse_bad(JOB(",\"mounts\":[{\"source\":\"/srv\",\"volume\":\"v\","
		      "\"target\":\"/r\"}]"),
		  "mounts[0].source: give either source or volume");
	parse_bad(JOB(",\"mounts\":[{\"volume\":\"../x\",\"target\":\"/r\"}]"),
		  "mounts[0].volume: must be 1 to 63");
}

static void test_job_privileges(void **state)
{
	(void)state;
	Flotilla__Job *job = parse_ok(JOB(
		",\"user\":\"1000\",\"network\":\"host\","
		"\"mounts\":[{\"source\":\"/srv/data/x\",\"target\":\"/d\"},"
		"{\"volume\":\"logs\",\"target\":\"/l\",\"writable\":true}],"
		"\"capabilities\":[\"CAP_NET_ADMIN\"],"
		"\"seccomp\":{\"profile\":\"unconfined\",\"allow\":"
		"[\"ptrace\"]}"));
	flt_priv_t *v;
	size_t n;
	char buf[512];
	assert_int_equal(flt_job_privileges(job, &v, &n), 0);
	assert_int_equal(n, 7);
	struct {
		flt_priv_kind_t kind;
		const char *desc;
	} want[] = {
		{ FLT_PRIV_USER, "groups[0].tasks[1].user: 1000 needs "
				 "--allow-user 1000" },
		{ FLT_PRIV_HOST_NETWORK, "groups[0].tasks[1].network: host "
					 "needs --allow-host-network" },
		{ FLT_PRIV_HOST_VOLUME,
		  "groups[0].tasks[1].mounts[0].source: /srv/data/x needs "
		  "--allow-host-volume NAME=/srv/data/x (or a directory "
		  "holding it)" },
		{ FLT_PRIV_HOST_VOLUME,
		  "groups[0].tasks[1].mounts[1].volume: logs read-write "
		  "needs --allow-host-volume logs=PATH:rw" },
		{ FLT_PRIV_CAP, "groups[0].tasks[1].capabilities[0]: "
				"CAP_NET_ADMIN needs --allow-cap NET_ADMIN" },
		{ FLT_PRIV_SECCOMP_UNCONFINED,
		  "groups[0].tasks[1].seccomp.profile: unconfined needs "
		  "--allow-seccomp-unconfined" },
		{ FLT_PRIV_SYSCALL, "groups[0].tasks[1].seccomp.allow[0]: "
				    "ptrace needs --allow-syscall ptrace" },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
		assert_int_equal(v[i].kind, want[i].kind);
		assert_string_equal(flt_priv_describe(&v[i], buf, sizeof(buf)),
				    want[i].desc);
	}

	/* What an agent allows. */
	Flotilla__Allowances a = FLOTILLA__ALLOWANCES__INIT;
	for (size_t i = 0; i < n; i++)
		assert_false(flt_priv_allowed(&v[i], &a));
	for (size_t i = 0; i < n; i++)
		assert_false(flt_priv_allowed(&v[i], NULL));
	char *caps[] = { "CAP_NET_ADMIN" }, *users[] = { "1000" };
	char *sys[] = { "ptrace" };
	Flotilla__HostVolume srv = FLOTILLA__HOST_VOLUME__INIT,
			     logs = FLOTILLA__HOST_VOLUME__INIT;
	srv.name = "srv";
	srv.path = "/srv/data";
	logs.name = "logs";
	logs.path = "/var/log/app";
	Flotilla__HostVolume *vols[] = { &srv, &logs };
	a.capabilities = caps;
	a.n_capabilities = 1;
	a.users = users;
	a.n_users = 1;
	a.syscalls = sys;
	a.n_syscalls = 1;
	a.host_volumes = vols;
	a.n_host_volumes = 2;
	a.host_network = true;
	a.seccomp_unconfined = true;
	for (size_t i = 0; i < n; i++)
		if (!flt_priv_allowed(&v[i], &a) && i != 3)
			fail_msg("%s not allowed",
				 flt_priv_describe(&v[i], buf, sizeof(buf)));
	/* logs is read-only: the writable mount is not allowed. */
	assert_false(flt_priv_allowed(&v[3], &a));
	logs.writable = true;
	assert_true(flt_priv_allowed(&v[3], &a));
	/* A source outside every volume's path is not. */
	srv.path = "/srv/dat";
	assert_false(flt_priv_allowed(&v[2], &a));

	char *text = flt_allowances_text(&a);
	assert_string_equal(text,
			    "cap:CAP_NET_ADMIN syscall:ptrace host-network "
			    "seccomp-unconfined user:1000 "
			    "volume:logs=/var/log/app:rw "
			    "volume:srv=/srv/dat:ro");
	free(text);
	text = flt_allowances_text(NULL);
	assert_string_equal(text, "");
	free(text);
	free(v);
	flotilla__job__free_unpacked(job, NULL);
}

/* A job asking nothing that weakens the sandbox: the ACL check needs no
 * privileged permission. */
static void test_unprivileged_job(void **state)
{
	(void)state;
	Flotilla__Job *job =
		parse_ok(JOB(",\"user\":\"nobody\",\"network\":\"private\","
			     "\"seccomp\":{\"profile\":\"default\"}"));
	flt_priv_t *v;
	size_t n;
	assert_int_equal(flt_job_privileges(job, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	flotilla__job__free_unpacked(job, NULL);
}

/* docs/security.md's "Never granted" table names every entry. */
static void test_docs_name_every_entry(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof(path), "%s/docs/security.md", FLT_SRC_DIR);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char text[1 << 16];
	size_t len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	const char *sec = strstr(text, "## Never granted");
	assert_non_null(sec);
	size_t n;
	const flt_never_t *t = flt_never_granted(&n);
	for (size_t i = 0; i < n; i++) {
		char quoted[128];
		snprintf(quoted, sizeof(quoted), "`%s`", t[i].name);
		if (!strstr(sec, quoted))
			fail_msg("docs/security.md: \"Never granted\" lacks %s",
				 quoted);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_normalize),
		cmocka_unit_test(test_never_table),
		cmocka_unit_test(test_never_paths),
		cmocka_unit_test(test_path_within),
		cmocka_unit_test(test_job_never_granted),
		cmocka_unit_test(test_job_privileges),
		cmocka_unit_test(test_unprivileged_job),
		cmocka_unit_test(test_docs_name_every_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
