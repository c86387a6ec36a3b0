#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/util.h"
#include "flotilla/vercmp.h"
#include "flotilla/version.h"

static const char *const scheme_names[] = {
	[FLT_VS_DPKG] = "dpkg",
	[FLT_VS_MAVEN] = "maven",
	[FLT_VS_SEMVER] = "semver",
};

bool flt_vscheme_parse(const char *name, flt_vscheme_t *out)
{
	for (size_t i = 0; i < FLT_ARRAY_SIZE(scheme_names); i++)
		if (strcmp(name, scheme_names[i]) == 0) {
			*out = (flt_vscheme_t)i;
			return true;
		}
	return false;
}

const char *flt_vscheme_name(flt_vscheme_t s)
{
	if ((size_t)s < FLT_ARRAY_SIZE(scheme_names))
		return scheme_names[s];
	return "?";
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int sign(int c) { return (c > 0) - (c < 0); }

/* Two runs of decimal digits as numbers, however long. */
static int digits_cmp(const char *a, size_t na, const char *b, size_t nb)
{
	while (na && *a == '0')
		a++, na--;
	while (nb && *b == '0')
		b++, nb--;
	if (na != nb)
		return na < nb ? -1 : 1;
	return sign(memcmp(a, b, na));
}

/* ---- dpkg --------------------------------------------------------------- */

/*
 * The weight of a character in a non-digit run, as dpkg's order(): '~'
 * sorts before everything, even the end of the part (0), letters next,
 * then every other character. Bytes are taken unsigned: dpkg refuses
 * non-ASCII versions, whose order would otherwise depend on the sign of
 * char.
 */
static int dpkg_order(int c)
{
	if (c == 0 || is_digit(c))
		return 0;
	if (is_alpha(c))
		return c;
	if (c == '~')
		return -1;
	return c + 256;
}

/* dpkg's verrevcmp over [a, ae) and [b, be). */
static int dpkg_part_cmp(const char *a, const char *ae, const char *b,
			 const char *be)
{
#define AT(p, e) ((p) < (e) ? (unsigned char)*(p) : 0)
	while (a < ae || b < be) {
		while ((a < ae && !is_digit(AT(a, ae))) ||
		       (b < be && !is_digit(AT(b, be)))) {
			int ac = dpkg_order(AT(a, ae));
			int bc = dpkg_order(AT(b, be));
			if (ac != bc)
				return sign(ac - bc);
			/* Equal weights: both non-digits, or one digit and the
			 * other the end, which the loop condition excludes. */
			a++, b++;
		}
		const char *da = a, *db = b;
		while (a < ae && is_digit(AT(a, ae)))
			a++;
		while (b < be && is_digit(AT(b, be)))
			b++;
		int c = digits_cmp(da, (size_t)(a - da), db, (size_t)(b - db));
		if (c)
			return c;
	}
	return 0;
#undef AT
}

typedef struct dpkg_version {
	const char *epoch, *epoch_end; /* empty when absent: compares as 0 */
	const char *up, *up_end;
	const char *rev, *rev_end; /* empty when absent: compares as 0 */
} dpkg_version_t;

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/*
 * As dpkg's parseversion: surrounding blanks dropped, the epoch before the
 * first ':', the revision after the last '-'. What dpkg would refuse (a
 * non-numeric epoch, an empty upstream part) is still split the same way
 * and compared with verrevcmp, which keeps the order total; for a valid
 * epoch, verrevcmp on its digits is the numeric order dpkg uses.
 */
static void dpkg_split(const char *s, dpkg_version_t *v)
{
	while (is_space((unsigned char)*s))
		s++;
	const char *end = s + strlen(s);
	while (end > s && is_space((unsigned char)end[-1]))
		end--;
	const char *colon = memchr(s, ':', (size_t)(end - s));
	if (colon) {
		v->epoch = s;
		v->epoch_end = colon;
		s = colon + 1;
	} else {
		v->epoch = v->epoch_end = s;
	}
	const char *hyphen = memrchr(s, '-', (size_t)(end - s));
	v->up = s;
	if (hyphen) {
		v->up_end = hyphen;
		v->rev = hyphen + 1;
	} else {
		v->up_end = end;
		v->rev = end;
	}
	v->rev_end = end;
}

int flt_dpkg_cmp(const char *a, const char *b)
{
	dpkg_version_t x, y;
	int c;

	dpkg_split(a, &x);
	dpkg_split(b, &y);
	c = dpkg_part_cmp(x.epoch, x.epoch_end, y.epoch, y.epoch_end);
	if (!c)
		c = dpkg_part_cmp(x.up, x.up_end, y.up, y.up_end);
	if (!c)
		c = dpkg_part_cmp(x.rev, x.rev_end, y.rev, y.rev_end);
	return c;
}

/* ---- Maven -------------------------------------------------------------- */

/*
 * Maven's ComparableVersion keeps a version as a list of items (numbers,
 * strings) in which a '-' or a digit/letter transition opens a sub-list
 * that holds the rest of the version. A sub-list is therefore always the
 * last item of its parent, and the tree is a chain: it is kept here flat,
 * as tokens in which MV_LIST stands for "the rest is a sub-list". The
 * rules are those of Maven 3.9's ComparableVersion, where ".qualifier"
 * opens a sub-list as "-qualifier" does, qualifier aliases included
 * ("ga", "final" and "release" are the release itself, "cr" is "rc"),
 * with '_' as a separator like '-' (as Maven Resolver's GenericVersion
 * splits there too).
 */
enum { MV_INT, MV_STR, MV_LIST };

/*
 * Known qualifiers in their order; QUAL_RELEASE is "", "ga", "final" and
 * "release".
 */
enum {
	QUAL_ALPHA,
	QUAL_BETA,
	QUAL_MILESTONE,
	QUAL_RC,
	QUAL_SNAPSHOT,
	QUAL_RELEASE,
	QUAL_SP,
	QUAL_OTHER, /* after all of these, alphabetically by text */
};

typedef struct mv_token {
	uint8_t type;
	uint8_t qual; /* MV_STR */
	uint32_t len; /* MV_INT: digits without leading zeros (0: zero) */
	const char *text; /* MV_INT: those digits; MV_STR: the qualifier */
} mv_token_t;

typedef struct mv_version {
	mv_token_t *t;
	size_t n, cap;
	size_t in_list; /* items in the innermost list so far */
	mv_token_t local[96];
} mv_version_t;

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

static bool word_is(const char *s, size_t n, const char *w)
{
	if (strlen(w) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != w[i])
			return false;
	return true;
}

static void mv_push(mv_version_t *v, mv_token_t t)
{
	/* cap was sized for the worst case in mv_parse. */
	v->t[v->n++] = t;
	v->in_list = t.type == MV_LIST ? 0 : v->in_list + 1;
}

static void mv_push_list(mv_version_t *v)
{
	mv_push(v, (mv_token_t){ .type = MV_LIST });
}

static void mv_push_item(mv_version_t *v, bool digits, const char *s, size_t n,
			 bool followed_by_digit)
{
	mv_token_t t = { 0 };

	if (digits) {
		while (n && *s == '0')
			s++, n--;
		t.type = MV_INT;
		t.text = s;
		t.len = (uint32_t)n;
		mv_push(v, t);
		return;
	}
	t.type = MV_STR;
	t.text = s;
	t.len = (uint32_t)n;
	if (followed_by_digit && n == 1) {
		/* a1 = alpha-1, b1 = beta-1, m1 = milestone-1 */
		switch (lower((unsigned char)*s)) {
		case 'a':
			t.qual = QUAL_ALPHA;
			mv_push(v, t);
			return;
		case 'b':
			t.qual = QUAL_BETA;
			mv_push(v, t);
			return;
		case 'm':
			t.qual = QUAL_MILESTONE;
			mv_push(v, t);
			return;
		}
	}
	static const struct {
		const char *word;
		uint8_t qual;
	} known[] = {
		{ "alpha", QUAL_ALPHA },
		{ "beta", QUAL_BETA },
		{ "milestone", QUAL_MILESTONE },
		{ "rc", QUAL_RC },
		{ "cr", QUAL_RC },
		{ "snapshot", QUAL_SNAPSHOT },
		{ "ga", QUAL_RELEASE },
		{ "final", QUAL_RELEASE },
		{ "release", QUAL_RELEASE },
		{ "sp", QUAL_SP },
	};
	t.qual = QUAL_OTHER;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(known); i++)
		if (word_is(s, n, known[i].word)) {
			t.qual = known[i].qual;
			break;
		}
	mv_push(v, t);
}

