/* Helpers shared by the unit tests: throw-away directories and files.
 * Include after <cmocka.h>. */
#ifndef FLOTILLA_TESTUTIL_H
#define FLOTILLA_TESTUTIL_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#endif
