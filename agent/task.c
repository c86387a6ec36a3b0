#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "flotilla/hash.h"
#include "flotilla/job.h"
#include "flotilla/pb.h"
#include "flotilla/privilege.h"
#include "flotilla/util.h"
#include "health.h"
#include "syscallfilter.h"
#include "shimconf.h"
#include "task.h"

#define SPEC_MAX (1u << 20)

#define BAD(...) return flt_err(err, -EINVAL, __VA_ARGS__)

/* "name", "uid" or "uid:gid" -> ids. */
static int resolve_user(const char *user, uid_t *uid, gid_t *gid,
			flt_error_t *err)
{
	if (!*user)
		user = "nobody";
	if (*user >= '0' && *user <= '9') {
		/* Digits only: strtoul would take "-1", which setresuid reads
		 * as "leave unchanged" (root). */
		unsigned long long u = 0, g;
		const char *p = user;
		while (*p >= '0' && *p <= '9' && u < 0x7fffffff)
			u = u * 10 + (unsigned)(*p++ - '0');
		g = u;
		if (*p == ':') {
			const char *q = ++p;
			g = 0;
			while (*p >= '0' && *p <= '9' && g < 0x7fffffff)
				g = g * 10 + (unsigned)(*p++ - '0');
			if (p == q)
				BAD("user: \"%s\" is not uid[:gid]", user);
		}
		if (*p || u >= 0x7fffffff || g >= 0x7fffffff)
			BAD("user: \"%s\" is not uid[:gid] (numbers below "
			    "2147483647)",
			    user);
		*uid = (uid_t)u;
		*gid = (gid_t)g;
		return 0;
	}
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res)
		BAD("user: no user named \"%s\" on this host", user);
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

/*
 * Tasks see the host's files, read-only: as uid 0 (or gid 0, or the
 * shadow group) they could read every secret among them, capabilities or
 * not. Such users are refused; keep the capabilities a task needs instead.
 */
static int check_ids(const char *user, uid_t uid, gid_t gid, flt_error_t *err)
{
	struct group gr, *res = NULL;
	char buf[4096];
	if (uid == 0)
		BAD("user: \"%s\" is root; tasks run as an unprivileged user "
		    "(keep capabilities with \"capabilities\" instead)",
		    *user ? user : "root");
	if (gid == 0)
		BAD("user: group 0 (root) is refused");
	if (getgrgid_r(gid, &gr, buf, sizeof(buf), &res) == 0 && res &&
	    strcmp(gr.gr_name, "shadow") == 0)
		BAD("user: the shadow group is refused");
	return 0;
}

/*
 * Whatever weakens the sandbox must be allowed by this agent's flags, on
 * top of the submitter's permission the coordinator checked: a node's
 * operator decides what its host risks, whoever submits.
 */
static int check_allowed(const Flotilla__TaskSpec *t,
			 const Flotilla__Allowances *allow, flt_error_t *err)
{
	cleanup_free flt_priv_t *v = NULL;
	size_t n = 0;
	char why[FLT_PRIV_PATH_MAX + 2 * FLT_PRIV_VALUE_MAX];

	flt_task_privileges(t, "", &v, &n);
	for (size_t i = 0; i < n; i++) {
		if (flt_priv_allowed(&v[i], allow))
			continue;
		return flt_err(err, -EPERM,
			       "%s, which this agent was not started with",
			       flt_priv_describe(&v[i], why, sizeof(why)));
	}
	return 0;
}

int agent_task_spec_check(Flotilla__TaskSpec *t,
			  const Flotilla__Allowances *allow, flt_error_t *err)
{
	/* The rules every task obeys, wherever it is checked (job.c)... */
	int rc = flt_task_check(t, "", err);
	if (rc < 0)
		return rc;
	/* ...what this agent allows... */
	if ((rc = check_allowed(t, allow, err)) < 0)
		return rc;
	/* ...and what only this host can answer. */
	uid_t uid;
	gid_t gid;
	rc = resolve_user(t->user, &uid, &gid, err);
	if (rc < 0 || (rc = check_ids(t->user, uid, gid, err)) < 0)
		return rc;
	for (size_t i = 0; i < t->n_mounts; i++) {
		struct stat st;
		if (*t->mounts[i]->source &&
		    stat(t->mounts[i]->source, &st) < 0)
			BAD("mounts[%zu].source: %s: %s", i,
			    t->mounts[i]->source, strerror(errno));
	}
	for (size_t i = 0; i < t->n_capabilities; i++) {
		cap_value_t v;
		if (cap_from_name(t->capabilities[i], &v) < 0)
			BAD("capabilities[%zu]: unknown capability \"%s\"", i,
			    t->capabilities[i]);
	}
	if (!t->kill_timeout_ms)
		t->kill_timeout_ms = 5000;
	return 0;
}

