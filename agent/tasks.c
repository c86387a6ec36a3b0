#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "flotilla/pb.h"
#include "flotilla/util.h"
#include "health.h"
#include "shimconf.h"
#include "task.h"
#include "tasks.h"

#define MAX_TASKS 1024
#define SPEC_SCAN_MS 1000
/* Tasks waiting for a package are tried again this often (and at once
 * after a switch). */
#define PKG_RETRY_MS 5000
/* Static tasks are keyed by their name; alloc tasks by "<alloc id>/<task>",
 * which no name can equal (names have no '/'). */
#define KEY_MAX (36 + 1 + 63 + 1)

typedef struct task {
	char key[KEY_MAX];
	char name[64]; /* the task's own name */
	char alloc_id[37]; /* "" for static tasks */
	char job[64], group[64];
	uint32_t alloc_index;
	unsigned order; /* place in its allocation (the default for logs) */
	bool refused; /* spec refused by this host: reported, never run */
	uint64_t gen; /* unique in this run: tells a task from its successor */
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
	/* What the last look found to report, to notice changes. */
	Flotilla__TaskState rep_state;
	bool rep_healthy;
	/* Packages. */
	bool restart_pending; /* stop (if running) and start anew */
	bool pkg_missing; /* could not start: a package is not here */
	char used[AGENT_TASK_USES_MAX][65]; /* mounted by the running process */
	size_t nused;
	uint64_t runs_base; /* processes started before the current shim's */
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
	/* The allocations to run (copies), once the coordinator said. */
	Flotilla__AllocSpec **want;
	size_t nwant;
	bool allocs_known;
	bool cap_warned;
	int64_t next_scan_ms; /* of --task-dir: changed by people, not often */
	bool changed; /* something to report: call on_change */
	unsigned gc_seq;
	uint64_t gen_seq;
	int64_t next_pkg_retry_ms; /* tasks waiting for a package */
	char pkgs_dir[PATH_MAX]; /* canonical, "" without a package store */
};

/* Lock held (or before any other thread runs). */
static task_t *task_new(agent_tasks_t *t)
{
	task_t *k = flt_xcalloc(1, sizeof(*k));
	k->gen = ++t->gen_seq;
	return k;
}

/* ---- records ---------------------------------------------------------- */

/*
 * The record of a task, under its key: "dir\nshim_pid\nshim_start\nhash-hex"
 * and, for alloc tasks, "\nalloc_id\nname\norder", so that a restarted
 * agent re-attaches to the shim and still reports the allocation.
 */
static void save_record(agent_tasks_t *t, const task_t *k)
{
	char val[1400], hex[33];
	flt_txn_t *txn;
	sodium_bin2hex(hex, sizeof(hex), k->spec_hash, sizeof(k->spec_hash));
	int n = snprintf(val, sizeof(val), "%s\n%d\n%llu\n%s", k->dir,
			 (int)k->shim_pid, k->shim_start, hex);
	if (k->alloc_id[0])
		snprintf(val + n, sizeof(val) - (size_t)n, "\n%s\n%s\n%u",
			 k->alloc_id, k->name, k->order);
	/* Without its record, a restarted agent cannot re-attach to the
	 * task: say so, and why (a full disk names the directory). */
	flt_error_t err;
	if (flt_txn_begin(t->o.store, true, &txn, &err) < 0)
		goto fail;
	if (flt_txn_put(txn, t->db, k->key, strlen(k->key), val, strlen(val),
			&err) < 0) {
		flt_txn_abort(txn);
		goto fail;
	}
	if (flt_txn_commit(txn, &err) == 0)
		return;
fail:
	flt_error("task record not stored task=%s error=\"%s\"", k->key,
		  err.msg);
}

static void delete_record(agent_tasks_t *t, const char *name)
{
	flt_error_t err;
	flt_txn_t *txn;
	if (flt_txn_begin(t->o.store, true, &txn, &err) == 0) {
		flt_txn_del(txn, t->db, name, strlen(name));
		if (flt_txn_commit(txn, &err) == 0)
			return;
	}
	flt_warn("task record not deleted task=%s error=\"%s\"", name, err.msg);
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
	return k->shim_pid > 0 && kill(k->shim_pid, 0) == 0 && k->shim_start &&
	       proc_start_time(k->shim_pid) == k->shim_start;
}

static task_t *find(agent_tasks_t *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i]->key, key) == 0)
			return t->v[i];
	return NULL;
}

bool agent_is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];
		if (dash ? c != '-'
			 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F')))
			return false;
	}
	return s[36] == '\0';
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

