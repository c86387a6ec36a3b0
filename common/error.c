#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
	default: return code < 0 ? strerror(-code) : "success";
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
