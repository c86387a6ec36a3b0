/* Task privileges: what specs ask, what agents allow, what nobody gets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/privilege.h"
#include "flotilla/util.h"

/*
 * Never granted, whatever an agent's flags or an operator's policy say:
 * each gives a task the host itself, not merely more of its own sandbox.
 * docs/security.md renders this table ("Never granted"); keep the two in
 * step.
 */
static const flt_never_t never[] = {
	{ FLT_NEVER_CAP, "CAP_SYS_MODULE",
	  "loads and unloads kernel modules (init_module, delete_module): "
	  "arbitrary code in the host kernel" },
	{ FLT_NEVER_CAP, "CAP_SYS_RAWIO",
	  "port I/O (iopl, ioperm), /dev/mem, /proc/kcore, MSRs and raw "
	  "disk commands: reads and writes host memory and hardware" },
	{ FLT_NEVER_CAP, "CAP_SYS_BOOT",
	  "reboot(2) and kexec_load(2): restarts the host or boots a "
	  "kernel of the task's choosing" },
	{ FLT_NEVER_CAP, "CAP_MAC_ADMIN",
	  "changes the host's AppArmor, SELinux or Smack policy: turns "
	  "off the layer that stops cgroup escapes such as CVE-2022-0492" },
	{ FLT_NEVER_CAP, "CAP_MAC_OVERRIDE",
	  "overrides mandatory access control (Smack): the host's LSM "
	  "policy no longer confines the task" },
	{ FLT_NEVER_CAP, "CAP_SYSLOG",
	  "reads kernel addresses (/proc/kallsyms with kptr_restrict 1) "
	  "and the kernel log: defeats KASLR for a kernel exploit, and "
	  "clears the host's log" },
	{ FLT_NEVER_SYSCALL, "open_by_handle_at",
	  "\"Shocker\" (2014): with CAP_DAC_READ_SEARCH, opens any host "
	  "file by a guessed handle from outside the task's view "
	  "(/etc/shadow), and writes there" },
	{ FLT_NEVER_SYSCALL, "kexec_load",
	  "loads a new kernel to boot in place of the host's" },
	{ FLT_NEVER_SYSCALL, "kexec_file_load",
	  "loads a new kernel to boot in place of the host's" },
	{ FLT_NEVER_SYSCALL, "init_module",
	  "loads kernel code into the host kernel" },
	{ FLT_NEVER_SYSCALL, "finit_module",
	  "loads kernel code into the host kernel" },
	{ FLT_NEVER_SYSCALL, "create_module",
	  "loads kernel code (old kernels)" },
	{ FLT_NEVER_SYSCALL, "delete_module",
	  "unloads the host's modules, security and filesystem ones "
	  "included" },
	{ FLT_NEVER_SYSCALL, "iopl",
	  "raw hardware port I/O on the host's devices" },
	{ FLT_NEVER_SYSCALL, "ioperm",
	  "raw hardware port I/O on the host's devices" },
	{ FLT_NEVER_PATH, "/proc",
	  "the host's /proc: a \"|program\" in /proc/sys/kernel/core_pattern "
	  "runs as root on the host at any core dump; other processes' "
	  "memory, environment and files" },
	{ FLT_NEVER_PATH, "/sys",
	  "kernel and device settings (/sys/kernel/uevent_helper runs a "
	  "program as root), the cgroup tree and its release_agent "
	  "(CVE-2022-0492)" },
	{ FLT_NEVER_PATH, "/dev",
	  "the host's device nodes: disks, memory, terminals" },
	{ FLT_NEVER_PATH, "/run",
	  "host daemons' sockets (docker.sock, containerd, D-Bus, "
	  "systemd): control of a root daemon is root on the host" },
	{ FLT_NEVER_PATH, "/var/run",
	  "host daemons' sockets (docker.sock, containerd, D-Bus, "
	  "systemd): control of a root daemon is root on the host" },
	{ FLT_NEVER_PATH, "/boot",
	  "the host's kernels and boot loader configuration" },
	{ FLT_NEVER_PATH, "/var/lib/flotilla",
	  "Flotilla's own state: the node secret, other tasks' "
	  "allocation directories, packages" },
	{ FLT_NEVER_PATH, "/etc/flotilla",
	  "Flotilla's configuration: join tokens, keys" },
	{ FLT_NEVER_PATH, "/var/lib/docker",
	  "another runtime's containers, their files and secrets" },
	{ FLT_NEVER_PATH, "/var/lib/containerd",
	  "another runtime's containers, their files and secrets" },
	{ FLT_NEVER_PATH, "/var/lib/kubelet",
	  "another runtime's containers, their files and secrets" },
};

