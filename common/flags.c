#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "flotilla/flags.h"
#include "flotilla/util.h"

#define LABEL_KEY_MAX 63
#define LABEL_VALUE_MAX 255

int flt_kv_split(const char *s, char *key, size_t keylen, const char **value,
		 flt_error_t *err)
{
	const char *eq = strchr(s, '=');
	if (!eq)
		return flt_err(err, -EINVAL, "\"%s\": expected key=value", s);
	size_t kl = (size_t)(eq - s);
	if (kl == 0 || kl > LABEL_KEY_MAX || kl >= keylen)
		return flt_err(err, -EINVAL,
			       "\"%s\": key must be 1 to %d characters", s,
			       LABEL_KEY_MAX);
	memcpy(key, s, kl);
	key[kl] = '\0';
	if (!flt_is_name(key, LABEL_KEY_MAX))
		return flt_err(err, -EINVAL,
			       "\"%s\": key may hold only letters, digits, "
			       "'.', '_' and '-'",
			       s);
	if (strlen(eq + 1) > LABEL_VALUE_MAX)
		return flt_err(err, -EINVAL,
			       "\"%s\": value longer than %d bytes", s,
			       LABEL_VALUE_MAX);
	/* Typed by a person: a control character there is a slip. */
	const char *why;
	size_t vl = strlen(eq + 1);
	size_t at = flt_text_check(eq + 1, vl, 0, &why);
	if (at < vl)
		return flt_err(err, -EINVAL, "\"%s\": value: %s at byte %zu", s,
			       why, at);
	*value = eq + 1;
	return 0;
}

static int set_value(const flt_flag_t *f, const char *arg, const char *from,
		     flt_error_t *err)
{
	switch (f->type) {
	case FLT_FLAG_STRING:
		if (!*arg)
			return flt_err(err, FLT_EUSAGE,
				       "%s%s: must not be empty", from,
				       f->name);
		*(const char **)f->dest = arg;
		return 0;
	case FLT_FLAG_INT: {
		char *end;
		errno = 0;
		long v = strtol(arg, &end, 10);
		if (errno || end == arg || *end)
			return flt_err(err, FLT_EUSAGE,
				       "%s%s: \"%s\" is not a whole number",
				       from, f->name, arg);
		if ((f->min || f->max) && (v < f->min || v > f->max))
			return flt_err(err, FLT_EUSAGE,
				       "%s%s: must be between %ld and %ld",
				       from, f->name, f->min, f->max);
		*(long *)f->dest = v;
		return 0;
	}
	case FLT_FLAG_BOOL: *(bool *)f->dest = true; return 0;
	case FLT_FLAG_KV: {
		char key[LABEL_KEY_MAX + 1];
		const char *value;
		int rc = flt_kv_split(arg, key, sizeof(key), &value, err);
		if (rc < 0) {
			if (err) {
				flt_err_prefix(err, "%s%s", from, f->name);
				err->code = FLT_EUSAGE;
			}
			return FLT_EUSAGE;
		}
	}
		/* fallthrough */
	case FLT_FLAG_LIST: {
		flt_strlist_t *l = f->dest;
		l->v = flt_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->v[l->n++] = arg;
		return 0;
	}
	}
	return flt_err(err, FLT_EUSAGE, "%s: bad flag table", f->name);
}

int flt_flags_parse(const flt_flag_t *flags, int argc, char **argv, int *next,
		    flt_error_t *err)
{
	size_t n = 0;
	while (flags[n].name)
		n++;

	struct option *opts = flt_xcalloc(n + 3, sizeof(*opts));
	for (size_t i = 0; i < n; i++) {
		opts[i].name = flags[i].name;
		opts[i].has_arg = flags[i].type == FLT_FLAG_BOOL
					  ? no_argument
					  : required_argument;
		opts[i].val = (int)(1000 + i);
	}
	opts[n].name = "help";
	opts[n].val = 'h';
	opts[n + 1].name = "version";
	opts[n + 1].val = 'V';

	bool seen[n + 1];
	memset(seen, 0, sizeof(seen));
	int rc = 0;

	/* '+': stop at the first operand (a subcommand); ':': we report. */
	optind = 0;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "+:h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'h' || c == 'V') {
			rc = c == 'h' ? FLT_FLAGS_HELP : FLT_FLAGS_VERSION;
			goto out;
		}
		if (c == '?' || c == ':') {
			char shortname[3] = { '-', (char)optopt, '\0' };
			const char *bad = argv[optind - 1];
			const char *why =
				c == ':' ? "needs a value" : "unknown flag";
			if (c == '?' && optopt >= 1000) {
				/* --bool=value */
				bad = flags[optopt - 1000].name;
				rc = flt_err(err, FLT_EUSAGE,
					     "--%s: takes no value", bad);
				goto out;
			}
			if (c == '?' && (optopt == 'h' || optopt == 'V') &&
			    strncmp(bad, "--", 2) == 0) {
				/* --help=value, --version=value */
				rc = flt_err(
					err, FLT_EUSAGE, "--%s: takes no value",
					optopt == 'h' ? "help" : "version");
				goto out;
			}
			if (optopt > 0 && optopt < 1000)
				bad = shortname;
			rc = flt_err(err, FLT_EUSAGE, "%s: %s", bad, why);
			goto out;
		}
		size_t i = (size_t)(c - 1000);
		rc = set_value(&flags[i], optarg, "--", err);
		if (rc < 0)
			goto out;
		seen[i] = true;
	}
	for (size_t i = 0; i < n; i++) {
		const char *v;
		if (seen[i] || !flags[i].env || !(v = getenv(flags[i].env)) ||
		    !*v)
			continue;
		rc = set_value(&flags[i], v, "$", err);
		if (rc < 0) {
			/* Name the variable, not the flag, in the message. */
			flt_err_prefix(err, "%s (from the environment)",
				       flags[i].env);
			goto out;
		}
	}
	*next = optind;
