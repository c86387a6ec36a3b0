/* Size-rotated log files for a task's output (see logfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flotilla/util.h"
#include "logfile.h"

#define PUMP_BUF (64 * 1024)
#define PUMP_MAX (1024 * 1024)
/* Room kept in a file name for the ".<k>" of rotated files. */
#define SUFFIX_MAX 8

struct agent_logfile {
	int dirfd;
	int fd;
	uint64_t size;
	uint64_t max_bytes;
	unsigned max_files;
	/* The renames of a rotation are done but the fresh file is not open. */
	bool need_open;
	char name[NAME_MAX + 1];
	char buf[PUMP_BUF];
};

/*
 * O_NOFOLLOW: a symlink planted in the log directory must not redirect our
 * writes. O_NONBLOCK: a FIFO planted there must not hang the open (without
 * a reader it fails with ENXIO, as does a socket; with one, it is refused
 * just after); it has no effect on a regular file. Returns the fd or
 * -errno, -EINVAL for anything but a regular file.
 */
static int open_current(agent_logfile_t *l, uint64_t *size)
{
	struct stat st;
	int fd;

	fd = openat(l->dirfd, l->name,
		    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
			    O_NOCTTY | O_NONBLOCK,
		    0640);
	if (fd < 0)
		return errno == ENXIO ? -EINVAL : -errno;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int agent_logfile_open(const char *dir, const char *name, uint64_t max_bytes,
		       unsigned max_files, agent_logfile_t **out,
		       flt_error_t *err)
{
	agent_logfile_t *l;
	size_t len;
	int rc;

	if (!dir || !*dir || !name || !out)
		return flt_err(err, -EINVAL,
			       "log file: missing directory or name");
	len = strlen(name);
	if (len == 0 || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return flt_err(err, -EINVAL,
			       "log file %s: must be a plain file name", name);
	if (len > NAME_MAX - SUFFIX_MAX)
		return flt_err(err, -ENAMETOOLONG,
			       "log file %.32s...: name too long", name);
	if (max_files > AGENT_LOGFILE_MAX_FILES)
		return flt_err(err, -EINVAL,
			       "log file %s: max_files %u above %u", name,
			       max_files, AGENT_LOGFILE_MAX_FILES);

	l = malloc(sizeof(*l));
	if (!l)
		return flt_err(err, -ENOMEM, "log file %s: out of memory",
			       name);
	memcpy(l->name, name, len + 1);
	l->max_bytes = max_bytes ? max_bytes : AGENT_LOGFILE_DEFAULT_BYTES;
	l->max_files = max_files ? max_files : AGENT_LOGFILE_DEFAULT_FILES;
	l->need_open = false;
	l->fd = -1;
	l->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		rc = -errno;
		free(l);
		return flt_err(err, rc, "log directory %s: %s", dir,
			       strerror(-rc));
	}
	l->fd = open_current(l, &l->size);
	if (l->fd < 0) {
		rc = l->fd;
		close(l->dirfd);
		free(l);
		return flt_err(err, rc, "log file %s/%s: %s", dir, name,
			       rc == -EINVAL ? "not a regular file"
					     : strerror(-rc));
	}
	*out = l;
	return 0;
}

void agent_logfile_close(agent_logfile_t *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	close(l->dirfd);
	free(l);
}

/* A missing file is a gap in the chain, not an error: shift the others. */
static int rename_if_present(agent_logfile_t *l, const char *from,
			     const char *to)
{
	if (renameat(l->dirfd, from, l->dirfd, to) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int finish_rotation(agent_logfile_t *l)
{
	uint64_t size;
	int fd;

	fd = open_current(l, &size);
	if (fd < 0)
		return fd;
	close(l->fd);
	l->fd = fd;
	l->size = size;
	l->need_open = false;
	return 0;
}

/*
 * Oldest first, so that every rename lands on a name already moved away;
 * renameat replaces name.<max_files>, which is how the oldest drops off.
 * If the fresh file cannot be opened, the old fd (now name.1) is kept but
 * not written to, and only the open is retried: redoing the renames would
 * push a rotated file out of the window on every failed attempt.
 */
static int rotate(agent_logfile_t *l)
{
	char from[NAME_MAX + 1], to[NAME_MAX + 1];
	unsigned k;
	int rc;

	for (k = l->max_files; k > 1; k--) {
		snprintf(from, sizeof(from), "%s.%u", l->name, k - 1);
		snprintf(to, sizeof(to), "%s.%u", l->name, k);
		if ((rc = rename_if_present(l, from, to)) < 0)
			return rc;
	}
	snprintf(to, sizeof(to), "%s.1", l->name);
	if ((rc = rename_if_present(l, l->name, to)) < 0)
		return rc;
	l->need_open = true;
	return finish_rotation(l);
}

/* Counts what reached the file, also when a write fails part way. */
static int write_counted(agent_logfile_t *l, const char *p, size_t len)
{
	size_t done = 0;
	int rc = flt_write_all(l->fd, p, len, &done);
	l->size += done;
	return rc;
}

int agent_logfile_write(agent_logfile_t *l, const void *buf, size_t len)
{
	const char *p = buf;
	int rc;

	if (!l || (!buf && len))
		return -EINVAL;
	while (len > 0) {
		uint64_t room;
		size_t n;

		if (l->need_open && (rc = finish_rotation(l)) < 0)
			return rc;
		room = l->size < l->max_bytes ? l->max_bytes - l->size : 0;
		if (len <= room) {
			n = len;
		} else if (l->size > 0) {
			if ((rc = rotate(l)) < 0)
				return rc;
			continue;
		} else {
			/* Larger than a whole file: fill this one. */
			n = (size_t)l->max_bytes;
		}
		if ((rc = write_counted(l, p, n)) < 0)
			return rc;
		p += n;
		len -= n;
	}
	return 0;
}

ssize_t agent_logfile_pump(agent_logfile_t *l, int fd)
{
	ssize_t total = 0;
	int rc;

	if (!l || fd < 0)
		return -EINVAL;
	while (total < PUMP_MAX) {
		ssize_t n = read(fd, l->buf, sizeof(l->buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return total > 0 ? total : -EAGAIN;
			return -errno;
		}
		if (n == 0)
			return total;
		if ((rc = agent_logfile_write(l, l->buf, (size_t)n)) < 0)
			return rc;
		total += n;
	}
	return total;
}

int agent_logfile_read(const char *dir, const char *name, int64_t offset,
		       size_t tail, size_t max, agent_log_chunk_t *out)
{
	struct stat st;
	char path[PATH_MAX];
	int64_t start;
	int fd, rc = 0;

	memset(out, 0, sizeof(*out));
	if (offset < -1 || strchr(name, '/'))
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	/* The same precautions as the writer's: no link, no FIFO. */
	fd = open(path,
		  O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno == ENXIO ? -EINVAL : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		goto out;
	}
	int64_t size = (int64_t)st.st_size;
	if (offset == -1) {
		size_t want = tail < max ? tail : max;
		start = size > (int64_t)want ? size - (int64_t)want : 0;
	} else if (offset > size) {
		out->rotated = true;
		start = 0;
	} else {
		start = offset;
	}
	size_t n = (size_t)(size - start) < max ? (size_t)(size - start) : max;
	out->data = malloc(n ? n : 1);
	if (!out->data) {
		rc = -ENOMEM;
		goto out;
	}
	while (out->len < n) {
		ssize_t got = pread(fd, out->data + out->len, n - out->len,
				    (off_t)(start + (int64_t)out->len));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			free(out->data);
			out->data = NULL;
			out->len = 0;
			goto out;
		}
		if (got == 0)
			break; /* truncated meanwhile */
		out->len += (size_t)got;
	}
	out->next_offset = start + (int64_t)out->len;
out:
	close(fd);
	return rc;
}
