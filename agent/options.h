/*
 * The agent's option values that need more than a flag's own checks: the
 * inventory interval and the node name.
 */
#ifndef FLOTILLA_AGENT_OPTIONS_H
#define FLOTILLA_AGENT_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

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

#endif
