#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shimconf.h"

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

void shim_conf_add_arg(shim_conf_t *c, const char *a)
{
	c->argv = xrealloc(c->argv, (c->argc + 2) * sizeof(*c->argv));
	c->argv[c->argc++] = xstrdup(a);
	c->argv[c->argc] = NULL;
}

void shim_conf_add_env(shim_conf_t *c, const char *kv)
{
	c->envp = xrealloc(c->envp, (c->envc + 2) * sizeof(*c->envp));
	c->envp[c->envc++] = xstrdup(kv);
	c->envp[c->envc] = NULL;
}

void shim_conf_add_mask(shim_conf_t *c, const char *path)
{
	c->masks = xrealloc(c->masks, (c->nmasks + 1) * sizeof(*c->masks));
	c->masks[c->nmasks++] = xstrdup(path);
}

void shim_conf_add_mount(shim_conf_t *c, const char *src, const char *tgt)
{
	c->mounts = xrealloc(c->mounts, (c->nmounts + 1) * sizeof(*c->mounts));
	c->mounts[c->nmounts].source = xstrdup(src);
	c->mounts[c->nmounts].writable = false;
	c->mounts[c->nmounts++].target = xstrdup(tgt);
}

void shim_conf_add_rlimit(shim_conf_t *c, int res, rlim_t soft, rlim_t hard)
{
	c->rlimits =
		xrealloc(c->rlimits, (c->nrlimits + 1) * sizeof(*c->rlimits));
	c->rlimits[c->nrlimits++] = (shim_rlimit_t){ res, soft, hard };
}

void shim_conf_free(shim_conf_t *c)
{
	for (size_t i = 0; i < c->argc; i++)
		free(c->argv[i]);
	for (size_t i = 0; i < c->envc; i++)
		free(c->envp[i]);
	for (size_t i = 0; i < c->nmounts; i++) {
		free(c->mounts[i].source);
		free(c->mounts[i].target);
	}
	for (size_t i = 0; i < c->nmasks; i++)
		free(c->masks[i]);
	free(c->masks);
	free(c->argv);
	free(c->envp);
	free(c->mounts);
	free(c->rlimits);
	memset(c, 0, sizeof(*c));
}

