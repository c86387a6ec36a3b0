#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/version.h"

typedef struct semver {
	uint64_t v[3];
	const char *pre; /* pre-release, not NUL-terminated: up to pre_len */
	size_t pre_len;
} semver_t;

static bool parse_num(const char **s, uint64_t *out)
{
	const char *p = *s;
	if (!isdigit((unsigned char)*p))
		return false;
	uint64_t n = 0;
	while (isdigit((unsigned char)*p)) {
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*p++ - '0');
	}
	*out = n;
	*s = p;
	return true;
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.';
}

/* Parses s up to end (exclusive). */
static int parse(const char *s, const char *end, semver_t *v)
{
	memset(v, 0, sizeof(*v));
	if (s < end && (*s == 'v' || *s == 'V'))
		s++;
	for (int i = 0; i < 3; i++) {
		if (!parse_num(&s, &v->v[i]) || s > end)
			return -EINVAL;
		if (s == end || *s != '.')
			break;
		if (i == 2)
			return -EINVAL;
		s++;
	}
	if (s < end && *s == '-') {
		const char *p = ++s;
		while (p < end && *p != '+' && ident_char(*p))
			p++;
		if (p == s || p[-1] == '.')
			return -EINVAL;
		v->pre = s;
		v->pre_len = (size_t)(p - s);
		s = p;
	}
	if (s < end && *s == '+') {
		const char *p = ++s;
		while (p < end && ident_char(*p))
			p++;
		if (p == s)
			return -EINVAL;
		s = p;
	}
	return s == end ? 0 : -EINVAL;
}

/* Pre-release precedence, identifier by identifier. */
static int cmp_pre(const semver_t *a, const semver_t *b)
{
	if (!a->pre_len || !b->pre_len)
		return a->pre_len ? -1 : b->pre_len ? 1 : 0;
	const char *p = a->pre, *pe = a->pre + a->pre_len;
	const char *q = b->pre, *qe = b->pre + b->pre_len;
	while (p < pe && q < qe) {
		const char *pn = memchr(p, '.', (size_t)(pe - p));
		const char *qn = memchr(q, '.', (size_t)(qe - q));
		if (!pn)
			pn = pe;
		if (!qn)
			qn = qe;
		size_t pl = (size_t)(pn - p), ql = (size_t)(qn - q);
		bool pnum = true, qnum = true;
		for (size_t i = 0; i < pl; i++)
			pnum = pnum && isdigit((unsigned char)p[i]);
		for (size_t i = 0; i < ql; i++)
			qnum = qnum && isdigit((unsigned char)q[i]);
		int c;
		if (pnum && qnum) {
			/* Numerically: longer (no leading zeros) is larger. */
			while (pl > 1 && *p == '0')
				p++, pl--;
			while (ql > 1 && *q == '0')
				q++, ql--;
			c = pl != ql ? (pl < ql ? -1 : 1) : memcmp(p, q, pl);
		} else if (pnum != qnum) {
			c = pnum ? -1 : 1;
		} else {
			c = memcmp(p, q, pl < ql ? pl : ql);
			if (!c && pl != ql)
				c = pl < ql ? -1 : 1;
		}
		if (c)
			return c < 0 ? -1 : 1;
		p = pn < pe ? pn + 1 : pe;
		q = qn < qe ? qn + 1 : qe;
	}
	return p < pe ? 1 : q < qe ? -1 : 0;
}

static int cmp(const semver_t *a, const semver_t *b)
{
	for (int i = 0; i < 3; i++)
		if (a->v[i] != b->v[i])
			return a->v[i] < b->v[i] ? -1 : 1;
	return cmp_pre(a, b);
}

int flt_semver_cmp(const char *a, const char *b, int *out)
{
	semver_t x, y;
	if (parse(a, a + strlen(a), &x) < 0 || parse(b, b + strlen(b), &y) < 0)
		return -EINVAL;
	*out = cmp(&x, &y);
	return 0;
}

int flt_semver_range_match(const char *range, const char *version, bool *match,
			   flt_error_t *err)
{
	semver_t v;
	if (parse(version, version + strlen(version), &v) < 0)
		return flt_err(err, -EINVAL, "\"%s\" is not a version",
			       version);
	bool all = true, pre_allowed = false;
	const char *s = range;
	int clauses = 0;
	for (;;) {
		while (*s == ' ')
			s++;
		const char *e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		const char *end = e;
		while (end > s && end[-1] == ' ')
			end--;
		char op[3] = "=";
		if (*s == '>' || *s == '<' || *s == '!' || *s == '=') {
			size_t n = (s[1] == '=') ? 2 : 1;
			memcpy(op, s, n);
			op[n] = '\0';
			s += n;
		} else if (*s == '~' || *s == '^') {
			op[0] = *s++;
			op[1] = '\0';
		}
		while (*s == ' ')
			s++;
		semver_t r;
		if (s >= end || parse(s, end, &r) < 0 || !strcmp(op, "!"))
			return flt_err(
				err, -EINVAL,
				"\"%s\": clause %d is not an operator and "
				"a version",
				range, clauses + 1);
		/* As npm does: a pre-release satisfies a range only when a
		 * clause names a pre-release of the same version. */
		if (r.pre_len && r.v[0] == v.v[0] && r.v[1] == v.v[1] &&
		    r.v[2] == v.v[2])
			pre_allowed = true;
		int c = cmp(&v, &r);
		bool ok;
		if (!strcmp(op, "=") || !strcmp(op, "=="))
			ok = c == 0;
		else if (!strcmp(op, "!="))
			ok = c != 0;
		else if (!strcmp(op, "<"))
			ok = c < 0;
		else if (!strcmp(op, "<="))
			ok = c <= 0;
		else if (!strcmp(op, ">"))
			ok = c > 0;
		else if (!strcmp(op, ">="))
			ok = c >= 0;
		else {
			/* ~1.2.3: < 1.3.0; ^1.2.3: < 2.0.0 (^0.2.3: < 0.3.0). */
			semver_t up = { { r.v[0], r.v[1], 0 }, NULL, 0 };
			if (op[0] == '~' || r.v[0] == 0)
				up.v[1]++;
			else
				up.v[0]++, up.v[1] = 0;
			ok = c >= 0 && cmp(&v, &up) < 0;
		}
		all = all && ok;
		clauses++;
		if (!*e)
			break;
		s = e + 1;
	}
	*match = all && (!v.pre_len || pre_allowed);
	return 0;
}