static int load_one(const void *key, size_t klen, const void *val, size_t vlen,
		    void *arg)
{
	agent_tasks_t *t = arg;
	char buf[1400], *f[7] = { 0 };
	size_t nf = 0;
	if (klen >= KEY_MAX || vlen >= sizeof(buf) || t->n >= MAX_TASKS)
		return 0;
	memcpy(buf, val, vlen);
	buf[vlen] = '\0';
	for (char *p = buf; p && nf < FLT_ARRAY_SIZE(f); nf++) {
		f[nf] = p;
		if ((p = strchr(p, '\n')))
			*p++ = '\0';
	}
	if (nf < 4 || (nf > 4 && nf != 7))
		return 0;
	task_t *k = task_new(t);
	memcpy(k->key, key, klen);
	snprintf(k->dir, sizeof(k->dir), "%s", f[0]);
	k->shim_pid = atoi(f[1]);
	k->shim_start = strtoull(f[2], NULL, 10);
	sodium_hex2bin(k->spec_hash, sizeof(k->spec_hash), f[3], strlen(f[3]),
		       NULL, NULL, NULL);
	if (nf == 7) {
		if (!agent_is_uuid(f[4]) || !flt_is_name(f[5], 63)) {
			free(k);
			return 0;
		}
		snprintf(k->alloc_id, sizeof(k->alloc_id), "%s", f[4]);
		snprintf(k->name, sizeof(k->name), "%s", f[5]);
		k->order = (unsigned)atoi(f[6]);
	} else {
		snprintf(k->name, sizeof(k->name), "%s", k->key);
	}
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
		/* The agent's sockets and files are not the shim's, nor is
		 * its raised descriptor limit the tasks'. */
		close_range(3, ~0U, 0);
		flt_nofile_restore();
		/* A stop sent before the shim blocks it itself stays pending
		 * over exec, for its signalfd: it must not kill the shim
		 * before it has written a status. */
		sigset_t stop;
		sigemptyset(&stop);
		sigaddset(&stop, SIGTERM);
		sigaddset(&stop, SIGINT);
		sigaddset(&stop, SIGHUP);
		sigprocmask(SIG_SETMASK, &stop, NULL);
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

/* Called with the table lock held. */
static void start_task(agent_tasks_t *t, task_t *k)
{
	flt_error_t err;
	/* A fresh status: the last run's is not this run's. */
	char p[1100];
	snprintf(p, sizeof(p), "%s/status", k->dir);
	unlink(p);
	/* What the allocation is, for the task; the agent's values win over
	 * the spec's (agent_task_prepare). */
	char e_id[64], e_job[96], e_group[96], e_index[48];
	const char *env[] = { e_id, e_job, e_group, e_index, NULL };
	snprintf(e_id, sizeof(e_id), "FLOTILLA_ALLOC_ID=%s", k->alloc_id);
	snprintf(e_job, sizeof(e_job), "FLOTILLA_JOB=%s", k->job);
	snprintf(e_group, sizeof(e_group), "FLOTILLA_GROUP=%s", k->group);
	snprintf(e_index, sizeof(e_index), "FLOTILLA_ALLOC_INDEX=%u",
		 k->alloc_index);
	agent_task_pkg_t pkgs[AGENT_TASK_USES_MAX];
	int rc = agent_task_resolve_packages(k->spec, t->o.pkgs, pkgs, &err);
	bool missing = rc == FLT_ENOTFOUND;
	if (rc < 0 ||
	    agent_task_prepare(k->spec, t->o.allow, k->dir, t->masks,
			       k->alloc_id[0] ? env : NULL, pkgs,
			       k->spec->n_uses, &err) < 0 ||
	    spawn_shim(k, &err) < 0) {
		/* A task waiting for its package is tried again and again:
		 * say so once. */
		bool again = k->pkg_missing && missing &&
			     !strcmp(k->message, err.msg);
		flt_log(again ? FLT_LOG_DEBUG : FLT_LOG_ERROR,
			"task could not start task=%s error=\"%s\"", k->key,
			err.msg);
		k->pkg_missing = missing;
		snprintf(k->state, sizeof(k->state), "failed");
		snprintf(k->message, sizeof(k->message), "%s", err.msg);
		return;
	}
	k->pkg_missing = false;
	k->nused = k->spec->n_uses;
	for (size_t i = 0; i < k->nused; i++)
		snprintf(k->used[i], sizeof(k->used[i]), "%s", pkgs[i].name);
	/* The new shim counts its own restarts from 0. */
	k->runs_base += k->restarts + 1;
	k->restarts = 0;
	k->message[0] = '\0';
	k->stop_sent = false;
	snprintf(k->state, sizeof(k->state), "starting");
	save_record(t, k);
	flt_info("task started task=%s shim_pid=%d", k->key, (int)k->shim_pid);
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
			k->state, k->key, k->exit_code, k->exit_signal, k->oom,
			k->restarts, k->message);
}

