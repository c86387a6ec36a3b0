/* Unit tests for common/util.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
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

/* ---- flt_shown -------------------------------------------------------- */

static void test_shown(void **state)
{
	char b[16], small[6];
	(void)state;
	assert_string_equal(flt_shown("web", 8, b, sizeof(b)), "web");
	assert_string_equal(flt_shown(NULL, 8, b, sizeof(b)), "");
	assert_string_equal(flt_shown("12345678", 8, b, sizeof(b)), "12345678");
	assert_string_equal(flt_shown("123456789", 8, b, sizeof(b)),
			    "12345678...");
	/* Control characters, quotes and invalid UTF-8 escaped. */
	assert_string_equal(flt_shown("a\nb\"", 10, b, sizeof(b)),
			    "a\\x0ab\\x22");
	assert_string_equal(flt_shown("x\xff\xc3", 12, b, sizeof(b)),
			    "x\\xff\\xc3");
	/* An escape is never cut in two. */
	assert_string_equal(flt_shown("ab\x1b", 5, b, sizeof(b)), "ab...");
	/* A cut never splits a character: é is two bytes, € three. */
	assert_string_equal(flt_shown("abc\xc3\xa9", 4, b, sizeof(b)),
			    "abc...");
	assert_string_equal(flt_shown("abc\xc3\xa9", 5, b, sizeof(b)),
			    "abc\xc3\xa9");
	assert_string_equal(
		flt_shown("a\xe2\x82\xac\xe2\x82\xac", 6, b, sizeof(b)),
		"a\xe2\x82\xac...");
	/* max shrinks to what the buffer holds with "..." after it. */
	assert_string_equal(flt_shown("abcdefgh", 100, small, sizeof(small)),
			    "ab...");
	assert_string_equal(flt_shown("ab", 100, small, sizeof(small)), "ab");
	assert_string_equal(flt_shown("abcd", 100, b, 3), "");
}

/* ---- flt_text_check, flt_escape --------------------------------------- */

static void check_text(const char *s, size_t len, unsigned flags,
		       size_t want_at, const char *want_why)
{
	const char *why = "unset";
	assert_int_equal(flt_text_check(s, len, flags, &why), want_at);
	if (want_why)
		assert_string_equal(why, want_why);
	else
		assert_null(why);
}

static void test_text_check(void **state)
{
	(void)state;
	check_text("plain\ttext\n", 11, 0, 11, NULL);
	check_text("caf\xc3\xa9 \xe2\x80\xae", 9, 0, 9, NULL); /* U+202E */
	check_text("ab\x1b[2J", 6, 0, 2, "control character");
	check_text("ab\x1b[2J", 6, FLT_TEXT_CONTROLS, 6, NULL);
	check_text("x\x7f", 2, 0, 1, "control character");
	check_text("\xc3\xa9\xc2\x9b", 4, 0, 2, "control character");
	check_text("\xc3\xa9\xc2\x9b", 4, FLT_TEXT_CONTROLS, 4, NULL);
	/* A valid string with control characters is never called invalid
	 * UTF-8, and invalid UTF-8 is found with or without controls. */
	check_text("a\x01\xff", 3, 0, 1, "control character");
	check_text("a\x01\xff", 3, FLT_TEXT_CONTROLS, 2, "invalid UTF-8");
	check_text("Deb\x9b", 4, FLT_TEXT_CONTROLS, 3, "invalid UTF-8");
	check_text("\xe2\x82", 2, FLT_TEXT_CONTROLS, 0, "invalid UTF-8");
	check_text("t\0x", 3, FLT_TEXT_CONTROLS, 1, "NUL character");
	check_text("t\0x", 3, 0, 1, "NUL character");
}

