#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "flotilla/log.h"
#include "flotilla/util.h"

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t flt_now_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
int64_t flt_now_wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

void flt_format_time(int64_t unix_ms, char *buf, size_t len)
{
	if (unix_ms < 0)
		unix_ms = 0;
	time_t s = (time_t)(unix_ms / 1000);
	struct tm tm;
	char base[32];

	gmtime_r(&s, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(unix_ms % 1000));
}

void flt_format_age(int64_t unix_ms, int64_t now_ms, char *buf, size_t len)
{
	if (unix_ms <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	int64_t d = now_ms - unix_ms;
	if (d < 0)
		d = 0;
	if (d < 60000)
		snprintf(buf, len, "%.1fs ago", (double)d / 1000.0);
	else if (d < 3600000)
		snprintf(buf, len, "%dm%02ds ago", (int)(d / 60000),
			 (int)(d / 1000 % 60));
	else
		snprintf(buf, len, "%dh%02dm ago", (int)(d / 3600000),
			 (int)(d / 60000 % 60));
}

void flt_uuid_v4(char buf[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(buf, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

bool flt_is_name(const char *s, size_t max)
{
	size_t n = 0;
	if (!s || !*s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= max)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

bool flt_namespace_valid(const char *s)
{
	size_t n = 0;
	if (!s || !*s || *s == '-')
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= FLT_NAMESPACE_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

/*
 * Decodes the UTF-8 sequence of two to four bytes at p (of len) into *cp:
 * its length, or 0 for overlong forms, surrogates, code points past
 * U+10FFFF and broken sequences. C1 controls decode (they are valid UTF-8).
 */
static size_t utf8_decode(const unsigned char *p, size_t len, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t extra;
	uint32_t v;
	if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
		extra = 1;
		v = c & 0x1fu;
	} else if ((c & 0xf0) == 0xe0) {
		extra = 2;
		v = c & 0x0fu;
	} else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
		extra = 3;
		v = c & 0x07u;
	} else {
		return 0;
	}
	for (size_t k = 1; k <= extra; k++) {
		if (k >= len || (p[k] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[k] & 0x3fu);
	}
	if ((extra == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
	    (extra == 3 && (v < 0x10000 || v > 0x10ffff)))
		return 0;
	*cp = v;
	return extra + 1;
}

size_t flt_utf8_seq(const unsigned char *p, size_t len)
{
	uint32_t cp;
	size_t n = utf8_decode(p, len, &cp);
	return n && cp >= 0xa0 ? n : 0;
}

size_t flt_text_check(const char *s, size_t len, unsigned flags,
		      const char **why)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp = c;
		size_t n = 1;
		if (c >= 0x80 && !(n = utf8_decode(p + i, len - i, &cp))) {
			*why = "invalid UTF-8";
			return i;
		}
		if (c == 0) {
			*why = "NUL character";
			return i;
		}
		if (!(flags & FLT_TEXT_CONTROLS) && c != '\t' && c != '\n' &&
		    (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))) {
			*why = "control character";
			return i;
		}
		i += n;
	}
	*why = NULL;
	return len;
}

bool flt_is_text(const char *s, size_t len)
{
	const char *why;
	return flt_text_check(s, len, 0, &why) == len;
}

/* Right-to-left and left-to-right marks, embeddings, overrides and
 * isolates: they reorder what follows on the screen (CVE-2021-42574). */
static bool is_bidi(uint32_t cp)
{
	return (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
	       cp == 0x061c;
}

/* The shown form of the character of n bytes at p (code point cp, or a
 * byte of invalid UTF-8 when n is 0) into out (at least 7 bytes): its
 * length there. */
static size_t escape_one(const unsigned char *p, size_t n, uint32_t cp,
			 unsigned flags, char out[8])
{
	if (!n)
		return (size_t)snprintf(out, 8, "\\x%02x", p[0]);
	if (n == 1) {
		bool keep = (flags & FLT_ESC_KEEP_LINES) &&
			    (p[0] == '\n' || p[0] == '\t');
		if ((p[0] >= 0x20 && p[0] != 0x7f) || keep) {
			out[0] = (char)p[0];
			return 1;
		}
		return (size_t)snprintf(out, 8, "\\x%02x", p[0]);
	}
	if (cp < 0xa0 || is_bidi(cp))
		return (size_t)snprintf(out, 8, "\\u%04x", (unsigned)cp);
	memcpy(out, p, n);
	return n;
}

size_t flt_escape(const char *s, size_t len, unsigned flags, char *buf,
		  size_t size)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t i = 0, o = 0;
	bool fits = size > 0;
	while (i < len) {
		uint32_t cp = p[i];
		size_t n = p[i] < 0x80 ? 1 : utf8_decode(p + i, len - i, &cp);
		char one[8];
		size_t k = escape_one(p + i, n, cp, flags, one);
		/* Never a character cut in two: past the first one that does
		 * not fit, only the length is counted. */
		fits = fits && o + k < size;
		if (fits)
			memcpy(buf + o, one, k);
		else if (size && o < size)
			buf[o] = '\0';
		o += k;
		i += n ? n : 1;
	}
	if (fits)
		buf[o] = '\0';
	return o;
}

char *flt_escape_dup(const char *s, size_t len, unsigned flags)
{
	size_t n = flt_escape(s, len, flags, NULL, 0);
	char *buf = flt_xmalloc(n + 1);
	flt_escape(s, len, flags, buf, n + 1);
	return buf;
}

/* How many bytes at the end of p may begin a UTF-8 sequence not yet
 * whole (a lead byte followed by fewer continuation bytes than it asks). */
static size_t incomplete_tail(const unsigned char *p, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		unsigned char c = p[n - k];
		if ((c & 0xc0) == 0x80)
			continue;
		/* Only bytes that can lead a sequence are worth waiting for. */
		size_t need = c >= 0xf5   ? 1
			      : c >= 0xf0 ? 4
			      : c >= 0xe0 ? 3
			      : c >= 0xc2 ? 2
					  : 1;
		return need > k ? k : 0;
	}
	return 0;
}

char *flt_escaper_push(flt_escaper_t *e, const void *data, size_t len)
{
	size_t n = e->nheld + len;
	cleanup_free unsigned char *buf = flt_xmalloc(n ? n : 1);
	memcpy(buf, e->held, e->nheld);
	if (len)
		memcpy(buf + e->nheld, data, len);
	size_t t = incomplete_tail(buf, n);
	char *shown = flt_escape_dup((const char *)buf, n - t, e->flags);
	memcpy(e->held, buf + n - t, t);
	e->nheld = t;
	return shown;
}

char *flt_escaper_end(flt_escaper_t *e)
{
	char *shown = flt_escape_dup((const char *)e->held, e->nheld, e->flags);
	e->nheld = 0;
	return shown;
}

const char *flt_esc(const char *s, char *buf, size_t size)
{
	size_t len = s ? strlen(s) : 0;
	if (size < 4) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	if (flt_escape(s, len, 0, buf, size) >= size) {
		/* Room for "...": flt_escape stops between characters. */
		flt_escape(s, len, 0, buf, size - 3);
		strcat(buf, "...");
	}
	return buf;
}

const char *flt_shown(const char *s, size_t max, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t slen = strlen((const char *)p), i = 0, o = 0;
	if (len < 4) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	if (max > len - 4)
		max = len - 4;
	while (i < slen) {
		uint32_t cp = p[i];
		size_t n = p[i] < 0x80 ? 1 : utf8_decode(p + i, slen - i, &cp);
		char one[8];
		size_t k = p[i] == '"' ? (size_t)snprintf(one, 8, "\\x22")
				       : escape_one(p + i, n, cp, 0, one);
		if (o + k > max)
			break;
		memcpy(buf + o, one, k);
		o += k;
		i += n ? n : 1;
	}
	if (i < slen) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

int flt_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int flt_read_file(const char *path, size_t max, char **out)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char *buf = flt_xmalloc(max + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, max - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(buf);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == max) {
			char c;
			if (read(fd, &c, 1) > 0) {
				free(buf);
				return -EFBIG;
			}
			break;
		}
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*out = buf;
	return 0;
}

int flt_mkdir_p(const char *path, unsigned mode)
{
	char tmp[4096];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	while (len > 1 && tmp[len - 1] == '/')
		tmp[--len] = '\0';
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0) {
		struct stat st;
		if (errno != EEXIST)
			return -errno;
		if (stat(tmp, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return 0;
}

/*
 * Everything is reached through a descriptor opened with O_NOFOLLOW from
 * its parent's, never by path: a tree being deleted may belong to a
 * workload or be a hostile archive half unpacked, and a directory swapped
 * for a symlink between two steps must not lead the walk (running as
 * root) out of the tree. unlinkat fails with EISDIR on Linux for a
 * directory (EPERM on some file systems), which is then emptied first.
 * Each level holds one descriptor: depth is bounded.
 */
static int rm_at(int dfd, const char *name, unsigned flags, dev_t dev,
		 unsigned depth)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > FLT_RM_DEPTH_MAX)
		return -ELOOP;
	int fd = openat(dfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (flags & FLT_RM_ONE_FS) {
		/* A mount point, even of the same file system (a bind
		 * mount keeps st_dev), is not ours to empty. */
		struct statx stx;
		if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) < 0 ||
		    makedev(stx.stx_dev_major, stx.stx_dev_minor) != dev ||
		    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
			close(fd);
			return -EXDEV;
		}
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int r = rm_at(dirfd(d), e->d_name, flags, dev, depth + 1);
		if (r < 0 && rc == 0)
			rc = r;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && rc == 0)
		rc = -errno;
	return rc;
}

int flt_rm_rf_at(int dfd, const char *name, unsigned flags)
{
	struct stat st;
	dev_t dev = 0;
	if (flags & FLT_RM_ONE_FS) {
		/* The file system the tree starts on. */
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : -errno;
		dev = st.st_dev;
	}
	return rm_at(dfd, name, flags, dev, 0);
}

int flt_rm_rf(const char *path, unsigned flags)
{
	return flt_rm_rf_at(AT_FDCWD, path, flags);
}