static bool final_state(const char *s)
{
	return !strcmp(s, "exited") || !strcmp(s, "failed") ||
	       !strcmp(s, "stopped");
}

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

/* What is reported: a restart the agent asked for shows as one, not as
 * the stop that begins it (the coordinator would take a stopped task for
 * a finished one). */
static Flotilla__TaskState rep_state_of(const task_t *k)
{
	if (k->restart_pending && k->want_running)
		return FLOTILLA__TASK_STATE__TASK_STATE_RESTARTING;
	return state_of(k->state);
}

/* Healthy: running, and every check has passed its last verdict (a check
 * that has not run yet is not healthy). */
static bool task_healthy(const task_t *k)
{
	if (strcmp(k->state, "running") != 0 ||
	    (k->restart_pending && k->want_running))
		return false;
	for (size_t c = 0; c < k->nchecks; c++)
		if (!k->checks[c].healthy)
			return false;
	return true;
}

/* Lock held: notes whether what is reported of k changed. */
static void note(agent_tasks_t *t, task_t *k)
{
	Flotilla__TaskState st = rep_state_of(k);
	bool healthy = task_healthy(k);
	if (st != k->rep_state || healthy != k->rep_healthy) {
		k->rep_state = st;
		k->rep_healthy = healthy;
		t->changed = true;
	}
}

/* Lock not held: tells the owner when there is something new to report. */
static void notify(agent_tasks_t *t)
{
	pthread_mutex_lock(&t->mtx);
	bool changed = t->changed;
	t->changed = false;
	pthread_mutex_unlock(&t->mtx);
	if (changed && t->o.on_change)
		t->o.on_change(t->o.change_arg);
}

/* Lock held: the stop signal for every task that should not run. */
static void stop_unwanted(agent_tasks_t *t)
{
	for (size_t i = 0; i < t->n; i++) {
		task_t *k = t->v[i];
		if (k->want_running || k->stop_sent || !shim_alive(k))
			continue;
		flt_info("stopping task task=%s", k->key);
		kill(k->shim_pid, SIGTERM);
		k->stop_sent = true;
	}
}

/* Lock held: moves a restart the agent asked for along (ADR 0008's
 * stop-then-start, keeping the task, its directory and its logs). */
static void restart_step(agent_tasks_t *t, task_t *k, bool alive)
{
	if (alive) {
		if (!k->stop_sent) {
			flt_info("restarting task task=%s", k->key);
			kill(k->shim_pid, SIGTERM);
			k->stop_sent = true;
		}
		return;
	}
	k->restart_pending = false;
	/* Check results of the old process are not the new one's. */
	k->gen = ++t->gen_seq;
	reset_checks(k);
	start_task(t, k);
}

/* ---- reconciling with the spec directory ------------------------------ */

static bool is_static(const task_t *k) { return !k->alloc_id[0]; }

static void scan_specs(agent_tasks_t *t)
{
	DIR *d = opendir(t->o.spec_dir);
	struct dirent *e;
	if (!d)
		return;
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++)
		if (is_static(t->v[i]))
			t->v[i]->seen = false;
	pthread_mutex_unlock(&t->mtx);
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
			if (is_static(t->v[i]) &&
			    !memcmp(t->v[i]->spec_hash, h, sizeof(h)))
				k = t->v[i];
		if (k) {
			k->seen = true;
			pthread_mutex_unlock(&t->mtx);
			if (!k->spec &&
			    agent_task_spec_load(path, t->o.allow, &spec,
						 &err) == 0) {
				pthread_mutex_lock(&t->mtx);
				k->spec = spec;
				reset_checks(k);
				pthread_mutex_unlock(&t->mtx);
			}
			continue;
		}
		pthread_mutex_unlock(&t->mtx);
		if (agent_task_spec_load(path, t->o.allow, &spec, &err) < 0) {
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
			flt_warn("task limit reached: %d tasks on this node, "
				 "not started file=%s",
				 MAX_TASKS, path);
			flotilla__task_spec__free_unpacked(spec, NULL);
			continue;
		}
		k = task_new(t);
		snprintf(k->key, sizeof(k->key), "%s", spec->name);
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
		t->changed = true;
		start_task(t, k);
		pthread_mutex_unlock(&t->mtx);
	}
	closedir(d);
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++)
		if (is_static(t->v[i]) && !t->v[i]->seen)
			t->v[i]->want_running = false;
	pthread_mutex_unlock(&t->mtx);
}

/* ---- reconciling with the allocations ---------------------------------- */

/*
 * What makes a running alloc task stale: its spec, and the values its
 * environment gets from the allocation. The job version is not among
 * them: a new version with the same task spec leaves the task running.
 */
