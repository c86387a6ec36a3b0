#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "flotilla/regex.h"

#define REGEX_LEN_MAX 1024
#define REGEX_COST_MAX 500
#define REGEX_DEPTH_MAX 32

#define TOO_COMPLEX "too complex (repetitions expand past 500)"
#define REPEAT_REPEAT                                                      \
	"repeats a repetition (\"a**\", \"a+?\", \"a{2}*\"; undefined in " \
	"POSIX)"

/* Where the bracket expression starting at p ends (its last byte). */
static const char *bracket_end(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	for (; *p && *p != ']'; p++) {
		if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			char c = p[1];
			const char *q = p + 2;
			while (*q && !(q[0] == c && q[1] == ']'))
				q++;
			if (!*q)
				return q - 1;
			p = q + 1;
		}
	}
	return *p ? p : p - 1;
}

/* "{n}", "{n,}" or "{n,m}" at p: the larger bound, and its last byte. */
static bool interval(const char *p, size_t *n, const char **last)
{
	size_t lo = 0, hi = 0;
	bool comma = false;

	if (p[1] < '0' || p[1] > '9')
		return false;
	for (p++; *p >= '0' && *p <= '9'; p++)
		lo = lo < REGEX_COST_MAX ? lo * 10 + (size_t)(*p - '0') : lo;
	if (*p == ',') {
		comma = true;
		for (p++; *p >= '0' && *p <= '9'; p++)
			hi = hi < REGEX_COST_MAX ? hi * 10 + (size_t)(*p - '0')
						 : hi;
	}
	if (*p != '}')
		return false;
	*n = comma && hi > lo ? hi : lo;
	*last = p;
	return true;
}

static size_t cost_add(size_t a, size_t b)
{
	return a + b > REGEX_COST_MAX ? REGEX_COST_MAX + 1 : a + b;
}

static size_t cost_mul(size_t a, size_t b)
{
	return b && a > REGEX_COST_MAX / b ? REGEX_COST_MAX + 1 : a * b;
}

/* The last atom at this depth repeated n times in all. */
static void repeat(size_t *total, size_t *last, size_t n)
{
	if (n > 1) {
		*total = cost_add(*total, cost_mul(*last, n - 1));
		*last = cost_mul(*last, n);
	}
}

const char *flt_regex_problem(const char *re)
{
	size_t total[REGEX_DEPTH_MAX + 1] = { 0 };
	size_t last[REGEX_DEPTH_MAX + 1] = { 0 };
	unsigned depth = 0;
	bool repeated = false; /* the last thing seen was a repetition */

	if (strlen(re) > REGEX_LEN_MAX)
		return "longer than 1024 bytes";
	for (const char *p = re; *p; p++) {
		size_t atom = 1, n;
		const char *end;
		bool was = repeated;

		repeated = false;
		switch (*p) {
		case '(':
			if (++depth > REGEX_DEPTH_MAX)
				return "groups nested too deeply";
			total[depth] = last[depth] = 0;
			continue;
		case ')':
			if (depth == 0)
				break;
			atom = total[depth] ? total[depth] : 1;
			depth--;
			break;
		case '[': p = bracket_end(p); break;
		case '\\':
			if (p[1] >= '1' && p[1] <= '9')
				return "back-references are not supported";
			if (p[1])
				p++;
			break;
		case '{':
			if (!interval(p, &n, &end))
				break;
			if (was)
				return REPEAT_REPEAT;
			repeated = true;
			repeat(&total[depth], &last[depth], n);
			p = end;
			if (total[depth] > REGEX_COST_MAX)
				return TOO_COMPLEX;
			continue;
		case '+':
			if (was)
				return REPEAT_REPEAT;
			repeated = true;
			/* The operand, then a starred copy of it. */
			repeat(&total[depth], &last[depth], 2);
			if (total[depth] > REGEX_COST_MAX)
				return TOO_COMPLEX;
			continue;
		case '|': last[depth] = 0; continue;
		case '*':
		case '?':
			if (was)
				return REPEAT_REPEAT;
			repeated = true;
			continue;
		}
		total[depth] = cost_add(total[depth], atom);
		last[depth] = atom;
		if (total[depth] > REGEX_COST_MAX)
			return TOO_COMPLEX;
	}
	return NULL;
}