static bool mv_is_null(const mv_token_t *t)
{
	return (t->type == MV_INT && t->len == 0) ||
	       (t->type == MV_STR && t->qual == QUAL_RELEASE);
}

/*
 * ComparableVersion.normalize() on every list, innermost first: trailing
 * null items (0, "", empty lists) go, and the walk goes on past a
 * non-empty sub-list ("1.0-foo" is "1-foo") but stops at any other item.
 */
static void mv_normalize(mv_version_t *v)
{
	size_t alive = 0;
	bool trimming = true;

	for (size_t i = v->n; i-- > 0;) {
		mv_token_t *t = &v->t[i];
		bool drop;

		if (t->type == MV_LIST) {
			drop = alive == 0;
			trimming = true;
		} else if (trimming && mv_is_null(t)) {
			drop = true;
		} else {
			drop = false;
			trimming = false;
		}
		t->type |= drop ? 0x80 : 0;
		alive += !drop;
	}
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++)
		if (!(v->t[i].type & 0x80))
			v->t[n++] = v->t[i];
	v->n = n;
}

/* ComparableVersion.parseVersion(); '_' is a separator like '-'. */
static void mv_parse(const char *s, mv_version_t *v)
{
	size_t len = strlen(s), start = 0;
	bool digit = false;

	/* Each byte adds at most three tokens (a list, an item, a list). */
	v->cap = 3 * len + 4;
	v->t = v->cap <= FLT_ARRAY_SIZE(v->local)
		       ? v->local
		       : flt_xmalloc(v->cap * sizeof(*v->t));
	v->n = 0;
	v->in_list = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.' || c == '-' || c == '_') {
			if (i == start)
				mv_push_item(v, true, s + i, 0, false);
			else
				mv_push_item(v, digit, s + start, i - start,
					     false);
			start = i + 1;
			if (c != '.')
				mv_push_list(v);
		} else if (is_digit((unsigned char)c)) {
			if (!digit && i > start) {
				/* 1.0.X1 < 1.0-X2: ".X" counts as "-X". */
				if (v->in_list)
					mv_push_list(v);
				mv_push_item(v, false, s + start, i - start,
					     true);
				start = i;
				mv_push_list(v);
			}
			digit = true;
		} else {
			if (digit && i > start) {
				mv_push_item(v, true, s + start, i - start,
					     false);
				start = i;
				mv_push_list(v);
			}
			digit = false;
		}
	}
	if (len > start) {
		if (!digit && v->in_list)
			mv_push_list(v);
		mv_push_item(v, digit, s + start, len - start, false);
	}
	mv_normalize(v);
}