static void alloc_task_hash(const Flotilla__AllocSpec *a,
			    const Flotilla__TaskSpec *s, uint8_t h[16])
{
	crypto_generichash_state st;
	size_t len = flotilla__task_spec__get_packed_size(s);
	cleanup_free uint8_t *buf = flt_xmalloc(len ? len : 1);
	char meta[200];

	flotilla__task_spec__pack(s, buf);
	int n = snprintf(meta, sizeof(meta), "\n%s\n%s\n%u", a->job, a->group,
			 a->index);
	crypto_generichash_init(&st, NULL, 0, 16);
	crypto_generichash_update(&st, buf, len);
	crypto_generichash_update(&st, (const uint8_t *)meta, (size_t)n);
	crypto_generichash_final(&st, h, 16);
}

static task_t *new_alloc_task(agent_tasks_t *t, const Flotilla__AllocSpec *a,
			      unsigned j, const uint8_t h[16])
{
	task_t *k = task_new(t);
	const char *name = a->tasks[j]->name;

	snprintf(k->key, sizeof(k->key), "%s/%s", a->id, name);
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(k->alloc_id, sizeof(k->alloc_id), "%s", a->id);
	snprintf(k->job, sizeof(k->job), "%s", a->job);
	snprintf(k->group, sizeof(k->group), "%s", a->group);
	k->alloc_index = a->index;
	k->order = j;
	snprintf(k->dir, sizeof(k->dir), "%s/allocs/%s/%s", t->o.data_dir,
		 a->id, name);
	memcpy(k->spec_hash, h, 16);
	k->want_running = true;
	k->seen = true;
	k->exit_code = -1;
	t->v[t->n++] = k;
	t->changed = true;
	return k;
}

/* Lock held: one task of a listed allocation. */
static void reconcile_alloc_task(agent_tasks_t *t, const Flotilla__AllocSpec *a,
				 unsigned j)
{
	const Flotilla__TaskSpec *s = a->tasks[j];
	char key[KEY_MAX];
	uint8_t h[16];
	flt_error_t err;

	snprintf(key, sizeof(key), "%s/%s", a->id, s->name);
	alloc_task_hash(a, s, h);
	task_t *k = find(t, key);
	if (k) {
		k->seen = true;
		if (memcmp(k->spec_hash, h, sizeof(h)) != 0) {
			/* Changed in place: stop it; once it is gone, it
			 * starts anew with this spec. */
			if (k->want_running)
				flt_info("task spec changed, restarting "
					 "task=%s",
					 k->key);
			k->want_running = false;
			return;
		}
		if (!k->spec && !k->refused) {
			/* Re-attached after a restart: its checks need the
			 * spec, which the records do not keep. */
			k->spec = flt_pb_dup(&s->base);
			if (agent_task_spec_check(k->spec, t->o.allow, &err) <
			    0)
				flt_warn("running task no longer passes this "
					 "host's checks, left running task=%s "
					 "error=\"%s\"",
					 k->key, err.msg);
			snprintf(k->job, sizeof(k->job), "%s", a->job);
			snprintf(k->group, sizeof(k->group), "%s", a->group);
			k->alloc_index = a->index;
			k->order = j;
			reset_checks(k);
		}
		return;
	}
	if (t->n >= MAX_TASKS) {
		if (!t->cap_warned)
			flt_warn("task limit reached: %d tasks on this node, "
				 "not started alloc=%s task=%s (nor any other "
				 "past the limit)",
				 MAX_TASKS, a->id, s->name);
		t->cap_warned = true;
		return;
	}
	k = new_alloc_task(t, a, j, h);
	Flotilla__TaskSpec *spec = flt_pb_dup(&s->base);
	if (agent_task_spec_check(spec, t->o.allow, &err) < 0) {
		/* Reported, so that the coordinator sees why. */
		k->refused = true;
		snprintf(k->state, sizeof(k->state), "failed");
		snprintf(k->message, sizeof(k->message),
			 "refused by this node: %s", err.msg);
		flt_warn("task refused task=%s error=\"%s\"", k->key, err.msg);
		flotilla__task_spec__free_unpacked(spec, NULL);
		return;
	}
	k->spec = spec;
	reset_checks(k);
	start_task(t, k);
}

/* Lock held: starts what the allocations want, stops what they do not. */
static void reconcile_allocs(agent_tasks_t *t)
{
	/* Before the coordinator has spoken, re-attached tasks stay as they
	 * are: an unreachable coordinator must not stop the fleet. */
	if (!t->allocs_known)
		return;
	for (size_t i = 0; i < t->n; i++)
		if (!is_static(t->v[i]))
			t->v[i]->seen = false;
	for (size_t i = 0; i < t->nwant; i++)
		for (size_t j = 0; j < t->want[i]->n_tasks; j++)
			reconcile_alloc_task(t, t->want[i], (unsigned)j);
	for (size_t i = 0; i < t->n; i++)
		if (!is_static(t->v[i]) && !t->v[i]->seen)
			t->v[i]->want_running = false;
	stop_unwanted(t);
}

