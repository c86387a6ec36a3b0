/* Option values of the agent: durations and the default node name. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "flotilla/flags.h"
#include "options.h"

int agent_interval_parse(const char *s, int64_t *ms)
{
	uint64_t v;

	/* Days are not among this flag's units. */
	if (strchr(s, 'd'))
		return -EINVAL;
	int rc = flt_duration_parse(s, AGENT_INTERVAL_MAX_MS, &v, NULL);
	if (rc < 0)
		return rc;
	if (v < AGENT_INTERVAL_MIN_MS)
		return -ERANGE;
	*ms = (int64_t)v;
	return 0;
}

void agent_default_name(char *out, size_t len)
{
	if (gethostname(out, len - 1) != 0)
		out[0] = '\0';
	out[len - 1] = '\0';
	char *dot = strchr(out, '.');
	if (dot)
		*dot = '\0';
}
