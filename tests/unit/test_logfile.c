/* Unit tests for agent/logfile.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "logfile.h"

/* Size of dir/name, or -1 when it does not exist. */
static long long fsize(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) < 0)
		return -1;
	return (long long)st.st_size;
}

/* Appends the contents of dir/name to *buf (of *len bytes). */
static void slurp(const char *dir, const char *name, char **buf, size_t *len)
{
	char path[512];
	long long n = fsize(dir, name);
	int fd;

	assert_true(n >= 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*buf = realloc(*buf, *len + (size_t)n + 1);
	assert_non_null(*buf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, *buf + *len, (size_t)n), n);
	close(fd);
	*len += (size_t)n;
}

/* name.N .. name.1, name: everything kept, oldest first. */
static char *concat_all(const char *dir, const char *name, unsigned nfiles,
			size_t *len)
{
	char *buf = NULL, rotated[256];
	unsigned k;

	*len = 0;
	for (k = nfiles; k >= 1; k--) {
		snprintf(rotated, sizeof(rotated), "%s.%u", name, k);
		if (fsize(dir, rotated) >= 0)
			slurp(dir, rotated, &buf, len);
	}
	slurp(dir, name, &buf, len);
	return buf;
}

static void fill(char *buf, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char)('a' + (seed >> 16) % 26);
	}
}

static agent_logfile_t *open_ok(const char *dir, uint64_t max_bytes,
				unsigned max_files)
{
	agent_logfile_t *l = NULL;
	flt_error_t err = { 0 };

	assert_int_equal(agent_logfile_open(dir, "out.log", max_bytes,
					    max_files, &l, &err),
			 0);
	assert_non_null(l);
	return l;
}

/* ---- rotation ---------------------------------------------------------- */

static void test_exact_boundary(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 100, 3);
	char buf[100];

	fill(buf, sizeof(buf), 1);
	assert_int_equal(agent_logfile_write(l, buf, 90), 0);
	assert_int_equal(agent_logfile_write(l, buf + 90, 10), 0);
	/* Exactly max_bytes: still one file. */
	assert_int_equal(fsize(dir, "out.log"), 100);
	assert_int_equal(fsize(dir, "out.log.1"), -1);
	/* One more byte passes it: rotate first. */
	assert_int_equal(agent_logfile_write(l, "x", 1), 0);
	assert_int_equal(fsize(dir, "out.log.1"), 100);
	assert_int_equal(fsize(dir, "out.log"), 1);
	assert_int_equal(agent_logfile_write(l, "", 0), 0);
	assert_int_equal(fsize(dir, "out.log"), 1);
	agent_logfile_close(l);
}

static void test_write_not_split_when_it_fits(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 100, 3);
	char buf[100];

	fill(buf, sizeof(buf), 2);
	assert_int_equal(agent_logfile_write(l, buf, 60), 0);
	/* 60 + 50 > 100: the 50 go whole into a fresh file. */
	assert_int_equal(agent_logfile_write(l, buf, 50), 0);
	assert_int_equal(fsize(dir, "out.log.1"), 60);
	assert_int_equal(fsize(dir, "out.log"), 50);
	agent_logfile_close(l);
}

static void test_max_files(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 10, 2);
	char buf[10];
	int i;

	for (i = 0; i < 20; i++) {
		fill(buf, sizeof(buf), (unsigned)i);
		assert_int_equal(agent_logfile_write(l, buf, sizeof(buf)), 0);
		assert_true(count_entries(dir) <= 3);
	}
	assert_int_equal(fsize(dir, "out.log"), 10);
	assert_int_equal(fsize(dir, "out.log.1"), 10);
	assert_int_equal(fsize(dir, "out.log.2"), 10);
	assert_int_equal(fsize(dir, "out.log.3"), -1);
	assert_int_equal(count_entries(dir), 3);
	agent_logfile_close(l);
}

static void test_max_files_one(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 4, 1);
	char *all;
	size_t len;

	assert_int_equal(agent_logfile_write(l, "aaaa", 4), 0);
	assert_int_equal(agent_logfile_write(l, "bbbb", 4), 0);
	assert_int_equal(agent_logfile_write(l, "cccc", 4), 0);
	assert_int_equal(count_entries(dir), 2);
	all = concat_all(dir, "out.log", 1, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(all, "bbbbcccc", 8);
	free(all);
	agent_logfile_close(l);
}

