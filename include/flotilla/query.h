/*
 * Inventory queries: which hosts have what, at which versions.
 *
 *   log4j-core < 2.17.1
 *   maven:log4j-core >= 2.0-beta9, < 2.17.1       (a clause list: all hold)
 *   log4j-core in [2.0-beta9, 2.3.2) | [2.4, 2.12.4) | [2.13.0, 2.17.1)
 *   dpkg:openssl < 3.0.11-1~deb12u1 and label.zone = eu-1
 *   advisory:CVE-2021-44228 or advisory:CVE-2021-45046
 *   (java:log4j-core or managed:log4j-core) and not node.name = db1
 *
 * A package term names an item (bare, or group:artifact for Java) with an
 * optional scheme ("maven:", "dpkg:", "semver:") or kind ("java:",
 * "dpkg:", "managed:") prefix, and optional version clauses or a union of
 * ranges. Without a scheme, Java and managed items order by Maven, dpkg
 * items by dpkg. A node term is node.name, node.id, attr.<fingerprint
 * field> or label.<key> with =, != or ~ (a regular expression: PCRE2,
 * bounded, see flotilla/regex.h). "all" matches every host. Terms
 * combine with and, or, not and parentheses.
 * advisory:ID stands for the advisory's affected ranges of its package.
 *
 * In detail:
 *   - Keywords (and, or, not, in, all), prefixes and advisory IDs are
 *     case-insensitive; not binds tighter than and, and than or. Values
 *     and versions may be quoted ('...' or "...", no escapes); unquoted,
 *     a value ends at a blank or a parenthesis (quote regexps that hold
 *     one), a version also at any of ,[]|.
 *   - "maven:" and "semver:" select Java and managed items, "dpkg:" dpkg
 *     items in dpkg order, "java:" and "managed:" one kind in its default
 *     order. A name is an item's name (a Maven artifactId); group:artifact
 *     also requires the item's group.
 *   - Clauses (=, !=, <, <=, >, >=) joined by ',' must all hold; a range
 *     union is [a, b) | (c, d] | ... ("∪" may stand for "|"), an empty
 *     bound is unbounded ("[, 2.3.1)"). Without either, the package is
 *     present at any version. An item whose version is not a semantic
 *     version never satisfies a semver: term.
 *   - node.name, node.id, attr.<field> and label.<key> compare the value
 *     the host gives: = and ~ fail where it gives none, != holds.
 *   - advisory:ID (its id or an alias) matches the advisory's package by
 *     name whatever the group: archives found by their file name carry
 *     none.
 *   - At most 4096 bytes, 256 terms, 32 levels of parentheses and not.
 */
#ifndef FLOTILLA_QUERY_H
#define FLOTILLA_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"

typedef struct flt_advisories flt_advisories_t;
typedef struct flt_query flt_query_t;

/*
 * Loads an advisory file (JSON, see share/advisories/log4shell.json):
 *
 *   {"advisories": [{"id", "aliases"?, "summary", "severity", "cvss",
 *     "package": {"ecosystem", "group"?, "name"}, "affected": [ranges],
 *     "fixed"?, "source", "notes"?}, ...]}
 *
 * A malformed file (a missing or unknown field, a range that does not
 * parse or is empty, an id or alias given twice) is refused whole with
 * -EINVAL, the message naming the file, entry and field: "x.json:
 * advisories[1] (CVE-2021-45046): affected[0]: column 10: expected \")\"
 * or \"]\", found the end of the range". A file that cannot be read: its
 * negative errno.
 */
int flt_advisories_load(const char *path, flt_advisories_t **out,
			flt_error_t *err);
void flt_advisories_free(flt_advisories_t *a);

/* One advisory as its file gives it, lent until flt_advisories_free. */
typedef struct flt_advisory {
	const char *id; /* "CVE-2021-44228" */
	const char *const *aliases;
	size_t n_aliases;
	const char *summary;
	const char *severity; /* critical, high, moderate, medium or low */
	double cvss; /* 0 to 10 */
	const char *ecosystem; /* "maven", "dpkg" or "semver" */
	const char *group; /* "" when not given */
	const char *name;
	const char *const *affected; /* ranges in the query syntax */
	size_t n_affected;
	const char *const *fixed; /* the first fixed version of each line */
	size_t n_fixed;
	const char *source; /* where the ranges come from */
	const char *notes; /* "" when not given */
} flt_advisory_t;

/* The advisories in file order, and one by id or alias (any case; NULL
 * when unknown). */
size_t flt_advisories_count(const flt_advisories_t *a);
const flt_advisory_t *flt_advisories_at(const flt_advisories_t *a, size_t i);
const flt_advisory_t *flt_advisories_find(const flt_advisories_t *a,
					  const char *id);

/*
 * Parses text into *out (free with flt_query_free). adv may be NULL (then
 * advisory: terms are refused); the query keeps no reference to it.
 * -EINVAL when text is not a query, the message naming the column (in
 * characters, from 1) and what was expected: "column 14: expected a
 * version, found the end of the query".
 */
int flt_query_parse(const char *text, const flt_advisories_t *adv,
		    flt_query_t **out, flt_error_t *err);
void flt_query_free(flt_query_t *q);

/* The query in canonical form, advisories expanded to their ranges
 * (owned by q). */
const char *flt_query_string(const flt_query_t *q);

/* True when the query has at least one package term (a target must). */
bool flt_query_has_package_term(const flt_query_t *q);

/* One host as a query sees it. */
typedef struct flt_query_host {
	const char *id;
	const char *name;
	/* node.name, node.id, attr.<field>, label.<key>: the value, or NULL
	 * when the host has no such attribute. Called with the whole key
	 * ("label.zone"); node.name and node.id read name and id instead
	 * when those are set. May be NULL. */
	const char *(*attr)(void *arg, const char *key);
	void *attr_arg;
	/* The inventory, sorted by name with strcmp (Inventory's order;
	 * flt_query_item_cmp sorts so). */
	Flotilla__InventoryItem *const *items;
	size_t n_items;
} flt_query_host_t;

/*
 * qsort's comparison for an array of Flotilla__InventoryItem pointers: by
 * name (strcmp), then kind, path and version.
 */
int flt_query_item_cmp(const void *a, const void *b);

/*
 * Does host match? When hits and n_hits are not NULL, the indexes of the
 * items that satisfied a package term under a positive path of the query
 * (every term on the way holds, none under a not) are stored in hits
 * (room for host->n_items) and counted in *n_hits, ascending and without
 * duplicates; *n_hits is 0 when the host does not match. Thread-safe
 * for concurrent calls on the same q. A regular expression that a bound
 * stops (flt_regex_match) counts as no match and is kept for
 * flt_query_error: callers check it and refuse the whole answer.
 */
bool flt_query_match(const flt_query_t *q, const flt_query_host_t *host,
		     size_t *hits, size_t *n_hits);

/* 0 when every match of q so far completed; otherwise the first bound
 * that stopped one (-ERANGE), its message ("regular expression: match
 * limit exceeded (100000 steps)") in err. */
int flt_query_error(const flt_query_t *q, flt_error_t *err);

#endif