const flt_never_t *flt_never_granted(size_t *n)
{
	*n = FLT_ARRAY_SIZE(never);
	return never;
}

static const flt_never_t *never_find(flt_never_kind_t kind, const char *name)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(never); i++)
		if (never[i].kind == kind && !strcmp(never[i].name, name))
			return &never[i];
	return NULL;
}

const flt_never_t *flt_never_cap(const char *cap)
{
	char norm[FLT_CAP_NAME_MAX];
	if (flt_cap_normalize(cap, norm) == 0)
		cap = norm;
	return never_find(FLT_NEVER_CAP, cap);
}

const flt_never_t *flt_never_syscall(const char *name)
{
	return never_find(FLT_NEVER_SYSCALL, name);
}

bool flt_path_within(const char *path, const char *dir)
{
	size_t ld = strlen(dir);
	while (ld && dir[ld - 1] == '/')
		ld--;
	/* "/" (ld 0 now) holds every absolute path. */
	if (strncmp(path, dir, ld) != 0)
		return false;
	const char *rest = path + ld;
	while (*rest == '/')
		rest++;
	return rest == path + ld ? *rest == '\0' : true;
}

const flt_never_t *flt_never_path(const char *path)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(never); i++) {
		if (never[i].kind != FLT_NEVER_PATH)
			continue;
		if (flt_path_within(path, never[i].name) ||
		    flt_path_within(never[i].name, path))
			return &never[i];
	}
	return NULL;
}

/* ---- capability names ------------------------------------------------------ */

/* Every capability Linux defines (capabilities(7)), without "CAP_". */
static const char *const caps[] = {
	"CHOWN",
	"DAC_OVERRIDE",
	"DAC_READ_SEARCH",
	"FOWNER",
	"FSETID",
	"KILL",
	"SETGID",
	"SETUID",
	"SETPCAP",
	"LINUX_IMMUTABLE",
	"NET_BIND_SERVICE",
	"NET_BROADCAST",
	"NET_ADMIN",
	"NET_RAW",
	"IPC_LOCK",
	"IPC_OWNER",
	"SYS_MODULE",
	"SYS_RAWIO",
	"SYS_CHROOT",
	"SYS_PTRACE",
	"SYS_PACCT",
	"SYS_ADMIN",
	"SYS_BOOT",
	"SYS_NICE",
	"SYS_RESOURCE",
	"SYS_TIME",
	"SYS_TTY_CONFIG",
	"MKNOD",
	"LEASE",
	"AUDIT_WRITE",
	"AUDIT_CONTROL",
	"SETFCAP",
	"MAC_OVERRIDE",
	"MAC_ADMIN",
	"SYSLOG",
	"WAKE_ALARM",
	"BLOCK_SUSPEND",
	"AUDIT_READ",
	"PERFMON",
	"BPF",
	"CHECKPOINT_RESTORE",
};