/* Names the first reason a is unusable, given the allocations before it. */
static int alloc_check(Flotilla__AllocSpec *const *allocs, size_t i,
		       flt_error_t *err)
{
	const Flotilla__AllocSpec *a = allocs[i];
	if (!agent_is_uuid(a->id))
		return flt_err(err, -EINVAL,
			       "allocs[%zu].id: not an allocation id (UUID)",
			       i);
	for (size_t k = 0; k < i; k++)
		if (!strcmp(allocs[k]->id, a->id))
			return flt_err(err, -EINVAL, "alloc %s: listed twice",
				       a->id);
	if (!flt_is_name(a->job, 63))
		return flt_err(err, -EINVAL, "alloc %s: job: not a name",
			       a->id);
	if (!flt_is_name(a->group, 63))
		return flt_err(err, -EINVAL, "alloc %s: group: not a name",
			       a->id);
	if (a->n_tasks == 0)
		return flt_err(err, -EINVAL, "alloc %s: no tasks", a->id);
	for (size_t j = 0; j < a->n_tasks; j++) {
		if (!flt_is_name(a->tasks[j]->name, 63))
			return flt_err(err, -EINVAL,
				       "alloc %s: tasks[%zu].name: not a name",
				       a->id, j);
		for (size_t k = 0; k < j; k++)
			if (!strcmp(a->tasks[k]->name, a->tasks[j]->name))
				return flt_err(err, -EINVAL,
					       "alloc %s: tasks[%zu].name: "
					       "\"%s\" is used by tasks[%zu]",
					       a->id, j, a->tasks[j]->name, k);
	}
	return 0;
}

static void free_want(Flotilla__AllocSpec **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		flotilla__alloc_spec__free_unpacked(v[i], NULL);
	free(v);
}

int agent_tasks_set_allocs(agent_tasks_t *t, Flotilla__AllocSpec *const *allocs,
			   size_t n, flt_error_t *err)
{
	Flotilla__AllocSpec **want = flt_xcalloc(n ? n : 1, sizeof(*want));
	size_t nwant = 0, ntasks = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		flt_error_t e;
		if (alloc_check(allocs, i, &e) < 0) {
			flt_error("allocation refused: %s", e.msg);
			if (rc == 0)
				rc = flt_err(err, -EINVAL, "%s", e.msg);
			continue;
		}
		want[nwant] = flt_pb_dup(&allocs[i]->base);
		ntasks += want[nwant++]->n_tasks;
	}
	pthread_mutex_lock(&t->mtx);
	free_want(t->want, t->nwant);
	t->want = want;
	t->nwant = nwant;
	t->allocs_known = true;
	t->cap_warned = false;
	reconcile_allocs(t);
	pthread_mutex_unlock(&t->mtx);
	flt_info("allocations set allocs=%zu tasks=%zu", nwant, ntasks);
	notify(t);
	return rc;
}

/* ---- forgetting alloc tasks --------------------------------------------- */

/*
 * True when anything is mounted at or below dir. The sandbox's mounts live
 * in the shim's own namespace and go with it, but a directory to delete
 * that still had one (a bind of the host's root, say) would take the host
 * with it: better keep it.
 */
static bool mounted_below(const char *dir)
{
	char real[PATH_MAX], line[8192];
	bool found = false;
	if (!realpath(dir, real))
		return false;
	size_t rlen = strlen(real);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return true;
	while (!found && fgets(line, sizeof(line), f)) {
		/* Field 5 is the mount point, with octal escapes. */
		char *p = line;
		for (int field = 1; field < 5 && p; field++)
			if ((p = strchr(p, ' ')))
				p++;
		if (!p)
			continue;
		char mp[PATH_MAX];
		size_t n = 0;
		for (; *p && *p != ' ' && n + 1 < sizeof(mp); p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' &&
			    p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
			    p[3] <= '7') {
				mp[n++] =
					(char)((p[1] - '0') * 64 +
					       (p[2] - '0') * 8 + (p[3] - '0'));
				p += 3;
			} else {
				mp[n++] = *p;
			}
		}
		mp[n] = '\0';
		found = !strncmp(mp, real, rlen) &&
			(mp[rlen] == '\0' || mp[rlen] == '/');
	}
	fclose(f);
	return found;
}

