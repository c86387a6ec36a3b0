#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "flotilla/job.h"
#include "flotilla/pkg.h"
#include "flotilla/privilege.h"
#include "flotilla/regex.h"
#include "flotilla/version.h"
#include "flotilla/pb.h"
#include "flotilla/util.h"

#define NAME_MAX_LEN 63
#define GROUPS_MAX 100
#define COUNT_MAX 10000
/* Bytes of a value from the submitter quoted in a message. */
#define SHOWN_MAX 48
#define PRIORITY_MAX 100
#define PRIORITY_DEFAULT 50
#define WEIGHT_MAX 100
#define WEIGHT_DEFAULT 50
#define MAX_PARALLEL_MAX 1000
#define MIN_HEALTHY_DEFAULT 10000
#define HEALTHY_DEADLINE_DEFAULT 300000
#define PROGRESS_DEADLINE_DEFAULT 600000
#define RESCHEDULE_ATTEMPTS_DEFAULT 2
#define RESCHEDULE_INTERVAL_DEFAULT 3600000
#define RESCHEDULE_DELAY_DEFAULT 30000
#define CHECK_INTERVAL_DEFAULT 10000
#define CHECK_TIMEOUT_DEFAULT 2000
#define KILL_TIMEOUT_MAX 600000
#define USES_MAX 16
#define TMP_SIZE_MB_MAX 65536
/* Room for the longest prefix we build: groups[99].tasks[N].checks[N]. */
#define PATH_LEN 128

/* Task rlimit names and their RLIMIT_* numbers. */
static const struct {
	const char *name;
	int resource;
} rlimits[] = {
	{ "as", RLIMIT_AS },           { "core", RLIMIT_CORE },
	{ "cpu", RLIMIT_CPU },         { "data", RLIMIT_DATA },
	{ "fsize", RLIMIT_FSIZE },     { "locks", RLIMIT_LOCKS },
	{ "memlock", RLIMIT_MEMLOCK }, { "msgqueue", RLIMIT_MSGQUEUE },
	{ "nice", RLIMIT_NICE },       { "nofile", RLIMIT_NOFILE },
	{ "nproc", RLIMIT_NPROC },     { "rss", RLIMIT_RSS },
	{ "rtprio", RLIMIT_RTPRIO },   { "sigpending", RLIMIT_SIGPENDING },
	{ "stack", RLIMIT_STACK },
};

int flt_rlimit_resource(const char *name)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(rlimits); i++)
		if (strcmp(rlimits[i].name, name) == 0)
			return rlimits[i].resource;
	return -1;
}

static const char *const operators[] = {
	[FLT_OP_EQ] = "=",
	[FLT_OP_NE] = "!=",
	[FLT_OP_LT] = "<",
	[FLT_OP_GT] = ">",
	[FLT_OP_LE] = "<=",
	[FLT_OP_GE] = ">=",
	[FLT_OP_REGEXP] = "regexp",
	[FLT_OP_VERSION] = "version",
	[FLT_OP_SET_CONTAINS] = "set_contains",
	[FLT_OP_IN] = "in",
	[FLT_OP_IS_SET] = "is_set",
	[FLT_OP_IS_NOT_SET] = "is_not_set",
	[FLT_OP_DISTINCT_HOSTS] = "distinct_hosts",
	[FLT_OP_DISTINCT_PROPERTY] = "distinct_property",
};

int flt_constraint_op(const char *op)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(operators); i++)
		if (strcmp(op, operators[i]) == 0)
			return (int)i;
	return -1;
}

