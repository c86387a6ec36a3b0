#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "flotilla/log.h"
#include "flotilla/util.h"
#include "health.h"
#include "task.h"
#include "tasks.h"

#define MAX_TASKS 1024

typedef struct task {
	char name[64];
	char dir[1024];
	uint8_t spec_hash[16];
	Flotilla__TaskSpec *spec; /* NULL when re-attached without a spec */
	bool want_running;
	bool stop_sent;
	bool seen; /* spec present in this scan */
	pid_t shim_pid;
	unsigned long long shim_start; /* /proc start time: pid reuse guard */
	/* From the status file. */
	char state[16];
	int init_pid, exit_code, exit_signal, oom;
	unsigned restarts;
	long long started_at, finished_at;
	char message[512];
	/* Health, guarded by the table lock. */
	agent_check_state_t *checks;
	size_t nchecks;
	bool removed;
} task_t;

struct agent_tasks {
	agent_tasks_opts_t o;
	flt_db_t db;
	pthread_mutex_t mtx;
	task_t *v[MAX_TASKS];
	size_t n;
	pthread_t health_thread;
	atomic_bool stopping;
	const char *masks[3];
};

/* ---- records ---------------------------------------------------------- */

/* The record of a task: "dir\nshim_pid\nshim_start\nhash-hex". */
static void save_record(agent_tasks_t *t, const task_t *k)
{
	char val[1200], hex[33];
	flt_txn_t *txn;
	sodium_bin2hex(hex, sizeof(hex), k->spec_hash, sizeof(k->spec_hash));
	snprintf(val, sizeof(val), "%s\n%d\n%llu\n%s", k->dir,
		 (int)k->shim_pid, k->shim_start, hex);
	if (flt_txn_begin(t->o.store, true, &txn, NULL) < 0)
		return;
	if (flt_txn_put(txn, t->db, k->name, strlen(k->name), val,
			strlen(val), NULL) < 0) {
		flt_txn_abort(txn);
		return;
	}
	flt_txn_commit(txn, NULL);
}

static void delete_record(agent_tasks_t *t, const char *name)
{
	flt_txn_t *txn;
	if (flt_txn_begin(t->o.store, true, &txn, NULL) < 0)
		return;
	flt_txn_del(txn, t->db, name, strlen(name));
	flt_txn_commit(txn, NULL);
}

static unsigned long long proc_start_time(pid_t pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* Field 22, counted after the ")" that ends the command name; a
	 * zombie (state Z, field 3) is as good as gone. */
	char *s = strrchr(buf, ')');
	if (!s || (s[1] == ' ' && (s[2] == 'Z' || s[2] == 'X')))
		return 0;
	unsigned long long v = 0;
	for (int field = 2; s && *s; s++)
		if (*s == ' ' && ++field == 22) {
			v = strtoull(s + 1, NULL, 10);
			break;
		}
	return v;
}

static bool shim_alive(const task_t *k)
{
	return k->shim_pid > 0 && kill(k->shim_pid, 0) == 0 &&
	       k->shim_start && proc_start_time(k->shim_pid) == k->shim_start;
}

static task_t *find(agent_tasks_t *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i]->name, name) == 0)
			return t->v[i];
	return NULL;
}

static void reset_checks(task_t *k)
{
	free(k->checks);
	k->checks = NULL;
	k->nchecks = 0;
	if (!k->spec)
		return;
	k->nchecks = k->spec->n_checks;
	k->checks = flt_xcalloc(k->nchecks, sizeof(*k->checks));
	for (size_t i = 0; i < k->nchecks; i++)
		agent_check_state_init(&k->checks[i], k->spec->checks[i],
				       flt_now_mono_ms());
}

static int load_one(const void *key, size_t klen, const void *val,
		    size_t vlen, void *arg)
{
	agent_tasks_t *t = arg;
	char buf[1200], hex[64] = "";
	if (klen >= 64 || vlen >= sizeof(buf) || t->n >= MAX_TASKS)
		return 0;
	task_t *k = flt_xcalloc(1, sizeof(*k));
	memcpy(k->name, key, klen);
	memcpy(buf, val, vlen);
	buf[vlen] = '\0';
	int pid = 0;
	char *nl = strchr(buf, '\n');
	if (!nl) {
		free(k);
		return 0;
	}
	*nl = '\0';
	snprintf(k->dir, sizeof(k->dir), "%s", buf);
	sscanf(nl + 1, "%d\n%llu\n%63s", &pid, &k->shim_start, hex);
	k->shim_pid = pid;
	sodium_hex2bin(k->spec_hash, sizeof(k->spec_hash), hex, strlen(hex),
		       NULL, NULL, NULL);
	k->want_running = true;
	t->v[t->n++] = k;
	return 0;
}

