#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "flotilla/query.h"
#include "flotilla/regex.h"
#include "flotilla/util.h"
#include "flotilla/vercmp.h"

#define QUERY_TEXT_MAX 4096
#define QUERY_DEPTH_MAX 32
#define QUERY_TERMS_MAX 256
#define ADVISORY_FILE_MAX (4u << 20)
#define ADVISORY_ID_MAX 64

/* ---- terms ------------------------------------------------------------- */

enum op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_RE };

static const char *const op_names[] = {
	[OP_EQ] = "=", [OP_NE] = "!=", [OP_LT] = "<", [OP_LE] = "<=",
	[OP_GT] = ">", [OP_GE] = ">=", [OP_RE] = "~",
};

typedef struct vclause {
	enum op op;
	char *version;
} vclause_t;

/* An interval of versions; a NULL bound is unbounded. */
typedef struct vrange {
	char *lo, *hi;
	bool lo_incl, hi_incl;
} vrange_t;

#define KIND(k) (1u << FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_##k)
#define KINDS_ANY (KIND(UNKNOWN) | KIND(MANAGED) | KIND(DPKG) | KIND(JAVA))
#define SCHEME_BY_KIND (-1)

/* The prefixes a package term may carry: a scheme, a kind, or both. */
static const struct prefix {
	const char *word;
	unsigned kinds;
	int scheme;
} prefixes[] = {
	{ "maven", KIND(JAVA) | KIND(MANAGED), FLT_VS_MAVEN },
	{ "semver", KIND(JAVA) | KIND(MANAGED), FLT_VS_SEMVER },
	{ "dpkg", KIND(DPKG), FLT_VS_DPKG },
	{ "java", KIND(JAVA), SCHEME_BY_KIND },
	{ "managed", KIND(MANAGED), SCHEME_BY_KIND },
};

typedef struct pkg_term {
	const struct prefix *prefix; /* NULL: any kind, by-kind order */
	char *group; /* NULL: any group */
	char *name;
	vclause_t *clauses; /* all must hold */
	size_t n_clauses;
	vrange_t *ranges; /* one must hold, when there are any */
	size_t n_ranges;
} pkg_term_t;

enum node_key { KEY_NAME, KEY_ID, KEY_OTHER };

typedef struct node_term {
	enum node_key which;
	char *key; /* "node.name", "attr.os_id", "label.zone" */
	enum op op;
	char *value;
	flt_regex_t *re; /* OP_RE */
} node_term_t;

enum qn_kind { QN_ALL, QN_PKG, QN_NODE, QN_NOT, QN_AND, QN_OR };

typedef struct qnode {
	enum qn_kind kind;
	struct qnode **kids; /* QN_NOT: one; QN_AND, QN_OR: two or more */
	size_t n_kids;
	pkg_term_t *pkg;
	node_term_t *node;
} qnode_t;

struct flt_query {
	qnode_t *root;
	char *text; /* canonical */
	/* The first regular expression that a bound stopped while matching:
	 * 0 none, 1 being written, 2 in match_err. */
	atomic_int match_failed;
	flt_error_t match_err;
};

typedef struct advisory {
	flt_advisory_t pub;
	int scheme;
	vrange_t *ranges;
	size_t n_ranges;
} advisory_t;

struct flt_advisories {
	json_t *json; /* holds the strings pub points to */
	advisory_t *v;
	size_t n;
};

static void ranges_free(vrange_t *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].lo);
		free(r[i].hi);
	}
	free(r);
}

static void pkg_free(pkg_term_t *t)
{
	if (!t)
		return;
	free(t->group);
	free(t->name);
	for (size_t i = 0; i < t->n_clauses; i++)
		free(t->clauses[i].version);
	free(t->clauses);
	ranges_free(t->ranges, t->n_ranges);
	free(t);
}

static void node_free(node_term_t *t)
{
	if (!t)
		return;
	flt_regex_free(t->re);
	free(t->key);
	free(t->value);
	free(t);
}

static void qnode_free(qnode_t *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n_kids; i++)
		qnode_free(n->kids[i]);
	free(n->kids);
	pkg_free(n->pkg);
	node_free(n->node);
	free(n);
}

static qnode_t *qnode_new(enum qn_kind kind)
{
	qnode_t *n = flt_xcalloc(1, sizeof(*n));
	n->kind = kind;
	return n;
}

static void qnode_add(qnode_t *n, qnode_t *kid)
{
	n->kids = flt_xrealloc(n->kids, (n->n_kids + 1) * sizeof(*n->kids));
	n->kids[n->n_kids++] = kid;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = flt_xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* ---- the parser -------------------------------------------------------- */

typedef struct parser {
	const char *text; /* the whole text, for columns */
	const char *p;
	const flt_advisories_t *adv;
	unsigned depth, terms;
	bool failed;
	const char *end; /* what the end of the text is called */
	flt_error_t *err;
} parser_t;

static bool is_word_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '+' || c == ':' || c == '/' || c == '@';
}

static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n'; }