static int bad(flt_error_t *err, const char *prefix, const char *field,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fails with "prefix.field: reason"; either part may be empty. */
static int bad(flt_error_t *err, const char *prefix, const char *field,
	       const char *fmt, ...)
{
	char msg[FLT_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!prefix)
		prefix = "";
	return flt_err(err, -EINVAL, "%s%s%s: %s", prefix,
		       *prefix && *field ? "." : "", field, msg);
}

/*
 * Job, group and task names become path components and cgroup names on
 * agents: "." and ".." would name a directory itself or its parent, and a
 * leading '-' reads as an option to any tool an operator points at them.
 * Checks name and, when it is not a plain name, fails with the reason.
 */
static int plain_name(const char *name, flt_error_t *err, const char *prefix)
{
	if (!flt_is_name(name, NAME_MAX_LEN))
		return bad(err, prefix, "name",
			   "must be 1 to 63 of [A-Za-z0-9._-]");
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return bad(err, prefix, "name",
			   "\"%s\" is not a plain name (it names a directory "
			   "on the agents)",
			   name);
	if (name[0] == '-')
		return bad(err, prefix, "name",
			   "\"%s\" must not start with '-' (it would read as "
			   "an option)",
			   name);
	return 0;
}

/* ---- tasks ------------------------------------------------------------ */

static bool abs_clean_path(const char *p)
{
	if (p[0] != '/' || strlen(p) >= 256)
		return false;
	/* No "..", no "." components. */
	for (const char *c = p; *c;) {
		while (*c == '/')
			c++;
		const char *e = strchrnul(c, '/');
		size_t n = (size_t)(e - c);
		if ((n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c = e;
	}
	return flt_is_text(p, strlen(p));
}

static bool env_name(const char *k)
{
	if (!*k || (*k >= '0' && *k <= '9'))
		return false;
	for (; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_'))
			return false;
	return true;
}

/* A decimal id below 2^32 - 1, which the kernel reads as "none". */
static bool parse_id(const char *s, const char **end, unsigned long *id)
{
	unsigned long v = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v >= 0xfffffffful)
			return false;
	}
	*end = s;
	*id = v;
	return true;
}

/*
 * Tasks see the host's files read-only, so root could read every secret
 * among them (ADR 0006). Without the host's user database only "root", uid
 * 0 and gid 0 can be refused here; the agent refuses names that resolve to
 * them, and the shadow group, when it starts the task.
 */
static int check_user(const char *user, const char *prefix, flt_error_t *err)
{
	size_t digits = strspn(user, "0123456789");
	const char *end;
	unsigned long uid = 0, gid = 0;
	char q[64];

	if (!*user)
		return 0;
	if (digits && (user[digits] == '\0' || user[digits] == ':')) {
		/* (uid_t)-1 would make setresuid change nothing: refused
		 * along with every id that does not fit. */
		bool ok = parse_id(user, &end, &uid);
		gid = uid;
		if (ok && *end == ':')
			ok = parse_id(end + 1, &end, &gid) && !*end;
		if (!ok)
			return bad(err, prefix, "user",
				   "\"%s\" is not a name or uid[:gid] (ids "
				   "below 4294967295)",
				   flt_shown(user, SHOWN_MAX, q, sizeof(q)));
	} else {
		for (const char *c = user; *c; c++)
			if ((unsigned char)*c <= ' ' || *c == ':' ||
			    *c == '/' || *c == 0x7f)
				return bad(err, prefix, "user",
					   "\"%s\" is not a name or uid[:gid]",
					   flt_shown(user, SHOWN_MAX, q,
						     sizeof(q)));
		if (user[0] == '-' || strlen(user) > 255)
			return bad(err, prefix, "user",
				   "\"%s\" is not a name or uid[:gid]",
				   flt_shown(user, SHOWN_MAX, q, sizeof(q)));
		uid = strcmp(user, "root") == 0 ? 0 : 1;
		gid = 1;
	}
	if (uid == 0)
		return bad(err, prefix, "user",
			   "\"%s\" is root; tasks run as an unprivileged user "
			   "(keep capabilities with \"capabilities\" instead)",
			   flt_shown(user, SHOWN_MAX, q, sizeof(q)));
	if (gid == 0)
		return bad(err, prefix, "user", "group 0 (root) is refused");
	return 0;
}

int flt_signal_number(const char *s)
{
	char *end;
	long n;

	if (!*s)
		return SIGTERM;
	n = strtol(s, &end, 10);
	if (!*end)
		return n > 0 && n < NSIG ? (int)n : 0;
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);
		if (abbrev && strcmp(abbrev, s) == 0)
			return i;
	}
	return 0;
}

static bool signal_known(const char *s) { return flt_signal_number(s) != 0; }

/* Libcap is not needed to see that a name has the right shape. */
static bool capability_name(const char *s)
{
	if (strncmp(s, "CAP_", 4) != 0 || !s[4])
		return false;
	for (s += 4; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || *s == '_'))
			return false;
	return true;
}

static bool syscall_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return false;
	return n > 0 && n <= 64;
}

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