/* ---- the shim ---------------------------------------------------------- */

static int spawn_shim(task_t *k, flt_error_t *err)
{
	const char *shim_path = agent_shim_path();
	char log[1100];
	int p[2];
	snprintf(log, sizeof(log), "%s/shim.log", k->dir);
	if (pipe2(p, O_CLOEXEC) < 0)
		return flt_err(err, -errno, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return flt_err(err, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* Only async-signal-safe calls: the agent has threads. The
		 * shim is detached twice (setsid, second fork) so that it
		 * outlives the agent and is nobody's zombie. */
		setsid();
		pid_t child = fork();
		if (child != 0) {
			if (write(p[1], &child, sizeof(child)) < 0)
				_exit(1);
			_exit(0);
		}
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			       0600);
		if (null < 0 || out < 0 || dup2(null, 0) < 0 ||
		    dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		/* The agent's sockets and files are not the shim's. */
		close_range(3, ~0U, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl(shim_path, "flotilla-shim", k->dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	pid_t shim = -1;
	ssize_t n = read(p[0], &shim, sizeof(shim));
	close(p[0]);
	waitpid(pid, NULL, 0);
	if (n != sizeof(shim) || shim <= 0)
		return flt_err(err, -ECHILD, "could not start %s", shim_path);
	k->shim_pid = shim;
	k->shim_start = proc_start_time(shim);
	return 0;
}

static void start_task(agent_tasks_t *t, task_t *k)
{
	flt_error_t err;
	/* A fresh status: the last run's is not this run's. */
	char p[1100];
	snprintf(p, sizeof(p), "%s/status", k->dir);
	unlink(p);
	if (agent_task_prepare(k->spec, k->dir, t->masks, &err) < 0 ||
	    spawn_shim(k, &err) < 0) {
		flt_error("task could not start task=%s error=\"%s\"", k->name,
			  err.msg);
		snprintf(k->state, sizeof(k->state), "failed");
		snprintf(k->message, sizeof(k->message), "%s", err.msg);
		return;
	}
	k->stop_sent = false;
	snprintf(k->state, sizeof(k->state), "starting");
	save_record(t, k);
	flt_info("task started task=%s shim_pid=%d", k->name, (int)k->shim_pid);
}

static void read_status(task_t *k)
{
	char p[1100], line[700];
	snprintf(p, sizeof(p), "%s/status", k->dir);
	FILE *f = fopen(p, "re");
	if (!f)
		return;
	char old[16];
	snprintf(old, sizeof(old), "%s", k->state);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *v = strchr(line, ' ');
		if (!v)
			continue;
		*v++ = '\0';
		if (!strcmp(line, "state"))
			snprintf(k->state, sizeof(k->state), "%s", v);
		else if (!strcmp(line, "init_pid"))
			k->init_pid = atoi(v);
		else if (!strcmp(line, "exit_code"))
			k->exit_code = atoi(v);
		else if (!strcmp(line, "exit_signal"))
			k->exit_signal = atoi(v);
		else if (!strcmp(line, "oom"))
			k->oom = atoi(v);
		else if (!strcmp(line, "restarts"))
			k->restarts = (unsigned)atoi(v);
		else if (!strcmp(line, "started_at_ms"))
			k->started_at = atoll(v);
		else if (!strcmp(line, "finished_at_ms"))
			k->finished_at = atoll(v);
		else if (!strcmp(line, "message"))
			snprintf(k->message, sizeof(k->message), "%s", v);
	}
	fclose(f);
	if (strcmp(old, k->state) != 0)
		flt_log(!strcmp(k->state, "failed") ? FLT_LOG_WARN
						    : FLT_LOG_INFO,
			"task %s task=%s exit_code=%d exit_signal=%d oom=%d "
			"restarts=%u message=\"%s\"",
			k->state, k->name, k->exit_code, k->exit_signal,
			k->oom, k->restarts, k->message);
}

static bool final_state(const char *s)
{
	return !strcmp(s, "exited") || !strcmp(s, "failed") ||
	       !strcmp(s, "stopped");
}

/* ---- reconciling with the spec directory ------------------------------ */

static void scan_specs(agent_tasks_t *t)
{
	DIR *d = opendir(t->o.spec_dir);
	struct dirent *e;
	if (!d)
		return;
	for (size_t i = 0; i < t->n; i++)
		t->v[i]->seen = false;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		char path[2048];
		snprintf(path, sizeof(path), "%s/%s", t->o.spec_dir, e->d_name);
		cleanup_free char *text = NULL;
		if (flt_read_file(path, 1 << 20, &text) < 0)
			continue;
		uint8_t h[16];
		crypto_generichash(h, sizeof(h), (uint8_t *)text, strlen(text),
				   NULL, 0);
		Flotilla__TaskSpec *spec = NULL;
		flt_error_t err;
		pthread_mutex_lock(&t->mtx);
		task_t *k = NULL;
		for (size_t i = 0; i < t->n; i++)
			if (!memcmp(t->v[i]->spec_hash, h, sizeof(h)))
				k = t->v[i];
		if (k) {
			k->seen = true;
			pthread_mutex_unlock(&t->mtx);
			if (!k->spec &&
			    agent_task_spec_load(path, &spec, &err) == 0) {
				pthread_mutex_lock(&t->mtx);
				k->spec = spec;
				reset_checks(k);
				pthread_mutex_unlock(&t->mtx);
			}
			continue;
		}
		pthread_mutex_unlock(&t->mtx);
		if (agent_task_spec_load(path, &spec, &err) < 0) {
			flt_warn("task spec refused file=%s error=\"%s\"", path,
				 err.msg);
			continue;
		}
		pthread_mutex_lock(&t->mtx);
		k = find(t, spec->name);
		if (k && !k->removed) {
			/* A changed spec: stop the old, start it anew after. */
			k->want_running = false;
			pthread_mutex_unlock(&t->mtx);
			flotilla__task_spec__free_unpacked(spec, NULL);
			continue;
		}
		if (t->n >= MAX_TASKS) {
			pthread_mutex_unlock(&t->mtx);
			flotilla__task_spec__free_unpacked(spec, NULL);
			continue;
		}
		k = flt_xcalloc(1, sizeof(*k));
		snprintf(k->name, sizeof(k->name), "%s", spec->name);
		snprintf(k->dir, sizeof(k->dir), "%s/tasks/%s", t->o.data_dir,
			 spec->name);
		memcpy(k->spec_hash, h, sizeof(h));
		k->spec = spec;
		k->want_running = true;
		k->seen = true;
		k->exit_code = -1;
		reset_checks(k);
		t->v[t->n++] = k;
		pthread_mutex_unlock(&t->mtx);
		start_task(t, k);
	}
	closedir(d);
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++)
		if (!t->v[i]->seen)
			t->v[i]->want_running = false;
	pthread_mutex_unlock(&t->mtx);
}

void agent_tasks_tick(agent_tasks_t *t)
{
	if (t->o.spec_dir)
		scan_specs(t);
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n;) {
		task_t *k = t->v[i];
		/* Liveness first: a shim that wrote its final state and left
		 * between the two looks would otherwise be "lost". */
		bool alive = shim_alive(k);
		read_status(k);
		if (!alive && !final_state(k->state)) {
			/* The supervisor itself is gone (killed, or the host
			 * rebooted): the task is gone with it. */
			snprintf(k->state, sizeof(k->state), "failed");
			snprintf(k->message, sizeof(k->message),
				 "supervisor exited unexpectedly");
			flt_warn("task failed task=%s message=\"%s\"", k->name,
				 k->message);
		}
		if (!k->want_running && alive && !k->stop_sent) {
			flt_info("stopping task task=%s", k->name);
			kill(k->shim_pid, SIGTERM);
			k->stop_sent = true;
		}
		if (!k->want_running && !alive) {
			/* Gone from the specs and stopped: forget it. */
			delete_record(t, k->name);
			flt_info("task removed task=%s state=%s", k->name,
				 k->state);
			flotilla__task_spec__free_unpacked(k->spec, NULL);
			free(k->checks);
			free(k);
			t->v[i] = t->v[--t->n];
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&t->mtx);
}

/* ---- health ------------------------------------------------------------ */

static int run_exec_check(const task_t *k, const Flotilla__HealthCheck *hc,
			  char *why, size_t len)
{
	unsigned timeout = agent_check_timeout_ms(hc);
	const char *shim = agent_shim_path();
	size_t argc = hc->n_command;
	char **argv = flt_xcalloc(argc + 5, sizeof(*argv));
	argv[0] = "flotilla-shim";
	argv[1] = "--exec-check";
	argv[2] = (char *)k->dir;
	argv[3] = "--";
	for (size_t i = 0; i < argc; i++)
		argv[4 + i] = hc->command[i];
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		close_range(3, ~0U, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(shim, argv);
		_exit(127);
	}
	free(argv);
	if (pid < 0) {
		snprintf(why, len, "fork: %s", strerror(errno));
		return 1;
	}
	int st = 0;
	for (unsigned waited = 0;; waited += 10) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (waited >= timeout) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			snprintf(why, len, "timed out after %u ms", timeout);
			return 1;
		}
		usleep(10000);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	snprintf(why, len, "exit status %d",
		 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 1;
}

static int run_check(const task_t *k, const Flotilla__HealthCheck *hc,
		     int init_pid, bool host_net, char *why, size_t len)
{
	if (!strcmp(hc->type, "exec"))
		return run_exec_check(k, hc, why, len);
	int ns = -1;
	if (!host_net) {
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/net", init_pid);
		ns = open(p, O_RDONLY | O_CLOEXEC);
		if (ns < 0) {
			snprintf(why, len, "task network: %s", strerror(errno));
			return 1;
		}
	}
	unsigned timeout = agent_check_timeout_ms(hc);
	int rc = !strcmp(hc->type, "tcp")
			 ? agent_check_tcp(hc->address, ns, timeout, why, len)
			 : agent_check_http(hc->address, hc->path, ns, timeout,
					    why, len);
	if (ns >= 0)
		close(ns);
	return rc == 0 ? 0 : 1;
}

static Flotilla__HealthCheck *dup_check(const Flotilla__HealthCheck *hc)
{
	size_t len = flotilla__health_check__get_packed_size(hc);
	cleanup_free uint8_t *buf = flt_xmalloc(len);
	flotilla__health_check__pack(hc, buf);
	Flotilla__HealthCheck *copy =
		flotilla__health_check__unpack(NULL, len, buf);
	if (!copy)
		abort(); /* it was packed just above */
	return copy;
}

/* Runs due checks one at a time, off the main loop (a check may take its
 * whole timeout). */
static void *health_main(void *arg)
{
	agent_tasks_t *t = arg;
	while (!atomic_load(&t->stopping)) {
		bool ran = false;
		pthread_mutex_lock(&t->mtx);
		for (size_t i = 0; i < t->n && !ran; i++) {
			task_t *k = t->v[i];
			if (!k->spec || strcmp(k->state, "running") != 0)
				continue;
			for (size_t c = 0; c < k->nchecks && !ran; c++) {
				int64_t now = flt_now_mono_ms();
				if (!agent_check_due(&k->checks[c], now))
					continue;
				/* Copy what the check needs, then unlock: the
				 * task (and its spec) may go meanwhile. */
				task_t copy = *k;
				Flotilla__HealthCheck *hc = dup_check(
					k->spec->checks[c]);
				bool host = !strcmp(k->spec->network, "host");
				char name[64];
				snprintf(name, sizeof(name), "%s", k->name);
				pthread_mutex_unlock(&t->mtx);
				char why[256] = "";
				int res = run_check(&copy, hc, copy.init_pid,
						    host, why, sizeof(why));
				pthread_mutex_lock(&t->mtx);
				/* The task may have gone meanwhile. */
				task_t *cur = find(t, name);
				if (cur == k && c < k->nchecks &&
				    agent_check_record(&k->checks[c], hc, res,
						       why,
						       flt_now_mono_ms()))
					flt_log(k->checks[c].healthy
							? FLT_LOG_INFO
							: FLT_LOG_WARN,
						"task health changed task=%s "
						"check=%s healthy=%d output=\"%s\"",
						name, hc->name,
						k->checks[c].healthy, why);
				flotilla__health_check__free_unpacked(hc, NULL);
				ran = true;
			}
		}
		pthread_mutex_unlock(&t->mtx);
		if (!ran)
			usleep(50 * 1000);
	}
	return NULL;
}

/* ---- reporting --------------------------------------------------------- */

static Flotilla__TaskState state_of(const char *s)
{
	static const struct {
		const char *name;
		Flotilla__TaskState st;
	} m[] = {
		{ "starting", FLOTILLA__TASK_STATE__TASK_STATE_PENDING },
		{ "running", FLOTILLA__TASK_STATE__TASK_STATE_RUNNING },
		{ "stopping", FLOTILLA__TASK_STATE__TASK_STATE_RUNNING },
		{ "restarting", FLOTILLA__TASK_STATE__TASK_STATE_RESTARTING },
		{ "exited", FLOTILLA__TASK_STATE__TASK_STATE_EXITED },
		{ "failed", FLOTILLA__TASK_STATE__TASK_STATE_FAILED },
		{ "stopped", FLOTILLA__TASK_STATE__TASK_STATE_STOPPED },
	};
	for (size_t i = 0; i < FLT_ARRAY_SIZE(m); i++)
		if (!strcmp(m[i].name, s))
			return m[i].st;
	return FLOTILLA__TASK_STATE__TASK_STATE_UNKNOWN;
}

size_t agent_tasks_status(agent_tasks_t *t, Flotilla__TaskStatus ***out)
{
	pthread_mutex_lock(&t->mtx);
	size_t n = t->n;
	Flotilla__TaskStatus **v = flt_xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		task_t *k = t->v[i];
		Flotilla__TaskStatus *s = flt_xcalloc(1, sizeof(*s));
		flotilla__task_status__init(s);
		s->name = flt_xstrdup(k->name);
		s->state = state_of(k->state);
		s->exit_code = k->exit_code;
		s->exit_signal = k->exit_signal;
		s->oom_killed = k->oom;
		s->restarts = k->restarts;
		s->started_at_ms = k->started_at;
		s->finished_at_ms = k->finished_at;
		s->pid = k->init_pid;
		s->message = flt_xstrdup(k->message);
		/* Healthy: running, and every check has passed its last
		 * verdict (a check that has not run yet is not healthy). */
		bool healthy = !strcmp(k->state, "running");
		s->n_checks = k->nchecks;
		s->checks = flt_xcalloc(k->nchecks, sizeof(*s->checks));
		for (size_t c = 0; c < k->nchecks; c++) {
			Flotilla__CheckStatus *cs = flt_xcalloc(1, sizeof(*cs));
			flotilla__check_status__init(cs);
			cs->name = flt_xstrdup(k->spec->checks[c]->name);
			cs->healthy = k->checks[c].healthy;
			cs->consecutive_failures =
				k->checks[c].consecutive_failures;
			cs->output = flt_xstrdup(k->checks[c].last_output);
			healthy = healthy && cs->healthy;
			s->checks[c] = cs;
		}
		s->healthy = healthy;
		v[i] = s;
	}
	pthread_mutex_unlock(&t->mtx);
	*out = v;
	return n;
}

