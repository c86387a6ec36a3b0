/* Task specs: loading, checking, and preparing a task directory. */
#ifndef FLOTILLA_TASK_H
#define FLOTILLA_TASK_H

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

/* Reads a JSON task spec (at most 1 MiB) and checks it. */
int agent_task_spec_load(const char *path, Flotilla__TaskSpec **out,
			 flt_error_t *err);

/*
 * Checks every field, naming the first bad one with its path
 * ("resources.memory_mb: must be 0 or at least 4"), and fills numeric
 * defaults. Returns 0 or -EINVAL.
 */
int agent_task_spec_check(Flotilla__TaskSpec *t, flt_error_t *err);

/*
 * Creates task_dir with what the shim needs: shim.conf (user resolved,
 * capabilities as numbers), the compiled seccomp filter, alloc/, logs/ and
 * rootfs/. masks are host paths hidden from the task (NULL-ended).
 *
 * The task's environment: PATH (a default unless the spec sets it), the
 * spec's env, FLOTILLA_TASK, FLOTILLA_ALLOC_DIR and env ("KEY=VALUE",
 * NULL-ended; may be NULL). Variables the agent sets (the FLOTILLA_ ones
 * and env) win over the spec's of the same name, which are dropped: a task
 * can rely on them.
 */
int agent_task_prepare(const Flotilla__TaskSpec *t, const char *task_dir,
		       const char *const *masks, const char *const *env,
		       flt_error_t *err);

/* Path of flotilla-shim: $FLOTILLA_SHIM, else beside this executable. */
const char *agent_shim_path(void);

#endif