int agent_task_spec_load(const char *path, const Flotilla__Allowances *allow,
			 Flotilla__TaskSpec **out, flt_error_t *err)
{
	cleanup_free char *text = NULL;
	json_error_t je;
	int rc = flt_read_file(path, SPEC_MAX, &text);
	if (rc < 0)
		return flt_err(err, rc, "%s: %s", path,
			       rc == -EFBIG ? "larger than 1 MiB"
					    : strerror(-rc));
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		return flt_err(err, -EINVAL, "%s:%d:%d: %s", path, je.line,
			       je.column, je.text);
	Flotilla__TaskSpec *t;
	rc = flt_pb_from_json(&flotilla__task_spec__descriptor, j,
			      (ProtobufCMessage **)&t, err);
	json_decref(j);
	if (rc < 0)
		return flt_err_prefix(err, "%s", path);
	if ((rc = agent_task_spec_check(t, allow, err)) < 0) {
		flotilla__task_spec__free_unpacked(t, NULL);
		flt_err_prefix(err, "%s", path);
		return rc;
	}
	*out = t;
	return 0;
}

const char *agent_shim_path(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("FLOTILLA_SHIM");
	if (env && *env)
		return env;
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n < 0)
		return "/usr/sbin/flotilla-shim";
	path[n] = '\0';
	char *slash = strrchr(path, '/');
	strcpy(slash ? slash + 1 : path, "flotilla-shim");
	return path;
}

int agent_task_resolve_packages(const Flotilla__TaskSpec *t, agent_pkgs_t *pkgs,
				agent_task_pkg_t out[AGENT_TASK_USES_MAX],
				flt_error_t *err)
{
	char path[PATH_MAX], real[PATH_MAX];
	int rc;

	if (t->n_uses > AGENT_TASK_USES_MAX)
		return flt_err(err, -EINVAL, "uses: at most %d packages",
			       AGENT_TASK_USES_MAX);
	for (size_t i = 0; i < t->n_uses; i++) {
		const char *name = t->uses[i];
		agent_task_pkg_t *p = &out[i];
		flt_error_t e;
		rc = pkgs ? agent_pkgs_resolve(pkgs, name, path, sizeof(path),
					       &e)
			  : FLT_ENOTFOUND;
		if (rc == FLT_ENOTFOUND)
			return flt_err(err, rc,
				       "package %s is not installed on this "
				       "host",
				       name);
		if (rc < 0)
			return flt_err(err, rc, "package %s: %s", name, e.msg);
		if (!realpath(path, real))
			return flt_err(err, -errno, "package %s: %s: %s", name,
				       path, strerror(errno));
		if (strlen(real) >= sizeof(p->dir))
			return flt_err(err, -ENAMETOOLONG,
				       "package %s: %s: path too long", name,
				       real);
		memcpy(p->dir, real, strlen(real) + 1);
		const char *v = strrchr(p->dir, '/');
		snprintf(p->name, sizeof(p->name), "%s", name);
		snprintf(p->version, sizeof(p->version), "%s", v ? v + 1 : "");
	}
	return 0;
}

/* True when one of kvs ("KEY=VALUE", NULL-ended) sets key. */
static bool env_has(const char *const *kvs, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; kvs && kvs[i]; i++)
		if (!strncmp(kvs[i], key, n) && kvs[i][n] == '=')
			return true;
	return false;
}

/* "FLOTILLA_PACKAGE_<NAME>_VERSION=<version>" */
#define PKG_ENV_LEN (FLT_PKG_ENV_MAX + 130)

