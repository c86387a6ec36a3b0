#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "flotilla/error.h"

int flt_err(flt_error_t *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		flt_utf8_trim(err->msg);
		err->code = code;
	}
	return code;
}

int flt_err_prefix(flt_error_t *err, const char *fmt, ...)
{
	char prefix[FLT_ERROR_MSG_MAX];
	char old[FLT_ERROR_MSG_MAX];
	va_list ap;

	if (!err)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	flt_utf8_trim(err->msg);
	return err->code;
}

const char *flt_strerror(int code)
{
	switch (code) {
	case FLT_EPROTO: return "malformed message";
	case FLT_EAUTH: return "unauthenticated";
	case FLT_ENOTFOUND: return "not found";
	case FLT_EVERSION: return "unsupported protocol version";
	case FLT_EMETHOD: return "unknown method";
	case FLT_EREMOTE: return "remote error";
	case FLT_ESTORE: return "store failure";
	case FLT_ETRANSPORT: return "transport failure";
	case FLT_EUSAGE: return "usage error";
	case FLT_ECONFLICT: return "conflict";
	case FLT_EDENIED: return "permission denied";
	default: return code < 0 ? strerror(-code) : "success";
	}
}

/*
 * Below this much free space (a 20th of a smaller file system), or with no
 * free inode, a file system is full for flt_write_errno: LMDB writes up to
 * 64 pages, or a whole large value, in one call, and a short write of it
 * is EIO ("short write, filesystem full?" in mdb_page_flush).
 */
#define NEARLY_FULL_BYTES (16ull << 20)

static bool nearly_full(const char *dir)
{
	struct statvfs st;
	if (!dir || statvfs(dir, &st) < 0)
		return false;
	/* root may use the blocks reserved for it; others only the rest. */
	unsigned long long avail = geteuid() == 0 ? st.f_bfree : st.f_bavail;
	unsigned long long unit = st.f_frsize ? st.f_frsize : st.f_bsize;
	unsigned long long low = st.f_blocks * unit / 20;
	if (low > NEARLY_FULL_BYTES)
		low = NEARLY_FULL_BYTES;
	return avail * unit < low || (st.f_files && st.f_ffree == 0);
}

int flt_write_errno(int code, const char *dir)
{
	int saved = errno;
	if (code == -EIO && nearly_full(dir))
		code = -ENOSPC;
	errno = saved;
	return code;
}

const char *flt_write_strerror(int code, const char *dir)
{
	switch (flt_write_errno(code, dir)) {
	case -ENOSPC: return "no space left on device";
	case -EDQUOT: return "disk quota exceeded";
	default: return flt_strerror(code);
	}
}

void flt_utf8_trim(char *s)
{
	size_t n = strlen(s), i = n;
	/* Walk back over continuation bytes to the lead byte. */
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && n - i < 3)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xf0   ? 4
		      : lead >= 0xe0 ? 3
		      : lead >= 0xc0 ? 2
				     : 1;
	if (lead >= 0x80 && n - (i - 1) < need)
		s[i - 1] = '\0';
}