void agent_tasks_status_free(Flotilla__TaskStatus **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

/* ---- life -------------------------------------------------------------- */

int agent_tasks_open(const agent_tasks_opts_t *o, agent_tasks_t **out,
		     flt_error_t *err)
{
	agent_tasks_t *t = flt_xcalloc(1, sizeof(*t));
	flt_txn_t *txn;
	int rc;

	t->o = *o;
	t->masks[0] = o->data_dir;
	t->masks[1] = "/etc/flotilla";
	pthread_mutex_init(&t->mtx, NULL);
	atomic_init(&t->stopping, false);
	if ((rc = flt_store_db(o->store, "tasks", &t->db)) < 0 ||
	    (rc = flt_txn_begin(o->store, false, &txn, err)) < 0) {
		free(t);
		return flt_err(err, rc, "task records cannot be read");
	}
	flt_txn_foreach(txn, t->db, NULL, 0, load_one, t);
	flt_txn_abort(txn);
	for (size_t i = 0; i < t->n; i++) {
		task_t *k = t->v[i];
		read_status(k);
		flt_info("task re-attached task=%s shim_pid=%d alive=%d state=%s",
			 k->name, (int)k->shim_pid, shim_alive(k), k->state);
	}
	if (pthread_create(&t->health_thread, NULL, health_main, t) != 0) {
		agent_tasks_close(t);
		return flt_err(err, -EAGAIN, "health thread");
	}
	*out = t;
	return 0;
}

void agent_tasks_close(agent_tasks_t *t)
{
	if (!t)
		return;
	atomic_store(&t->stopping, true);
	if (t->health_thread)
		pthread_join(t->health_thread, NULL);
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i]->spec)
			flotilla__task_spec__free_unpacked(t->v[i]->spec, NULL);
		free(t->v[i]->checks);
		free(t->v[i]);
	}
	pthread_mutex_destroy(&t->mtx);
	free(t);
}