/* "∪" (U+222A) may stand for '|' between ranges. */
static size_t union_sign(const char *p)
{
	if (*p == '|')
		return 1;
	/* Byte by byte: p may end sooner. */
	if ((unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x88 &&
	    (unsigned char)p[2] == 0xaa)
		return 3;
	return 0;
}

static void skip_space(parser_t *ps)
{
	while (is_space((unsigned char)*ps->p))
		ps->p++;
}

/* 1-based, in characters (UTF-8 continuation bytes do not count). */
static size_t column(const parser_t *ps, const char *at)
{
	size_t col = 1;
	for (const char *c = ps->text; c < at; c++)
		col += ((unsigned char)*c & 0xc0) != 0x80;
	return col;
}

static void fail_at(parser_t *ps, const char *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_at(parser_t *ps, const char *at, const char *fmt, ...)
{
	char msg[FLT_ERROR_MSG_MAX];
	va_list ap;

	if (ps->failed)
		return;
	ps->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	flt_err(ps->err, -EINVAL, "column %zu: %s", column(ps, at), msg);
}

/* "expected what, found <the token at at>" */
static void expected(parser_t *ps, const char *at, const char *what)
{
	char found[48];
	size_t n = 0;
	bool cut = false;

	if (!*at) {
		fail_at(ps, at, "expected %s, found the end of the %s", what,
			ps->end);
		return;
	}
	if (is_word_char((unsigned char)*at)) {
		while (is_word_char((unsigned char)at[n]) && n < 32)
			n++;
		cut = is_word_char((unsigned char)at[n]);
	} else {
		/* One character, whole even when it takes several bytes. */
		n = 1;
		while (((unsigned char)at[n] & 0xc0) == 0x80 && n < 4)
			n++;
	}
	memcpy(found, at, n);
	found[n] = '\0';
	fail_at(ps, at, "expected %s, found \"%s%s\"", what, found,
		cut ? "..." : "");
}

static size_t word_len(const char *p)
{
	size_t n = 0;
	while (is_word_char((unsigned char)p[n]))
		n++;
	return n;
}

/* Is the next word kw (any case)? Consumes it when it is. */
static bool accept_keyword(parser_t *ps, const char *kw)
{
	skip_space(ps);
	size_t n = word_len(ps->p);
	if (n != strlen(kw) || strncasecmp(ps->p, kw, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static bool peek_keyword(parser_t *ps, const char *kw)
{
	const char *save = ps->p;
	bool yes = accept_keyword(ps, kw);
	ps->p = save;
	return yes;
}

/* '...' or "..." at ps->p into *out; false (and an error) if unclosed. */
static bool quoted(parser_t *ps, char **out)
{
	const char *start = ps->p;
	const char *end = strchr(start + 1, *start);

	if (!end) {
		fail_at(ps, start, "unterminated string");
		return false;
	}
	*out = xstrndup(start + 1, (size_t)(end - start - 1));
	ps->p = end + 1;
	return true;
}

/*
 * A version: quoted, or a run up to a blank, a quote, one of ,()[]| or
 * "∪". NULL (with an error naming what) when there is none.
 */
static char *version(parser_t *ps, const char *what)
{
	char *v = NULL;

	skip_space(ps);
	const char *start = ps->p;
	if (*start == '"' || *start == '\'') {
		if (!quoted(ps, &v))
			return NULL;
		if (!*v) {
			free(v);
			fail_at(ps, start, "expected %s, found \"\"", what);
			return NULL;
		}
		return v;
	}
	const char *e = start;
	/* Not from an operator's character: "=< 2" is a typo, not "<". */
	if (!strchr("<>=!", *start))
		while (*e && !is_space((unsigned char)*e) &&
		       !strchr(",()[]|\"'", *e) && !union_sign(e))
			e++;
	if (e == start) {
		expected(ps, start, what);
		return NULL;
	}
	ps->p = e;
	return xstrndup(start, (size_t)(e - start));
}

/* A node term's value: quoted, or a run up to a blank, a parenthesis or
 * a quote. */
static char *value(parser_t *ps)
{
	char *v = NULL;

	skip_space(ps);
	const char *start = ps->p;
	if (*start == '"' || *start == '\'')
		return quoted(ps, &v) ? v : NULL;
	const char *e = start;
	while (*e && !is_space((unsigned char)*e) && !strchr("()\"'", *e))
		e++;
	if (e == start) {
		expected(ps, start, "a value");
		return NULL;
	}
	ps->p = e;
	return xstrndup(start, (size_t)(e - start));
}

/* =, ==, !=, <, <=, >, >= (and ~ when re): the operator, or -1. */
static int operator(parser_t *ps, bool re)
{
	skip_space(ps);
	const char *p = ps->p;
	int op = -1;
	size_t n = 1;

	switch (p[0]) {
	case '=':
		op = OP_EQ;
		n = p[1] == '=' ? 2 : 1;
		break;
	case '!':
		if (p[1] == '=')
			op = OP_NE, n = 2;
		break;
	case '<':
		op = p[1] == '=' ? OP_LE : OP_LT;
		n = p[1] == '=' ? 2 : 1;
		break;
	case '>':
		op = p[1] == '=' ? OP_GE : OP_GT;
		n = p[1] == '=' ? 2 : 1;
		break;
	case '~':
		if (re)
			op = OP_RE;
		break;
	}
	if (op >= 0)
		ps->p += n;
	return op;
}

static bool semver_ok(const char *v)
{
	int c;
	return flt_version_cmp(FLT_VS_SEMVER, v, v, &c, NULL) == 0;
}

/* Under a semver: prefix every version must be one. */
static bool check_version(parser_t *ps, int scheme, const char *v,
			  const char *at)
{
	if (scheme != FLT_VS_SEMVER || semver_ok(v))
		return true;
	fail_at(ps, at, "\"%s\" is not a semantic version", v);
	return false;
}

static bool range_empty_in(int scheme, const vrange_t *x)
{
	int c = 0;

	if (flt_version_cmp(scheme, x->lo, x->hi, &c, NULL) < 0)
		return false; /* not semver versions: refused elsewhere */
	return c > 0 || (c == 0 && !(x->lo_incl && x->hi_incl));
}

/*
 * Whether no version can be in x. Without a scheme the order depends on
 * each item's kind (dpkg's for dpkg packages, Maven's for Java archives
 * and managed packages): a range is refused when it is empty under every
 * order the term's kinds may meet, since it then matches nothing; one
 * that holds versions under one of them ("[2.15.0-rc1, 2.15.0)" in
 * Maven's) is a real range for the items ordered that way.
 */
static bool range_empty(int scheme, unsigned kinds, const vrange_t *x)
{
	if (!x->lo || !x->hi)
		return false;
	if (scheme != SCHEME_BY_KIND)
		return range_empty_in(scheme, x);
	bool empty = true;
	if (kinds & (KIND(DPKG) | KIND(UNKNOWN)))
		empty = empty && range_empty_in(FLT_VS_DPKG, x);
	if (kinds & (KIND(JAVA) | KIND(MANAGED) | KIND(UNKNOWN)))
		empty = empty && range_empty_in(FLT_VS_MAVEN, x);
	return empty;
}

/*
 * [lo, hi) | (lo, hi] | ... into *out. Bounds are checked against scheme
 * when it is one (an advisory's or a prefix's): semver bounds must parse.
 * No range may be empty (see range_empty).
 */
static bool ranges(parser_t *ps, int scheme, unsigned kinds, vrange_t **out,
		   size_t *n_out)
{
	vrange_t *r = NULL;
	size_t n = 0;

	for (;;) {
		vrange_t x = { 0 };
		skip_space(ps);
		const char *open = ps->p;
		if (*open != '[' && *open != '(') {
			expected(ps, open, "a range such as [2.0, 2.3.1)");
			goto fail;
		}
		x.lo_incl = *open == '[';
		ps->p++;
		skip_space(ps);
		const char *lo_at = ps->p;
		if (*ps->p != ',' &&
		    (!(x.lo = version(ps, "a version or \",\"")) ||
		     !check_version(ps, scheme, x.lo, lo_at)))
			goto fail_x;
		skip_space(ps);
		if (*ps->p != ',') {
			expected(ps, ps->p, "\",\"");
			goto fail_x;
		}
		ps->p++;
		skip_space(ps);
		const char *hi_at = ps->p;
		if (*ps->p != ')' && *ps->p != ']' &&
		    (!(x.hi = version(ps, "a version, \")\" or \"]\"")) ||
		     !check_version(ps, scheme, x.hi, hi_at)))
			goto fail_x;
		skip_space(ps);
		if (*ps->p != ')' && *ps->p != ']') {
			expected(ps, ps->p, "\")\" or \"]\"");
			goto fail_x;
		}
		x.hi_incl = *ps->p == ']';
		ps->p++;
		if (range_empty(scheme, kinds, &x)) {
			fail_at(ps, open, "empty range: %s is not below %s",
				x.lo, x.hi);
			goto fail_x;
		}
		r = flt_xrealloc(r, (n + 1) * sizeof(*r));
		r[n++] = x;
		skip_space(ps);
		size_t u = union_sign(ps->p);
		if (!u)
			break;
		ps->p += u;
		continue;
fail_x:
		free(x.lo);
		free(x.hi);
		goto fail;
	}
	*out = r;
	*n_out = n;
	return true;
fail:
	ranges_free(r, n);
	return false;
}

static bool clauses(parser_t *ps, pkg_term_t *t, int scheme)
{
	for (;;) {
		skip_space(ps);
		const char *at = ps->p;
		int op = operator(ps, false);
		if (op < 0) {
			expected(ps, at, "an operator (=, !=, <, <=, >, >=)");
			return false;
		}
		skip_space(ps);
		const char *vat = ps->p;
		char *v = version(ps, "a version");
		if (!v)
			return false;
		if (!check_version(ps, scheme, v, vat)) {
			free(v);
			return false;
		}
		size_t size = (t->n_clauses + 1) * sizeof(*t->clauses);
		t->clauses = flt_xrealloc(t->clauses, size);
		t->clauses[t->n_clauses++] = (vclause_t){ op, v };
		skip_space(ps);
		if (*ps->p != ',')
			return true;
		ps->p++;
	}
}

static const advisory_t *advisory_find(const flt_advisories_t *a,
				       const char *id, size_t n);

/* advisory:ID, its word at start (n bytes), ID after the colon. */
static qnode_t *advisory_term(parser_t *ps, const char *start, size_t n)
{
	const char *id = start + strlen("advisory:");
	size_t idn = n - strlen("advisory:");

	if (!idn) {
		expected(ps, id, "an advisory id");
		return NULL;
	}
	if (!ps->adv) {
		fail_at(ps, start, "advisory:%.*s: no advisories are loaded",
			(int)idn, id);
		return NULL;
	}
	const advisory_t *a = advisory_find(ps->adv, id, idn);
	if (!a) {
		fail_at(ps, start, "unknown advisory \"%.*s\"", (int)idn, id);
		return NULL;
	}
	pkg_term_t *t = flt_xcalloc(1, sizeof(*t));
	for (size_t i = 0; i < FLT_ARRAY_SIZE(prefixes); i++)
		if (strcmp(prefixes[i].word, a->pub.ecosystem) == 0)
			t->prefix = &prefixes[i];
	t->name = flt_xstrdup(a->pub.name);
	t->ranges = flt_xcalloc(a->n_ranges, sizeof(*t->ranges));
	t->n_ranges = a->n_ranges;
	for (size_t i = 0; i < a->n_ranges; i++) {
		t->ranges[i] = a->ranges[i];
		t->ranges[i].lo =
			a->ranges[i].lo ? flt_xstrdup(a->ranges[i].lo) : NULL;
		t->ranges[i].hi =
			a->ranges[i].hi ? flt_xstrdup(a->ranges[i].hi) : NULL;
	}
	qnode_t *q = qnode_new(QN_PKG);
	q->pkg = t;
	return q;
}

static bool starts_with_ci(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && strncasecmp(s, prefix, k) == 0;
}

/* node.name, node.id, attr.<x>, label.<x>: the word at start, n bytes. */
static qnode_t *node_term(parser_t *ps, const char *start, size_t n)
{
	node_term_t *t = flt_xcalloc(1, sizeof(*t));
	size_t plen = starts_with_ci(start, n, "node.")   ? 5
		      : starts_with_ci(start, n, "attr.") ? 5
							  : 6;
	const char *rest = start + plen;
	size_t rlen = n - plen;

	t->op = OP_EQ;
	if (plen == 5 && !strncasecmp(start, "node.", 5)) {
		if (rlen == 4 && !strncasecmp(rest, "name", 4))
			t->which = KEY_NAME, t->key = flt_xstrdup("node.name");
		else if (rlen == 2 && !strncasecmp(rest, "id", 2))
			t->which = KEY_ID, t->key = flt_xstrdup("node.id");
		else {
			expected(ps, start, "node.name or node.id");
			goto fail;
		}
	} else {
		if (!rlen) {
			fail_at(ps, start, "expected a key after \"%s\"",
				plen == 5 ? "attr." : "label.");
			goto fail;
		}
		t->which = KEY_OTHER;
		t->key = flt_xmalloc(n + 1);
		memcpy(t->key, plen == 5 ? "attr." : "label.", plen);
		memcpy(t->key + plen, rest, rlen);
		t->key[n] = '\0';
	}
	skip_space(ps);
	const char *at = ps->p;
	int op = operator(ps, true);
	if (op != OP_EQ && op != OP_NE && op != OP_RE) {
		ps->p = at;
		expected(ps, at, "=, != or ~");
		goto fail;
	}
	skip_space(ps);
	const char *vat = ps->p;
	if (!(t->value = value(ps)))
		goto fail;
	if (op == OP_RE) {
		flt_error_t e;
		if (flt_regex_compile(t->value, &t->re, &e) < 0) {
			fail_at(ps, vat, "%s", e.msg);
			goto fail;
		}
	}
	t->op = op;
	qnode_t *q = qnode_new(QN_NODE);
	q->node = t;
	return q;
fail:
	node_free(t);
	return NULL;
}

/* [prefix:][group:]name [clauses | in ranges]; the word at start. */
static qnode_t *package_term(parser_t *ps, const char *start, size_t n)
{
	pkg_term_t *t = flt_xcalloc(1, sizeof(*t));
	const char *name = start, *colon = memchr(start, ':', n);
	const char *end = start + n;

	if (colon) {
		for (size_t i = 0; i < FLT_ARRAY_SIZE(prefixes); i++)
			if ((size_t)(colon - start) ==
				    strlen(prefixes[i].word) &&
			    !strncasecmp(start, prefixes[i].word,
					 (size_t)(colon - start))) {
				t->prefix = &prefixes[i];
				name = colon + 1;
				break;
			}
	}
	colon = memchr(name, ':', (size_t)(end - name));
	if (colon) {
		if (colon == name ||
		    memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
			expected(ps, name, "a name or group:artifact");
			goto fail;
		}
		if (t->prefix && !(t->prefix->kinds & KIND(JAVA))) {
			fail_at(ps, name,
				"%s packages have no group: expected a name",
				t->prefix->word);
			goto fail;
		}
		t->group = xstrndup(name, (size_t)(colon - name));
		name = colon + 1;
	}
	if (name == end) {
		expected(ps, name, "a package name");
		goto fail;
	}
	t->name = xstrndup(name, (size_t)(end - name));

	int scheme = t->prefix ? t->prefix->scheme : SCHEME_BY_KIND;
	skip_space(ps);
	if (accept_keyword(ps, "in")) {
		if (!ranges(ps, scheme,
			    t->prefix ? t->prefix->kinds : KINDS_ANY,
			    &t->ranges, &t->n_ranges))
			goto fail;
	} else if (strchr("=!<>", *ps->p) && *ps->p) {
		if (!clauses(ps, t, scheme))
			goto fail;
	} else if (*ps->p && *ps->p != ')' && !peek_keyword(ps, "and") &&
		   !peek_keyword(ps, "or")) {
		expected(ps, ps->p,
			 "an operator (=, !=, <, <=, >, >=), \"in\", \"and\", "
			 "\"or\" or the end of the query");
		goto fail;
	}
	qnode_t *q = qnode_new(QN_PKG);
	q->pkg = t;
	return q;
fail:
	pkg_free(t);
	return NULL;
}

static qnode_t *parse_or(parser_t *ps);

static qnode_t *parse_primary(parser_t *ps)
{
	skip_space(ps);
	const char *start = ps->p;

	if (*start == '(') {
		if (++ps->depth > QUERY_DEPTH_MAX) {
			fail_at(ps, start, "nested deeper than %d",
				QUERY_DEPTH_MAX);
			return NULL;
		}
		ps->p++;
		qnode_t *n = parse_or(ps);
		if (!n)
			return NULL;
		skip_space(ps);
		if (*ps->p != ')') {
			expected(ps, ps->p, "\"and\", \"or\" or \")\"");
			qnode_free(n);
			return NULL;
		}
		ps->p++;
		ps->depth--;
		return n;
	}
	size_t n = word_len(start);
	if (!n && *start == '[') {
		fail_at(ps, start,
			"expected a term, found \"[\" (ranges are joined with "
			"\"|\", not \"or\")");
		return NULL;
	}
	if (!n) {
		expected(ps, start, "a term");
		return NULL;
	}
	/* and, or and in where a term should start are a missing term. */
	if ((n == 3 && !strncasecmp(start, "and", 3)) ||
	    (n == 2 &&
	     (!strncasecmp(start, "or", 2) || !strncasecmp(start, "in", 2)))) {
		expected(ps, start, "a term");
		return NULL;
	}
	if (++ps->terms > QUERY_TERMS_MAX) {
		fail_at(ps, start, "more than %d terms", QUERY_TERMS_MAX);
		return NULL;
	}
	ps->p += n;
	if (n == 3 && !strncasecmp(start, "all", 3))
		return qnode_new(QN_ALL);
	if (starts_with_ci(start, n, "node.") ||
	    starts_with_ci(start, n, "attr.") ||
	    starts_with_ci(start, n, "label."))
		return node_term(ps, start, n);
	if (starts_with_ci(start, n, "advisory:"))
		return advisory_term(ps, start, n);
	return package_term(ps, start, n);
}

static qnode_t *parse_not(parser_t *ps)
{
	skip_space(ps);
	const char *at = ps->p;

	if (!accept_keyword(ps, "not"))
		return parse_primary(ps);
	if (++ps->depth > QUERY_DEPTH_MAX) {
		fail_at(ps, at, "nested deeper than %d", QUERY_DEPTH_MAX);
		return NULL;
	}
	qnode_t *kid = parse_not(ps);
	if (!kid)
		return NULL;
	ps->depth--;
	qnode_t *n = qnode_new(QN_NOT);
	qnode_add(n, kid);
	return n;
}

/* and/or: kids joined by the keyword, flat. */
static qnode_t *parse_list(parser_t *ps, enum qn_kind kind, const char *kw,
			   qnode_t *(*next)(parser_t *))
{
	qnode_t *first = next(ps), *n = NULL;

	if (!first)
		return NULL;
	while (accept_keyword(ps, kw)) {
		qnode_t *kid = next(ps);
		if (!kid) {
			qnode_free(n ? n : first);
			return NULL;
		}
		if (!n) {
			n = qnode_new(kind);
			qnode_add(n, first);
		}
		qnode_add(n, kid);
	}
	return n ? n : first;
}

static qnode_t *parse_and(parser_t *ps)
{
	return parse_list(ps, QN_AND, "and", parse_not);
}

static qnode_t *parse_or(parser_t *ps)
{
	return parse_list(ps, QN_OR, "or", parse_and);
}

/* ---- canonical form ---------------------------------------------------- */

typedef struct sbuf {
	char *s;
	size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = flt_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

/* s as the parser reads it back: bare when it can be (no character of
 * stops, none of lead first), else quoted. */
static void sb_text(sbuf_t *b, const char *s, const char *stops,
		    const char *lead)
{
	bool bare = *s != '\0' && !strchr(lead, *s);
	for (const char *c = s; *c && bare; c++)
		if (is_space((unsigned char)*c) || strchr(stops, *c) ||
		    union_sign(c))
			bare = false;
	if (bare) {
		sb_puts(b, s);
		return;
	}
	const char *q = strchr(s, '"') ? "'" : "\"";
	sb_puts(b, q);
	sb_puts(b, s);
	sb_puts(b, q);
}

static void sb_version(sbuf_t *b, const char *v)
{
	/* A bare version cannot start with an operator's character. */
	sb_text(b, v, ",()[]|\"'", "<>=!");
}

static void print_pkg(sbuf_t *b, const pkg_term_t *t)
{
	if (t->prefix) {
		sb_puts(b, t->prefix->word);
		sb_puts(b, ":");
	}
	if (t->group) {
		sb_puts(b, t->group);
		sb_puts(b, ":");
	}
	sb_puts(b, t->name);
	for (size_t i = 0; i < t->n_clauses; i++) {
		sb_puts(b, i ? ", " : " ");
		sb_puts(b, op_names[t->clauses[i].op]);
		sb_puts(b, " ");
		sb_version(b, t->clauses[i].version);
	}
	for (size_t i = 0; i < t->n_ranges; i++) {
		const vrange_t *r = &t->ranges[i];
		sb_puts(b, i ? " | " : " in ");
		sb_puts(b, r->lo_incl ? "[" : "(");
		if (r->lo)
			sb_version(b, r->lo);
		sb_puts(b, ", ");
		if (r->hi)
			sb_version(b, r->hi);
		sb_puts(b, r->hi_incl ? "]" : ")");
	}
}

static int precedence(const qnode_t *n)
{
	switch (n->kind) {
	case QN_OR: return 1;
	case QN_AND: return 2;
	case QN_NOT: return 3;
	default: return 4;
	}
}

static void print_node(sbuf_t *b, const qnode_t *n, int outer)
{
	bool parens = precedence(n) < outer;

	if (parens)
		sb_puts(b, "(");
	switch (n->kind) {
	case QN_ALL: sb_puts(b, "all"); break;
	case QN_PKG: print_pkg(b, n->pkg); break;
	case QN_NODE:
		sb_puts(b, n->node->key);
		sb_puts(b, " ");
		sb_puts(b, op_names[n->node->op]);
		sb_puts(b, " ");
		sb_text(b, n->node->value, "()\"'", "");
		break;
	case QN_NOT:
		sb_puts(b, "not ");
		print_node(b, n->kids[0], 3);
		break;
	case QN_AND:
	case QN_OR:
		for (size_t i = 0; i < n->n_kids; i++) {
			if (i && n->kind == QN_AND)
				sb_puts(b, " and ");
			else if (i)
				sb_puts(b, " or ");
			/* A nested list of the same kind keeps its
			 * parentheses only where they change nothing. */
			print_node(b, n->kids[i], precedence(n) + (i > 0));
		}
		break;
	}
	if (parens)
		sb_puts(b, ")");
}

/* ---- parse entry point ------------------------------------------------- */

int flt_query_parse(const char *text, const flt_advisories_t *adv,
		    flt_query_t **out, flt_error_t *err)
{
	size_t len = strlen(text);
	parser_t ps = {
		.text = text, .p = text, .adv = adv, .end = "query", .err = err
	};

	if (len > QUERY_TEXT_MAX)
		return flt_err(err, -EINVAL, "query: %zu bytes, at most %d",
			       len, QUERY_TEXT_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
			return flt_err(err, -EINVAL,
				       "column %zu: control character 0x%02x",
				       column(&ps, text + i), c);
	}
	const char *why;
	size_t at = flt_text_check(text, len, 0, &why);
	if (at < len)
		return flt_err(err, -EINVAL, "query: %s at byte %zu", why, at);

	qnode_t *root = parse_or(&ps);
	if (root) {
		skip_space(&ps);
		if (*ps.p) {
			expected(&ps, ps.p,
				 *ps.p == ')' ? "the end of the query (this "
						"\")\" closes nothing)"
					      : "\"and\", \"or\" or the end "
						"of the query");
			qnode_free(root);
			root = NULL;
		}
	}
	if (!root)
		return -EINVAL;

	flt_query_t *q = flt_xcalloc(1, sizeof(*q));
	sbuf_t b = { 0 };
	q->root = root;
	print_node(&b, root, 0);
	q->text = b.s;
	*out = q;
	return 0;
}

void flt_query_free(flt_query_t *q)
{
	if (!q)
		return;
	qnode_free(q->root);
	free(q->text);
	free(q);
}

const char *flt_query_string(const flt_query_t *q) { return q->text; }

static bool has_pkg(const qnode_t *n)
{
	if (n->kind == QN_PKG)
		return true;
	for (size_t i = 0; i < n->n_kids; i++)
		if (has_pkg(n->kids[i]))
			return true;
	return false;
}

bool flt_query_has_package_term(const flt_query_t *q)
{
	return has_pkg(q->root);
}

/* ---- matching ---------------------------------------------------------- */

static const char *str(const char *s) { return s ? s : ""; }

static int default_scheme(Flotilla__InventoryKind kind)
{
	/* Java and managed packages, and kinds newer than this code, order
	 * as Maven does; only dpkg's own database orders as dpkg. */
	return kind == FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_DPKG
		       ? FLT_VS_DPKG
		       : FLT_VS_MAVEN;
}

static unsigned kind_bit(Flotilla__InventoryKind kind)
{
	unsigned k = (unsigned)kind;

	if (k > FLOTILLA__INVENTORY_KIND__INVENTORY_KIND_JAVA)
		return KIND(UNKNOWN);
	return 1u << k;
}

/* v against bound under scheme s: false as well when it does not compare. */
static bool vcmp(int s, const char *v, const char *bound, int *c)
{
	return flt_version_cmp((flt_vscheme_t)s, v, bound, c, NULL) == 0;
}

static bool op_holds(enum op op, int c)
{
	switch (op) {
	case OP_EQ: return c == 0;
	case OP_NE: return c != 0;
	case OP_LT: return c < 0;
	case OP_LE: return c <= 0;
	case OP_GT: return c > 0;
	case OP_GE: return c >= 0;
	default: return false;
	}
}

static bool in_range(int s, const char *v, const vrange_t *r)
{
	int c;

	if (r->lo) {
		if (!vcmp(s, v, r->lo, &c) || c < 0 || (c == 0 && !r->lo_incl))
			return false;
	}
	if (r->hi) {
		if (!vcmp(s, v, r->hi, &c) || c > 0 || (c == 0 && !r->hi_incl))
			return false;
	}
	return true;
}

static bool version_holds(const pkg_term_t *t,
			  const Flotilla__InventoryItem *it)
{
	int s = t->prefix && t->prefix->scheme != SCHEME_BY_KIND
			? t->prefix->scheme
			: default_scheme(it->kind);
	const char *v = str(it->version);
	int c;

	for (size_t i = 0; i < t->n_clauses; i++)
		if (!vcmp(s, v, t->clauses[i].version, &c) ||
		    !op_holds(t->clauses[i].op, c))
			return false;
	if (!t->n_ranges)
		return true;
	for (size_t i = 0; i < t->n_ranges; i++)
		if (in_range(s, v, &t->ranges[i]))
			return true;
	return false;
}

/* Adds i to the ascending, duplicate-free hits. */
static void hit_add(size_t *hits, size_t *n, size_t i)
{
	size_t lo = 0, hi = *n;

	if (!*n || hits[*n - 1] < i) {
		hits[(*n)++] = i;
		return;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (hits[mid] < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (hits[lo] == i)
		return;
	memmove(hits + lo + 1, hits + lo, (*n - lo) * sizeof(*hits));
	hits[lo] = i;
	(*n)++;
}

/* Items are sorted by name: the run of this name is found by bisection
 * and only its items are compared. */
static bool pkg_match(const pkg_term_t *t, const flt_query_host_t *h,
		      size_t *hits, size_t *n_hits)
{
	size_t lo = 0, hi = h->n_items;
	unsigned kinds = t->prefix ? t->prefix->kinds : KINDS_ANY;
	bool any = false;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(str(h->items[mid]->name), t->name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < h->n_items; i++) {
		const Flotilla__InventoryItem *it = h->items[i];
		if (strcmp(str(it->name), t->name) != 0)
			break;
		if (!(kinds & kind_bit(it->kind)) ||
		    (t->group && strcmp(str(it->group), t->group) != 0) ||
		    !version_holds(t, it))
			continue;
		any = true;
		if (!hits)
			return true;
		hit_add(hits, n_hits, i);
	}
	return any;
}

/* Keeps the first match error for flt_query_error: a bound that stopped
 * a match makes the whole answer unreliable. */
static void match_failed(const flt_query_t *q, const flt_error_t *e)
{
	struct flt_query *w = (struct flt_query *)q;
	int none = 0;
	if (atomic_compare_exchange_strong(&w->match_failed, &none, 1)) {
		w->match_err = *e;
		atomic_store(&w->match_failed, 2);
	}
}

static bool node_match(const flt_query_t *q, const node_term_t *t,
		       const flt_query_host_t *h)
{
	flt_error_t e;
	int rc;

	const char *v = NULL;

	if (t->which == KEY_NAME && h->name)
		v = h->name;
	else if (t->which == KEY_ID && h->id)
		v = h->id;
	else if (h->attr)
		v = h->attr(h->attr_arg, t->key);
	switch (t->op) {
	case OP_EQ: return v && strcmp(v, t->value) == 0;
	case OP_NE: return !v || strcmp(v, t->value) != 0;
	default:
		if (!v)
			return false;
		rc = flt_regex_match(t->re, v, &e);
		if (rc < 0)
			match_failed(q, &e);
		return rc == 1;
	}
}

static bool eval(const flt_query_t *q, const qnode_t *n,
		 const flt_query_host_t *h)
{
	switch (n->kind) {
	case QN_ALL: return true;
	case QN_PKG: return pkg_match(n->pkg, h, NULL, NULL);
	case QN_NODE: return node_match(q, n->node, h);
	case QN_NOT: return !eval(q, n->kids[0], h);
	case QN_AND:
		for (size_t i = 0; i < n->n_kids; i++)
			if (!eval(q, n->kids[i], h))
				return false;
		return true;
	case QN_OR:
		for (size_t i = 0; i < n->n_kids; i++)
			if (eval(q, n->kids[i], h))
				return true;
		return false;
	}
	return false;
}

/*
 * The hits of a node known to hold: every package term on a path of true
 * nodes without a not. The kids of an "and" all hold; those of an "or"
 * are asked again.
 */
static void collect(const flt_query_t *q, const qnode_t *n,
		    const flt_query_host_t *h, size_t *hits, size_t *n_hits)
{
	switch (n->kind) {
	case QN_PKG: pkg_match(n->pkg, h, hits, n_hits); break;
	case QN_AND:
		for (size_t i = 0; i < n->n_kids; i++)
			collect(q, n->kids[i], h, hits, n_hits);
		break;
	case QN_OR:
		for (size_t i = 0; i < n->n_kids; i++)
			if (eval(q, n->kids[i], h))
				collect(q, n->kids[i], h, hits, n_hits);
		break;
	default: break;
	}
}

int flt_query_item_cmp(const void *a, const void *b)
{
	const Flotilla__InventoryItem *x = *(Flotilla__InventoryItem *const *)a;
	const Flotilla__InventoryItem *y = *(Flotilla__InventoryItem *const *)b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if ((c = strcmp(x->path, y->path)))
		return c;
	return strcmp(x->version, y->version);
}

bool flt_query_match(const flt_query_t *q, const flt_query_host_t *host,
		     size_t *hits, size_t *n_hits)
{
	if (n_hits)
		*n_hits = 0;
	/* A lone package term collects its hits as it decides. */
	if (q->root->kind == QN_PKG && hits && n_hits)
		return pkg_match(q->root->pkg, host, hits, n_hits);
	if (!eval(q, q->root, host))
		return false;
	if (hits && n_hits)
		collect(q, q->root, host, hits, n_hits);
	return true;
}

int flt_query_error(const flt_query_t *q, flt_error_t *err)
{
	if (atomic_load(&((struct flt_query *)q)->match_failed) != 2)
		return 0;
	if (err)
		*err = q->match_err;
	return q->match_err.code;
}

/* ---- advisories -------------------------------------------------------- */

static const advisory_t *advisory_find(const flt_advisories_t *a,
				       const char *id, size_t n)
{
	for (size_t i = 0; i < a->n; i++) {
		const flt_advisory_t *p = &a->v[i].pub;
		if (strlen(p->id) == n && !strncasecmp(p->id, id, n))
			return &a->v[i];
		for (size_t k = 0; k < p->n_aliases; k++)
			if (strlen(p->aliases[k]) == n &&
			    !strncasecmp(p->aliases[k], id, n))
				return &a->v[i];
	}
	return NULL;
}

size_t flt_advisories_count(const flt_advisories_t *a) { return a ? a->n : 0; }

const flt_advisory_t *flt_advisories_at(const flt_advisories_t *a, size_t i)
{
	return a && i < a->n ? &a->v[i].pub : NULL;
}

const flt_advisory_t *flt_advisories_find(const flt_advisories_t *a,
					  const char *id)
{
	const advisory_t *x = a ? advisory_find(a, id, strlen(id)) : NULL;
	return x ? &x->pub : NULL;
}

void flt_advisories_free(flt_advisories_t *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		advisory_t *x = &a->v[i];
		free((void *)x->pub.aliases);
		free((void *)x->pub.affected);
		free((void *)x->pub.fixed);
		ranges_free(x->ranges, x->n_ranges);
	}
	free(a->v);
	json_decref(a->json);
	free(a);
}

/* Where a loader message points: "advisories[2] (CVE-2021-45105)". */
typedef struct adv_ctx {
	const char *path;
	size_t index;
	const char *id;
	flt_error_t *err;
} adv_ctx_t;

static int adv_bad(const adv_ctx_t *c, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int adv_bad(const adv_ctx_t *c, const char *field, const char *fmt, ...)
{
	char msg[FLT_ERROR_MSG_MAX], id[ADVISORY_ID_MAX + 8] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->id)
		snprintf(id, sizeof(id), " (%s)", c->id);
	return flt_err(c->err, -EINVAL, "%s: advisories[%zu]%s: %s: %s",
		       c->path, c->index, id, field, msg);
}

/* An id or alias: what advisory:ID can name. */
static bool id_valid(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > ADVISORY_ID_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!is_word_char((unsigned char)*p) || *p == ':')
			return false;
	return true;
}

static bool name_valid(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (const char *p = s; *p; p++)
		if (!is_word_char((unsigned char)*p) || *p == ':')
			return false;
	return true;
}

/* A string member: required (non-empty) or optional (NULL when absent,
 * *out untouched). */
static int adv_string(const adv_ctx_t *c, json_t *obj, const char *key,
		      const char *field, bool required, const char **out)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		if (required)
			return adv_bad(c, field, "missing");
		return 0;
	}
	if (!json_is_string(v))
		return adv_bad(c, field, "must be a string");
	if (required && !json_string_length(v))
		return adv_bad(c, field, "empty");
	*out = json_string_value(v);
	return 0;
}

/* An array of strings into a NULL-terminated array of borrowed strings. */
static int adv_strings(const adv_ctx_t *c, json_t *obj, const char *key,
		       bool required, const char *const **out, size_t *n_out)
{
	json_t *arr = json_object_get(obj, key), *v;
	size_t i;

	*out = flt_xcalloc(1, sizeof(char *));
	*n_out = 0;
	if (!arr)
		return required ? adv_bad(c, key, "missing") : 0;
	if (!json_is_array(arr))
		return adv_bad(c, key, "must be an array of strings");
	if (required && !json_array_size(arr))
		return adv_bad(c, key, "empty");
	const char **list =
		flt_xcalloc(json_array_size(arr) + 1, sizeof(*list));
	free((void *)*out);
	*out = list;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v) || !json_string_length(v)) {
			char field[64];
			snprintf(field, sizeof(field), "%s[%zu]", key, i);
			return adv_bad(c, field, "must be a non-empty string");
		}
		list[i] = json_string_value(v);
		*n_out = i + 1;
	}
	return 0;
}

static bool key_known(const char *key, const char *const *keys)
{
	for (; *keys; keys++)
		if (!strcmp(key, *keys))
			return true;
	return false;
}

static int adv_entry(adv_ctx_t *c, json_t *e, advisory_t *a)
{
	static const char *const keys[] = { "id",       "aliases", "summary",
					    "severity", "cvss",    "package",
					    "affected", "fixed",   "source",
					    "notes",    NULL };
	static const char *const pkg_keys[] = { "ecosystem", "group", "name",
						NULL };
	static const char *const severities[] = { "critical", "high",
						  "moderate", "medium", "low" };
	const char *key;
	json_t *v;
	int rc;

	if (!json_is_object(e))
		return adv_bad(c, "entry", "must be an object");
	json_t *id = json_object_get(e, "id");
	if (json_is_string(id) && id_valid(json_string_value(id)))
		c->id = json_string_value(id);
	json_object_foreach(e, key, v)
	{
		if (!key_known(key, keys))
			return adv_bad(c, key, "unknown field");
	}
	if ((rc = adv_string(c, e, "id", "id", true, &a->pub.id)) < 0)
		return rc;
	if (!id_valid(a->pub.id))
		return adv_bad(c, "id",
			       "\"%.64s\" is not an id (letters, digits, "
			       "'.', '_', '-', '+', '/', '@'; at most %d)",
			       a->pub.id, ADVISORY_ID_MAX);
	if ((rc = adv_strings(c, e, "aliases", false, &a->pub.aliases,
			      &a->pub.n_aliases)) < 0)
		return rc;
	for (size_t i = 0; i < a->pub.n_aliases; i++)
		if (!id_valid(a->pub.aliases[i]))
			return adv_bad(c, "aliases", "\"%.64s\" is not an id",
				       a->pub.aliases[i]);
	if ((rc = adv_string(c, e, "summary", "summary", true,
			     &a->pub.summary)) < 0 ||
	    (rc = adv_string(c, e, "severity", "severity", true,
			     &a->pub.severity)) < 0)
		return rc;
	bool sev_ok = false;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(severities); i++)
		sev_ok = sev_ok || !strcmp(a->pub.severity, severities[i]);
	if (!sev_ok)
		return adv_bad(c, "severity",
			       "\"%.32s\": expected critical, high, moderate, "
			       "medium or low",
			       a->pub.severity);
	v = json_object_get(e, "cvss");
	if (!v)
		return adv_bad(c, "cvss", "missing");
	if (!json_is_number(v) || json_number_value(v) < 0 ||
	    json_number_value(v) > 10)
		return adv_bad(c, "cvss", "must be a number from 0 to 10");
	a->pub.cvss = json_number_value(v);

	json_t *pkg = json_object_get(e, "package");
	if (!pkg)
		return adv_bad(c, "package", "missing");
	if (!json_is_object(pkg))
		return adv_bad(c, "package", "must be an object");
	json_object_foreach(pkg, key, v)
	{
		if (!key_known(key, pkg_keys)) {
			char field[80];
			snprintf(field, sizeof(field), "package.%.64s", key);
			return adv_bad(c, field, "unknown field");
		}
	}
	a->pub.group = "";
	if ((rc = adv_string(c, pkg, "ecosystem", "package.ecosystem", true,
			     &a->pub.ecosystem)) < 0 ||
	    (rc = adv_string(c, pkg, "group", "package.group", false,
			     &a->pub.group)) < 0 ||
	    (rc = adv_string(c, pkg, "name", "package.name", true,
			     &a->pub.name)) < 0)
		return rc;
	flt_vscheme_t scheme;
	if (!flt_vscheme_parse(a->pub.ecosystem, &scheme))
		return adv_bad(c, "package.ecosystem",
			       "\"%.32s\": expected maven, dpkg or semver",
			       a->pub.ecosystem);
	a->scheme = scheme;
	if (*a->pub.group && !name_valid(a->pub.group))
		return adv_bad(c, "package.group", "\"%.64s\" is not a group",
			       a->pub.group);
	if (!name_valid(a->pub.name))
		return adv_bad(c, "package.name",
			       "\"%.64s\" is not a package name", a->pub.name);

	if ((rc = adv_strings(c, e, "affected", true, &a->pub.affected,
			      &a->pub.n_affected)) < 0)
		return rc;
	for (size_t i = 0; i < a->pub.n_affected; i++) {
		flt_error_t perr;
		parser_t ps = { .text = a->pub.affected[i],
				.p = a->pub.affected[i],
				.end = "range",
				.err = &perr };
		vrange_t *r = NULL;
		size_t n = 0;
		char field[32];

		snprintf(field, sizeof(field), "affected[%zu]", i);
		if (ranges(&ps, a->scheme, KINDS_ANY, &r, &n)) {
			skip_space(&ps);
			if (*ps.p)
				expected(&ps, ps.p,
					 "\"|\" or the end of the range");
		}
		if (ps.failed) {
			ranges_free(r, n);
			return adv_bad(c, field, "%s", perr.msg);
		}
		a->ranges =
			flt_xrealloc(a->ranges, (a->n_ranges + n) * sizeof(*r));
		memcpy(a->ranges + a->n_ranges, r, n * sizeof(*r));
		a->n_ranges += n;
		free(r);
	}
	if ((rc = adv_strings(c, e, "fixed", false, &a->pub.fixed,
			      &a->pub.n_fixed)) < 0)
		return rc;
	for (size_t i = 0; i < a->pub.n_fixed; i++)
		if (a->scheme == FLT_VS_SEMVER && !semver_ok(a->pub.fixed[i]))
			return adv_bad(c, "fixed",
				       "\"%.64s\" is not a semantic version",
				       a->pub.fixed[i]);
	if ((rc = adv_string(c, e, "source", "source", true, &a->pub.source)) <
	    0)
		return rc;
	a->pub.notes = "";
	return adv_string(c, e, "notes", "notes", false, &a->pub.notes);
}

