/*
 * Task privileges: what a job spec asks that weakens the sandbox, what an
 * agent allows (its --allow-* flags, reported as Allowances in its
 * fingerprint), and the short list that is never granted whatever the
 * configuration. One table shared by the agent, the coordinator and the
 * documentation (docs/security.md).
 *
 * A privilege must be allowed twice: by the agent that runs the task (its
 * Allowances) and by the submitter's permission in the job's namespace (the
 * coordinator's ACL check calls flt_job_privileges: any entry needs the
 * `privileged` permission).
 */
#ifndef FLOTILLA_PRIVILEGE_H
#define FLOTILLA_PRIVILEGE_H

#include <stdbool.h>
#include <stddef.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

typedef enum flt_priv_kind {
	FLT_PRIV_CAP, /* a capability kept: "CAP_NET_ADMIN" */
	FLT_PRIV_SYSCALL, /* a seccomp.allow name: "ptrace" */
	FLT_PRIV_SECCOMP_UNCONFINED, /* seccomp.profile "unconfined" */
	FLT_PRIV_HOST_NETWORK, /* network "host" */
	FLT_PRIV_HOST_VOLUME, /* a mount: volume name, or source path */
	FLT_PRIV_USER, /* a user other than the default "nobody" */
} flt_priv_kind_t;

#define FLT_PRIV_PATH_MAX 128
#define FLT_PRIV_VALUE_MAX 256

/* One thing a spec asks that weakens the sandbox. */
typedef struct flt_priv {
	flt_priv_kind_t kind;
	/* The field that asks it: "groups[0].tasks[1].capabilities[0]". */
	char path[FLT_PRIV_PATH_MAX];
	/* What it asks: the capability ("CAP_NET_ADMIN"), the syscall, the
	 * volume's name or the mount's source path, the user; "" for
	 * seccomp-unconfined and host-network. */
	char value[FLT_PRIV_VALUE_MAX];
	bool by_path; /* host volume: value is a source path, not a name */
	bool writable; /* host volume: asked read-write */
} flt_priv_t;

/* "cap", "syscall", "seccomp-unconfined", "host-network", "host-volume",
 * "user". */
const char *flt_priv_kind_name(flt_priv_kind_t k);

/*
 * Appends to *v (grown with realloc; *n entries) what task t asks that
 * weakens the sandbox, each with its field path under prefix
 * ("groups[0].tasks[1]"; NULL or "" for none), in the order of the spec's
 * fields: user, network, mounts, capabilities, seccomp. Values longer than
 * FLT_PRIV_VALUE_MAX are cut (they fail flt_task_check anyway). Never
 * fails; aborts on OOM.
 */
void flt_task_privileges(const Flotilla__TaskSpec *t, const char *prefix,
			 flt_priv_t **v, size_t *n);

/* The same for every task of group g (prefix "groups[0]"). */
void flt_group_privileges(const Flotilla__TaskGroup *g, const char *prefix,
			  flt_priv_t **v, size_t *n);

/*
 * Everything job asks that weakens the sandbox, as a new array in *out
 * (free()) of *n entries (*out NULL when none). The coordinator's ACL
 * check refuses the job unless the submitter holds `privileged` in its
 * namespace when *n > 0. Returns 0.
 */
int flt_job_privileges(const Flotilla__Job *job, flt_priv_t **out, size_t *n);

/*
 * The agent flag that allows p: "--allow-cap NET_ADMIN", "--allow-syscall
 * ptrace", "--allow-seccomp-unconfined", "--allow-host-network",
 * "--allow-host-volume data=PATH:rw", "--allow-host-volume NAME=DIR (DIR
 * holding /srv/x)", "--allow-user 1000". Returns buf.
 */
const char *flt_priv_allowance(const flt_priv_t *p, char *buf, size_t len);

/* "groups[0].tasks[0].capabilities[0]: CAP_NET_ADMIN needs --allow-cap
 * NET_ADMIN". Returns buf. */
const char *flt_priv_describe(const flt_priv_t *p, char *buf, size_t len);

/* Does a (NULL: nothing allowed) allow p? */
bool flt_priv_allowed(const flt_priv_t *p, const Flotilla__Allowances *a);

/*
 * Whether path lies inside dir or is dir, component-wise ("/srv/a" is
 * inside "/srv" but "/srv2" is not; everything is inside "/"). Both
 * absolute, without "." or ".." components; trailing slashes ignored.
 */
bool flt_path_within(const char *path, const char *dir);

/* ---- never granted ------------------------------------------------------ */

typedef enum flt_never_kind {
	FLT_NEVER_CAP,
	FLT_NEVER_SYSCALL,
	FLT_NEVER_PATH,
} flt_never_kind_t;

/* One entry of the never-granted table: a capability ("CAP_SYS_MODULE"),
 * a syscall ("open_by_handle_at") or a host path ("/proc": the path, what
 * lies inside it and every directory that holds it). */
typedef struct flt_never {
	flt_never_kind_t kind;
	const char *name;
	const char *attack; /* what it would enable, one sentence */
} flt_never_t;

/* The whole table (for docs and tests), *n entries. */
const flt_never_t *flt_never_granted(size_t *n);

/* The entry that refuses capability cap ("CAP_SYS_MODULE"), or NULL. */
const flt_never_t *flt_never_cap(const char *cap);
/* The entry that refuses syscall name, or NULL. */
const flt_never_t *flt_never_syscall(const char *name);
/*
 * The entry that refuses mounting host path path (absolute, no "." or
 * ".." components): the path is one of the table's, lies inside one, or
 * holds one ("/" and "/var" hold "/var/lib/docker"). Lexical: the agent
 * also checks the canonical path, and its own data directory.
 */
const flt_never_t *flt_never_path(const char *path);

/* ---- capability names ---------------------------------------------------- */

/*
 * Normalises a capability name as people write it ("net_admin",
 * "NET_ADMIN", "CAP_NET_ADMIN") to "CAP_NET_ADMIN" in out. Returns 0, or
 * -EINVAL when it is not a capability Linux defines (out untouched).
 */
#define FLT_CAP_NAME_MAX 32
int flt_cap_normalize(const char *in, char out[FLT_CAP_NAME_MAX]);

/* ---- allowances ------------------------------------------------------------ */

/*
 * The allowances as one line of text, sorted, for node classes in the
 * scheduler and for logs: "cap:CAP_NET_ADMIN syscall:ptrace
 * host-network seccomp-unconfined user:1000 volume:data=/srv/data:rw";
 * "" for none (a NULL). Returns a new string (free()).
 */
char *flt_allowances_text(const Flotilla__Allowances *a);

#endif