out:
	free(opts);
	return rc;
}

void flt_flags_usage(FILE *f, const char *usage, const flt_flag_t *flags)
{
	fprintf(f, "%s\n\nOptions:\n", usage);
	for (const flt_flag_t *fl = flags; fl->name; fl++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", fl->name,
			 fl->metavar ? " " : "",
			 fl->metavar ? fl->metavar : "");
		fprintf(f, "  %-30s %s", left, fl->help);
		if (fl->env)
			fprintf(f, " [$%s]", fl->env);
		fputc('\n', f);
	}
	fprintf(f, "  %-30s %s\n", "--help", "show this help");
	fprintf(f, "  %-30s %s\n", "--version", "show the version");
}

int flt_flags_main(const flt_flag_t *flags, int argc, char **argv, int *next,
		   const char *program, const char *usage, bool operands)
{
	flt_error_t err;
	int rc = flt_flags_parse(flags, argc, argv, next, &err);
	if (rc == FLT_FLAGS_HELP) {
		flt_flags_usage(stdout, usage, flags);
		return 0;
	}
	if (rc == FLT_FLAGS_VERSION) {
		printf("%s %s\n", program, FLT_VERSION);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", program, FLT_ESC(err.msg));
		return FLT_FLAGS_EXIT_USAGE;
	}
	if (!operands && *next < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", program,
			FLT_ESC(argv[*next]));
		return FLT_FLAGS_EXIT_USAGE;
	}
	return -1;
}

size_t flt_edit_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);

	if ((la > lb ? la - lb : lb - la) > max)
		return max + 1;
	/*
	 * Three rows of the Wagner-Fischer table (the one before the last
	 * for transpositions): command words are short.
	 */
	size_t *rows = flt_xcalloc(3 * (lb + 1), sizeof(*rows));
	size_t *before = rows, *prev = rows + lb + 1,
	       *cur = rows + 2 * (lb + 1);
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && before[j - 2] + 1 < best)
				best = before[j - 2] + 1;
			cur[j] = best;
		}
		size_t *t = before;
		before = prev;
		prev = cur;
		cur = t;
	}
	size_t d = prev[lb];
	free(rows);
	return d > max ? max + 1 : d;
}

const char *flt_nearest(const char *s, const char *const *candidates, size_t n,
			size_t max)
{
	const char *best = NULL;
	size_t best_d = max + 1;

	for (size_t i = 0; i < n; i++) {
		if (!candidates[i])
			continue;
		size_t d = flt_edit_distance(s, candidates[i], max);
		if (d < best_d) {
			best = candidates[i];
			best_d = d;
		}
	}
	return best;
}

void flt_flags_free(const flt_flag_t *flags)
{
	for (; flags->name; flags++) {
		if (flags->type != FLT_FLAG_LIST && flags->type != FLT_FLAG_KV)
			continue;
		flt_strlist_t *l = flags->dest;
		free(l->v);
		l->v = NULL;
		l->n = 0;
	}
}

static const struct {
	const char *name;
	uint64_t ms;
} units[] = {
	{ "ms", 1 },      { "s", 1000 },     { "m", 60000 },
	{ "h", 3600000 }, { "d", 86400000 },
};

/* The unit at the start of s (longest name first: "ms" before "m"). */
static int unit_at(const char *s, size_t *len)
{
	int best = -1;
	size_t best_len = 0;
	for (size_t i = 0; i < FLT_ARRAY_SIZE(units); i++) {
		size_t l = strlen(units[i].name);
		if (l > best_len && strncmp(s, units[i].name, l) == 0) {
			best = (int)i;
			best_len = l;
		}
	}
	*len = best_len;
	return best;
}

int flt_duration_parse(const char *s, uint64_t max_ms, uint64_t *ms,
		       flt_error_t *err)
{
	uint64_t total = 0;
	const char *p = s;

	if (!*p)
		return flt_err(err, -EINVAL,
			       "empty duration (e.g. 30s, 5m, 1h)");
	while (*p) {
		uint64_t v = 0;
		size_t ulen;
		if (*p < '0' || *p > '9')
			return flt_err(err, -EINVAL,
				       "\"%s\": not a duration (e.g. 30s, 5m, "
				       "1h30m)",
				       s);
		for (; *p >= '0' && *p <= '9'; p++) {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > max_ms)
				goto too_long;
		}
		int u = unit_at(p, &ulen);
		if (u < 0)
			return flt_err(err, -EINVAL,
				       "\"%s\": %s (units: ms, s, m, h, d)", s,
				       *p ? "unknown unit" : "missing unit");
		if (v > max_ms / units[u].ms)
			goto too_long;
		total += v * units[u].ms;
		if (total > max_ms)
			goto too_long;
		p += ulen;
	}
	if (total == 0)
		return flt_err(err, -ERANGE, "\"%s\": must be more than 0", s);
	*ms = total;
	return 0;
too_long:
	return flt_err(err, -ERANGE, "\"%s\": longer than %llu hours", s,
		       (unsigned long long)(max_ms / 3600000));
}