/*
 * The canonical host path of mount m (index i), which an allowed host
 * volume must hold: a volume is named, or the source path must lie inside
 * one. Symlinks are resolved first, so that a link inside a volume cannot
 * lead out of it.
 */
static int mount_source(const Flotilla__Mount *m, size_t i,
			const Flotilla__Allowances *a, char src[PATH_MAX],
			flt_error_t *err)
{
	const Flotilla__HostVolume *hv = NULL;
	const char *path = m->source;
	const char *field = *m->volume ? "volume" : "source";
	char vreal[PATH_MAX];

	for (size_t k = 0; a && *m->volume && k < a->n_host_volumes; k++)
		if (!strcmp(a->host_volumes[k]->name, m->volume))
			hv = a->host_volumes[k];
	if (*m->volume) {
		if (!hv)
			return flt_err(err, -EPERM,
				       "mounts[%zu].volume: %s needs "
				       "--allow-host-volume %s=PATH, which "
				       "this agent was not started with",
				       i, m->volume, m->volume);
		path = hv->path;
	}
	if (!realpath(path, src))
		return flt_err(err, -errno, "mounts[%zu].%s: %s: %s", i, field,
			       path, strerror(errno));
	const flt_never_t *nv = flt_never_path(src);
	if (nv)
		return flt_err(err, -EPERM,
			       "mounts[%zu].%s: %s is never granted: it is, "
			       "holds or lies inside %s",
			       i, field, src, nv->name);
	if (hv)
		return 0;
	for (size_t k = 0; a && k < a->n_host_volumes; k++) {
		hv = a->host_volumes[k];
		if ((m->writable && !hv->writable) ||
		    !realpath(hv->path, vreal))
			continue;
		if (flt_path_within(src, vreal))
			return 0;
	}
	return flt_err(err, -EPERM,
		       "mounts[%zu].source: %s%s (%s) lies in no host volume "
		       "this agent allows%s (--allow-host-volume NAME=DIR%s)",
		       i, m->source, m->writable ? " read-write" : "", src,
		       m->writable ? " read-write" : "",
		       m->writable ? ":rw" : "");
}

