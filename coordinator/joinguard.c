/*
 * Failed joins: a back-off per source address, a global cap, and logs at
 * a bounded rate. Register is the one method open to anyone who reaches
 * the agent port; without this one connection made 8,356 guesses of the
 * join token a second, and its refusals filled the log (10 MB in 10 s).
 *
 * A source is the peer's address without its port (a NAT or a reconnect
 * does not change it). After its k-th failed join in a row, a source is
 * refused for 100 ms * 2^(k-1), at most 30 s: the token is not even
 * compared, the answer is "retry in N s" at once (the connection is never
 * held). Refusals in that window neither count as failures nor extend it,
 * so an agent behind the same NAT as a guesser gets its turn within 30 s;
 * the back-off applies to attempts, as Nomad's does, and a good token in
 * the window waits like any other. A success forgets the source's
 * failures, and so do 10 quiet minutes. Across all sources at most 50
 * joins a second may fail; past that every join is refused until the
 * second is over, which bounds guessing from many addresses at once (at
 * the price of delaying new agents during such an attack; registered
 * nodes never join again and are not affected).
 *
 * The table holds 1024 sources (about 100 KiB); a new source takes the
 * place of the one whose last failure is oldest. Evicting a source loses
 * its back-off, which is why the global cap exists.
 *
 * Logs: a source's first refusal is logged at once, later ones at most
 * once per 10 s per source as "N more refused joins from X in the last
 * T s", and at most 20 such lines per 10 s in all; what the global budget
 * held back is summed up in one line when it allows again.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "coordinator.h"
#include "flotilla/lock.h"
#include "flotilla/log.h"
#include "flotilla/util.h"

#define SOURCES 1024
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define FORGET_MS (10 * 60 * 1000)
#define GLOBAL_FAILS_PER_S 50
#define LOG_EVERY_MS 10000
#define LOG_LINES_PER_WINDOW 20

typedef struct source {
	char addr[64]; /* "" when the slot is free */
	uint32_t failures; /* in a row */
	int64_t last_ms; /* the last failure */
	int64_t until_ms; /* refused until then */
	uint64_t unlogged; /* refusals not in the log yet */
	int64_t unlogged_since;
	int64_t logged_ms; /* the last line about it, 0: none yet */
} source_t;

struct coord_joinguard {
	flt_mutex_t mtx;
	coord_joinguard_log_fn log;
	void *log_arg;
	source_t src[SOURCES];
	int64_t fail_window; /* the second the global count is of */
	uint32_t fail_count;
	int64_t log_window;
	uint32_t log_lines;
	uint64_t held_back; /* refusals whose line the budget held back */
	int64_t held_since;
};

static void default_log(void *arg, const char *line)
{
	(void)arg;
	flt_warn("%s", line);
}

coord_joinguard_t *coord_joinguard_new(coord_joinguard_log_fn log, void *arg)
{
	coord_joinguard_t *g = flt_xcalloc(1, sizeof(*g));
	flt_mutex_init(&g->mtx, COORD_LOCK_JOINS, "joins");
	g->log = log ? log : default_log;
	g->log_arg = arg;
	return g;
}

void coord_joinguard_free(coord_joinguard_t *g)
{
	if (!g)
		return;
	flt_mutex_destroy(&g->mtx);
	free(g);
}

/* "10.0.0.7:50412" -> "10.0.0.7", "[fe80::1]:9" -> "[fe80::1]". */
static void source_of(const char *peer, char *out, size_t len)
{
	const char *end = NULL;
	if (peer[0] == '[')
		end = strchr(peer, ']') ? strchr(peer, ']') + 1 : NULL;
	else if (strchr(peer, ':') == strrchr(peer, ':'))
		end = strchr(peer, ':');
	size_t n = end ? (size_t)(end - peer) : strlen(peer);
	snprintf(out, len, "%.*s", (int)n, peer);
}

/* Whether a line may be written now (the global budget). */
static bool may_log(coord_joinguard_t *g, int64_t now)
{
	if (now - g->log_window >= LOG_EVERY_MS) {
		g->log_window = now;
		g->log_lines = 0;
		if (g->held_back) {
			char line[160];
			snprintf(line, sizeof(line),
				 "registration refused: %llu more refused "
				 "joins not logged in the last %lld s",
				 (unsigned long long)g->held_back,
				 (long long)((now - g->held_since) / 1000 + 1));
			g->held_back = 0;
			g->log_lines++;
			g->log(g->log_arg, line);
		}
	}
	return g->log_lines < LOG_LINES_PER_WINDOW;
}

/*
 * Writes what is due about s: its summary, or why (non-NULL: this
 * refusal, counted already) when nothing is pending besides it.
 */