static void test_order_preserved(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 64, 200);
	static char written[4000];
	size_t off = 0, len;
	unsigned seed = 7;
	char *all;

	while (off < sizeof(written) - 64) {
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 40;
		fill(written + off, n, seed);
		assert_int_equal(agent_logfile_write(l, written + off, n), 0);
		assert_true(fsize(dir, "out.log") <= 64);
		off += n;
	}
	agent_logfile_close(l);
	all = concat_all(dir, "out.log", 200, &len);
	assert_int_equal(len, off);
	assert_memory_equal(all, written, off);
	free(all);
}

/* With files dropping off, what is kept is the end of the stream. */
static void test_order_kept_suffix(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 50, 3);
	static char written[2000];
	size_t off = 0, len;
	char *all;

	while (off + 30 <= sizeof(written)) {
		fill(written + off, 30, (unsigned)off);
		assert_int_equal(agent_logfile_write(l, written + off, 30), 0);
		off += 30;
	}
	agent_logfile_close(l);
	assert_int_equal(count_entries(dir), 4);
	all = concat_all(dir, "out.log", 3, &len);
	assert_int_equal(len, 4 * 30);
	assert_memory_equal(all, written + off - len, len);
	free(all);
}

static void test_large_write_split(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 100, 10);
	char buf[360], *all;
	size_t len;

	fill(buf, sizeof(buf), 3);
	assert_int_equal(agent_logfile_write(l, buf, 10), 0);
	assert_int_equal(agent_logfile_write(l, buf + 10, 350), 0);
	assert_int_equal(fsize(dir, "out.log.4"), 10);
	assert_int_equal(fsize(dir, "out.log.3"), 100);
	assert_int_equal(fsize(dir, "out.log.2"), 100);
	assert_int_equal(fsize(dir, "out.log.1"), 100);
	assert_int_equal(fsize(dir, "out.log"), 50);
	agent_logfile_close(l);
	all = concat_all(dir, "out.log", 10, &len);
	assert_int_equal(len, sizeof(buf));
	assert_memory_equal(all, buf, sizeof(buf));
	free(all);
}

static void test_large_write_exact_multiple(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 100, 10);
	char buf[300];

	fill(buf, sizeof(buf), 4);
	assert_int_equal(agent_logfile_write(l, buf, sizeof(buf)), 0);
	assert_int_equal(fsize(dir, "out.log.2"), 100);
	assert_int_equal(fsize(dir, "out.log.1"), 100);
	assert_int_equal(fsize(dir, "out.log"), 100);
	assert_int_equal(fsize(dir, "out.log.3"), -1);
	agent_logfile_close(l);
}

static void test_reopen_continues(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 100, 3);
	char buf[100];

	fill(buf, sizeof(buf), 5);
	assert_int_equal(agent_logfile_write(l, buf, 60), 0);
	agent_logfile_close(l);

	l = open_ok(dir, 100, 3);
	assert_int_equal(agent_logfile_write(l, buf + 60, 30), 0);
	assert_int_equal(fsize(dir, "out.log"), 90);
	assert_int_equal(fsize(dir, "out.log.1"), -1);
	assert_int_equal(agent_logfile_write(l, buf, 20), 0);
	assert_int_equal(fsize(dir, "out.log.1"), 90);
	assert_int_equal(fsize(dir, "out.log"), 20);
	agent_logfile_close(l);

	/* A file already past a smaller limit rotates on the first write. */
	l = open_ok(dir, 10, 3);
	assert_int_equal(agent_logfile_write(l, "z", 1), 0);
	assert_int_equal(fsize(dir, "out.log.2"), 90);
	assert_int_equal(fsize(dir, "out.log.1"), 20);
	assert_int_equal(fsize(dir, "out.log"), 1);
	agent_logfile_close(l);
}

static void test_default_size(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 0, 0);
	size_t chunk = 1024 * 1024;
	char *buf = calloc(1, chunk);
	int i;

	assert_non_null(buf);
	for (i = 0; i < 10; i++)
		assert_int_equal(agent_logfile_write(l, buf, chunk), 0);
	assert_int_equal(fsize(dir, "out.log"), 10 * 1024 * 1024);
	assert_int_equal(fsize(dir, "out.log.1"), -1);
	assert_int_equal(agent_logfile_write(l, "x", 1), 0);
	assert_int_equal(fsize(dir, "out.log.1"), 10 * 1024 * 1024);
	assert_int_equal(fsize(dir, "out.log"), 1);
	agent_logfile_close(l);
	free(buf);
}

