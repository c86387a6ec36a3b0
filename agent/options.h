/*
 * The agent's option values that need more than a flag's own checks: the
 * inventory interval and the node name.
 */
#ifndef FLOTILLA_AGENT_OPTIONS_H
#define FLOTILLA_AGENT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flotilla.pb-c.h"
#include "flotilla/error.h"
#include "flotilla/flags.h"

/* Shortest and longest --inventory-interval. */
#define AGENT_INTERVAL_MIN_MS 1000
#define AGENT_INTERVAL_MAX_MS 86400000

/*
 * Parses a duration written as numbers with units, "ms", "s", "m" or "h",
 * one after the other ("90s", "5m", "1h30m", "1500ms"). Returns 0 with *ms
 * set; -EINVAL when s is not such a duration; -ERANGE when it is shorter
 * than AGENT_INTERVAL_MIN_MS or longer than AGENT_INTERVAL_MAX_MS (*ms is
 * left alone on failure).
 */
int agent_interval_parse(const char *s, int64_t *ms);

/*
 * The node name when none is given: the host name up to its first dot
 * (len at least 2; "" when the host name cannot be read). Not checked:
 * the caller checks names from either source the same way.
 */
void agent_default_name(char *out, size_t len);

/* The --allow-* flags as given. */
typedef struct agent_allow_flags {
	const flt_strlist_t *caps; /* NAME or CAP_NAME, any case */
	const flt_strlist_t *volumes; /* NAME=PATH[:ro|rw] */
	const flt_strlist_t *syscalls;
	const flt_strlist_t *users; /* NAME, UID or UID:GID */
	bool host_network;
	bool seccomp_unconfined;
} agent_allow_flags_t;

/*
 * Builds the agent's allowances from its flags into *out (free with
 * flotilla__allowances__free_unpacked(*out, NULL)): capabilities
 * normalised ("CAP_NET_ADMIN"), volume paths canonical, every list sorted
 * without duplicates. Refuses (FLT_EUSAGE, naming the flag and value)
 * what is malformed or unknown, and whatever is never granted
 * (flotilla/privilege.h): CAP_SYS_MODULE, open_by_handle_at, a volume
 * that is, holds or lies inside /proc, /run... or data_dir (the agent's
 * own state, canonicalised when it exists), root as a user.
 */
int agent_allowances_build(const agent_allow_flags_t *f, const char *data_dir,
			   Flotilla__Allowances **out, flt_error_t *err);

#endif
