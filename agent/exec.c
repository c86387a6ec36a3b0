/*
 * flotilla-agent exec SPEC.json: runs one task in exactly the agent's
 * sandbox, in the foreground, and exits with its status. For operators
 * debugging a spec, for the tests and for the benchmark.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "flotilla/log.h"
#include "flotilla/util.h"
#include "task.h"

int agent_exec(const char *spec_path, const char *data_dir,
	       const Flotilla__Allowances *allow)
{
	Flotilla__TaskSpec *t;
	flt_error_t err;
	char dir[4096];

	if (agent_task_spec_load(spec_path, allow, &t, &err) < 0) {
		fprintf(stderr, "flotilla-agent exec: %s\n", err.msg);
		return 125;
	}
	snprintf(dir, sizeof(dir), "%s/exec/%s-%d", data_dir, t->name,
		 (int)getpid());
	if (flt_mkdir_p(dir, 0700) < 0) {
		fprintf(stderr, "flotilla-agent exec: %s: %s\n", dir,
			strerror(errno));
		return 125;
	}
	const char *masks[] = { data_dir, "/etc/flotilla", NULL };
	/* The packages the agent installed, at their current versions. */
	agent_task_pkg_t pkgs[AGENT_TASK_USES_MAX];
	agent_pkgs_t *store = NULL;
	char pdir[4200];
	int rc = 0;
	if (t->n_uses) {
		snprintf(pdir, sizeof(pdir), "%s/packages", data_dir);
		/* Resolving stages nothing: no signature policy applies. */
		rc = agent_pkgs_open(pdir, NULL, false, &store, &err);
		if (rc == 0)
			rc = agent_task_resolve_packages(t, store, pkgs, &err);
		if (store)
			agent_pkgs_close(store);
	}
	if (rc == 0)
		rc = agent_task_prepare(t, allow, dir, masks, NULL, pkgs,
					t->n_uses, &err);
	flotilla__task_spec__free_unpacked(t, NULL);
	if (rc < 0) {
		fprintf(stderr, "flotilla-agent exec: %s\n", err.msg);
		flt_rm_rf(dir, 0);
		return 125;
	}
	const char *shim = agent_shim_path();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "flotilla-agent exec: fork: %s\n",
			strerror(errno));
		return 125;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close_range(3, ~0U, 0);
		execl(shim, "flotilla-shim", "--foreground", dir, (char *)NULL);
		fprintf(stderr, "flotilla-agent exec: %s: %s\n", shim,
			strerror(errno));
		_exit(125);
	}
	/* Ctrl-C or SIGTERM: ask the shim for a graceful stop. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int status = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		siginfo_t si;
		struct timespec ts = { 0, 200 * 1000000 };
		int sig = sigtimedwait(&set, &si, &ts);
		if (sig == SIGINT || sig == SIGTERM)
			kill(pid, SIGTERM);
	}
	flt_rm_rf(dir, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