/* A rotation that fails is reported and tried again on the next write. */
static void test_rotation_failure_retried(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 10, 1);
	char path[512], *all;
	size_t len;

	assert_int_equal(agent_logfile_write(l, "0123456789", 10), 0);
	/* A non-empty directory where out.log.1 should go blocks the rename. */
	snprintf(path, sizeof(path), "%s/out.log.1", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/out.log.1/x", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_true(agent_logfile_write(l, "abc", 3) < 0);
	assert_int_equal(fsize(dir, "out.log"), 10);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/out.log.1", dir);
	assert_int_equal(rmdir(path), 0);

	assert_int_equal(agent_logfile_write(l, "abc", 3), 0);
	agent_logfile_close(l);
	all = concat_all(dir, "out.log", 1, &len);
	assert_int_equal(len, 13);
	assert_memory_equal(all, "0123456789abc", 13);
	free(all);
}

/* ---- pump ------------------------------------------------------------- */

static void test_pump(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 1000, 3);
	char *all;
	size_t len;
	int p[2];

	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(agent_logfile_pump(l, p[0]), -EAGAIN);
	assert_int_equal(write(p[1], "hello ", 6), 6);
	assert_int_equal(write(p[1], "world\n", 6), 6);
	assert_int_equal(agent_logfile_pump(l, p[0]), 12);
	assert_int_equal(agent_logfile_pump(l, p[0]), -EAGAIN);
	assert_int_equal(write(p[1], "bye\n", 4), 4);
	close(p[1]);
	/* Bytes and then EOF: the bytes now, the EOF on the next call. */
	assert_int_equal(agent_logfile_pump(l, p[0]), 4);
	assert_int_equal(agent_logfile_pump(l, p[0]), 0);
	assert_int_equal(agent_logfile_pump(l, p[0]), 0);
	close(p[0]);
	agent_logfile_close(l);

	all = concat_all(dir, "out.log", 3, &len);
	assert_int_equal(len, 16);
	assert_memory_equal(all, "hello world\nbye\n", 16);
	free(all);
}

static void test_pump_rotates(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = open_ok(dir, 4096, 100);
	static char data[60000];
	char *all;
	size_t len;
	int p[2];

	fill(data, sizeof(data), 9);
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(write(p[1], data, sizeof(data)), sizeof(data));
	assert_int_equal(agent_logfile_pump(l, p[0]), sizeof(data));
	close(p[1]);
	assert_int_equal(agent_logfile_pump(l, p[0]), 0);
	close(p[0]);
	agent_logfile_close(l);
	assert_true(fsize(dir, "out.log.14") > 0);
	all = concat_all(dir, "out.log", 100, &len);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(all, data, sizeof(data));
	free(all);
}

/* ---- open -------------------------------------------------------------- */