int flt_check_address_split(const char *address, char host[FLT_CHECK_HOST_MAX],
			    char port[FLT_CHECK_PORT_MAX], bool *numeric,
			    const char **reason)
{
	const char *colon, *p;
	struct in_addr v4;
	unsigned long n = 0;
	size_t hlen;

	*reason = "must be host:port";
	if (!address || !*address)
		return -EINVAL;
	if (address[0] == '[') {
		const char *rb = strchr(address, ']');
		char v6[FLT_CHECK_HOST_MAX];

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hlen = (size_t)(rb - address - 1);
		if (hlen == 0 || hlen >= FLT_CHECK_HOST_MAX) {
			*reason = "bad IPv6 address";
			return -EINVAL;
		}
		memcpy(host, address + 1, hlen);
		host[hlen] = '\0';
		memcpy(v6, host, hlen + 1);
		v6[strcspn(v6, "%")] = '\0';
		if (inet_pton(AF_INET6, v6, &(struct in6_addr){ 0 }) != 1) {
			*reason = "bad IPv6 address";
			return -EINVAL;
		}
		*numeric = true;
		colon = rb + 1;
	} else {
		colon = strrchr(address, ':');
		if (!colon || colon == address)
			return -EINVAL;
		hlen = (size_t)(colon - address);
		if (memchr(address, ':', hlen)) {
			*reason = "IPv6 addresses go in brackets: [::1]:80";
			return -EINVAL;
		}
		if (hlen > 253) {
			*reason = "host name too long";
			return -EINVAL;
		}
		for (p = address; p < colon; p++) {
			if (!is_host_char(*p)) {
				*reason = "bad host name";
				return -EINVAL;
			}
		}
		memcpy(host, address, hlen);
		host[hlen] = '\0';
		*numeric = inet_pton(AF_INET, host, &v4) == 1;
	}
	p = colon + 1;
	if (!*p || strlen(p) >= FLT_CHECK_PORT_MAX) {
		*reason = "port must be 1-65535";
		return -EINVAL;
	}
	for (; *p; p++) {
		if (*p < '0' || *p > '9') {
			*reason = "port must be 1-65535";
			return -EINVAL;
		}
		n = n * 10 + (unsigned long)(*p - '0');
	}
	if (n < 1 || n > 65535) {
		*reason = "port must be 1-65535";
		return -EINVAL;
	}
	snprintf(port, FLT_CHECK_PORT_MAX, "%lu", n);
	return 0;
}

