/* Unit tests for common/util.c. */
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

#include "flotilla/util.h"

/* ---- flt_is_name ------------------------------------------------------ */

static void test_is_name(void **state)
{
	(void)state;
	assert_true(flt_is_name("web", 63));
	assert_true(flt_is_name("web-01.eu_west", 63));
	assert_true(flt_is_name("A.Z-0_9", 63));
	assert_true(flt_is_name("abc", 3));

	assert_false(flt_is_name(NULL, 63));
	assert_false(flt_is_name("", 63));
	assert_false(flt_is_name("abcd", 3));
	assert_false(flt_is_name("a b", 63));
	assert_false(flt_is_name("a/b", 63));
	assert_false(flt_is_name("a=b", 63));
	assert_false(flt_is_name("a\nb", 63));
	assert_false(flt_is_name("caf\xc3\xa9", 63));
	assert_false(flt_is_name("tab\t", 63));
}

/* ---- flt_is_text ------------------------------------------------------ */

static bool text(const char *s) { return flt_is_text(s, strlen(s)); }

static void test_is_text_ascii(void **state)
{
	(void)state;
	assert_true(flt_is_text("", 0));
	assert_true(flt_is_text(NULL, 0));
	assert_true(text("hello, world ~!@#$%^&*()"));
	assert_true(text("tab\tand\nnewline"));

	assert_false(text("carriage\rreturn"));
	assert_false(text("bell\a"));
	assert_false(text("\x1b[31mred"));
	assert_false(text("del\x7f"));
	assert_false(text("\x01"));
	/* C1 controls, U+0080 to U+009F, are controls too. */
	assert_false(text("\xc2\x85"));
	assert_false(text("\xc2\x9f"));
	/* An embedded NUL counts when it lies within len. */
	assert_false(flt_is_text("a\0b", 3));
	assert_true(flt_is_text("a\0b", 1));
}

