/*
 * The sandbox: what happens between the shim's clone() and the task's
 * execve(). Used only by flotilla-shim (single-threaded), never by the
 * multi-threaded agent.
 */
#ifndef FLOTILLA_SANDBOX_H
#define FLOTILLA_SANDBOX_H

#include <sys/types.h>

#include "cgroup.h"
#include "shimconf.h"

typedef struct sandbox_proc {
	pid_t init; /* host pid of the task's pid 1 (our mini-init) */
	int result_fd; /* init writes the task's wait status here at the end */
} sandbox_proc_t;

/*
 * Starts the task: new pid, mount, uts and ipc namespaces (and a network
 * namespace unless the network is "host"), placed in cg before anything
 * runs, root view and privileges as c says. stdout and stderr of the task
 * go to out_fd and err_fd. Returns once the command has been executed (0)
 * or the setup failed (-errno, reason in why: nothing keeps running).
 */
int sandbox_start(const shim_conf_t *c, const agent_cgroup_t *cg, int out_fd,
		  int err_fd, sandbox_proc_t *p, char *why, size_t whylen);

/*
 * Runs argv inside the sandbox of a running task (whose init has host pid
 * init): its namespaces, cgroup, user and privileges, with a fresh fork of
 * the namespace's view. Does not return: execs or exits 126 with a message
 * on stderr. For exec health checks.
 */
void sandbox_enter_exec(const shim_conf_t *c, const agent_cgroup_t *cg,
			pid_t init, char *const argv[])
	__attribute__((noreturn));

#endif
