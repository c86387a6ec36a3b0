/*
 * flotilla-shim: the supervisor of one task, in the manner of conmon and
 * s6-supervise. The agent writes the task's configuration into a task
 * directory and starts one shim per task, detached; the shim starts the
 * sandboxed program, copies its output into rotating log files, applies the
 * restart policy, and records every state change in TASK_DIR/status (atomic
 * rename). It outlives agent restarts, so no exit status is ever lost: a
 * restarted agent reads the status file.
 *
 *   flotilla-shim TASK_DIR                 supervise (the agent detaches it)
 *   flotilla-shim --foreground TASK_DIR    run once, output to our own
 *                                          stdout/stderr, exit with the
 *                                          task's status (flotilla-agent exec)
 *   flotilla-shim --exec-check TASK_DIR -- ARGV...
 *                                          run ARGV inside the running task's
 *                                          sandbox (exec health checks)
 *
 * SIGTERM asks for a stop: the task gets its stop signal, then after the
 * kill timeout everything in its cgroup gets SIGKILL.
 *
 * Single-threaded on purpose: the sandbox code runs between clone and exec.
 * Kept free of nng and protobuf, and linked statically, so that each shim
 * costs well under a megabyte.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "logfile.h"
#include "sandbox.h"
#include "shimconf.h"

enum state {
	S_STARTING,
	S_RUNNING,
	S_STOPPING,
	S_RESTARTING,
	S_EXITED,
	S_FAILED,
	S_STOPPED
};
static const char *const state_names[] = { "starting",   "running", "stopping",
					   "restarting", "exited",  "failed",
					   "stopped" };

typedef struct shim {
	shim_conf_t c;
	agent_cgroup_t cg;
	bool foreground;
	enum state state;
	sandbox_proc_t proc;
	int out[2], err[2]; /* pipes of the running task, -1 when closed */
	agent_logfile_t *log_out, *log_err;
	int dropping_out, dropping_err; /* why a log write failed, or 0 */
	int exit_code, exit_signal;
	bool oom;
	uint64_t oom_before;
	uint32_t restarts;
	int64_t started_at, finished_at;
	int64_t *restart_times; /* within the policy's interval */
	size_t nrestart_times;
	int64_t deadline; /* kill timeout or restart delay, 0 if none */
	char message[512];
} shim_t;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void shim_log(shim_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void shim_log(shim_t *s, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "flotilla-shim task=%s ", s->c.name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The status file is the shim's whole interface to the agent. */
static void write_status(shim_t *s)
{
	char path[SHIM_PATH_MAX + 16], tmp[SHIM_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/status", s->c.task_dir);
	snprintf(tmp, sizeof(tmp), "%s/status.tmp", s->c.task_dir);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	for (char *p = s->message; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(f,
		"state %s\nshim_pid %d\ninit_pid %d\nexit_code %d\n"
		"exit_signal %d\noom %d\nrestarts %u\nstarted_at_ms %lld\n"
		"finished_at_ms %lld\nmessage %s\n",
		state_names[s->state], (int)getpid(),
		s->state == S_RUNNING || s->state == S_STOPPING
			? (int)s->proc.init
			: 0,
		s->exit_code, s->exit_signal, s->oom ? 1 : 0, s->restarts,
		(long long)s->started_at, (long long)s->finished_at,
		s->message);
	fflush(f);
	/* Final states must survive a crash of the host; intermediate ones
	 * are rewritten soon anyway, and a foreground run has no reader. */
	if (!s->foreground && (s->state == S_EXITED || s->state == S_FAILED ||
			       s->state == S_STOPPED))
		fsync(fileno(f));
	fclose(f);
	rename(tmp, path);
}

static void set_state(shim_t *s, enum state st)
{
	s->state = st;
	write_status(s);
}

static void close_pipe(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0) {
			close(p[i]);
			p[i] = -1;
		}
}

static int start_task(shim_t *s)
{
	int out_fd = 1, err_fd = 2;
	if (!s->foreground) {
		/* Only the shim's read ends are non-blocking: O_NONBLOCK
		 * belongs to the open file, and a task given a non-blocking
		 * stdout gets EAGAIN for whatever does not fit the pipe. */
		if (pipe2(s->out, O_CLOEXEC) < 0 ||
		    pipe2(s->err, O_CLOEXEC) < 0 ||
		    fcntl(s->out[0], F_SETFL, O_NONBLOCK) < 0 ||
		    fcntl(s->err[0], F_SETFL, O_NONBLOCK) < 0) {
			int e = errno;
			close_pipe(s->out);
			close_pipe(s->err);
			snprintf(s->message, sizeof(s->message), "pipe: %s",
				 strerror(e));
			return -e;
		}
		out_fd = s->out[1];
		err_fd = s->err[1];
	}
	s->oom_before = agent_cgroup_oom_kills(&s->cg);
	s->state = S_STARTING;
	int rc = sandbox_start(&s->c, &s->cg, out_fd, err_fd, &s->proc,
			       s->message, sizeof(s->message));
	if (!s->foreground) {
		close(s->out[1]);
		close(s->err[1]);
		s->out[1] = s->err[1] = -1;
	}
	if (rc < 0) {
		shim_log(s, "start failed: %s", s->message);
		close_pipe(s->out);
		close_pipe(s->err);
		return rc;
	}
	s->started_at = now_ms();
	s->finished_at = 0;
	s->exit_code = -1;
	s->exit_signal = 0;
	s->oom = false;
	s->message[0] = '\0';
	set_state(s, S_RUNNING);
	return 0;
}

/*
 * A log that cannot be written, on a full disk above all, drops the task's
 * output but keeps the pipe open: closing it would kill the task with
 * SIGPIPE at its next write, for a reason that is not its own. Writing
 * resumes once there is room. The shim says so when it starts dropping
 * (shim.log may be on the full disk too) and again, with the reason, once
 * the log is written again.
 */
static void pump(shim_t *s, int *fd, agent_logfile_t *l, const char *name,
		 int *dropping)
{
	if (*fd < 0)
		return;
	ssize_t n = agent_logfile_pump(l, *fd);
	if (n > 0 && *dropping) {
		shim_log(s,
			 "log written again, output was dropped before "
			 "path=%s/logs/%s error=\"%s\"",
			 s->c.task_dir, name,
			 flt_write_strerror(*dropping, s->c.task_dir));
		*dropping = 0;
	}
	if (n == -ENOSPC || n == -EDQUOT || n == -EIO || n == -EFBIG) {
		if (!*dropping)
			shim_log(s,
				 "log not written, output dropped until it "
				 "can be path=%s/logs/%s error=\"%s\"",
				 s->c.task_dir, name,
				 flt_write_strerror((int)n, s->c.task_dir));
		*dropping = flt_write_errno((int)n, s->c.task_dir);
	} else if (n == 0 || (n < 0 && n != -EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

/* What to do after the program ended (or could not start). */
static void after_exit(shim_t *s, bool start_failed)
{
	int64_t now = mono_ms();
	if (s->state == S_STOPPING) {
		set_state(s, S_STOPPED);
		return;
	}
	bool failed = start_failed || s->exit_code != 0 || s->exit_signal;
	bool restart = !s->foreground &&
		       (s->c.restart == SHIM_RESTART_ALWAYS ||
			(s->c.restart == SHIM_RESTART_FAILURE && failed));
	if (!restart) {
		set_state(s, failed ? S_FAILED : S_EXITED);
		return;
	}
	/* Attempts within the interval, then give up. */
	size_t kept = 0;
	for (size_t i = 0; i < s->nrestart_times; i++)
		if (now - s->restart_times[i] < s->c.restart_interval_ms)
			s->restart_times[kept++] = s->restart_times[i];
	s->nrestart_times = kept;
	if (kept >= s->c.restart_attempts) {
		snprintf(s->message, sizeof(s->message),
			 "restart policy exhausted: %u restarts within %u ms",
			 s->c.restart_attempts, s->c.restart_interval_ms);
		set_state(s, S_FAILED);
		return;
	}
	s->restart_times = realloc(s->restart_times,
				   (kept + 1) * sizeof(*s->restart_times));
	if (!s->restart_times)
		abort();
	s->restart_times[s->nrestart_times++] = now;
	s->deadline = now + s->c.restart_delay_ms;
	set_state(s, S_RESTARTING);
}

static void reap(shim_t *s)
{
	int st;
	pid_t w;
	while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
		if (w != s->proc.init || s->state == S_RESTARTING)
			continue;
		/* pid 1 hands over the program's own status; if it was
		 * killed itself (cgroup kill, OOM), its status stands. */
		int prog = st;
		if (s->proc.result_fd >= 0) {
			if (read(s->proc.result_fd, &prog, sizeof(prog)) !=
			    sizeof(prog))
				prog = st;
			close(s->proc.result_fd);
			s->proc.result_fd = -1;
		}
		s->finished_at = now_ms();
		s->exit_code = WIFEXITED(prog) ? WEXITSTATUS(prog) : -1;
		s->exit_signal = WIFSIGNALED(prog) ? WTERMSIG(prog) : 0;
		/* Whatever is left in the cgroup goes with it. */
		agent_cgroup_kill(&s->cg, 2000);
		s->oom = agent_cgroup_oom_kills(&s->cg) > s->oom_before;
		if (s->oom)
			snprintf(s->message, sizeof(s->message),
				 "killed by the OOM killer (memory limit %llu "
				 "bytes)",
				 (unsigned long long)s->c.memory_bytes);
		else if (s->exit_signal)
			snprintf(s->message, sizeof(s->message),
				 "killed by signal %d (%s)", s->exit_signal,
				 strsignal(s->exit_signal));
		else
			snprintf(s->message, sizeof(s->message),
				 "exited with status %d", s->exit_code);
		shim_log(s, "%s", s->message);
		s->deadline = 0;
		after_exit(s, false);
	}
}

static void request_stop(shim_t *s)
{
	if (s->state == S_RUNNING) {
		shim_log(s, "stopping with signal %d, kill after %u ms",
			 s->c.stop_signal, s->c.kill_timeout_ms);
		kill(s->proc.init, s->c.stop_signal);
		s->deadline = mono_ms() + s->c.kill_timeout_ms;
		set_state(s, S_STOPPING);
	} else if (s->state == S_RESTARTING || s->state == S_STARTING) {
		set_state(s, S_STOPPED);
	}
}

static bool final(enum state st)
{
	return st == S_EXITED || st == S_FAILED || st == S_STOPPED;
}

/* What the supervisor reads from its signalfd: its children, and a stop. */
static void supervisor_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

static int supervise(shim_t *s)
{
	sigset_t set;
	supervisor_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return 1;

	if (start_task(s) < 0)
		after_exit(s, true);
	while (!final(s->state)) {
		if (s->state == S_RESTARTING && mono_ms() >= s->deadline) {
			s->restarts++;
			if (start_task(s) < 0)
				after_exit(s, true);
			continue;
		}
		if (s->state == S_STOPPING && s->deadline &&
		    mono_ms() >= s->deadline) {
			shim_log(s, "kill timeout passed: killing the cgroup");
			agent_cgroup_kill(&s->cg, 2000);
			s->deadline = 0;
		}
		struct pollfd p[3] = { { .fd = sfd, .events = POLLIN },
				       { .fd = s->out[0], .events = POLLIN },
				       { .fd = s->err[0], .events = POLLIN } };
		int timeout = -1;
		if (s->deadline) {
			int64_t left = s->deadline - mono_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			pump(s, &s->out[0], s->log_out, "stdout.log",
			     &s->dropping_out);
		if (p[2].revents)
			pump(s, &s->err[0], s->log_err, "stderr.log",
			     &s->dropping_err);
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					/* Drain output written just before
					 * the exit first. */
					if (s->out[0] >= 0)
						pump(s, &s->out[0], s->log_out,
						     "stdout.log",
						     &s->dropping_out);
					if (s->err[0] >= 0)
						pump(s, &s->err[0], s->log_err,
						     "stderr.log",
						     &s->dropping_err);
					reap(s);
				} else {
					request_stop(s);
				}
			}
		}
	}
	close_pipe(s->out);
	close_pipe(s->err);
	agent_cgroup_kill(&s->cg, 2000);
	agent_cgroup_destroy(&s->cg);
	close(sfd);
	if (s->foreground)
		return s->exit_signal      ? 128 + s->exit_signal
		       : s->exit_code >= 0 ? s->exit_code
					   : 126;
	return 0;
}

/* Nothing of the agent reaches the task: no inherited descriptor, no
 * ignored signal (ignoring survives execve). */
static void drop_inherited(void)
{
	close_range(3, ~0U, 0);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
}

static int exec_check(const char *dir, char *const argv[])
{
	drop_inherited();
	char path[SHIM_PATH_MAX + 16], why[512], line[256];
	shim_conf_t c;
	agent_cgroup_t cg;
	int init = 0;

	snprintf(path, sizeof(path), "%s/shim.conf", dir);
	if (shim_conf_read(path, &c, why, sizeof(why)) < 0) {
		fprintf(stderr, "flotilla-shim: %s\n", why);
		return 126;
	}
	snprintf(path, sizeof(path), "%s/status", dir);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "init_pid %d", &init) == 1)
			break;
	if (f)
		fclose(f);
	if (init <= 0) {
		fprintf(stderr, "flotilla-shim: task %s is not running\n",
			c.name);
		return 126;
	}
	cg.version = agent_cgroup_version();
	snprintf(cg.name, sizeof(cg.name), "flotilla/%s", c.cgroup);
	sandbox_enter_exec(&c, cg.version ? &cg : NULL, init, argv);
}

int main(int argc, char **argv)
{
	shim_t s = { .out = { -1, -1 }, .err = { -1, -1 } };
	char path[SHIM_PATH_MAX + 16], why[512];
	const char *dir;

	if (argc >= 5 && strcmp(argv[1], "--exec-check") == 0 &&
	    strcmp(argv[3], "--") == 0)
		return exec_check(argv[2], argv + 4);
	if (argc == 3 && strcmp(argv[1], "--foreground") == 0) {
		s.foreground = true;
		dir = argv[2];
	} else if (argc == 2 && argv[1][0] != '-') {
		dir = argv[1];
	} else if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("flotilla-shim %s\n", FLT_VERSION);
		return 0;
	} else {
		bool help = argc == 2 && strcmp(argv[1], "--help") == 0;
		fprintf(help ? stdout : stderr,
			"usage: flotilla-shim [--foreground] TASK_DIR\n"
			"       flotilla-shim --exec-check TASK_DIR -- ARGV...\n");
		return help ? 0 : 2;
	}
	/* A stop asked for while the shim sets up (the agent may ask within a
	 * tick of starting it) waits for the signalfd: taken by default, it
	 * would end the shim before any status or cleanup. */
	sigset_t set;
	supervisor_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	snprintf(path, sizeof(path), "%s/shim.conf", dir);
	if (shim_conf_read(path, &s.c, why, sizeof(why)) < 0) {
		fprintf(stderr, "flotilla-shim: %s\n", why);
		return 126;
	}
	s.exit_code = -1;
	s.proc.result_fd = -1;
	drop_inherited();
	/* A task that dies early closes pipes the shim still writes to; the
	 * task's own pid 1 restores the default before anything runs. */
	signal(SIGPIPE, SIG_IGN);
	if (agent_cgroup_create(&s.cg, s.c.cgroup, s.c.memory_bytes,
				s.c.cpu_weight, s.c.cpu_quota_percent,
				s.c.max_pids, why, sizeof(why)) < 0) {
		snprintf(s.message, sizeof(s.message), "cgroup: %s", why);
		shim_log(&s, "%s", s.message);
		set_state(&s, S_FAILED);
		return s.foreground ? 126 : 0;
	}
	/* The cgroup is this task directory's alone: anything still in it
	 * is left from a supervisor that died. */
	if (!agent_cgroup_empty(&s.cg)) {
		shim_log(&s, "killing processes left in the cgroup");
		agent_cgroup_kill(&s.cg, 2000);
	}
	if (!s.foreground) {
		flt_error_t err;
		snprintf(path, sizeof(path), "%s/logs", s.c.task_dir);
		mkdir(path, 0750);
		if (agent_logfile_open(path, "stdout.log", s.c.log_max_bytes,
				       s.c.log_max_files, &s.log_out,
				       &err) < 0 ||
		    agent_logfile_open(path, "stderr.log", s.c.log_max_bytes,
				       s.c.log_max_files, &s.log_err,
				       &err) < 0) {
			snprintf(s.message, sizeof(s.message), "logs: %s",
				 err.msg);
			set_state(&s, S_FAILED);
			return 0;
		}
	}
	int rc = supervise(&s);
	if (s.log_out)
		agent_logfile_close(s.log_out);
	if (s.log_err)
		agent_logfile_close(s.log_err);
	free(s.restart_times);
	shim_conf_free(&s.c);
	return rc;
}