static void test_is_text_utf8_valid(void **state)
{
	(void)state;
	assert_true(text("caf\xc3\xa9")); /* U+00E9, 2 bytes */
	assert_true(text("\xc2\xa0")); /* U+00A0 */
	assert_true(text("\xdf\xbf")); /* U+07FF */
	assert_true(text("\xe0\xa0\x80")); /* U+0800 */
	assert_true(text("\xe2\x82\xac 5")); /* U+20AC euro sign */
	assert_true(text("\xed\x9f\xbf")); /* U+D7FF, before surrogates */
	assert_true(text("\xee\x80\x80")); /* U+E000, after them */
	assert_true(text("\xef\xbf\xbd")); /* U+FFFD */
	assert_true(text("\xf0\x90\x80\x80")); /* U+10000 */
	assert_true(text("\xf0\x9f\x9a\xa2 ship")); /* U+1F6A2 */
	assert_true(text("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last */
	assert_true(text("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"));
}

static void test_is_text_utf8_invalid(void **state)
{
	(void)state;
	/* Overlong forms. */
	assert_false(text("\xc0\x80"));
	assert_false(text("\xc0\xaf"));
	assert_false(text("\xc1\xbf"));
	assert_false(text("\xe0\x80\x80"));
	assert_false(text("\xe0\x9f\xbf"));
	assert_false(text("\xf0\x80\x80\x80"));
	assert_false(text("\xf0\x8f\xbf\xbf"));
	/* UTF-16 surrogates U+D800..U+DFFF. */
	assert_false(text("\xed\xa0\x80"));
	assert_false(text("\xed\xb2\x80"));
	assert_false(text("\xed\xbf\xbf"));
	/* Beyond U+10FFFF and bytes that never start a sequence. */
	assert_false(text("\xf4\x90\x80\x80"));
	assert_false(text("\xf5\x80\x80\x80"));
	assert_false(text("\xf8\x88\x80\x80\x80"));
	assert_false(text("\xfe"));
	assert_false(text("\xff"));
	/* Stray continuation bytes. */
	assert_false(text("\x80"));
	assert_false(text("a\xbf"));
	/* Truncated sequences, at the end and in the middle. */
	assert_false(text("\xc3"));
	assert_false(text("\xe2\x82"));
	assert_false(text("\xf0\x9f\x9a"));
	assert_false(text("\xe2\x82z"));
	assert_false(text("\xc3 x"));
	/* A valid sequence cut by len. */
	assert_false(flt_is_text("\xe2\x82\xac", 2));
}

/* ---- flt_uuid_v4 ------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_uuid_v4(void **state)
{
	enum { N = 1000 };
	static char ids[N][37];
	(void)state;

	for (int i = 0; i < N; i++) {
		char *u = ids[i];
		memset(u, 'X', 37);
		flt_uuid_v4(u);
		assert_int_equal(strlen(u), 36);
		for (int k = 0; k < 36; k++) {
			if (k == 8 || k == 13 || k == 18 || k == 23) {
				assert_int_equal(u[k], '-');
				continue;
			}
			assert_non_null(strchr("0123456789abcdef", u[k]));
			assert_true(u[k] != '\0');
		}
		assert_int_equal(u[14], '4'); /* version */
		assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
	}
	qsort(ids, N, sizeof(ids[0]), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
}

/* ---- flt_format_time / flt_format_age --------------------------------- */

static void test_format_time(void **state)
{
	char buf[64];
	(void)state;

	flt_format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	flt_format_time(1700000000123, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
	flt_format_time(951782400999, buf, sizeof(buf)); /* leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00.999Z");
	flt_format_time(1000, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:01.000Z");

	/* A short buffer is truncated, never overrun. */
	memset(buf, 'X', sizeof(buf));
	flt_format_time(1700000000123, buf, 11);
	assert_string_equal(buf, "2023-11-14");
	assert_int_equal(buf[11], 'X');
}

static void test_format_age(void **state)
{
	char buf[64];
	const int64_t now = 1700000000000;
	(void)state;

	flt_format_age(0, now, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	flt_format_age(now - 1500, now, buf, sizeof(buf));
	assert_string_equal(buf, "1.5s ago");
	flt_format_age(now - 125000, now, buf, sizeof(buf));
	assert_string_equal(buf, "2m05s ago");
	flt_format_age(now - 3725000, now, buf, sizeof(buf));
	assert_string_equal(buf, "1h02m ago");
	/* A clock step backwards never shows a negative age. */
	flt_format_age(now + 5000, now, buf, sizeof(buf));
	assert_string_equal(buf, "0.0s ago");
}

/* ---- flt_read_file ---------------------------------------------------- */

static void test_read_file(void **state)
{
	const char *dir = *state;
	char path[256];
	char *out = NULL;

	snprintf(path, sizeof(path), "%s/plain", dir);
	write_file(path, "hello\n", 6);
	assert_int_equal(flt_read_file(path, 64, &out), 0);
	assert_string_equal(out, "hello");
	free(out);

	/* Only trailing newlines go; inner ones stay. */
	write_file(path, "a\nb\r\n\n", 6);
	assert_int_equal(flt_read_file(path, 64, &out), 0);
	assert_string_equal(out, "a\nb");
	free(out);

	write_file(path, "no newline", 10);
	assert_int_equal(flt_read_file(path, 64, &out), 0);
	assert_string_equal(out, "no newline");
	free(out);

	write_file(path, "", 0);
	assert_int_equal(flt_read_file(path, 64, &out), 0);
	assert_string_equal(out, "");
	free(out);
}

static void test_read_file_limits(void **state)
{
	const char *dir = *state;
	char path[256];
	char *out = NULL;

	snprintf(path, sizeof(path), "%s/ten", dir);
	write_file(path, "0123456789", 10);

	/* Exactly max bytes is fine; one more is too big. */
	assert_int_equal(flt_read_file(path, 10, &out), 0);
	assert_string_equal(out, "0123456789");
	free(out);
	out = NULL;
	assert_int_equal(flt_read_file(path, 9, &out), -EFBIG);
	assert_null(out);
	assert_int_equal(flt_read_file(path, 1, &out), -EFBIG);
	assert_null(out);

	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(flt_read_file(path, 10, &out), -ENOENT);
	assert_null(out);

	assert_int_equal(flt_read_file(dir, 10, &out), -EISDIR);
	assert_null(out);
}

/* ---- flt_mkdir_p ------------------------------------------------------ */

static void test_mkdir_p(void **state)
{
	const char *dir = *state;
	char path[256], mid[256];
	struct stat st;
	mode_t old = umask(022);

	snprintf(mid, sizeof(mid), "%s/a/b", dir);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(flt_mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(mid, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);

	/* Existing directories are fine, and their mode is left alone. */
	assert_int_equal(flt_mkdir_p(path, 0750), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(flt_mkdir_p(dir, 0700), 0);

	/* A regular file in the way of a parent. */
	snprintf(path, sizeof(path), "%s/file", dir);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/file/sub", dir);
	assert_int_equal(flt_mkdir_p(path, 0700), -ENOTDIR);
	/* The path itself is a file. */
	snprintf(path, sizeof(path), "%s/file", dir);
	assert_int_equal(flt_mkdir_p(path, 0700), -ENOTDIR);

	/* A trailing slash still gets the requested mode. */
	snprintf(path, sizeof(path), "%s/slash/", dir);
	assert_int_equal(flt_mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	assert_int_equal(flt_mkdir_p("", 0700), -ENAMETOOLONG);
	char *longp = malloc(5000);
	assert_non_null(longp);
	memset(longp, 'a', 4999);
	longp[0] = '/';
	longp[4999] = '\0';
	assert_int_equal(flt_mkdir_p(longp, 0700), -ENAMETOOLONG);
	free(longp);

	umask(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_name),
		cmocka_unit_test(test_is_text_ascii),
		cmocka_unit_test(test_is_text_utf8_valid),
		cmocka_unit_test(test_is_text_utf8_invalid),
		cmocka_unit_test(test_uuid_v4),
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_format_age),
		cmocka_unit_test_setup_teardown(test_read_file, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_read_file_limits,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p, tmpdir_setup,
						tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("unit.util", tests, NULL, NULL);
}
