/*
 * Version ordering of the ecosystems inventory meets: dpkg (deb-version(5),
 * exactly as dpkg's lib/dpkg/version.c), Maven (Maven 3.9's
 * ComparableVersion) and Semantic Versioning 2.0.
 */
#ifndef FLOTILLA_VERCMP_H
#define FLOTILLA_VERCMP_H

#include <stdbool.h>

#include "flotilla/error.h"

typedef enum flt_vscheme {
	FLT_VS_DPKG,
	FLT_VS_MAVEN,
	FLT_VS_SEMVER,
} flt_vscheme_t;

/* "dpkg", "maven" or "semver" to the scheme; false for any other name. */
bool flt_vscheme_parse(const char *name, flt_vscheme_t *out);
const char *flt_vscheme_name(flt_vscheme_t s);

/*
 * <0, 0 or >0 as a sorts before, with or after b. Total: any string is a
 * dpkg or Maven version (a dpkg version that dpkg would refuse compares
 * as dpkg compares it anyway). Numbers of any length compare as numbers.
 * Maven's follows Maven 3.9's ComparableVersion: tokens split at '.', '-'
 * and digit/letter transitions, a '-' or a transition opening a sub-list
 * (".X" sorts as "-X"); trailing null items (0, "") trimmed from each list;
 * case-insensitive; aliases "ga", "final", "release" = "" (the release),
 * "cr" = "rc", and "a", "b", "m" directly before a digit = "alpha",
 * "beta", "milestone"; alpha < beta < milestone < rc < snapshot < "" < sp
 * < unknown qualifiers (lexically, case folded); numbers of any length.
 * One addition: '_' separates as '-' does (as Maven Resolver's
 * GenericVersion splits there too). So 5.2.20.RELEASE = 5.2.20.
 * flt_dpkg_cmp never allocates, flt_maven_cmp only for versions longer
 * than 30 bytes.
 */
int flt_dpkg_cmp(const char *a, const char *b);
int flt_maven_cmp(const char *a, const char *b);

/*
 * Compares a and b under scheme s into *out (<0, 0, >0). 0, or -EINVAL
 * when a semver operand is not a semantic version (err says which).
 */
int flt_version_cmp(flt_vscheme_t s, const char *a, const char *b, int *out,
		    flt_error_t *err);

#endif