static void mv_free(mv_version_t *v)
{
	if (v->t != v->local)
		free(v->t);
}

/* Qualifiers by their rank, unknown ones by their text, case folded. */
static int mv_qual_cmp(const mv_token_t *a, const mv_token_t *b)
{
	if (a->qual != b->qual)
		return a->qual < b->qual ? -1 : 1;
	if (a->qual != QUAL_OTHER)
		return 0;
	size_t n = a->len < b->len ? a->len : b->len;
	for (size_t i = 0; i < n; i++) {
		int x = lower((unsigned char)a->text[i]);
		int y = lower((unsigned char)b->text[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return a->len == b->len ? 0 : a->len < b->len ? -1 : 1;
}

/* An item against the padding of a shorter list (Item.compareTo(null)). */
static int mv_cmp_null(const mv_token_t *t)
{
	switch (t->type) {
	case MV_INT: return t->len != 0; /* 1.0 == 1, 1.1 > 1 */
	case MV_STR: /* 1-rc < 1, 1-sp > 1 */
		return t->qual < QUAL_RELEASE ? -1 : t->qual > QUAL_RELEASE;
	default: return 0; /* a list compares by its items, which follow */
	}
}

/* Two items of the same position, as the Item classes' compareTo. */
static int mv_item_cmp(const mv_token_t *a, const mv_token_t *b)
{
	if (a->type == MV_INT && b->type == MV_INT)
		return digits_cmp(a->text, a->len, b->text, b->len);
	if (a->type == MV_STR && b->type == MV_STR)
		return mv_qual_cmp(a, b);
	if (a->type == MV_INT)
		return 1; /* 1.1 > 1-sp, 1.1 > 1-1 */
	if (b->type == MV_INT)
		return -1;
	/* A string and a list: 1-sp < 1-1. */
	return a->type == MV_STR ? -1 : 1;
}

/*
 * ListItem.compareTo() over the flat form. Two sub-lists at the same
 * place are both the last item of their lists, so comparing them decides
 * the lists: the walk just goes on into them. Once one side is out of
 * items, the other's remaining items (in any depth of sub-lists) are
 * compared with null in order.
 */
static int mv_cmp(const mv_version_t *a, const mv_version_t *b)
{
	size_t i = 0, j = 0;

	while (i < a->n && j < b->n) {
		const mv_token_t *x = &a->t[i], *y = &b->t[j];
		if (x->type == MV_LIST && y->type == MV_LIST) {
			i++, j++;
			continue;
		}
		int c = mv_item_cmp(x, y);
		if (c)
			return c;
		i++, j++;
	}
	for (; i < a->n; i++) {
		int c = mv_cmp_null(&a->t[i]);
		if (c)
			return c;
	}
	for (; j < b->n; j++) {
		int c = mv_cmp_null(&b->t[j]);
		if (c)
			return -c;
	}
	return 0;
}

int flt_maven_cmp(const char *a, const char *b)
{
	mv_version_t x, y;
	int c;

	if (strcmp(a, b) == 0)
		return 0;
	mv_parse(a, &x);
	mv_parse(b, &y);
	c = mv_cmp(&x, &y);
	mv_free(&x);
	mv_free(&y);
	return c;
}

/* ---- dispatch ----------------------------------------------------------- */

int flt_version_cmp(flt_vscheme_t s, const char *a, const char *b, int *out,
		    flt_error_t *err)
{
	int c, rc;

	switch (s) {
	case FLT_VS_DPKG: *out = flt_dpkg_cmp(a, b); return 0;
	case FLT_VS_MAVEN: *out = flt_maven_cmp(a, b); return 0;
	case FLT_VS_SEMVER:
		rc = flt_semver_cmp(a, b, &c);
		if (rc < 0) {
			int dummy;
			const char *bad =
				flt_semver_cmp(a, a, &dummy) < 0 ? a : b;
			return flt_err(err, -EINVAL,
				       "\"%.64s\" is not a semantic version",
				       bad);
		}
		*out = c;
		return 0;
	}
	return flt_err(err, -EINVAL, "unknown version scheme %d", (int)s);
}
