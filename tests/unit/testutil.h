/* Helpers shared by the unit tests: throw-away directories and files,
 * assertions. Include after <cmocka.h>. */
#ifndef FLOTILLA_TESTUTIL_H
#define FLOTILLA_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flotilla/error.h"
#include "flotilla/util.h"

/* cmocka setup/teardown: *state is a fresh directory under /tmp. */
static inline int tmpdir_setup(void **state)
{
	char *dir = strdup("/tmp/flt-unit-XXXXXX");
	if (!dir || !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static inline int tmpdir_teardown(void **state)
{
	char *dir = *state;
	int rc = flt_rm_rf(dir, 0);
	free(dir);
	return rc;
}

static inline void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* True when dir/name exists (a symlink counts, whatever it points to). */
static inline bool exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

/* The entries of dir, but "." and "..". */
static inline int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/*
 * Mounts a tmpfs of the given size ("256k") on dir, created, inside a
 * private mount namespace of this process: the test's alone, gone with it.
 * Skips the test where that needs what it lacks (root, namespaces).
 */
static inline void private_tmpfs(const char *dir, const char *size)
{
	char opts[64];
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: mounting a small tmpfs needs root\n");
		skip();
	}
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "skipped: no mount namespace: %s\n",
			strerror(errno));
		skip();
	}
	snprintf(opts, sizeof(opts), "size=%s", size);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, opts), 0);
}

/* Fails the test unless err's message contains want. */
static inline void assert_msg(const flt_error_t *err, const char *want)
{
	if (!strstr(err->msg, want))
		fail_msg("message \"%s\" lacks \"%s\"", err->msg, want);
}

/* A store iteration callback (flt_store_iter_fn) that counts into the
 * int arg points at. */
static inline int count_records(const void *key, size_t klen, const void *val,
				size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(*(int *)arg)++;
	return 0;
}

#endif
