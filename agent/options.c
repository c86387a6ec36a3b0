/* Option values of the agent: durations, the default node name and the
 * allowances. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

#include "flotilla/flags.h"
#include "flotilla/privilege.h"
#include "flotilla/util.h"
#include "options.h"

int agent_interval_parse(const char *s, int64_t *ms)
{
	uint64_t v;

	/* Days are not among this flag's units. */
	if (strchr(s, 'd'))
		return -EINVAL;
	int rc = flt_duration_parse(s, AGENT_INTERVAL_MAX_MS, &v, NULL);
	if (rc < 0)
		return rc;
	if (v < AGENT_INTERVAL_MIN_MS)
		return -ERANGE;
	*ms = (int64_t)v;
	return 0;
}

void agent_default_name(char *out, size_t len)
{
	if (gethostname(out, len - 1) != 0)
		out[0] = '\0';
	out[len - 1] = '\0';
	char *dot = strchr(out, '.');
	if (dot)
		*dot = '\0';
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Adds a copy of s to the sorted-later list unless it is there. */
static void add_unique(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return;
	*v = flt_xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = flt_xstrdup(s);
}

static int allow_user(const char *u, char ***v, size_t *n, flt_error_t *err)
{
	size_t digits = strspn(u, "0123456789");
	unsigned long long id = strtoull(u, NULL, 10);

	if (!*u || strlen(u) > 255 || strpbrk(u, " \t\n/"))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-user \"%s\": a user name, UID or "
			       "UID:GID",
			       u);
	/* Root is refused as a task user anyway (ADR 0006): keep
	 * capabilities instead. */
	if (!strcmp(u, "root") || (digits && id == 0) ||
	    (strchr(u, ':') && strtoull(strchr(u, ':') + 1, NULL, 10) == 0))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-user %s: root (uid or gid 0) is never "
			       "a task user; allow the capabilities the task "
			       "needs instead",
			       u);
	add_unique(v, n, u);
	return 0;
}

/* The never-granted entry that refuses path (and its canonical form), or
 * the agent's own data directory. */
static int volume_path_ok(const char *arg, const char *path,
			  const char *data_dir, flt_error_t *err)
{
	const flt_never_t *nv = flt_never_path(path);
	if (nv)
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume %s: %s is never granted: "
			       "it is, holds or lies inside %s (%s)",
			       arg, path, nv->name, nv->attack);
	if (flt_path_within(path, data_dir) || flt_path_within(data_dir, path))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume %s: %s is never granted: "
			       "it is, holds or lies inside the agent's data "
			       "directory %s (its secret, other tasks' "
			       "state)",
			       arg, path, data_dir);
	return 0;
}

static int allow_volume(const char *arg, const char *data_dir,
			Flotilla__Allowances *a, flt_error_t *err)
{
	char name[64], path[PATH_MAX], real[PATH_MAX];
	const char *eq = strchr(arg, '=');
	bool writable = false;
	int rc;

	if (!eq || (size_t)(eq - arg) >= sizeof(name))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume \"%s\": expected "
			       "NAME=PATH[:ro|rw]",
			       arg);
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	if (!flt_is_name(name, 63))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume \"%s\": NAME must be 1 to "
			       "63 of [A-Za-z0-9._-]",
			       arg);
	size_t pl = strlen(eq + 1);
	if (pl >= sizeof(path))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume %s: path too long", name);
	memcpy(path, eq + 1, pl + 1);
	if (pl > 3 &&
	    (!strcmp(path + pl - 3, ":rw") || !strcmp(path + pl - 3, ":ro"))) {
		writable = path[pl - 1] == 'w';
		path[pl - 3] = '\0';
	}
	if (path[0] != '/')
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume %s: PATH must be absolute",
			       arg);
	/* As written first (refused whether it exists or not), then as
	 * the kernel will resolve it. */
	if ((rc = volume_path_ok(arg, path, data_dir, err)) < 0)
		return rc;
	if (!realpath(path, real))
		return flt_err(err, FLT_EUSAGE,
			       "--allow-host-volume %s: %s: %s", arg, path,
			       strerror(errno));
	if ((rc = volume_path_ok(arg, real, data_dir, err)) < 0)
		return rc;
	for (size_t i = 0; i < a->n_host_volumes; i++)
		if (!strcmp(a->host_volumes[i]->name, name))
			return flt_err(err, FLT_EUSAGE,
				       "--allow-host-volume %s: volume %s is "
				       "given twice",
				       arg, name);
	Flotilla__HostVolume *hv = flt_xcalloc(1, sizeof(*hv));
	flotilla__host_volume__init(hv);
	hv->name = flt_xstrdup(name);
	hv->path = flt_xstrdup(real);
	hv->writable = writable;
	a->host_volumes = flt_xrealloc(a->host_volumes,
				       (a->n_host_volumes + 1) * sizeof(hv));
	a->host_volumes[a->n_host_volumes++] = hv;
	return 0;
}