int flt_advisories_load(const char *path, flt_advisories_t **out,
			flt_error_t *err)
{
	char *buf = NULL;
	json_error_t je;
	int rc;

	rc = flt_read_file(path, ADVISORY_FILE_MAX, &buf);
	if (rc < 0)
		return flt_err(err, rc, "%s: %s", path, flt_strerror(rc));
	json_t *root = json_loads(buf, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!root)
		return flt_err(err, -EINVAL, "%s: line %d, column %d: %s", path,
			       je.line, je.column, je.text);

	flt_advisories_t *a = flt_xcalloc(1, sizeof(*a));
	a->json = root;
	json_t *list = json_object_get(root, "advisories");
	const char *key;
	json_t *v;
	if (!json_is_object(root) || !list) {
		rc = flt_err(err, -EINVAL,
			     "%s: expected an object with \"advisories\"",
			     path);
		goto fail;
	}
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "advisories") != 0) {
			rc = flt_err(err, -EINVAL, "%s: %.64s: unknown field",
				     path, key);
			goto fail;
		}
	}
	if (!json_is_array(list)) {
		rc = flt_err(err, -EINVAL, "%s: advisories: must be an array",
			     path);
		goto fail;
	}
	a->v = flt_xcalloc(json_array_size(list) + 1, sizeof(*a->v));
	for (size_t i = 0; i < json_array_size(list); i++) {
		adv_ctx_t c = { .path = path, .index = i, .err = err };
		a->n = i + 1; /* so that a failing entry is freed too */
		rc = adv_entry(&c, json_array_get(list, i), &a->v[i]);
		if (rc < 0)
			goto fail;
		/* Its id and aliases, each unique in the whole file. */
		const flt_advisory_t *p = &a->v[i].pub;
		for (size_t k = 0; k <= p->n_aliases; k++) {
			const char *name = k ? p->aliases[k - 1] : p->id;
			const advisory_t *x =
				advisory_find(a, name, strlen(name));
			bool twice = x != &a->v[i];
			for (size_t j = 0; !twice && j < k; j++)
				twice = !strcasecmp(name, j ? p->aliases[j - 1]
							    : p->id);
			if (twice) {
				rc = adv_bad(&c, k ? "aliases" : "id",
					     "\"%s\" is given twice", name);
				goto fail;
			}
		}
	}
	*out = a;
	return 0;
fail:
	flt_advisories_free(a);
	return rc;
}
