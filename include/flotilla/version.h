/* Version ordering. Semantic Versioning 2.0 for now (dpkg and Maven join
 * it for inventory). */
#ifndef FLOTILLA_VERSION_H
#define FLOTILLA_VERSION_H

#include <stdbool.h>

#include "flotilla/error.h"

/*
 * Compares two versions by SemVer 2.0 precedence (build metadata ignored,
 * pre-releases before their release, numeric identifiers numerically).
 * Missing minor or patch count as 0 and a leading "v" is allowed, as
 * operators write them ("v1.2"). -EINVAL when either is not a version.
 */
int flt_semver_cmp(const char *a, const char *b, int *out);

/*
 * Does version satisfy range? A range is comma-separated clauses, each an
 * operator (=, !=, <, <=, >, >=, ~ (same minor), ^ (same major, or minor
 * below 1.0)) and a version; "=" may be left out. As in npm, a
 * pre-release (2.0.0-rc.1) satisfies a range only when one of its clauses
 * names a pre-release of the same version. -EINVAL (with the reason in err)
 * for a malformed range or version.
 */
int flt_semver_range_match(const char *range, const char *version, bool *match,
			   flt_error_t *err);

#endif