int flt_cap_normalize(const char *in, char out[FLT_CAP_NAME_MAX])
{
	char up[FLT_CAP_NAME_MAX];
	size_t n = strlen(in);

	if (n >= sizeof(up))
		return -EINVAL;
	for (size_t i = 0; i <= n; i++)
		up[i] = (in[i] >= 'a' && in[i] <= 'z') ? (char)(in[i] - 32)
						       : in[i];
	const char *bare = strncmp(up, "CAP_", 4) == 0 ? up + 4 : up;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(caps); i++) {
		if (strcmp(bare, caps[i]) == 0) {
			snprintf(out, FLT_CAP_NAME_MAX, "CAP_%s", caps[i]);
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- what specs ask ------------------------------------------------------- */

static flt_priv_t *push(flt_priv_t **v, size_t *n, flt_priv_kind_t kind,
			const char *prefix, const char *field,
			const char *value)
{
	*v = flt_xrealloc(*v, (*n + 1) * sizeof(**v));
	flt_priv_t *p = &(*v)[(*n)++];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	snprintf(p->path, sizeof(p->path), "%s%s%s", prefix, *prefix ? "." : "",
		 field);
	snprintf(p->value, sizeof(p->value), "%s", value ? value : "");
	return p;
}

void flt_task_privileges(const Flotilla__TaskSpec *t, const char *prefix,
			 flt_priv_t **v, size_t *n)
{
	char field[64];

	if (!prefix)
		prefix = "";
	/* The default user, by name; any other (a uid included, which the
	 * coordinator cannot resolve) must be allowed. */
	if (t->user && *t->user && strcmp(t->user, "nobody") != 0)
		push(v, n, FLT_PRIV_USER, prefix, "user", t->user);
	if (t->network && !strcmp(t->network, "host"))
		push(v, n, FLT_PRIV_HOST_NETWORK, prefix, "network", "");
	for (size_t i = 0; i < t->n_mounts; i++) {
		const Flotilla__Mount *m = t->mounts[i];
		bool by_path = !m->volume || !*m->volume;
		snprintf(field, sizeof(field), "mounts[%zu].%s", i,
			 by_path ? "source" : "volume");
		flt_priv_t *p = push(v, n, FLT_PRIV_HOST_VOLUME, prefix, field,
				     by_path ? m->source : m->volume);
		p->by_path = by_path;
		p->writable = m->writable;
	}
	for (size_t i = 0; i < t->n_capabilities; i++) {
		char norm[FLT_CAP_NAME_MAX];
		const char *c = t->capabilities[i];
		if (flt_cap_normalize(c, norm) == 0)
			c = norm;
		snprintf(field, sizeof(field), "capabilities[%zu]", i);
		push(v, n, FLT_PRIV_CAP, prefix, field, c);
	}
	if (t->seccomp) {
		if (t->seccomp->profile &&
		    !strcmp(t->seccomp->profile, "unconfined"))
			push(v, n, FLT_PRIV_SECCOMP_UNCONFINED, prefix,
			     "seccomp.profile", "unconfined");
		for (size_t i = 0; i < t->seccomp->n_allow; i++) {
			snprintf(field, sizeof(field), "seccomp.allow[%zu]", i);
			push(v, n, FLT_PRIV_SYSCALL, prefix, field,
			     t->seccomp->allow[i]);
		}
	}
}

void flt_group_privileges(const Flotilla__TaskGroup *g, const char *prefix,
			  flt_priv_t **v, size_t *n)
{
	char pre[FLT_PRIV_PATH_MAX];

	if (!prefix)
		prefix = "";
	for (size_t i = 0; i < g->n_tasks; i++) {
		snprintf(pre, sizeof(pre), "%s%stasks[%zu]", prefix,
			 *prefix ? "." : "", i);
		flt_task_privileges(g->tasks[i], pre, v, n);
	}
}

int flt_job_privileges(const Flotilla__Job *job, flt_priv_t **out, size_t *n)
{
	char pre[32];

	*out = NULL;
	*n = 0;
	for (size_t g = 0; g < job->n_groups; g++) {
		snprintf(pre, sizeof(pre), "groups[%zu]", g);
		flt_group_privileges(job->groups[g], pre, out, n);
	}
	return 0;
}

const char *flt_priv_kind_name(flt_priv_kind_t k)
{
	switch (k) {
	case FLT_PRIV_CAP: return "cap";
	case FLT_PRIV_SYSCALL: return "syscall";
	case FLT_PRIV_SECCOMP_UNCONFINED: return "seccomp-unconfined";
	case FLT_PRIV_HOST_NETWORK: return "host-network";
	case FLT_PRIV_HOST_VOLUME: return "host-volume";
	case FLT_PRIV_USER: return "user";
	}
	return "?";
}

const char *flt_priv_allowance(const flt_priv_t *p, char *buf, size_t len)
{
	switch (p->kind) {
	case FLT_PRIV_CAP:
		snprintf(buf, len, "--allow-cap %s",
			 strncmp(p->value, "CAP_", 4) ? p->value
						      : p->value + 4);
		break;
	case FLT_PRIV_SYSCALL:
		snprintf(buf, len, "--allow-syscall %s", p->value);
		break;
	case FLT_PRIV_SECCOMP_UNCONFINED:
		snprintf(buf, len, "--allow-seccomp-unconfined");
		break;
	case FLT_PRIV_HOST_NETWORK:
		snprintf(buf, len, "--allow-host-network");
		break;
	case FLT_PRIV_HOST_VOLUME:
		if (p->by_path)
			snprintf(buf, len,
				 "--allow-host-volume NAME=%s%s (or a "
				 "directory holding it)",
				 p->value, p->writable ? ":rw" : "");
		else
			snprintf(buf, len, "--allow-host-volume %s=PATH%s",
				 p->value, p->writable ? ":rw" : "");
		break;
	case FLT_PRIV_USER:
		snprintf(buf, len, "--allow-user %s", p->value);
		break;
	}
	return buf;
}

const char *flt_priv_describe(const flt_priv_t *p, char *buf, size_t len)
{
	char allow[FLT_PRIV_VALUE_MAX + 64];
	const char *what = p->value;

	flt_priv_allowance(p, allow, sizeof(allow));
	if (p->kind == FLT_PRIV_HOST_NETWORK)
		what = "host";
	if (p->kind == FLT_PRIV_HOST_VOLUME && p->writable)
		snprintf(buf, len, "%s: %s read-write needs %s", p->path, what,
			 allow);
	else
		snprintf(buf, len, "%s: %s needs %s", p->path, what, allow);
	return buf;
}

static bool listed(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && !strcmp(v[i], s))
			return true;
	return false;
}

bool flt_priv_allowed(const flt_priv_t *p, const Flotilla__Allowances *a)
{
	if (!a)
		return false;
	switch (p->kind) {
	case FLT_PRIV_CAP:
		return listed(a->capabilities, a->n_capabilities, p->value);
	case FLT_PRIV_SYSCALL:
		return listed(a->syscalls, a->n_syscalls, p->value);
	case FLT_PRIV_SECCOMP_UNCONFINED: return a->seccomp_unconfined;
	case FLT_PRIV_HOST_NETWORK: return a->host_network;
	case FLT_PRIV_USER: return listed(a->users, a->n_users, p->value);
	case FLT_PRIV_HOST_VOLUME:
		for (size_t i = 0; i < a->n_host_volumes; i++) {
			const Flotilla__HostVolume *hv = a->host_volumes[i];
			if (p->writable && !hv->writable)
				continue;
			if (p->by_path ? flt_path_within(p->value, hv->path)
				       : !strcmp(p->value, hv->name))
				return true;
		}
		return false;
	}
	return false;
}

/* ---- allowances as text ------------------------------------------------------ */

typedef struct sbuf {
	char *s;
	size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *a, const char *c)
{
	size_t need = b->len + strlen(a) + strlen(c) + 2;
	if (need > b->cap) {
		b->cap = need * 2;
		b->s = flt_xrealloc(b->s, b->cap);
	}
	b->len += (size_t)sprintf(b->s + b->len, "%s%s%s", b->len ? " " : "", a,
				  c);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Adds the n strings of v, each after tag, sorted. */
static void sb_sorted(sbuf_t *b, const char *tag, char *const *v, size_t n)
{
	if (!n)
		return;
	char **c = flt_xcalloc(n, sizeof(*c));
	memcpy(c, v, n * sizeof(*c));
	qsort(c, n, sizeof(*c), cmp_str);
	for (size_t i = 0; i < n; i++)
		sb_add(b, tag, c[i]);
	free(c);
}

char *flt_allowances_text(const Flotilla__Allowances *a)
{
	sbuf_t b = { 0 };

	b.s = flt_xstrdup("");
	b.cap = 1;
	if (!a)
		return b.s;
	sb_sorted(&b, "cap:", a->capabilities, a->n_capabilities);
	sb_sorted(&b, "syscall:", a->syscalls, a->n_syscalls);
	if (a->host_network)
		sb_add(&b, "host-network", "");
	if (a->seccomp_unconfined)
		sb_add(&b, "seccomp-unconfined", "");
	sb_sorted(&b, "user:", a->users, a->n_users);
	if (a->n_host_volumes) {
		char **vs = flt_xcalloc(a->n_host_volumes, sizeof(*vs));
		for (size_t i = 0; i < a->n_host_volumes; i++) {
			const Flotilla__HostVolume *hv = a->host_volumes[i];
			if (asprintf(&vs[i], "%s=%s:%s", hv->name, hv->path,
				     hv->writable ? "rw" : "ro") < 0)
				abort();
		}
		sb_sorted(&b, "volume:", vs, a->n_host_volumes);
		for (size_t i = 0; i < a->n_host_volumes; i++)
			free(vs[i]);
		free(vs);
	}
	return b.s;
}
