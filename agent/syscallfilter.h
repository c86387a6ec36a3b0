/*
 * The seccomp-bpf filter of sandboxed tasks: compiled by the agent with
 * libseccomp, stored as classic BPF, installed by the per-task supervisor
 * without libseccomp. (Not named seccomp.h: agent/ is on the include path
 * of the agent's library, where that name would shadow libseccomp's.)
 */
#ifndef FLOTILLA_AGENT_SYSCALLFILTER_H
#define FLOTILLA_AGENT_SYSCALLFILTER_H

#include <stddef.h>

#include <linux/filter.h>

#include "flotilla/error.h"

/* A classic BPF program; insns is owned (agent_bpf_free). len 0: none. */
typedef struct agent_bpf {
	struct sock_filter *insns;
	unsigned short len;
} agent_bpf_t;

/*
 * Compiles a profile for the native architecture into *out.
 *
 * profile: NULL, "" or "default" is an allowlist modelled on Docker's
 * default profile (everything else fails with EPERM, clone3 with ENOSYS,
 * clone only without namespace flags); "unconfined" gives len 0.
 * allow[0..nallow): syscall names, as libseccomp spells them, to allow
 * unconditionally on top of the profile (overriding its conditions). A
 * name libseccomp does not know fails with -EINVAL; a name it knows but
 * that does not exist on this architecture is ignored, so that one job
 * spec serves a mixed fleet.
 *
 * A syscall from any other ABI (x32 or i386 on x86_64, arm on aarch64)
 * kills the process. The filter does not set no_new_privs: the caller
 * must (see agent_bpf_install).
 *
 * Returns 0, -EINVAL for a bad profile or name, -ENOMEM, or another
 * negative errno from libseccomp or the export; *out is zeroed on error.
 */
int agent_seccomp_compile(const char *profile, const char *const *allow,
			  size_t nallow, agent_bpf_t *out, flt_error_t *err);

/*
 * The filter of an "unconfined" task: every syscall allowed but the deny[0..
 * ndeny) names, which fail with EPERM (the never-granted ones of
 * flotilla/privilege.h: a task without the default profile still gets no
 * open_by_handle_at, kexec_load or init_module). Names libseccomp does not
 * know, or that do not exist on this architecture, are skipped; other ABIs
 * are killed as in agent_seccomp_compile. Returns 0 or a negative errno;
 * *out is zeroed on error.
 */
int agent_seccomp_compile_deny(const char *const *deny, size_t ndeny,
			       agent_bpf_t *out, flt_error_t *err);

/* Frees p->insns and zeroes p. NULL and zeroed programs are fine. */
void agent_bpf_free(agent_bpf_t *p);

/*
 * Stores p in path as a raw array of struct sock_filter (host byte
 * order, so only for this host): written to a temporary file in the same
 * directory, fsynced, renamed over path, and the directory fsynced.
 * A program of len 0 (unconfined) is refused with -EINVAL: an empty file
 * is never a valid program, so a truncated one cannot pass for one.
 */
int agent_bpf_save(const agent_bpf_t *p, const char *path, flt_error_t *err);

/*
 * Reads a program written by agent_bpf_save into *out (owned by the
 * caller). Fails with -EINVAL unless path is a regular file whose size is
 * a non-zero multiple of sizeof(struct sock_filter) and at most
 * BPF_MAXINSNS instructions; the kernel checks the rest at install.
 */
int agent_bpf_load_file(const char *path, agent_bpf_t *out, flt_error_t *err);

/*
 * Installs p as a seccomp filter of the calling process, synchronised to
 * all its threads (SECCOMP_FILTER_FLAG_TSYNC; prctl(PR_SET_SECCOMP) on
 * kernels before 3.17). The caller must have set PR_SET_NO_NEW_PRIVS
 * first, or the kernel refuses with -EACCES unless it has CAP_SYS_ADMIN.
 * len 0 does nothing and returns 0.
 *
 * Async-signal-safe (no allocation, no locks): meant for a child between
 * fork and exec. Returns 0 or a negative errno; -EBUSY when another
 * thread could not be synchronised.
 */
int agent_bpf_install(const agent_bpf_t *p);

#endif
