/*
 * Size-rotated log files for a task's stdout and stderr, written by the
 * per-task supervisor. Needs only libc: the supervisor links nothing else.
 *
 * Files live in one directory: "stdout.log" is being written, and
 * "stdout.log.1" (newest) to "stdout.log.<max_files>" (oldest) are the
 * rotated ones, so at most max_files + 1 files exist per stream.
 *
 * Not thread-safe: one agent_logfile_t belongs to one thread.
 */
#ifndef FLOTILLA_AGENT_LOGFILE_H
#define FLOTILLA_AGENT_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flotilla/error.h"

#define AGENT_LOGFILE_DEFAULT_BYTES (10u * 1024 * 1024)
#define AGENT_LOGFILE_DEFAULT_FILES 3u
#define AGENT_LOGFILE_MAX_FILES 1000u

typedef struct agent_logfile agent_logfile_t;

/*
 * Opens dir/name for appending (O_CLOEXEC, mode 0640 when created) and
 * returns the handle in *out. name is a plain file name ("stdout.log"),
 * without '/'. A symlink at dir/name is refused (-ELOOP): the supervisor
 * may run with more privileges than whoever can write into dir.
 *
 * max_bytes is the largest size of one file (0: 10 MiB); max_files is how
 * many rotated files are kept (0: 3, at most AGENT_LOGFILE_MAX_FILES). The
 * size of an existing file counts, so a restarted supervisor continues the
 * same file and rotates it on time.
 *
 * Returns 0, or -EINVAL for bad arguments and -errno from the file system,
 * with err (may be NULL) telling which.
 */
int agent_logfile_open(const char *dir, const char *name, uint64_t max_bytes,
		       unsigned max_files, agent_logfile_t **out,
		       flt_error_t *err);

/*
 * Appends all len bytes of buf. When they would not fit under max_bytes,
 * the file is rotated first (name.<max_files> drops off, name.k becomes
 * name.k+1, name becomes name.1, a fresh name is opened), so a write that
 * fits in one file is never split. A write larger than max_bytes fills
 * whole files of max_bytes and the remainder goes to the last one.
 *
 * Blocks only on the disk. Returns 0 or -errno (ENOSPC, EIO, or a failed
 * rename/open during rotation). After an error, the bytes already written
 * stay written, and a failed rotation is tried again on the next write;
 * until it succeeds, nothing is appended.
 */
int agent_logfile_write(agent_logfile_t *l, const void *buf, size_t len);

/*
 * Copies what can be read from fd, which must be non-blocking (a pipe from
 * the task), into the log. Stops at EAGAIN, at EOF, or after 1 MiB so that
 * one chatty stream cannot starve the supervisor's other work (the fd is
 * then still readable; poll it again).
 *
 * Returns the number of bytes copied (> 0); 0 at EOF with nothing copied
 * (the task closed its end: stop polling fd); -EAGAIN when nothing was
 * readable; or -errno from read or agent_logfile_write (bytes read but not
 * written are lost). An EOF after some bytes is reported by the next call.
 */
ssize_t agent_logfile_pump(agent_logfile_t *l, int fd);

/* Closes the file; NULL is allowed. */
void agent_logfile_close(agent_logfile_t *l);

/* A piece of a log read back (agent_logfile_read). */
typedef struct agent_log_chunk {
	char *data; /* len bytes, malloc'd, owned by the caller */
	size_t len;
	int64_t next_offset; /* where the following read starts */
	bool rotated; /* offset lay past the end: read from 0 */
} agent_log_chunk_t;

/*
 * Reads up to max bytes of the current file dir/name (not the rotated
 * ones). offset >= 0 reads from there; an offset past the end means the
 * file was rotated since, so reading starts at 0 and out->rotated is set.
 * offset -1 reads the last min(tail, max) bytes. Any thread may call it,
 * while the supervisor writes.
 *
 * Returns 0 (out filled; out->len may be 0 at the end of the file), or
 * -ENOENT when the file does not exist, -ELOOP for a symlink, -EINVAL for
 * anything but a regular file or an offset below -1, -ENOMEM, -errno.
 */
int agent_logfile_read(const char *dir, const char *name, int64_t offset,
		       size_t tail, size_t max, agent_log_chunk_t *out);

#endif