static void put(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s ", key);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p <= ' ' || *p == '%' || *p >= 0x7f)
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

static void putu(FILE *f, const char *key, unsigned long long v)
{
	fprintf(f, "%s %llu\n", key, v);
}

int shim_conf_write(const shim_conf_t *c, const char *path)
{
	char tmp[SHIM_PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	put(f, "name", c->name);
	put(f, "task_dir", c->task_dir);
	put(f, "alloc_target", c->alloc_target);
	put(f, "workdir", c->workdir);
	put(f, "hostname", c->hostname);
	put(f, "seccomp_file", c->seccomp_file);
	put(f, "cgroup", c->cgroup);
	for (size_t i = 0; i < c->argc; i++)
		put(f, "arg", c->argv[i]);
	for (size_t i = 0; i < c->envc; i++)
		put(f, "env", c->envp[i]);
	for (size_t i = 0; i < c->nmounts; i++) {
		put(f, "mount_source", c->mounts[i].source);
		put(f, "mount_target", c->mounts[i].target);
		if (c->mounts[i].writable)
			put(f, "mount_writable", "1");
	}
	for (size_t i = 0; i < c->nmasks; i++)
		put(f, "mask", c->masks[i]);
	for (size_t i = 0; i < c->nrlimits; i++)
		fprintf(f, "rlimit %d %llu %llu\n", c->rlimits[i].resource,
			(unsigned long long)c->rlimits[i].soft,
			(unsigned long long)c->rlimits[i].hard);
	putu(f, "caps", c->caps);
	putu(f, "uid", c->uid);
	putu(f, "gid", c->gid);
	putu(f, "net", (unsigned)c->net);
	putu(f, "memory_bytes", c->memory_bytes);
	putu(f, "cpu_weight", c->cpu_weight);
	putu(f, "cpu_quota_percent", c->cpu_quota_percent);
	putu(f, "max_pids", c->max_pids);
	putu(f, "restart", (unsigned)c->restart);
	putu(f, "restart_attempts", c->restart_attempts);
	putu(f, "restart_interval_ms", c->restart_interval_ms);
	putu(f, "restart_delay_ms", c->restart_delay_ms);
	putu(f, "stop_signal", (unsigned)c->stop_signal);
	putu(f, "kill_timeout_ms", c->kill_timeout_ms);
	putu(f, "log_max_bytes", c->log_max_bytes);
	putu(f, "log_max_files", c->log_max_files);
	putu(f, "tmp_size_mb", c->tmp_size_mb);
	int rc = 0;
	if (fflush(f) != 0 || fsync(fd) != 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Unescapes in place; false on a bad escape. */
static bool unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		int hi = hexval(r[1]), lo = hi >= 0 ? hexval(r[2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return false;
		*w++ = (char)(hi * 16 + lo);
		r += 2;
	}
	*w = '\0';
	return true;
}

static bool copy(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return false;
	strcpy(dst, v);
	return true;
}

static bool num(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || n > max)
		return false;
	*out = n;
	return true;
}

int shim_conf_read(const char *path, shim_conf_t *c, char *why, size_t len)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *pending_src = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;

	memset(c, 0, sizeof(*c));
	if (!f) {
		rc = -errno;
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return rc;
	}
	while (getline(&line, &cap, f) > 0) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		char *v = strchr(line, ' ');
		if (!v)
			goto bad;
		*v++ = '\0';
		const char *k = line;
		unsigned long long n = 0;
		bool ok = true;

		if (strcmp(k, "rlimit") == 0) {
			int res;
			unsigned long long soft, hard;
			if (sscanf(v, "%d %llu %llu", &res, &soft, &hard) != 3)
				goto bad;
			shim_conf_add_rlimit(c, res, (rlim_t)soft,
					     (rlim_t)hard);
			continue;
		}
		if (!unescape(v))
			goto bad;
		if (!strcmp(k, "name"))
			ok = copy(c->name, sizeof(c->name), v);
		else if (!strcmp(k, "task_dir"))
			ok = copy(c->task_dir, sizeof(c->task_dir), v);
		else if (!strcmp(k, "alloc_target"))
			ok = copy(c->alloc_target, sizeof(c->alloc_target), v);
		else if (!strcmp(k, "workdir"))
			ok = copy(c->workdir, sizeof(c->workdir), v);
		else if (!strcmp(k, "hostname"))
			ok = copy(c->hostname, sizeof(c->hostname), v);
		else if (!strcmp(k, "seccomp_file"))
			ok = copy(c->seccomp_file, sizeof(c->seccomp_file), v);
		else if (!strcmp(k, "cgroup"))
			ok = copy(c->cgroup, sizeof(c->cgroup), v);
		else if (!strcmp(k, "arg"))
			shim_conf_add_arg(c, v);
		else if (!strcmp(k, "env"))
			shim_conf_add_env(c, v);
		else if (!strcmp(k, "mask"))
			shim_conf_add_mask(c, v);
		else if (!strcmp(k, "mount_source")) {
			free(pending_src);
			pending_src = xstrdup(v);
		} else if (!strcmp(k, "mount_target")) {
			if (!pending_src)
				goto bad;
			shim_conf_add_mount(c, pending_src, v);
			free(pending_src);
			pending_src = NULL;
		} else if (!strcmp(k, "mount_writable")) {
			/* Of the mount just read. */
			if (!c->nmounts || strcmp(v, "1") != 0)
				goto bad;
			c->mounts[c->nmounts - 1].writable = true;
		} else if ((ok = num(v, UINT64_MAX, &n))) {
			if (!strcmp(k, "caps"))
				c->caps = n;
			else if (!strcmp(k, "uid"))
				c->uid = (uid_t)n;
			else if (!strcmp(k, "gid"))
				c->gid = (gid_t)n;
			else if (!strcmp(k, "net"))
				c->net = (int)n;
			else if (!strcmp(k, "memory_bytes"))
				c->memory_bytes = n;
			else if (!strcmp(k, "cpu_weight"))
				c->cpu_weight = (uint32_t)n;
			else if (!strcmp(k, "cpu_quota_percent"))
				c->cpu_quota_percent = (uint32_t)n;
			else if (!strcmp(k, "max_pids"))
				c->max_pids = (uint32_t)n;
			else if (!strcmp(k, "restart"))
				c->restart = (int)n;
			else if (!strcmp(k, "restart_attempts"))
				c->restart_attempts = (uint32_t)n;
			else if (!strcmp(k, "restart_interval_ms"))
				c->restart_interval_ms = (uint32_t)n;
			else if (!strcmp(k, "restart_delay_ms"))
				c->restart_delay_ms = (uint32_t)n;
			else if (!strcmp(k, "stop_signal"))
				c->stop_signal = (int)n;
			else if (!strcmp(k, "kill_timeout_ms"))
				c->kill_timeout_ms = (uint32_t)n;
			else if (!strcmp(k, "log_max_bytes"))
				c->log_max_bytes = n;
			else if (!strcmp(k, "log_max_files"))
				c->log_max_files = (uint32_t)n;
			else if (!strcmp(k, "tmp_size_mb"))
				c->tmp_size_mb = (uint32_t)n;
			else
				ok = false;
		}
		if (!ok)
			goto bad;
	}
	if (c->argc == 0 || !c->task_dir[0]) {
		snprintf(why, len, "%s: no command or task directory", path);
		rc = -EINVAL;
	}
	goto out;
bad:
	snprintf(why, len, "%s:%d: malformed line", path, lineno);
	rc = -EINVAL;
out:
	free(line);
	free(pending_src);
	fclose(f);
	if (rc < 0)
		shim_conf_free(c);
	return rc;
}