int agent_task_prepare(const Flotilla__TaskSpec *t,
		       const Flotilla__Allowances *allow, const char *task_dir,
		       const char *const *masks, const char *const *env_in,
		       const agent_task_pkg_t *pkgs, size_t npkgs,
		       flt_error_t *err)
{
	shim_conf_t c = { 0 };
	char p[PATH_MAX];
	int rc;

	/* The agent's own variables: env_in, then one per package. */
	size_t nenv = 0;
	while (env_in && env_in[nenv])
		nenv++;
	cleanup_free const char **env =
		flt_xcalloc(nenv + npkgs + 1, sizeof(*env));
	cleanup_free char *pkg_env =
		flt_xcalloc(npkgs ? npkgs : 1, PKG_ENV_LEN);
	for (size_t i = 0; i < nenv; i++)
		env[i] = env_in[i];
	for (size_t i = 0; i < npkgs; i++) {
		char name[FLT_PKG_ENV_MAX];
		char *kv = pkg_env + i * PKG_ENV_LEN;
		flt_pkg_env_name(pkgs[i].name, name);
		snprintf(kv, PKG_ENV_LEN, "%s=%s", name, pkgs[i].version);
		env[nenv + i] = kv;
	}

	/* The shim's paths are bounded; room for "/seccomp.bpf" and such. */
	if (strlen(task_dir) >= SHIM_PATH_MAX - 32)
		return flt_err(err, -ENAMETOOLONG,
			       "task directory %s: longer than %d bytes",
			       task_dir, SHIM_PATH_MAX - 32);
	if ((rc = flt_mkdir_p(task_dir, 0700)) < 0)
		return flt_err(err, rc, "%s: %s", task_dir, strerror(-rc));
	static const char *const sub[] = { "alloc", "rootfs", "logs" };
	for (size_t i = 0; i < FLT_ARRAY_SIZE(sub); i++) {
		snprintf(p, sizeof(p), "%s/%s", task_dir, sub[i]);
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return flt_err(err, -errno, "%s: %s", p,
				       strerror(errno));
	}
	if ((rc = resolve_user(t->user, &c.uid, &c.gid, err)) < 0 ||
	    (rc = check_ids(t->user, c.uid, c.gid, err)) < 0)
		return rc;
	/* The task's user owns its allocation directory. */
	snprintf(p, sizeof(p), "%s/alloc", task_dir);
	if (chown(p, c.uid, c.gid) < 0)
		return flt_err(err, -errno, "chown %s: %s", p, strerror(errno));

	snprintf(c.name, sizeof(c.name), "%s", t->name);
	snprintf(c.task_dir, sizeof(c.task_dir), "%s", task_dir);
	snprintf(c.alloc_target, sizeof(c.alloc_target), "%s",
		 *t->alloc_dir ? t->alloc_dir : "/alloc");
	snprintf(c.workdir, sizeof(c.workdir), "%s",
		 *t->workdir ? t->workdir : "/");
	snprintf(c.hostname, sizeof(c.hostname), "%s",
		 *t->hostname ? t->hostname : t->name);
	/* Unique per task directory: an exec of the same name, or a second
	 * agent on the host, never shares (and kills) another's cgroup. */
	uint64_t h = flt_hash_str(task_dir);
	snprintf(c.cgroup, sizeof(c.cgroup), "%s-%08llx", t->name,
		 (unsigned long long)(h & 0xffffffffull));
	shim_conf_add_arg(&c, t->command);
	for (size_t i = 0; i < t->n_args; i++)
		shim_conf_add_arg(&c, t->args[i]);
	/* One entry per name: with duplicates, which one a program sees
	 * depends on how it reads its environment. */
	bool own_path = false;
	for (size_t i = 0; i < t->n_env; i++)
		own_path = own_path || !strcmp(t->env[i]->key, "PATH");
	if (!own_path)
		shim_conf_add_env(&c, "PATH=/usr/local/sbin:/usr/local/bin:"
				      "/usr/sbin:/usr/bin:/sbin:/bin");
	char kv[8192];
	for (size_t i = 0; i < t->n_env; i++) {
		const char *k = t->env[i]->key;
		if (!strcmp(k, "FLOTILLA_TASK") ||
		    !strcmp(k, "FLOTILLA_ALLOC_DIR") || env_has(env, k))
			continue;
		snprintf(kv, sizeof(kv), "%s=%s", k, t->env[i]->value);
		shim_conf_add_env(&c, kv);
	}
	snprintf(kv, sizeof(kv), "FLOTILLA_TASK=%s", t->name);
	shim_conf_add_env(&c, kv);
	snprintf(kv, sizeof(kv), "FLOTILLA_ALLOC_DIR=%s", c.alloc_target);
	shim_conf_add_env(&c, kv);
	for (size_t i = 0; env && env[i]; i++)
		shim_conf_add_env(&c, env[i]);
	/* Hidden paths, canonical (the sandbox follows no symlink to
	 * them); a mount may neither lie inside one nor contain one. */
	char canon[16][PATH_MAX];
	size_t ncanon = 0;
	for (size_t i = 0; masks && masks[i] && ncanon < 16; i++)
		if (realpath(masks[i], canon[ncanon]))
			shim_conf_add_mask(&c, canon[ncanon++]);
	if ((rc = check_allowed(t, allow, err)) < 0) {
		shim_conf_free(&c);
		return rc;
	}
	for (size_t i = 0; t->mounts && i < t->n_mounts; i++) {
		char src[PATH_MAX];
		if ((rc = mount_source(t->mounts[i], i, allow, src, err)) < 0) {
			shim_conf_free(&c);
			return rc;
		}
		for (size_t k = 0; k < ncanon; k++) {
			size_t ls = strlen(src), lm = strlen(canon[k]);
			size_t l = ls < lm ? ls : lm;
			if (!strncmp(src, canon[k], l) &&
			    (src[l] == '/' || src[l] == '\0' || l == 1) &&
			    (canon[k][l] == '/' || canon[k][l] == '\0' ||
			     l == 1)) {
				shim_conf_free(&c);
				return flt_err(
					err, -EPERM,
					"mounts[%zu].source: %s would show "
					"the agent's own state (%s)",
					i, src, canon[k]);
			}
		}
		shim_conf_add_mount(&c, src, t->mounts[i]->target);
		c.mounts[c.nmounts - 1].writable = t->mounts[i]->writable;
	}
	/*
	 * Packages live in the agent's state directory, hidden from tasks
	 * above: only each package's version directory is shown, resolved
	 * by the agent (never a path from the spec), read-only like every
	 * mount.
	 */
	const char *pdir = *t->packages_dir ? t->packages_dir : "/packages";
	for (size_t i = 0; i < npkgs; i++) {
		char tgt[PATH_MAX];
		snprintf(tgt, sizeof(tgt), "%s/%s",
			 strcmp(pdir, "/") ? pdir : "", pkgs[i].name);
		shim_conf_add_mount(&c, pkgs[i].dir, tgt);
	}
	for (size_t i = 0; i < t->n_capabilities; i++) {
		cap_value_t v;
		if (cap_from_name(t->capabilities[i], &v) == 0 && v < 64)
			c.caps |= 1ull << v;
	}
	for (size_t i = 0; i < t->n_rlimits; i++)
		shim_conf_add_rlimit(&c,
				     flt_rlimit_resource(t->rlimits[i]->name),
				     (rlim_t)t->rlimits[i]->soft,
				     (rlim_t)t->rlimits[i]->hard);
	c.net = !strcmp(t->network, "host")      ? SHIM_NET_HOST
		: !strcmp(t->network, "private") ? SHIM_NET_PRIVATE
						 : SHIM_NET_NONE;
	if (t->resources) {
		c.memory_bytes = t->resources->memory_mb << 20;
		c.cpu_weight = t->resources->cpu_weight;
		c.cpu_quota_percent = t->resources->cpu_quota_percent;
		c.max_pids = t->resources->max_pids;
	}
	Flotilla__RestartPolicy *rp = t->restart;
	c.restart = !rp || !*rp->on || !strcmp(rp->on, "failure")
			    ? SHIM_RESTART_FAILURE
		    : !strcmp(rp->on, "always") ? SHIM_RESTART_ALWAYS
						: SHIM_RESTART_NEVER;
	c.restart_attempts = rp ? rp->attempts : 0;
	c.restart_interval_ms = rp && rp->interval_ms ? rp->interval_ms : 60000;
	c.restart_delay_ms = rp && rp->delay_ms ? rp->delay_ms : 1000;
	c.stop_signal = flt_signal_number(t->stop_signal);
	c.kill_timeout_ms = t->kill_timeout_ms ? t->kill_timeout_ms : 5000;
	c.log_max_bytes = t->logs ? t->logs->max_file_bytes : 0;
	c.log_max_files = t->logs ? t->logs->max_files : 0;
	c.tmp_size_mb = t->tmp_size_mb;

	const char *profile = t->seccomp ? t->seccomp->profile : "";
	agent_bpf_t prog;
	if (strcmp(profile, "unconfined") == 0) {
		/* Unconfined still never reaches the never-granted syscalls:
		 * with a capability allowed beside it (CAP_DAC_READ_SEARCH),
		 * open_by_handle_at alone is the Shocker escape. */
		size_t nn, nd = 0;
		const flt_never_t *nv = flt_never_granted(&nn);
		const char *deny[64];
		for (size_t i = 0; i < nn && nd < FLT_ARRAY_SIZE(deny); i++)
			if (nv[i].kind == FLT_NEVER_SYSCALL)
				deny[nd++] = nv[i].name;
		rc = agent_seccomp_compile_deny(deny, nd, &prog, err);
	} else {
		rc = agent_seccomp_compile(
			profile,
			t->seccomp ? (const char *const *)t->seccomp->allow
				   : NULL,
			t->seccomp ? t->seccomp->n_allow : 0, &prog, err);
	}
	if (rc == 0) {
		snprintf(c.seccomp_file, sizeof(c.seccomp_file),
			 "%s/seccomp.bpf", task_dir);
		rc = agent_bpf_save(&prog, c.seccomp_file, err);
		agent_bpf_free(&prog);
	}
	if (rc < 0) {
		shim_conf_free(&c);
		return rc;
	}
	snprintf(p, sizeof(p), "%s/shim.conf", task_dir);
	rc = shim_conf_write(&c, p);
	shim_conf_free(&c);
	if (rc < 0)
		return flt_err(err, rc, "%s: %s", p, strerror(-rc));
	return 0;
}