static void log_source(coord_joinguard_t *g, source_t *s, int64_t now,
		       const char *why)
{
	char line[256];
	if (!s->unlogged || (s->logged_ms && now - s->logged_ms < LOG_EVERY_MS))
		return;
	if (!may_log(g, now)) {
		if (!g->held_back)
			g->held_since = s->unlogged_since;
		g->held_back += s->unlogged;
		s->unlogged = 0;
		s->logged_ms = now;
		return;
	}
	if (why && s->unlogged == 1)
		snprintf(line, sizeof(line), "registration refused: %s peer=%s",
			 why, s->addr);
	else
		snprintf(line, sizeof(line),
			 "registration refused: %llu more refused joins from "
			 "%s in the last %lld s",
			 (unsigned long long)s->unlogged, s->addr,
			 (long long)((now - s->unlogged_since) / 1000 + 1));
	g->log_lines++;
	s->unlogged = 0;
	s->logged_ms = now;
	g->log(g->log_arg, line);
}

static void refused(coord_joinguard_t *g, source_t *s, int64_t now,
		    const char *why)
{
	if (!s->unlogged++)
		s->unlogged_since = now;
	log_source(g, s, now, why);
}

/* The source's slot, or (create) the stalest one for a new source. */
static source_t *find(coord_joinguard_t *g, const char *peer, int64_t now,
		      bool create)
{
	char addr[64];
	source_t *free_slot = NULL, *oldest = NULL;

	source_of(peer, addr, sizeof(addr));
	for (size_t i = 0; i < SOURCES; i++) {
		source_t *s = &g->src[i];
		if (!s->addr[0]) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (!strcmp(s->addr, addr)) {
			if (now - s->last_ms >= FORGET_MS && !s->unlogged)
				s->failures = 0;
			return s;
		}
		if (!oldest || s->last_ms < oldest->last_ms)
			oldest = s;
	}
	if (!create)
		return NULL;
	source_t *s = free_slot ? free_slot : oldest;
	if (s->unlogged) {
		if (!g->held_back)
			g->held_since = s->unlogged_since;
		g->held_back += s->unlogged;
	}
	memset(s, 0, sizeof(*s));
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	s->last_ms = now;
	return s;
}

int coord_joinguard_admit(coord_joinguard_t *g, const char *peer, int64_t now,
			  flt_error_t *err)
{
	int rc = 0;
	flt_mutex_lock(&g->mtx);
	source_t *s = find(g, peer, now, false);
	if (s && now < s->until_ms) {
		int64_t tenths = (s->until_ms - now + 99) / 100;
		refused(g, s, now, NULL);
		rc = flt_err(
			err, -EAGAIN,
			"too many failed joins from %s: retry in %lld.%lld "
			"s",
			s->addr, (long long)(tenths / 10),
			(long long)(tenths % 10));
	} else if (now / 1000 == g->fail_window &&
		   g->fail_count >= GLOBAL_FAILS_PER_S) {
		if (s) {
			refused(g, s, now, NULL);
		} else {
			if (!g->held_back)
				g->held_since = now;
			g->held_back++;
		}
		rc = flt_err(err, -EAGAIN,
			     "too many failed joins on this coordinator: retry "
			     "in %lld ms",
			     (long long)(1000 - now % 1000));
	}
	flt_mutex_unlock(&g->mtx);
	return rc;
}

void coord_joinguard_failed(coord_joinguard_t *g, const char *peer, int64_t now,
			    const char *why)
{
	flt_mutex_lock(&g->mtx);
	source_t *s = find(g, peer, now, true);
	if (now / 1000 != g->fail_window) {
		g->fail_window = now / 1000;
		g->fail_count = 0;
	}
	g->fail_count++;
	int64_t d = BACKOFF_MIN_MS;
	for (uint32_t i = 0; i < s->failures && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	s->failures++;
	s->last_ms = now;
	s->until_ms = now + d;
	refused(g, s, now, why);
	flt_mutex_unlock(&g->mtx);
}

void coord_joinguard_succeeded(coord_joinguard_t *g, const char *peer,
			       int64_t now)
{
	flt_mutex_lock(&g->mtx);
	source_t *s = find(g, peer, now, false);
	if (s) {
		s->failures = 0;
		s->until_ms = 0;
	}
	flt_mutex_unlock(&g->mtx);
}

void coord_joinguard_tick(coord_joinguard_t *g, int64_t now)
{
	flt_mutex_lock(&g->mtx);
	for (size_t i = 0; i < SOURCES; i++) {
		source_t *s = &g->src[i];
		if (!s->addr[0])
			continue;
		log_source(g, s, now, NULL);
		if (!s->unlogged && now - s->last_ms >= FORGET_MS &&
		    now >= s->until_ms)
			memset(s, 0, sizeof(*s));
	}
	(void)may_log(g, now);
	flt_mutex_unlock(&g->mtx);
}