/*
 * Lock held: moves the directory of a forgotten alloc task aside (a rename
 * is quick), so that a task started anew under the same name gets a fresh
 * one; returns the new path for the caller to delete after unlocking, or
 * NULL.
 */
static char *retire_dir(agent_tasks_t *t, const task_t *k)
{
	struct stat st;
	char parent[1200];
	if (lstat(k->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	if (mounted_below(k->dir)) {
		flt_warn("task directory kept: something is mounted in it "
			 "task=%s dir=%s",
			 k->key, k->dir);
		return NULL;
	}
	size_t len = strlen(t->o.data_dir) + 64;
	char *to = flt_xmalloc(len);
	snprintf(to, len, "%s/allocs/.gc-%d-%u", t->o.data_dir, (int)getpid(),
		 ++t->gc_seq);
	if (rename(k->dir, to) < 0) {
		flt_warn("task directory kept task=%s dir=%s error=\"%s\"",
			 k->key, k->dir, strerror(errno));
		free(to);
		return NULL;
	}
	/* The allocation's directory goes with its last task. */
	snprintf(parent, sizeof(parent), "%s/allocs/%s", t->o.data_dir,
		 k->alloc_id);
	rmdir(parent);
	return to;
}

/* Directories retired but not deleted when the agent last stopped. */
static void remove_retired(agent_tasks_t *t)
{
	char dir[1200];
	snprintf(dir, sizeof(dir), "%s/allocs", t->o.data_dir);
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, ".gc-", 4) != 0)
			continue;
		char p[1500];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (!mounted_below(p))
			flt_rm_rf(p, FLT_RM_ONE_FS);
	}
	closedir(d);
}

void agent_tasks_tick(agent_tasks_t *t)
{
	char *trash[64];
	size_t ntrash = 0;
	bool removed = false;

	/* Status files are read every tick; the spec directory, which
	 * people edit, once a second is enough. */
	int64_t now = flt_now_mono_ms();
	if (t->o.spec_dir && now >= t->next_scan_ms) {
		scan_specs(t);
		t->next_scan_ms = now + SPEC_SCAN_MS;
	}
	pthread_mutex_lock(&t->mtx);
	bool retry = now >= t->next_pkg_retry_ms;
	if (retry)
		t->next_pkg_retry_ms = now + PKG_RETRY_MS;
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
			flt_warn("task failed task=%s message=\"%s\"", k->key,
				 k->message);
		}
		if (retry && k->pkg_missing && k->want_running && !alive)
			k->restart_pending = true;
		if (k->restart_pending && k->want_running && k->spec &&
		    !k->refused) {
			restart_step(t, k, alive);
			alive = shim_alive(k);
		}
		note(t, k);
		if (!k->want_running && alive && !k->stop_sent) {
			flt_info("stopping task task=%s", k->key);
			kill(k->shim_pid, SIGTERM);
			k->stop_sent = true;
		}
		/* Retired directories are deleted after unlocking, a few a
		 * tick: the rest wait for the next one. */
		if (!k->want_running && !alive &&
		    (is_static(k) || ntrash < FLT_ARRAY_SIZE(trash))) {
			/* Unwanted and stopped: forget it. */
			delete_record(t, k->key);
			if (!is_static(k) && (trash[ntrash] = retire_dir(t, k)))
				ntrash++;
			flt_info("task removed task=%s state=%s", k->key,
				 k->state);
			flotilla__task_spec__free_unpacked(k->spec, NULL);
			free(k->checks);
			free(k);
			t->v[i] = t->v[--t->n];
			t->changed = true;
			removed = true;
			continue;
		}
		i++;
	}
	/* Room for tasks whose spec changed, or that waited for a slot. */
	if (removed)
		reconcile_allocs(t);
	pthread_mutex_unlock(&t->mtx);
	for (size_t i = 0; i < ntrash; i++) {
		/* No symlink followed, no mount crossed. */
		flt_rm_rf(trash[i], FLT_RM_ONE_FS);
		free(trash[i]);
	}
	notify(t);
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
		flt_nofile_restore();
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
			/* Once a check ran, k may be gone: test ran first. */
			for (size_t c = 0; !ran && c < k->nchecks; c++) {
				int64_t now = flt_now_mono_ms();
				if (!agent_check_due(&k->checks[c], now))
					continue;
				/* Copy what the check needs, then unlock: the
				 * task (and its spec) may go meanwhile. */
				task_t copy = *k;
				Flotilla__HealthCheck *hc =
					flt_pb_dup(&k->spec->checks[c]->base);
				bool host = !strcmp(k->spec->network, "host");
				char key[KEY_MAX];
				snprintf(key, sizeof(key), "%s", k->key);
				uint64_t gen = k->gen;
				pthread_mutex_unlock(&t->mtx);
				char why[256] = "";
				int res = run_check(&copy, hc, copy.init_pid,
						    host, why, sizeof(why));
				pthread_mutex_lock(&t->mtx);
				/* The task may have gone meanwhile, been
				 * replaced under the same key, or restarted (a
				 * new gen): the verdict was on a process that is
				 * no longer its. One being stopped says nothing
				 * either (an exec check run into a sandbox that
				 * is going away fails). */
				task_t *cur = find(t, key);
				if (cur && cur->gen == gen && !cur->stop_sent &&
				    c < cur->nchecks &&
				    agent_check_record(&cur->checks[c], hc, res,
						       why,
						       flt_now_mono_ms())) {
					flt_log(cur->checks[c].healthy
							? FLT_LOG_INFO
							: FLT_LOG_WARN,
						"task health changed task=%s "
						"check=%s healthy=%d output=\"%s\"",
						key, hc->name,
						cur->checks[c].healthy, why);
					note(t, cur);
				}
				flotilla__health_check__free_unpacked(hc, NULL);
				ran = true;
			}
		}
		pthread_mutex_unlock(&t->mtx);
		notify(t);
		if (!ran)
			usleep(50 * 1000);
	}
	return NULL;
}