static int cmp_volume(const void *x, const void *y)
{
	return strcmp((*(Flotilla__HostVolume *const *)x)->name,
		      (*(Flotilla__HostVolume *const *)y)->name);
}

int agent_allowances_build(const agent_allow_flags_t *f, const char *data_dir,
			   Flotilla__Allowances **out, flt_error_t *err)
{
	Flotilla__Allowances *a = flt_xcalloc(1, sizeof(*a));
	char dd[PATH_MAX];
	int rc = 0;

	flotilla__allowances__init(a);
	/* The directory may not exist yet (exec): as given then. */
	if (!realpath(data_dir, dd))
		snprintf(dd, sizeof(dd), "%s", data_dir);
	for (size_t i = 0; f->caps && i < f->caps->n && rc == 0; i++) {
		char norm[FLT_CAP_NAME_MAX];
		const char *c = f->caps->v[i];
		const flt_never_t *nv;
		if (flt_cap_normalize(c, norm) < 0)
			rc = flt_err(err, FLT_EUSAGE,
				     "--allow-cap \"%s\": not a Linux "
				     "capability (e.g. NET_BIND_SERVICE)",
				     c);
		else if ((nv = flt_never_cap(norm)))
			rc = flt_err(err, FLT_EUSAGE,
				     "--allow-cap %s: %s is never granted (%s)",
				     c, norm, nv->attack);
		else
			add_unique(&a->capabilities, &a->n_capabilities, norm);
	}
	for (size_t i = 0; f->syscalls && i < f->syscalls->n && rc == 0; i++) {
		const char *s = f->syscalls->v[i];
		const flt_never_t *nv = flt_never_syscall(s);
		if (nv)
			rc = flt_err(err, FLT_EUSAGE,
				     "--allow-syscall %s: never granted (%s)",
				     s, nv->attack);
		else if (seccomp_syscall_resolve_name(s) == __NR_SCMP_ERROR)
			rc = flt_err(err, FLT_EUSAGE,
				     "--allow-syscall \"%s\": not a system "
				     "call name libseccomp knows",
				     s);
		else
			add_unique(&a->syscalls, &a->n_syscalls, s);
	}
	for (size_t i = 0; f->users && i < f->users->n && rc == 0; i++)
		rc = allow_user(f->users->v[i], &a->users, &a->n_users, err);
	for (size_t i = 0; f->volumes && i < f->volumes->n && rc == 0; i++)
		rc = allow_volume(f->volumes->v[i], dd, a, err);
	if (rc < 0) {
		flotilla__allowances__free_unpacked(a, NULL);
		return rc;
	}
	a->host_network = f->host_network;
	a->seccomp_unconfined = f->seccomp_unconfined;
	if (a->n_capabilities)
		qsort(a->capabilities, a->n_capabilities, sizeof(char *),
		      cmp_str);
	if (a->n_syscalls)
		qsort(a->syscalls, a->n_syscalls, sizeof(char *), cmp_str);
	if (a->n_users)
		qsort(a->users, a->n_users, sizeof(char *), cmp_str);
	if (a->n_host_volumes)
		qsort(a->host_volumes, a->n_host_volumes,
		      sizeof(*a->host_volumes), cmp_volume);
	*out = a;
	return 0;
}