static const char *esc(const char *s, size_t len, unsigned flags)
{
	static char buf[256];
	size_t n = flt_escape(s, len, flags, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	return buf;
}

static void test_escape(void **state)
{
	(void)state;
	/* Kept: printable ASCII, valid UTF-8 of every length. */
	assert_string_equal(esc("web-1 ~!\\", 9, 0), "web-1 ~!\\");
	const char *mb =
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2 \xe6\x97\xa5";
	assert_string_equal(esc(mb, strlen(mb), 0), mb);
	/* C0 controls, ESC, DEL and NUL as \xNN. */
	assert_string_equal(esc("\x1b]0;x\a\x1b[2J", 10, 0),
			    "\\x1b]0;x\\x07\\x1b[2J");
	assert_string_equal(esc("a\x7f"
				"b",
				3, 0),
			    "a\\x7fb");
	assert_string_equal(esc("t\0x", 3, 0), "t\\x00x");
	assert_string_equal(esc("a\rb", 3, 0), "a\\x0db");
	/* Newline and tab: escaped in one-line fields, kept in logs. */
	assert_string_equal(esc("a\nb\tc", 5, 0), "a\\x0ab\\x09c");
	assert_string_equal(esc("a\nb\tc\r", 6, FLT_ESC_KEEP_LINES),
			    "a\nb\tc\\x0d");
	/* C1 controls as code points. */
	assert_string_equal(esc("\xc2\x80\xc2\x9b\xc2\x9f\xc2\xa0", 8, 0),
			    "\\u0080\\u009b\\u009f\xc2\xa0");
	/* Bidirectional controls. */
	assert_string_equal(esc("\xe2\x80\xae"
				"cod",
				6, 0),
			    "\\u202ecod");
	assert_string_equal(
		esc("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", 12, 0),
		"\\u202a\\u202b\\u202c\\u202d");
	assert_string_equal(
		esc("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", 12, 0),
		"\\u2066\\u2067\\u2068\\u2069");
	assert_string_equal(esc("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", 8, 0),
			    "\\u200e\\u200f\\u061c");
	/* Neighbours of the bidi controls are kept. */
	assert_string_equal(esc("\xe2\x80\xaf\xe2\x80\x8d", 6, 0),
			    "\xe2\x80\xaf\xe2\x80\x8d");
	/* Invalid UTF-8, byte by byte. */
	assert_string_equal(esc("a\xff\xfe", 3, 0), "a\\xff\\xfe");
	assert_string_equal(esc("\xc0\xaf", 2, 0), "\\xc0\\xaf");
	assert_string_equal(esc("\xed\xa0\x80", 3, 0), "\\xed\\xa0\\x80");
	assert_string_equal(esc("\xe2\x82"
				"z",
				3, 0),
			    "\\xe2\\x82z");
	assert_string_equal(esc("\x9b"
				"31m",
				4, 0),
			    "\\x9b31m");
	/* NULL reads as "". */
	assert_string_equal(esc(NULL, 0, 0), "");
}

static void test_escape_sizes(void **state)
{
	char b[8];
	(void)state;
	/* snprintf's contract: the whole length, cut between characters. */
	assert_int_equal(flt_escape("ab\x1b", 3, 0, b, sizeof(b)), 6);
	assert_string_equal(b, "ab\\x1b");
	assert_int_equal(flt_escape("abcd\x1b", 5, 0, b, sizeof(b)), 8);
	assert_string_equal(b, "abcd");
	assert_int_equal(
		flt_escape("abc\xe2\x82\xac\xe2\x82\xac", 9, 0, b, sizeof(b)),
		9);
	assert_string_equal(b, "abc\xe2\x82\xac");
	assert_int_equal(flt_escape("\x1b\x1b", 2, 0, NULL, 0), 8);

	char *d = flt_escape_dup("x\xe2\x80\xaey\n", 6, 0);
	assert_string_equal(d, "x\\u202ey\\x0a");
	free(d);

	/* FLT_ESC: for printf, with "..." when cut. */
	char line[64];
	snprintf(line, sizeof(line), "node %s: %s", FLT_ESC("a\x1b[2Jb"),
		 FLT_ESC("\xe2\x80\xae"));
	assert_string_equal(line, "node a\\x1b[2Jb: \\u202e");
	char small[10];
	assert_string_equal(flt_esc("abcdefghijkl", small, sizeof(small)),
			    "abcdef...");
	assert_string_equal(flt_esc("abcdef\x1b", small, sizeof(small)),
			    "abcdef...");
	assert_string_equal(flt_esc("ab\x1b", small, sizeof(small)), "ab\\x1b");
	assert_string_equal(flt_esc(NULL, small, sizeof(small)), "");
}

/* Pushes piece into e and checks what comes out. */
static void push(flt_escaper_t *e, const char *piece, size_t len,
		 const char *want)
{
	char *got = flt_escaper_push(e, piece, len);
	assert_string_equal(got, want);
	free(got);
}

static void test_escaper(void **state)
{
	flt_escaper_t e = { .flags = FLT_ESC_KEEP_LINES };
	char *got;
	(void)state;
	/* A character cut between two pieces is shown whole. */
	push(&e, "a\xe2", 2, "a");
	push(&e, "\x82\xac\n", 3, "\xe2\x82\xac\n");
	push(&e, "\xf0\x9f", 2, "");
	push(&e, "\x9a", 1, "");
	push(&e, "\xa2!", 2, "\xf0\x9f\x9a\xa2!");
	/* A bidi control or a C1 control cut in two is still escaped. */
	push(&e, "x\xe2\x80", 3, "x");
	push(&e, "\xae", 1, "\\u202e");
	push(&e, "\xc2", 1, "");
	push(&e, "\x9b", 1, "\\u009b");
	/* Single-byte controls need nothing held; lines kept. */
	push(&e, "\x1b[2J\tz\n", 7, "\\x1b[2J\tz\n");
	/* Bytes that can never complete are not held forever. */
	push(&e, "\xff", 1, "\\xff");
	push(&e, "a\x82", 2, "a\\x82");
	/* What is held at the end is shown as the escapes of its bytes. */
	push(&e, "b\xe2\x82", 3, "b");
	got = flt_escaper_end(&e);
	assert_string_equal(got, "\\xe2\\x82");
	free(got);
	got = flt_escaper_end(&e);
	assert_string_equal(got, "");
	free(got);
	push(&e, NULL, 0, "");
}

/* ---- flt_write_all, flt_pwrite_all ------------------------------------ */

static void test_write_all(void **state)
{
	const char *dir = *state;
	char path[256], *got = NULL;
	size_t n = 1234;
	int fds[2];

	snprintf(path, sizeof(path), "%s/out", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flt_write_all(fd, "hello ", 6, NULL), 0);
	assert_int_equal(flt_write_all(fd, "world", 5, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(flt_write_all(fd, "", 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(flt_pwrite_all(fd, "W", 1, 6), 0);
	close(fd);
	assert_int_equal(flt_read_file(path, 100, &got), 0);
	assert_string_equal(got, "hello World");
	free(got);

	/* A failing write says how much went through (nothing here). */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flt_write_all(fd, "x", 1, &n), -EBADF);
	assert_int_equal(n, 0);
	assert_int_equal(flt_pwrite_all(fd, "x", 1, 0), -EBADF);
	close(fd);

	/* Short writes: a non-blocking pipe fills, and the count stops
	 * where it did. */
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	size_t big = 1 << 20;
	char *buf = calloc(1, big);
	assert_non_null(buf);
	assert_int_equal(flt_write_all(fds[1], buf, big, &n), -EAGAIN);
	assert_true(n > 0 && n < big);
	free(buf);
	close(fds[0]);
	close(fds[1]);
}

/* ---- flt_rm_rf -------------------------------------------------------- */

static void touch(const char *dir, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	write_file(p, "x", 1);
}

static void test_rm_rf(void **state)
{
	const char *dir = *state;
	char p[512], q[512];

	/* A tree with a symlink to a directory outside it, a symlink to a
	 * file outside it and a directory without write permission. */
	snprintf(p, sizeof(p), "%s/keep", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	touch(dir, "keep/file");
	snprintf(p, sizeof(p), "%s/t/a/b/c", dir);
	assert_int_equal(flt_mkdir_p(p, 0700), 0);
	touch(dir, "t/a/b/c/f");
	touch(dir, "t/a/g");
	snprintf(p, sizeof(p), "%s/keep", dir);
	snprintf(q, sizeof(q), "%s/t/a/link", dir);
	assert_int_equal(symlink(p, q), 0);
	snprintf(p, sizeof(p), "%s/keep/file", dir);
	snprintf(q, sizeof(q), "%s/t/flink", dir);
	assert_int_equal(symlink(p, q), 0);
	snprintf(p, sizeof(p), "%s/t/a/b", dir);
	assert_int_equal(chmod(p, 0500), 0);

	snprintf(p, sizeof(p), "%s/t", dir);
	int rc = flt_rm_rf(p, 0);
	if (geteuid() != 0) {
		/* Without root, b's entries stay: fix and retry. */
		snprintf(q, sizeof(q), "%s/t/a/b", dir);
		chmod(q, 0700);
		rc = flt_rm_rf(p, 0);
	}
	assert_int_equal(rc, 0);
	assert_false(exists(dir, "t"));
	assert_true(exists(dir, "keep/file"));

	/* Absent is done; a symlink given as the top is removed, not
	 * followed; a plain file is removed. */
	assert_int_equal(flt_rm_rf(p, 0), 0);
	snprintf(p, sizeof(p), "%s/keep", dir);
	snprintf(q, sizeof(q), "%s/top", dir);
	assert_int_equal(symlink(p, q), 0);
	assert_int_equal(flt_rm_rf(q, FLT_RM_ONE_FS), 0);
	assert_false(exists(dir, "top"));
	assert_true(exists(dir, "keep/file"));
	snprintf(p, sizeof(p), "%s/keep/file", dir);
	assert_int_equal(flt_rm_rf(p, 0), 0);
	assert_false(exists(dir, "keep/file"));

	/* Through a directory descriptor. */
	touch(dir, "keep/x");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(flt_rm_rf_at(dfd, "keep", 0), 0);
	close(dfd);
	assert_false(exists(dir, "keep"));
}

static void test_rm_rf_depth(void **state)
{
	const char *dir = *state;
	char p[512];

	/* Deeper than FLT_RM_DEPTH_MAX: -ELOOP, and what lies above the
	 * limit is left. */
	snprintf(p, sizeof(p), "%s/deep", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < FLT_RM_DEPTH_MAX + 10; i++) {
		assert_int_equal(mkdirat(fd, "d", 0700), 0);
		int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(sub >= 0);
		close(fd);
		fd = sub;
	}
	close(fd);
	assert_int_equal(flt_rm_rf(p, 0), -ELOOP);
	assert_true(exists(dir, "deep/d"));

	/* From half way down, the rest is within reach. */
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < 100; i++) {
		int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(sub >= 0);
		close(fd);
		fd = sub;
	}
	assert_int_equal(flt_rm_rf_at(fd, "d", 0), 0);
	close(fd);
	assert_int_equal(flt_rm_rf(p, 0), 0);
	assert_false(exists(dir, "deep"));
}

static void test_rm_rf_mount(void **state)
{
	const char *dir = *state;
	char p[512], m[512];

	snprintf(p, sizeof(p), "%s/t", dir);
	snprintf(m, sizeof(m), "%s/t/mnt", dir);
	assert_int_equal(flt_mkdir_p(m, 0700), 0);
	touch(dir, "t/file");
	if (mount("flt-unit", m, "tmpfs", 0, NULL) < 0)
		skip(); /* not root, or no tmpfs: nothing to cross */
	touch(dir, "t/mnt/inside");

	/* Nothing on the mount is touched; the rest goes. */
	assert_int_equal(flt_rm_rf(p, FLT_RM_ONE_FS), -EXDEV);
	assert_true(exists(dir, "t/mnt/inside"));
	assert_false(exists(dir, "t/file"));

	/* A bind mount of the same file system is a mount too. */
	assert_int_equal(umount(m), 0);
	snprintf(p, sizeof(p), "%s/src", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	touch(dir, "src/kept");
	assert_int_equal(mount(p, m, NULL, MS_BIND, NULL), 0);
	snprintf(p, sizeof(p), "%s/t", dir);
	assert_int_equal(flt_rm_rf(p, FLT_RM_ONE_FS), -EXDEV);
	assert_true(exists(dir, "src/kept"));
	assert_int_equal(umount(m), 0);
	assert_int_equal(flt_rm_rf(p, FLT_RM_ONE_FS), 0);
	assert_false(exists(dir, "t"));
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
		cmocka_unit_test(test_shown),
		cmocka_unit_test(test_text_check),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_sizes),
		cmocka_unit_test(test_escaper),
		cmocka_unit_test_setup_teardown(test_write_all, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_rm_rf, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_rm_rf_depth, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_rm_rf_mount, tmpdir_setup,
						tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("unit.util", tests, NULL, NULL);
}