/* ---- reporting --------------------------------------------------------- */

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
		s->alloc_id = flt_xstrdup(k->alloc_id);
		s->state = rep_state_of(k);
		s->exit_code = k->exit_code;
		s->exit_signal = k->exit_signal;
		s->oom_killed = k->oom;
		s->restarts = k->restarts;
		s->started_at_ms = k->started_at;
		s->finished_at_ms = k->finished_at;
		s->pid = k->init_pid;
		s->message = flt_xstrdup(k->message);
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
			s->checks[c] = cs;
		}
		s->healthy = task_healthy(k);
		v[i] = s;
	}
	pthread_mutex_unlock(&t->mtx);
	*out = v;
	return n;
}

int agent_tasks_log_dir(agent_tasks_t *t, const char *alloc_id,
			const char *task, char *dir, size_t len,
			flt_error_t *err)
{
	const task_t *best = NULL;
	bool alloc_seen = false;

	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		const task_t *k = t->v[i];
		if (!*alloc_id || strcmp(k->alloc_id, alloc_id) != 0)
			continue;
		alloc_seen = true;
		if (*task ? !strcmp(k->name, task)
			  : !best || k->order < best->order)
			best = k;
	}
	if (best)
		snprintf(dir, len, "%s/logs", best->dir);
	pthread_mutex_unlock(&t->mtx);
	if (!alloc_seen)
		return flt_err(err, FLT_ENOTFOUND,
			       "allocation %s does not run on this node",
			       alloc_id);
	if (!best)
		return flt_err(err, FLT_ENOTFOUND,
			       "allocation %s has no task %s on this node",
			       alloc_id, task);
	return 0;
}

void agent_tasks_status_free(Flotilla__TaskStatus **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

/* ---- packages ---------------------------------------------------------- */

static bool task_uses(const task_t *k, const char *pkg)
{
	for (size_t i = 0; i < k->nused; i++)
		if (!strcmp(k->used[i], pkg))
			return true;
	for (size_t i = 0; k->spec && i < k->spec->n_uses; i++)
		if (!strcmp(k->spec->uses[i], pkg))
			return true;
	return false;
}

unsigned agent_tasks_restart_using(agent_tasks_t *t, const char *pkg)
{
	unsigned n = 0;
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		task_t *k = t->v[i];
		if (!k->want_running || k->refused || !task_uses(k, pkg))
			continue;
		k->restart_pending = true;
		note(t, k);
		n++;
	}
	pthread_mutex_unlock(&t->mtx);
	if (n)
		flt_info("restarting the tasks that use a package package=%s "
			 "tasks=%u",
			 pkg, n);
	notify(t);
	return n;
}

void agent_tasks_packages_changed(agent_tasks_t *t)
{
	/* Marked now, not at the next tick: whoever watches these tasks
	 * must see a start under way, not the failure that came before. */
	pthread_mutex_lock(&t->mtx);
	for (size_t i = 0; i < t->n; i++) {
		task_t *k = t->v[i];
		if (k->pkg_missing && k->want_running && !k->refused) {
			k->restart_pending = true;
			note(t, k);
		}
	}
	pthread_mutex_unlock(&t->mtx);
	notify(t);
}