static void test_open_errors(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l = NULL;
	flt_error_t err = { 0 };
	char path[512], target[512];

	assert_int_equal(agent_logfile_open(dir, "a/b", 0, 0, &l, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "log file a/b: must be a plain file name");
	assert_int_equal(err.code, -EINVAL);
	assert_int_equal(agent_logfile_open(dir, "..", 0, 0, &l, &err),
			 -EINVAL);
	assert_int_equal(agent_logfile_open(dir, "", 0, 0, &l, &err), -EINVAL);
	assert_int_equal(agent_logfile_open(dir, "x", 0, 1001, &l, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "log file x: max_files 1001 above 1000");
	assert_int_equal(
		agent_logfile_open("/nonexistent/flt", "x", 0, 0, &l, &err),
		-ENOENT);
	assert_string_equal(err.msg, "log directory /nonexistent/flt: "
				     "No such file or directory");
	assert_null(l);

	/* A symlink planted at the log's name is not followed. */
	snprintf(path, sizeof(path), "%s/link.log", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(agent_logfile_open(dir, "link.log", 0, 0, &l, &err),
			 -ELOOP);
	assert_int_equal(fsize(dir, "target"), -1);

	/* Nor does a FIFO hang the open. */
	snprintf(path, sizeof(path), "%s/fifo.log", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(agent_logfile_open(dir, "fifo.log", 0, 0, &l, &err),
			 -EINVAL);
	assert_null(l);
}

static void test_open_mode(void **state)
{
	const char *dir = *state;
	agent_logfile_t *l;
	char path[512];
	struct stat st;
	mode_t old = umask(0);
	int fd;

	l = open_ok(dir, 0, 0);
	umask(old);
	snprintf(path, sizeof(path), "%s/out.log", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	agent_logfile_close(l);

	/* O_CLOEXEC: no descriptor leaks into the task. */
	l = open_ok(dir, 0, 0);
	for (fd = 3; fd < 64; fd++) {
		char link[64], dest[512];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, dest, sizeof(dest) - 1);
		if (n < 0)
			continue;
		dest[n] = '\0';
		if (!strcmp(dest, path))
			assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	}
	agent_logfile_close(l);
}

/* ---- reading back ----------------------------------------------------- */

static void test_read(void **state)
{
	const char *dir = *state;
	agent_log_chunk_t c;
	char path[512];

	snprintf(path, sizeof(path), "%s/out.log", dir);
	write_file(path, "0123456789", 10);

	/* From an offset, bounded by max. */
	assert_int_equal(agent_logfile_read(dir, "out.log", 2, 0, 5, &c), 0);
	assert_int_equal(c.len, 5);
	assert_memory_equal(c.data, "23456", 5);
	assert_int_equal(c.next_offset, 7);
	assert_false(c.rotated);
	free(c.data);
	assert_int_equal(agent_logfile_read(dir, "out.log", 7, 0, 100, &c), 0);
	assert_int_equal(c.len, 3);
	assert_int_equal(c.next_offset, 10);
	free(c.data);
	/* At the end: nothing, same offset. */
	assert_int_equal(agent_logfile_read(dir, "out.log", 10, 0, 100, &c), 0);
	assert_int_equal(c.len, 0);
	assert_int_equal(c.next_offset, 10);
	assert_false(c.rotated);
	free(c.data);

	/* The tail, never more than max. */
	assert_int_equal(agent_logfile_read(dir, "out.log", -1, 4, 100, &c), 0);
	assert_memory_equal(c.data, "6789", 4);
	assert_int_equal(c.next_offset, 10);
	free(c.data);
	assert_int_equal(agent_logfile_read(dir, "out.log", -1, 400, 3, &c), 0);
	assert_memory_equal(c.data, "789", 3);
	free(c.data);
	assert_int_equal(agent_logfile_read(dir, "out.log", -1, 400, 100, &c),
			 0);
	assert_int_equal(c.len, 10);
	free(c.data);

	/* Shorter than the offset: rotated since, read from the start. */
	write_file(path, "abc", 3);
	assert_int_equal(agent_logfile_read(dir, "out.log", 10, 0, 100, &c), 0);
	assert_true(c.rotated);
	assert_memory_equal(c.data, "abc", 3);
	assert_int_equal(c.next_offset, 3);
	free(c.data);

	assert_int_equal(agent_logfile_read(dir, "out.log", -2, 0, 100, &c),
			 -EINVAL);
	assert_int_equal(agent_logfile_read(dir, "../out.log", 0, 0, 100, &c),
			 -EINVAL);
	assert_int_equal(agent_logfile_read(dir, "none.log", 0, 0, 100, &c),
			 -ENOENT);

	/* No link is followed, no FIFO hangs the read. */
	char link[512];
	snprintf(link, sizeof(link), "%s/link.log", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(agent_logfile_read(dir, "link.log", 0, 0, 100, &c),
			 -ELOOP);
	snprintf(path, sizeof(path), "%s/fifo.log", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(agent_logfile_read(dir, "fifo.log", 0, 0, 100, &c),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tmpdir_setup, tmpdir_teardown)
		T(test_exact_boundary),
		T(test_write_not_split_when_it_fits),
		T(test_max_files),
		T(test_max_files_one),
		T(test_order_preserved),
		T(test_order_kept_suffix),
		T(test_large_write_split),
		T(test_large_write_exact_multiple),
		T(test_reopen_continues),
		T(test_default_size),
		T(test_rotation_failure_retried),
		T(test_pump),
		T(test_pump_rotates),
		T(test_open_errors),
		T(test_open_mode),
		T(test_read),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
