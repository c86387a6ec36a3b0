/* Task specs: loading, checking, and preparing a task directory. */
#ifndef FLOTILLA_TASK_H
#define FLOTILLA_TASK_H

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "pkgstore.h"

#define AGENT_TASK_USES_MAX 16 /* flt_task_check allows no more */

/* A package a task uses, as resolved when the task starts. */
typedef struct agent_task_pkg {
	char name[65];
	char version[129];
	char dir[1024]; /* canonical <packages>/<name>/<version> */
} agent_task_pkg_t;

/* Reads a JSON task spec (at most 1 MiB) and checks it (with allow). */
int agent_task_spec_load(const char *path, const Flotilla__Allowances *allow,
			 Flotilla__TaskSpec **out, flt_error_t *err);

/*
 * Checks every field, naming the first bad one with its path
 * ("resources.memory_mb: must be 0 or at least 4"), and fills numeric
 * defaults. Whatever t asks that weakens the sandbox must be allowed by
 * allow (the agent's --allow-* flags; NULL: nothing), else -EPERM names
 * the field and the flag ("capabilities[0]: CAP_NET_ADMIN needs
 * --allow-cap NET_ADMIN, which this agent was not started with").
 * Returns 0, -EINVAL or -EPERM.
 */
int agent_task_spec_check(Flotilla__TaskSpec *t,
			  const Flotilla__Allowances *allow, flt_error_t *err);

/*
 * Resolves every package t uses to the version current now
 * (agent_pkgs_resolve): out[0..t->n_uses) in the order of t->uses. The
 * directory is the version's own, so that a later switch does not move
 * what a running task sees. FLT_ENOTFOUND with "package NAME is not
 * installed on this host" when a package has no current version here
 * (pkgs NULL: none has); other errors name the package.
 */
int agent_task_resolve_packages(const Flotilla__TaskSpec *t, agent_pkgs_t *pkgs,
				agent_task_pkg_t out[AGENT_TASK_USES_MAX],
				flt_error_t *err);

/*
 * Creates task_dir with what the shim needs: shim.conf (user resolved,
 * capabilities as numbers, mounts resolved to canonical host paths of the
 * host volumes allow names), the compiled seccomp filter, alloc/, logs/
 * and rootfs/. masks are host paths hidden from the task (NULL-ended); a
 * mount may neither show one nor lie inside one. Checks the allowances
 * again (agent_task_spec_check), on the canonical paths.
 *
 * The task's environment: PATH (a default unless the spec sets it), the
 * spec's env, FLOTILLA_TASK, FLOTILLA_ALLOC_DIR and env ("KEY=VALUE",
 * NULL-ended; may be NULL), and FLOTILLA_PACKAGE_<NAME>_VERSION for each
 * of the npkgs packages (resolved by agent_task_resolve_packages), which
 * appear read-only at <packages_dir>/<name>. Variables the agent sets (the
 * FLOTILLA_ ones and env) win over the spec's of the same name, which are
 * dropped: a task can rely on them.
 */
int agent_task_prepare(const Flotilla__TaskSpec *t,
		       const Flotilla__Allowances *allow, const char *task_dir,
		       const char *const *masks, const char *const *env,
		       const agent_task_pkg_t *pkgs, size_t npkgs,
		       flt_error_t *err);

/* Path of flotilla-shim: $FLOTILLA_SHIM, else beside this executable. */
const char *agent_shim_path(void);

#endif