/* Lock held: why k is not healthy, for a person. */
static void describe(const task_t *k, char *buf, size_t len)
{
	if (k->restart_pending && k->want_running) {
		snprintf(buf, len, "restarting");
		return;
	}
	if (!strcmp(k->state, "running")) {
		for (size_t c = 0; c < k->nchecks; c++) {
			const agent_check_state_t *cs = &k->checks[c];
			const char *name =
				k->spec ? k->spec->checks[c]->name : "";
			if (cs->healthy)
				continue;
			if (!cs->ever_ran)
				snprintf(buf, len,
					 "check %s has not passed yet", name);
			else
				snprintf(buf, len, "check %s failed: %s", name,
					 cs->last_output);
			return;
		}
		buf[0] = '\0';
		return;
	}
	int n = snprintf(buf, len, "%s", k->state[0] ? k->state : "unknown");
	if (n < 0 || (size_t)n >= len)
		return;
	if (!strcmp(k->state, "exited") || !strcmp(k->state, "restarting") ||
	    (!strcmp(k->state, "failed") && k->exit_code >= 0 &&
	     k->started_at)) {
		if (k->exit_signal)
			n += snprintf(buf + n, len - (size_t)n,
				      " (killed by signal %d%s)",
				      k->exit_signal,
				      k->oom ? ", out of memory" : "");
		else
			n += snprintf(buf + n, len - (size_t)n,
				      " (exit code %d)", k->exit_code);
	}
	if (k->message[0] && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ": %s", k->message);
}

/* Lock held: whether a check of running k has failed its threshold of
 * runs in a row; the first such check then says why. */
static void failed_check(const task_t *k, agent_task_health_t *h)
{
	if (strcmp(k->state, "running") != 0 || !k->spec ||
	    (k->restart_pending && k->want_running))
		return;
	for (size_t c = 0; c < k->nchecks; c++) {
		const agent_check_state_t *cs = &k->checks[c];
		const Flotilla__HealthCheck *hc = k->spec->checks[c];
		if (!agent_check_failed(cs, hc))
			continue;
		h->failed_checks = true;
		h->failures = cs->consecutive_failures;
		snprintf(h->why, sizeof(h->why), "check %s failed: %s",
			 hc->name, cs->last_output);
		return;
	}
}

size_t agent_tasks_health_using(agent_tasks_t *t, const char *pkg,
				agent_task_health_t **out)
{
	pthread_mutex_lock(&t->mtx);
	agent_task_health_t *v = flt_xcalloc(t->n ? t->n : 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		const task_t *k = t->v[i];
		if (!k->want_running || k->refused || !task_uses(k, pkg))
			continue;
		agent_task_health_t *h = &v[n++];
		snprintf(h->key, sizeof(h->key), "%s", k->key);
		h->gen = k->gen;
		h->state = rep_state_of(k);
		h->healthy = task_healthy(k);
		h->starting = k->restart_pending;
		h->runs = k->runs_base + k->restarts;
		if (!h->healthy)
			describe(k, h->why, sizeof(h->why));
		failed_check(k, h);
	}
	pthread_mutex_unlock(&t->mtx);
	*out = v;
	return n;
}

/*
 * The packages a re-attached task's process has mounted, from the shim's
 * configuration: mount sources inside the package store. Its spec comes
 * back later (alloc tasks: with the first set), but a restart asked for
 * before then must know.
 */
static void read_used(agent_tasks_t *t, task_t *k)
{
	char p[1100], why[256];
	shim_conf_t c;
	size_t plen = strlen(t->pkgs_dir);

	if (!plen)
		return;
	snprintf(p, sizeof(p), "%s/shim.conf", k->dir);
	if (shim_conf_read(p, &c, why, sizeof(why)) < 0)
		return;
	for (size_t i = 0; i < c.nmounts && k->nused < AGENT_TASK_USES_MAX;
	     i++) {
		const char *src = c.mounts[i].source;
		if (strncmp(src, t->pkgs_dir, plen) != 0 || src[plen] != '/')
			continue;
		const char *name = src + plen + 1;
		size_t n = strcspn(name, "/");
		if (n == 0 || n >= sizeof(k->used[0]))
			continue;
		memcpy(k->used[k->nused], name, n);
		k->used[k->nused][n] = '\0';
		k->nused++;
	}
	shim_conf_free(&c);
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
	if (o->pkgs && !realpath(agent_pkgs_dir(o->pkgs), t->pkgs_dir))
		t->pkgs_dir[0] = '\0';
	for (size_t i = 0; i < t->n; i++) {
		task_t *k = t->v[i];
		read_status(k);
		read_used(t, k);
		k->rep_state = rep_state_of(k);
		k->rep_healthy = task_healthy(k);
		flt_info(
			"task re-attached task=%s shim_pid=%d alive=%d state=%s",
			k->key, (int)k->shim_pid, shim_alive(k), k->state);
	}
	remove_retired(t);
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
	free_want(t->want, t->nwant);
	pthread_mutex_destroy(&t->mtx);
	free(t);
}