bool flt_check_path_ok(const char *path)
{
	const unsigned char *p = (const unsigned char *)path;

	if (p[0] != '/' || strlen(path) > FLT_CHECK_PATH_MAX)
		return false;
	for (; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* The rules of the agent's agent_check_validate, with its messages. */
int flt_check_validate(const Flotilla__HealthCheck *hc, const char *prefix,
		       flt_error_t *err)
{
	const char *reason;

	if (!hc)
		return bad(err, prefix, "", "missing");
	unsigned interval, timeout;

	if (*hc->name && !flt_is_name(hc->name, NAME_MAX_LEN))
		return bad(err, prefix, "name",
			   "must be 1-63 characters of A-Z a-z 0-9 . _ -");
	if (strcmp(hc->type, "exec") && strcmp(hc->type, "tcp") &&
	    strcmp(hc->type, "http"))
		return bad(err, prefix, "type", "must be exec, tcp or http");
	if (!strcmp(hc->type, "exec")) {
		if (hc->n_command == 0)
			return bad(err, prefix, "command", "must not be empty");
		if (hc->command[0][0] != '/')
			return bad(err, prefix, "command[0]",
				   "must be an absolute path");
	} else {
		if (!*hc->address)
			return bad(err, prefix, "address",
				   "required for %s checks", hc->type);
		char host[FLT_CHECK_HOST_MAX], port[FLT_CHECK_PORT_MAX];
		bool numeric;
		if (flt_check_address_split(hc->address, host, port, &numeric,
					    &reason) < 0)
			return bad(err, prefix, "address", "%s", reason);
	}
	if (!strcmp(hc->type, "http") && *hc->path &&
	    !flt_check_path_ok(hc->path))
		return bad(err, prefix, "path",
			   "must start with / and have no spaces or control "
			   "characters");
	interval = hc->interval_ms ? hc->interval_ms : CHECK_INTERVAL_DEFAULT;
	timeout = hc->timeout_ms ? hc->timeout_ms : CHECK_TIMEOUT_DEFAULT;
	if (timeout >= interval)
		return bad(err, prefix, "timeout_ms",
			   "must be less than interval_ms (%u >= %u)", timeout,
			   interval);
	return 0;
}

void flt_pkg_env_name(const char *pkg, char out[FLT_PKG_ENV_MAX])
{
	static const char pre[] = "FLOTILLA_PACKAGE_", post[] = "_VERSION";
	size_t n = sizeof(pre) - 1;

	memcpy(out, pre, n);
	for (; *pkg && n < FLT_PKG_ENV_MAX - sizeof(post); pkg++) {
		char c = *pkg;
		out[n++] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A')
			   : (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
				   ? c
				   : '_';
	}
	memcpy(out + n, post, sizeof(post));
}

/*
 * Packages a task uses: each appears at <packages_dir>/<name> and names
 * FLOTILLA_PACKAGE_<NAME>_VERSION, upper-cased with every other character
 * as '_': two names that map to the same variable are refused too, since
 * the task could not tell which version it got.
 */
static int check_uses(const Flotilla__TaskSpec *t, const char *pre,
		      flt_error_t *err)
{
	char sub[PATH_LEN], q[64];

	if (t->n_uses > USES_MAX)
		return bad(err, pre, "uses", "at most %d packages", USES_MAX);
	for (size_t i = 0; i < t->n_uses; i++) {
		const char *u = t->uses[i];
		snprintf(sub, sizeof(sub), "uses[%zu]", i);
		if (!flt_pkg_name_valid(u))
			return bad(err, pre, sub,
				   "\"%s\" is not a package name",
				   flt_shown(u, SHOWN_MAX, q, sizeof(q)));
		for (size_t k = 0; k < i; k++) {
			const char *v = t->uses[k];
			if (!strcmp(u, v))
				return bad(err, pre, sub,
					   "\"%s\" is listed twice", u);
			char eu[FLT_PKG_ENV_MAX], ev[FLT_PKG_ENV_MAX];
			flt_pkg_env_name(u, eu);
			flt_pkg_env_name(v, ev);
			if (!strcmp(eu, ev))
				return bad(
					err, pre, sub,
					"\"%s\" and uses[%zu] \"%s\" would "
					"share one FLOTILLA_PACKAGE_ variable",
					u, k, v);
		}
	}
	if (*t->packages_dir &&
	    (!abs_clean_path(t->packages_dir) || !strcmp(t->packages_dir, "/")))
		return bad(err, pre, "packages_dir",
			   "must be an absolute path other than /");
	return 0;
}

int flt_task_check(const Flotilla__TaskSpec *t, const char *pre,
		   flt_error_t *err)
{
	char sub[PATH_LEN], q[64];
	int rc;

	if (!pre)
		pre = "";
	if ((rc = plain_name(t->name, err, pre)) < 0)
		return rc;
	if (!abs_clean_path(t->command))
		return bad(err, pre, "command", "must be an absolute path");
	for (size_t i = 0; i < t->n_env; i++) {
		if (env_name(t->env[i]->key))
			continue;
		snprintf(sub, sizeof(sub), "env.%s",
			 flt_shown(t->env[i]->key, SHOWN_MAX, q, sizeof(q)));
		return bad(err, pre, sub, "not a valid variable name");
	}
	if (*t->workdir && !abs_clean_path(t->workdir))
		return bad(err, pre, "workdir", "must be an absolute path");
	if ((rc = check_user(t->user, pre, err)) < 0)
		return rc;

	const Flotilla__Resources *r = t->resources;
	if (r) {
		if (r->memory_mb && r->memory_mb < 4)
			return bad(err, pre, "resources.memory_mb",
				   "must be 0 (no limit) or at least 4");
		if (r->memory_mb > (1ull << 40))
			return bad(err, pre, "resources.memory_mb",
				   "too large");
		if (r->cpu_weight > 10000)
			return bad(err, pre, "resources.cpu_weight",
				   "must be 1 to 10000");
		if (r->cpu_quota_percent > 100000)
			return bad(err, pre, "resources.cpu_quota_percent",
				   "must be at most 100000 (1000 cores)");
		if (r->max_pids > 4194304)
			return bad(err, pre, "resources.max_pids",
				   "must be at most 4194304");
	}
	if (*t->network && strcmp(t->network, "none") &&
	    strcmp(t->network, "private") && strcmp(t->network, "host"))
		return bad(err, pre, "network",
			   "must be \"none\", \"private\" or \"host\"");
	for (size_t i = 0; i < t->n_mounts; i++) {
		const Flotilla__Mount *m = t->mounts[i];
		snprintf(sub, sizeof(sub), "%s%smounts[%zu]", pre,
			 *pre ? "." : "", i);
		bool vol = *m->volume != '\0';
		if (vol && *m->source)
			return bad(err, sub, "source",
				   "give either source or volume, not both");
		if (vol && !flt_is_name(m->volume, NAME_MAX_LEN))
			return bad(err, sub, "volume",
				   "must be 1 to 63 of [A-Za-z0-9._-]");
		if (!vol && !abs_clean_path(m->source))
			return bad(err, sub, "source",
				   "must be an absolute path (or name an "
				   "allowed host volume in \"volume\")");
		const flt_never_t *nv = vol ? NULL : flt_never_path(m->source);
		if (nv)
			return bad(err, sub, "source",
				   "%s is never granted: it is, holds or lies "
				   "inside %s (%s)",
				   m->source, nv->name, nv->attack);
		if (!abs_clean_path(m->target) || !strcmp(m->target, "/"))
			return bad(err, sub, "target",
				   "must be an absolute path other than /");
	}
	if (*t->alloc_dir &&
	    (!abs_clean_path(t->alloc_dir) || !strcmp(t->alloc_dir, "/")))
		return bad(err, pre, "alloc_dir",
			   "must be an absolute path other than /");
	if ((rc = check_uses(t, pre, err)) < 0)
		return rc;
	for (size_t i = 0; i < t->n_capabilities; i++) {
		const flt_never_t *nv;
		snprintf(sub, sizeof(sub), "capabilities[%zu]", i);
		if (!capability_name(t->capabilities[i]))
			return bad(err, pre, sub,
				   "\"%s\" is not a capability name such as "
				   "CAP_NET_BIND_SERVICE",
				   flt_shown(t->capabilities[i], SHOWN_MAX, q,
					     sizeof(q)));
		if ((nv = flt_never_cap(t->capabilities[i])))
			return bad(err, pre, sub, "%s is never granted (%s)",
				   nv->name, nv->attack);
	}
	if (t->seccomp) {
		const Flotilla__Seccomp *s = t->seccomp;
		if (*s->profile && strcmp(s->profile, "default") &&
		    strcmp(s->profile, "unconfined"))
			return bad(err, pre, "seccomp.profile",
				   "must be \"default\" or \"unconfined\"");
		for (size_t i = 0; i < s->n_allow; i++) {
			const flt_never_t *nv;
			snprintf(sub, sizeof(sub), "seccomp.allow[%zu]", i);
			if (!syscall_name(s->allow[i]))
				return bad(err, pre, sub,
					   "\"%s\" is not a system call name",
					   flt_shown(s->allow[i], SHOWN_MAX, q,
						     sizeof(q)));
			if ((nv = flt_never_syscall(s->allow[i])))
				return bad(err, pre, sub,
					   "%s is never granted (%s)", nv->name,
					   nv->attack);
		}
	}
	for (size_t i = 0; i < t->n_rlimits; i++) {
		const Flotilla__Rlimit *l = t->rlimits[i];
		snprintf(sub, sizeof(sub), "%s%srlimits[%zu]", pre,
			 *pre ? "." : "", i);
		if (flt_rlimit_resource(l->name) < 0)
			return bad(err, sub, "name", "unknown limit \"%s\"",
				   flt_shown(l->name, SHOWN_MAX, q, sizeof(q)));
		if (l->soft > l->hard)
			return bad(err, sub, "soft", "must not exceed hard");
	}
	const Flotilla__RestartPolicy *rp = t->restart;
	if (rp) {
		if (*rp->on && strcmp(rp->on, "failure") &&
		    strcmp(rp->on, "always") && strcmp(rp->on, "never"))
			return bad(err, pre, "restart.on",
				   "must be \"failure\", \"always\" or "
				   "\"never\"");
		if (rp->attempts > 1000)
			return bad(err, pre, "restart.attempts",
				   "must be at most 1000");
	}
	if (!signal_known(t->stop_signal))
		return bad(err, pre, "stop_signal", "unknown signal \"%s\"",
			   flt_shown(t->stop_signal, SHOWN_MAX, q, sizeof(q)));
	if (t->kill_timeout_ms > KILL_TIMEOUT_MAX)
		return bad(err, pre, "kill_timeout_ms",
			   "must be at most 600000");
	if (t->logs && t->logs->max_file_bytes &&
	    t->logs->max_file_bytes < 4096)
		return bad(err, pre, "logs.max_file_bytes",
			   "must be at least 4096");
	if (t->logs && t->logs->max_files > 100)
		return bad(err, pre, "logs.max_files", "must be at most 100");
	if (t->tmp_size_mb > TMP_SIZE_MB_MAX)
		return bad(err, pre, "tmp_size_mb", "must be at most %d",
			   TMP_SIZE_MB_MAX);
	for (size_t i = 0; i < t->n_checks; i++) {
		snprintf(sub, sizeof(sub), "%s%schecks[%zu]", pre,
			 *pre ? "." : "", i);
		if ((rc = flt_check_validate(t->checks[i], sub, err)) < 0)
			return rc;
	}
	if (*t->hostname && !flt_is_name(t->hostname, NAME_MAX_LEN))
		return bad(err, pre, "hostname",
			   "must be 1 to 63 of [A-Za-z0-9._-]");
	return 0;
}

/* ---- constraints and spreads ------------------------------------------ */

/* "node.name", "node.id", "attr.<Fingerprint field>" or "label.<key>". */
static int check_attribute(const char *a, const char *prefix, flt_error_t *err)
{
	char q[64];

	if (!strcmp(a, "node.name") || !strcmp(a, "node.id"))
		return 0;
	if (!strncmp(a, "attr.", 5)) {
		if (!protobuf_c_message_descriptor_get_field_by_name(
			    &flotilla__fingerprint__descriptor, a + 5))
			return bad(err, prefix, "attribute",
				   "unknown node attribute \"%s\"",
				   flt_shown(a, SHOWN_MAX, q, sizeof(q)));
		return 0;
	}
	if (!strncmp(a, "label.", 6)) {
		if (!flt_is_name(a + 6, NAME_MAX_LEN))
			return bad(err, prefix, "attribute",
				   "label keys are 1 to 63 of "
				   "[A-Za-z0-9._-]");
		return 0;
	}
	return bad(err, prefix, "attribute",
		   "must be node.name, node.id, attr.<name> or label.<key>");
}

static int check_regexp(const char *re, const char *prefix, flt_error_t *err)
{
	flt_regex_t *rx;
	flt_error_t e;

	if (flt_regex_compile(re, &rx, &e) < 0)
		return bad(err, prefix, "value", "%s", e.msg);
	flt_regex_free(rx);
	return 0;
}

static int check_version_range(const char *range, const char *prefix,
			       flt_error_t *err)
{
	const char *p = range;
	char q[64], clause[256];

	for (;;) {
		const char *start = p, *end = strchrnul(p, ',');
		size_t n;

		while (start < end && *start == ' ')
			start++;
		n = (size_t)(end - start);
		while (n && start[n - 1] == ' ')
			n--;
		if (!n)
			return bad(err, prefix, "value",
				   "not a valid version range: empty clause");
		/* Each clause is parsed by the same code that evaluates
		 * ranges (common/version.c), so what passes here works. */
		snprintf(clause, sizeof(clause), "%.*s", (int)n, start);
		bool match;
		if (flt_semver_range_match(clause, "0.0.0", &match, NULL) < 0) {
			return bad(err, prefix, "value",
				   "not a valid version range: \"%s\" is not "
				   "an operator and a version such as "
				   "\">= 1.2.0\"",
				   flt_shown(clause, SHOWN_MAX, q, sizeof(q)));
		}
		if (!*end)
			return 0;
		p = end + 1;
	}
}

/* Comma-separated values, none of them empty. */
static bool value_list(const char *s)
{
	for (;;) {
		const char *end = strchrnul(s, ',');
		const char *c = s;
		while (c < end && *c == ' ')
			c++;
		if (c == end)
			return false;
		if (!*end)
			return true;
		s = end + 1;
	}
}

static int check_constraint(const Flotilla__Constraint *c, const char *prefix,
			    flt_error_t *err)
{
	const char *op = c->operator_;
	bool no_attr = !strcmp(op, "distinct_hosts");
	bool no_value =
		no_attr || !strcmp(op, "is_set") || !strcmp(op, "is_not_set");
	const char *end;
	unsigned long n;
	char q[64];
	int rc;

	if (*c->attribute && !no_attr &&
	    (rc = check_attribute(c->attribute, prefix, err)) < 0)
		return rc;
	if (!*op)
		return bad(err, prefix, "operator", "required");
	if (flt_constraint_op(op) < 0)
		return bad(err, prefix, "operator", "unknown operator \"%s\"",
			   flt_shown(op, SHOWN_MAX, q, sizeof(q)));
	if (no_attr && *c->attribute)
		return bad(err, prefix, "attribute",
			   "distinct_hosts takes no attribute");
	if (!no_attr && !*c->attribute)
		return bad(err, prefix, "attribute", "required for \"%s\"", op);
	if (no_value) {
		if (*c->value)
			return bad(err, prefix, "value",
				   "\"%s\" takes no value", op);
		return 0;
	}
	if (!strcmp(op, "distinct_property")) {
		if (*c->value && (!parse_id(c->value, &end, &n) || *end || !n ||
				  n > COUNT_MAX))
			return bad(err, prefix, "value",
				   "must be empty (1) or a whole number from 1 "
				   "to 10000");
		return 0;
	}
	if (!*c->value)
		return bad(err, prefix, "value", "required for \"%s\"", op);
	if (!strcmp(op, "regexp"))
		return check_regexp(c->value, prefix, err);
	if (!strcmp(op, "version"))
		return check_version_range(c->value, prefix, err);
	if ((!strcmp(op, "in") || !strcmp(op, "set_contains")) &&
	    !value_list(c->value))
		return bad(err, prefix, "value",
			   "empty item in the comma-separated list");
	return 0;
}

static int check_placement(Flotilla__Constraint **cs, size_t n_cs,
			   Flotilla__Spread **ss, size_t n_ss, const char *pre,
			   flt_error_t *err)
{
	char sub[PATH_LEN];
	int rc;

	for (size_t i = 0; i < n_cs; i++) {
		snprintf(sub, sizeof(sub), "%s%sconstraints[%zu]", pre,
			 *pre ? "." : "", i);
		if ((rc = check_constraint(cs[i], sub, err)) < 0)
			return rc;
	}
	for (size_t i = 0; i < n_ss; i++) {
		Flotilla__Spread *s = ss[i];
		snprintf(sub, sizeof(sub), "%s%sspreads[%zu]", pre,
			 *pre ? "." : "", i);
		if (!*s->attribute)
			return bad(err, sub, "attribute", "required");
		if ((rc = check_attribute(s->attribute, sub, err)) < 0)
			return rc;
		if (s->weight > WEIGHT_MAX)
			return bad(err, sub, "weight", "must be at most 100");
		if (!s->weight)
			s->weight = WEIGHT_DEFAULT;
	}
	return 0;
}

/* ---- jobs ------------------------------------------------------------- */

/* True when the JSON object o (if any) gives key a non-null value. */
static bool given(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return v && !json_is_null(v);
}

static int check_group(Flotilla__Job *job, size_t gi, json_t *src, bool system,
		       flt_error_t *err)
{
	Flotilla__TaskGroup *g = job->groups[gi];
	char pre[PATH_LEN], sub[PATH_LEN];
	int rc;

	snprintf(pre, sizeof(pre), "groups[%zu]", gi);
	if ((rc = plain_name(g->name, err, pre)) < 0)
		return rc;
	for (size_t k = 0; k < gi; k++)
		if (!strcmp(job->groups[k]->name, g->name))
			return bad(err, pre, "name",
				   "\"%s\" is used by groups[%zu]", g->name, k);
	if (system) {
		if (g->count > 1)
			return bad(err, pre, "count",
				   "system jobs run one allocation per "
				   "eligible node; leave count out");
		g->count = 0;
	} else {
		if (g->count > COUNT_MAX || (!g->count && given(src, "count")))
			return bad(err, pre, "count", "must be 1 to 10000");
		if (!g->count)
			g->count = 1;
	}
	if (!g->n_tasks)
		return bad(err, pre, "tasks",
			   "a group needs at least one task");
	for (size_t i = 0; i < g->n_tasks; i++) {
		snprintf(sub, sizeof(sub), "%s.tasks[%zu]", pre, i);
		if ((rc = flt_task_check(g->tasks[i], sub, err)) < 0)
			return rc;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(g->tasks[k]->name, g->tasks[i]->name))
				return bad(err, sub, "name",
					   "\"%s\" is used by %s.tasks[%zu]",
					   g->tasks[i]->name, pre, k);
	}
	rc = check_placement(g->constraints, g->n_constraints, g->spreads,
			     g->n_spreads, pre, err);
	if (rc < 0)
		return rc;
	if (!g->reschedule) {
		g->reschedule = flt_xmalloc(sizeof(*g->reschedule));
		flotilla__reschedule_policy__init(g->reschedule);
	}
	Flotilla__ReschedulePolicy *rs = g->reschedule;
	if (!rs->attempts)
		rs->attempts = RESCHEDULE_ATTEMPTS_DEFAULT;
	if (!rs->interval_ms)
		rs->interval_ms = RESCHEDULE_INTERVAL_DEFAULT;
	if (!rs->delay_ms)
		rs->delay_ms = RESCHEDULE_DELAY_DEFAULT;
	return 0;
}

static int check_update(Flotilla__Job *job, bool batch, bool service,
			flt_error_t *err)
{
	if (!job->update) {
		job->update = flt_xmalloc(sizeof(*job->update));
		flotilla__update_policy__init(job->update);
	}
	Flotilla__UpdatePolicy *u = job->update;

	if (u->max_parallel > MAX_PARALLEL_MAX)
		return bad(err, "update", "max_parallel",
			   "must be at most 1000");
	if (!u->max_parallel)
		u->max_parallel = 1;
	if (batch && u->canary)
		return bad(err, "update", "canary",
			   "batch jobs are not updated in place");
	for (size_t i = 0; service && i < job->n_groups; i++) {
		uint32_t count = job->groups[i]->count;
		if (u->canary <= count)
			continue;
		if (job->n_groups == 1)
			return bad(err, "update", "canary",
				   "must not exceed the group count (%u)",
				   count);
		return bad(err, "update", "canary",
			   "must not exceed the count of groups[%zu] (%u)", i,
			   count);
	}
	if (!u->min_healthy_time_ms)
		u->min_healthy_time_ms = MIN_HEALTHY_DEFAULT;
	if (!u->healthy_deadline_ms)
		u->healthy_deadline_ms = HEALTHY_DEADLINE_DEFAULT;
	if (!u->progress_deadline_ms)
		u->progress_deadline_ms = PROGRESS_DEADLINE_DEFAULT;
	if (u->min_healthy_time_ms >= u->healthy_deadline_ms)
		return bad(err, "update", "min_healthy_time_ms",
			   "must be less than healthy_deadline_ms (%u >= %u)",
			   u->min_healthy_time_ms, u->healthy_deadline_ms);
	if (u->healthy_deadline_ms > u->progress_deadline_ms)
		return bad(err, "update", "healthy_deadline_ms",
			   "must not exceed progress_deadline_ms (%u > %u)",
			   u->healthy_deadline_ms, u->progress_deadline_ms);
	if (batch && u->auto_revert)
		return bad(err, "update", "auto_revert",
			   "batch jobs are not updated in place");
	if (batch && u->auto_promote)
		return bad(err, "update", "auto_promote",
			   "batch jobs are not updated in place");
	return 0;
}

/*
 * Lengths, and control characters (which JSON escapes allow): a job is
 * written by an operator, and a control character in a name, a path, a
 * command or its environment is a mistake or an attack, never meant.
 */
static int check_text(Flotilla__Job *job, flt_error_t *err)
{
	flt_pb_limits_t lim = flt_pb_default_limits;
	lim.no_controls = true;
	if (flt_pb_check(&job->base, &lim, err) < 0) {
		if (err)
			err->code = -EINVAL;
		return -EINVAL;
	}
	return 0;
}

/* src: the JSON the job came from, to tell an explicit 0; may be NULL. */
static int check_job(Flotilla__Job *job, json_t *src, flt_error_t *err)
{
	bool system, batch;
	json_t *groups = json_object_get(src, "groups");
	int rc = check_text(job, err);

	if (rc < 0)
		return rc;

	if ((rc = plain_name(job->name, err, "")) < 0)
		return rc;
	if (*job->namespace_ && !flt_namespace_valid(job->namespace_))
		return bad(err, "", "namespace",
			   "must be 1 to 63 of [a-z0-9-], not starting with "
			   "'-'");
	if (*job->type && strcmp(job->type, "service") &&
	    strcmp(job->type, "batch") && strcmp(job->type, "system"))
		return bad(err, "", "type",
			   "must be \"service\", \"batch\" or \"system\"");
	if (!*job->type) {
		/* Stored explicitly: what runs never depends on a default. */
		if (job->type != protobuf_c_empty_string)
			free(job->type);
		job->type = flt_xstrdup("service");
	}
	system = !strcmp(job->type, "system");
	batch = !strcmp(job->type, "batch");
	if (job->priority > PRIORITY_MAX ||
	    (!job->priority && given(src, "priority")))
		return bad(err, "", "priority", "must be 1 to 100");
	if (!job->priority)
		job->priority = PRIORITY_DEFAULT;
	if (!job->n_groups)
		return bad(err, "", "groups", "a job needs at least one group");
	if (job->n_groups > GROUPS_MAX)
		return bad(err, "", "groups", "at most 100 groups");
	for (size_t i = 0; i < job->n_groups; i++) {
		rc = check_group(job, i, json_array_get(groups, i), system,
				 err);
		if (rc < 0)
			return rc;
	}
	rc = check_placement(job->constraints, job->n_constraints, job->spreads,
			     job->n_spreads, "", err);
	if (rc < 0)
		return rc;
	return check_update(job, batch, !system && !batch, err);
}

int flt_job_check(Flotilla__Job *job, flt_error_t *err)
{
	return check_job(job, NULL, err);
}

int flt_job_parse(const char *json, size_t len, Flotilla__Job **out,
		  flt_error_t *err)
{
	ProtobufCMessage *m = NULL;
	json_error_t je;
	json_t *j;
	int rc;

	if (len > FLT_JOB_SPEC_MAX)
		return flt_err(err, -EFBIG, "job spec larger than 1 MiB");
	/* Duplicate keys are refused: which one wins is nowhere written. */
	/* NUL is let through jansson to be refused with its field by
	 * flt_pb_from_json. */
	j = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!j)
		return flt_err(err, -EINVAL, "line %d column %d: %s", je.line,
			       je.column, je.text);
	rc = flt_pb_from_json(&flotilla__job__descriptor, j, &m, err);
	if (rc < 0)
		goto out;
	rc = check_job((Flotilla__Job *)m, j, err);
	if (rc == 0)
		*out = (Flotilla__Job *)steal_ptr(&m);
out:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	json_decref(j);
	return rc;
}
