/* Option values of the agent: durations and the default node name. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "flotilla/util.h"
#include "options.h"

int agent_interval_parse(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }
	};
	int64_t total = 0;

	if (!*s)
		return -EINVAL;
	while (*s) {
		int64_t v = 0;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++)
			if ((v = v * 10 + (*s - '0')) > AGENT_INTERVAL_MAX_MS)
				return -ERANGE;
		size_t u = 0, ulen = 0;
		for (size_t i = 0; i < FLT_ARRAY_SIZE(units); i++) {
			size_t n = strlen(units[i].unit);
			/* The longest unit that fits: "ms" before "m". */
			if (!strncmp(s, units[i].unit, n) && n > ulen) {
				u = i;
				ulen = n;
			}
		}
		if (!ulen)
			return -EINVAL;
		total += v * units[u].ms;
		if (total > AGENT_INTERVAL_MAX_MS)
			return -ERANGE;
		s += ulen;
	}
	if (total < AGENT_INTERVAL_MIN_MS)
		return -ERANGE;
	*ms = total;
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
